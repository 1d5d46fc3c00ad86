"""Peak traced memory of a call, for the memory-bound tests.

tracemalloc sees Python and NumPy allocations and the kernels' scratch
buffers (``PyMem_RawMalloc``); its peaks are deterministic, so bounds on them
can be asserted.
"""

import gc
import tracemalloc


def traced_peak(fn):
    """Peak traced memory (bytes) during ``fn()``, and ``fn``'s result."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()
