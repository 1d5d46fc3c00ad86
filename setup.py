"""Build the skcce Cython extensions.

OpenMP is used when the compiler can compile, link *and run* an OpenMP program;
otherwise the extensions are built serially, with a warning. Setting the
environment variable ``SKCCE_NO_OPENMP=1`` forces the serial build.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST_PROGRAM = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel num_threads(2) reduction(+:n)
        n += 1;
        printf("%d", n);
        return n == 2 ? 0 : 1;
    }
    """
)


def openmp_flags(compiler_type):
    """Compile and link flags that enable OpenMP for this compiler family."""
    if compiler_type == "msvc":
        return ["/openmp"], []
    return ["-fopenmp"], ["-fopenmp"]


def compiler_runs_openmp(compiler):
    """Whether ``compiler`` can compile, link and run an OpenMP program."""
    compile_flags, link_flags = openmp_flags(compiler.compiler_type)
    tmpdir = tempfile.mkdtemp(prefix="skcce_openmp_probe_")
    try:
        source = os.path.join(tmpdir, "probe.c")
        with open(source, "w") as f:
            f.write(OPENMP_TEST_PROGRAM)
        objects = compiler.compile(
            [source], output_dir=tmpdir, extra_postargs=compile_flags
        )
        exe = os.path.join(tmpdir, "probe")
        compiler.link_executable(objects, exe, extra_postargs=link_flags)
        result = subprocess.run([exe], capture_output=True, timeout=60)
        return result.returncode == 0 and result.stdout.strip() == b"2"
    except Exception:  # any compile, link or run failure means "no OpenMP"
        return False
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


class BuildExtWithOpenMP(build_ext):
    """build_ext that adds OpenMP flags when they work, else builds serially."""

    def build_extensions(self):
        forced_serial = os.environ.get("SKCCE_NO_OPENMP", "0") not in ("", "0")
        if forced_serial:
            use_openmp = False
            print("skcce: SKCCE_NO_OPENMP is set; building without OpenMP.")
        else:
            use_openmp = compiler_runs_openmp(self.compiler)
            if not use_openmp:
                warnings.warn(
                    "skcce: the compiler cannot build and run an OpenMP program; "
                    "building the kernels without OpenMP (single-threaded).",
                    stacklevel=1,
                )
        compile_flags, link_flags = openmp_flags(self.compiler.compiler_type)
        for ext in self.extensions:
            if use_openmp:
                ext.extra_compile_args += compile_flags
                ext.extra_link_args += link_flags
            elif self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += ["-Wno-unknown-pragmas"]
        print(f"skcce: OpenMP {'enabled' if use_openmp else 'disabled'}.")
        super().build_extensions()


KERNELS = os.path.join("skcce", "_kernels")


def extensions():
    """One extension per kernel module of ``skcce/_kernels``.

    Their C headers and shared ``.pxd`` files sit beside them; every module
    depends on all of them (a change to a header rebuilds every module).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    optimize = [] if sys.platform == "win32" else ["-O3"]
    shared = sorted(
        os.path.join(KERNELS, name) for name in os.listdir(os.path.join(here, KERNELS))
        if name.endswith((".h", ".pxd"))
    )
    modules = [
        Extension(
            f"skcce._kernels.{name}",
            sources=[os.path.join(KERNELS, f"{name}.pyx")],
            include_dirs=[np.get_include(), os.path.join(here, KERNELS)],
            depends=shared,
            extra_compile_args=list(optimize),
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for name in ("dense", "sparse", "reductions", "predict")
    ]
    return cythonize(
        modules,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtWithOpenMP})
