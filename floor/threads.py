"""One BLAS thread per process unless the user says otherwise."""

from __future__ import annotations

import os

_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads() -> None:
    """Default OpenBLAS, OpenMP and MKL to one thread each (a variable already set wins).

    Every matrix here is small (a few hundred rows). On such products OpenBLAS's thread pool
    is ~20x slower on a busy 2-core machine than one thread, and the worker, the evaluation
    pool and training all run beside other processes.

    The BLAS libraries read these variables once, when numpy is first imported; setting them
    later does nothing. That is why this is called where a process starts (the top of
    ``chuteflow.cli.main``, before any heavy import) rather than as a side effect of importing
    a package. Child processes inherit the environment, so worker and pool processes started
    from there get the same default.
    """
    for variable in _BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")


__all__ = ["limit_blas_threads"]
