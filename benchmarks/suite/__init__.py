"""The skcce benchmark suite: problems, machine measurements, contenders and reports.

Run it with ``python benchmarks/run.py`` (see ``benchmarks/README.md``).
"""
