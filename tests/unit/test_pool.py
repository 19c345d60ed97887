"""The worker pool: workers do not outlive a parent that was killed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Two workers, each handed a job that sleeps for a minute; the parent waits for them.
_PARENT = """
import time
from wmpo_cli.envs.pool import run_jobs
for _ in run_jobs(time.sleep, [60.0] * 4, workers=2):
    pass
"""


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has stopped running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_workers_stop_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT])
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_children(parent.pid)) < 2:
            time.sleep(0.2)
        time.sleep(2.0)  # let the workers take their sleeping jobs
        # Every child of the parent by now: both workers (and a resource tracker, if spawn started one).
        workers = _children(parent.pid)
        assert len(workers) >= 2, "the pool did not start its workers"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived their killed parent"
    finally:
        for pid in workers:  # a failing run must not leave them sleeping on the cores' time
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
