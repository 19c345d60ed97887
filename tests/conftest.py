"""Shared test set-up: headless rendering, single-threaded numerics, and a CLI runner."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
for _key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LP_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``wmpo`` in-process through its real entry point (error handling included)."""
    from wmpo_cli import console
    from wmpo_cli.cli import main

    def run(*args: str) -> CliResult:
        console.mode.json = False
        console.mode.quiet = False
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
