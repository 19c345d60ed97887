"""Small pieces every command shares: the global options and run-dir resolution."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GlobalOptions:
    run_dir: Path | None
    recipes: tuple[str, ...]
    sets: tuple[str, ...]
    seed: int | None


def run_dir_for(options: GlobalOptions, task: str) -> Path:
    """--run-dir, or runs/<task> by default."""
    return options.run_dir if options.run_dir is not None else Path("runs") / task
