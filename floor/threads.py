"""One BLAS thread and one BLAS kernel family per process, unless the user says otherwise."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from pathlib import Path

_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_VARIABLES = (*_BLAS_THREAD_VARIABLES, "OPENBLAS_CORETYPE")
"""Every variable this module sets: what decides a process's BLAS threads and kernels."""

BLAS_CORE = "Haswell"
"""The OpenBLAS kernels every process uses on an x86-64 CPU with AVX2 and FMA.

numpy's OpenBLAS picks its matrix kernels by CPU model at load time (an AVX-512 CPU gets
``SkylakeX`` kernels, most AVX2 ones ``Haswell`` or ``Zen``, which are the same code), and kernels
of different families sum in different orders: a quick training run's ONNX differs between
``SkylakeX`` (or ``Sandybridge``) and ``Haswell`` kernels from the same seeds
(``tests/test_threads.py``), and over 300 episodes the last bit becomes another policy. Every
process pins the same family, so the same seeds give the same bytes on any such machine and on
any node of a Ray cluster. OpenBLAS does not check a forced family against the CPU, so it is
only pinned where AVX2 and FMA are present (every x86 server CPU since 2013-2015)."""


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none): read once,
    up to the first ``flags`` line (a many-core machine's file is hundreds of KB)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def blas_environment() -> dict[str, str]:
    """The variables a process that trains, evaluates or decides runs with: one thread each
    for OpenBLAS, OpenMP and MKL, and :data:`BLAS_CORE` where the CPU can run it."""
    env = dict.fromkeys(_BLAS_THREAD_VARIABLES, "1")
    if platform.machine().lower() in ("x86_64", "amd64") and {"avx2", "fma"} <= _cpu_flags():
        env["OPENBLAS_CORETYPE"] = BLAS_CORE
    return env


def pin_blas() -> None:
    """Set :func:`blas_environment` as defaults (a variable already set wins).

    One thread: every matrix here is small (a few hundred rows); on such products OpenBLAS's
    thread pool is ~20x slower on a busy 2-core machine than one thread, and threaded
    reductions may sum in another order. One kernel family: :data:`BLAS_CORE`.

    The BLAS libraries read these variables once, when numpy is first imported; setting them
    later does nothing. That is why this is called where a process starts (the top of
    ``chuteflow.cli.main``, before any heavy import) rather than as a side effect of importing
    a package. Child processes inherit the environment; Ray workers get the same variables
    from the job's runtime environment (``evaluation.fanout``).
    """
    for variable, value in blas_environment().items():
        os.environ.setdefault(variable, value)


def process_blas_environment() -> dict[str, str]:
    """What this process runs with (:func:`blas_environment`, a user's own values winning):
    what a Ray job hands every worker, on any node, so a task runs as it would here."""
    return {**blas_environment(), **{v: os.environ[v] for v in BLAS_VARIABLES if v in os.environ}}


def blas_core() -> str | None:
    """The kernel family numpy's OpenBLAS runs with in this process (for the record a bundle
    keeps), or None where it cannot be asked."""
    import numpy

    libs = Path(numpy.__file__).parent.parent / "numpy.libs"
    for library in sorted(libs.glob("libscipy_openblas*.so")) + sorted(
        libs.glob("libopenblas*.so")
    ):
        try:
            handle = ctypes.CDLL(str(library))
        except OSError:  # a record, never a reason to fail a run
            continue
        for symbol in (
            "scipy_openblas_get_corename64_",
            "scipy_openblas_get_corename",
            "openblas_get_corename",
        ):
            function = getattr(handle, symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                name = function()
                return name.decode() if isinstance(name, bytes) else None
    return None


__all__ = [
    "BLAS_CORE",
    "BLAS_VARIABLES",
    "blas_core",
    "blas_environment",
    "pin_blas",
    "process_blas_environment",
]
