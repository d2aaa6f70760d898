"""``floor.threads``: one BLAS thread and one kernel family per process, so the same seeds
train the same bytes on any x86-64 machine (a user's own setting wins)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import floor.threads
from floor.threads import (
    BLAS_CORE,
    BLAS_VARIABLES,
    blas_environment,
    pin_blas,
    process_blas_environment,
)

PINNED = "OPENBLAS_CORETYPE" in blas_environment()


def test_the_kernels_are_pinned_only_where_the_cpu_can_run_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(floor.threads.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(floor.threads, "_cpu_flags", lambda: {"sse2", "avx", "avx2", "fma"})
    assert blas_environment()["OPENBLAS_CORETYPE"] == BLAS_CORE
    monkeypatch.setattr(floor.threads, "_cpu_flags", lambda: {"sse2", "avx"})
    assert "OPENBLAS_CORETYPE" not in blas_environment()  # forcing it would be SIGILL there
    monkeypatch.setattr(floor.threads.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(floor.threads, "_cpu_flags", lambda: {"avx2", "fma"})
    assert blas_environment() == dict.fromkeys(
        ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"
    )


def test_a_users_setting_wins_and_travels_to_ray_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    pin_blas()
    assert os.environ["OPENBLAS_CORETYPE"] == "Zen"
    travelling = process_blas_environment()
    assert travelling["OPENBLAS_CORETYPE"] == "Zen"
    assert travelling["OPENBLAS_NUM_THREADS"] == "4"
    assert travelling["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS", "1")


def _fresh(code: str, **env: str) -> str:
    """``code`` in a new interpreter without any BLAS variable of this one; its last line."""
    clean = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not PINNED, reason="no AVX2 and FMA here: nothing is pinned")
def test_a_process_that_pins_runs_the_pinned_kernels() -> None:
    code = "from floor.threads import pin_blas, blas_core; pin_blas(); print(blas_core())"
    assert _fresh(code) == BLAS_CORE


@pytest.mark.skipif(not PINNED, reason="no AVX2 and FMA here: nothing is pinned")
def test_the_kernel_family_decides_the_trained_bytes(tmp_path: Path) -> None:
    """Why the pin exists: another family (``Sandybridge``, AVX only, which every AVX2 CPU
    runs) trains another network from the same seeds; the pinned process, whatever this CPU
    would pick, trains the same bytes as one forced to :data:`BLAS_CORE`."""
    code = (
        "import hashlib, sys; from pathlib import Path;"
        "from floor.threads import pin_blas; pin_blas();"
        "from onboarding.tasks import MemberJob, train_member;"
        "from training.settings import Settings;"
        "s = Settings.quick(scenario='small', algo='drmarl', seed=3, episodes=6);"
        "r = train_member(MemberJob('m', s, sys.argv[-1]));"
        "print(hashlib.sha256(Path(r['onnx']).read_bytes()).hexdigest())"
    )

    def trained(name: str, **env: str) -> str:
        return _fresh(code.replace("sys.argv[-1]", repr(str(tmp_path / name))), **env)

    pinned = trained("pinned")
    assert trained("forced", OPENBLAS_CORETYPE=BLAS_CORE) == pinned
    assert trained("other", OPENBLAS_CORETYPE="Sandybridge") != pinned
