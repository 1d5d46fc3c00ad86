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


def openmp_flag_candidates(compiler_type):
    """(compile flags, link flags) that may enable OpenMP, in order of preference.

    GCC and clang take ``-fopenmp``; Apple's clang needs ``-Xpreprocessor
    -fopenmp`` and libomp (its include and library directories in CPPFLAGS /
    CFLAGS and LDFLAGS, e.g. from Homebrew's ``libomp``); MSVC takes
    ``/openmp``.
    """
    if compiler_type == "msvc":
        return [(["/openmp"], [])]
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    return candidates


def compiler_runs_openmp(compiler, compile_flags, link_flags):
    """Whether ``compiler`` can compile, link and run an OpenMP program."""
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


# Instruction sets beyond the baseline that simd_loops.c is compiled for, with
# each compiler family's flags (on x86-64; elsewhere the flags are refused).
SIMD_FLAGS = {
    "unix": [
        ("avx2", ["-mavx2", "-mfma"]),
        ("avx512", ["-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq", "-mavx512vl",
                    "-mavx2", "-mfma"]),
    ],
    "msvc": [("avx2", ["/arch:AVX2"]), ("avx512", ["/arch:AVX512"])],
}
# Kernel modules that call the hot loops.
SIMD_MODULES = ("dense", "sparse", "reductions", "predict")

X86_PROBE = textwrap.dedent(
    """
    #if !(defined(__x86_64__) || defined(_M_X64))
    #error "not x86-64"
    #endif
    int main(void) { return 0; }
    """
)


def compiler_accepts(compiler, flags):
    """Whether ``compiler`` compiles x86-64 code with ``flags`` (no error)."""
    tmpdir = tempfile.mkdtemp(prefix="skcce_simd_probe_")
    try:
        source = os.path.join(tmpdir, "probe.c")
        with open(source, "w") as f:
            f.write(X86_PROBE)
        compiler.compile([source], output_dir=tmpdir, extra_postargs=flags)
        return True
    except Exception:  # any compile failure means "not for this target"
        return False
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


class BuildExtWithOpenMP(build_ext):
    """build_ext that adds OpenMP flags when they work, else builds serially."""

    def build_extensions(self):
        flags = None  # (compile, link) flags that enable OpenMP
        if os.environ.get("SKCCE_NO_OPENMP", "0") not in ("", "0"):
            print("skcce: SKCCE_NO_OPENMP is set; building without OpenMP.")
        else:
            flags = next((candidate for candidate
                          in openmp_flag_candidates(self.compiler.compiler_type)
                          if compiler_runs_openmp(self.compiler, *candidate)), None)
            if flags is None:
                warnings.warn(
                    "skcce: the compiler cannot build and run an OpenMP program; "
                    "building the kernels without OpenMP (single-threaded).",
                    stacklevel=1,
                )
        for ext in self.extensions:
            if flags is not None:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
            elif self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += ["-Wno-unknown-pragmas"]
        print(f"skcce: OpenMP {'enabled' if flags is not None else 'disabled'}.")
        self._add_simd_loops()
        super().build_extensions()

    def _add_simd_loops(self):
        """Compile simd_loops.c once per instruction set; link them where used.

        The baseline always; on x86-64 also AVX2 + FMA and AVX-512, each with
        its own flags, when the compiler accepts them. simd_dispatch.c, part
        of each module that uses the loops, picks one set at import.
        """
        msvc = self.compiler.compiler_type == "msvc"
        optimize = ["/O2"] if msvc else ["-O3"]
        targets = [("base", [])] + [
            (name, flags) for name, flags in SIMD_FLAGS["msvc" if msvc else "unix"]
            if compiler_accepts(self.compiler, flags)
        ]
        print("skcce: hot loops compiled for " + ", ".join(name for name, _ in targets) + ".")
        objects = []
        for name, flags in targets:
            objects += self.compiler.compile(
                [os.path.join(KERNELS, "simd_loops.c")],
                output_dir=os.path.join(self.build_temp, "simd", name),
                macros=[("SKCCE_TARGET", name)],
                include_dirs=[KERNELS],
                extra_postargs=optimize + flags,
                depends=kernel_headers(),
            )
        for ext in self.extensions:
            if ext.name.rsplit(".", 1)[-1] in SIMD_MODULES:
                ext.extra_objects += objects
                ext.define_macros += [(f"SKCCE_HAVE_{name.upper()}", "1")
                                      for name, _ in targets[1:]]


KERNELS = os.path.join("skcce", "_kernels")


def kernel_headers():
    """The kernels' C headers, C sources and shared .pxd files (a change to one
    rebuilds every module)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(
        os.path.join(KERNELS, name) for name in os.listdir(os.path.join(here, KERNELS))
        if name.endswith((".h", ".pxd")) or name.startswith("simd_") and name.endswith(".c")
    )


def extensions():
    """One extension per kernel module of ``skcce/_kernels``.

    Their C headers and shared ``.pxd`` files sit beside them; every module
    depends on all of them (a change to a header rebuilds every module).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    # No fused multiply-add where the source rounds twice (GCC fuses by
    # default wherever the target has FMA: aarch64, -march=native), so that
    # the Cython loops round as the hot loops of simd_loops.c that must match
    # them bit for bit (softmax_impl.h); MSVC does not fuse by default.
    optimize = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"]
    modules = [
        Extension(
            f"skcce._kernels.{name}",
            sources=[os.path.join(KERNELS, f"{name}.pyx")]
            + ([os.path.join(KERNELS, "simd_dispatch.c")] if name in SIMD_MODULES else []),
            include_dirs=[np.get_include(), os.path.join(here, KERNELS)],
            depends=kernel_headers(),
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
