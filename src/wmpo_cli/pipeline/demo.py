"""`wmpo demo`: every implemented stage, in order, for the demo tasks at the tiny recipe.

A stage whose complete artifact is already there with the same config is reused, so re-running
`make demo` after an interruption continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from wmpo_cli import console
from wmpo_cli.artifacts.manifest import MANIFEST_NAME, read_manifest
from wmpo_cli.config import CollectConfig, config_hash, resolve_config
from wmpo_cli.errors import ArtifactError
from wmpo_cli.pipeline import collect

DEMO_TASKS = ("lift", "stack_three")


def _reusable(directory: Path, cfg: Any) -> bool:
    if not (directory / MANIFEST_NAME).exists():
        return False
    try:
        manifest = read_manifest(directory)
    except ArtifactError:
        return False
    return manifest.complete and manifest.config_sha256 == config_hash(cfg)


def run(
    run_dir: Path,
    *,
    recipes: Sequence[str] = ("tiny",),
    sets: Sequence[str] = (),
    seed: int | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    steps = []
    for task in DEMO_TASKS:
        cfg = resolve_config(
            CollectConfig, task=task, recipes=recipes, flags={"task": task, "seed": seed}, overrides=sets
        )
        task_dir = Path(run_dir) / task
        out = task_dir / collect.OUTPUT_DIR
        if not force and _reusable(out, cfg):
            console.log(f"collect {task}: reusing the complete artifact in {out}")
            manifest = read_manifest(out)
        else:
            console.log(f"collect {task}: {cfg.episodes} episodes at {cfg.image_size}px")
            manifest = collect.run(cfg, task_dir, force=force)
        steps.append(
            {"stage": "collect", "task": task, "path": str(out), "id": manifest.id, "metrics": manifest.metrics}
        )
    return steps


def render(run_dir: Path, steps: list[dict[str, Any]]) -> Table:
    table = Table(title=f"wmpo demo: artifacts under {run_dir}", title_justify="left")
    for column in ("stage", "task", "artifact", "episodes", "success", "steps/s"):
        table.add_column(column, overflow="fold")
    for step in steps:
        m = step["metrics"]
        table.add_row(
            step["stage"],
            step["task"],
            step["path"],
            str(m.get("episodes")),
            f"{m.get('success_rate', 0):.0%}",
            str(m.get("env_steps_per_s")),
        )
    return table
