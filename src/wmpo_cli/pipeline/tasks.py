"""`wmpo tasks`: the task suite as a table, and a contact sheet of initial frames.

The contact sheet has one row per (task, variant) and one column per scenario, each tile the
``agentview`` frame right after ``reset(seed)``, so a person can check every scene at a glance —
in particular that each disrupted scenario really differs from its default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmpo_cli.envs.tasks import TASKS, get_task
from wmpo_cli.errors import UsageError

SCENARIO_COLUMNS = ("default", "disrupted")
LABEL_WIDTH = 170  # pixels of the row-label column
HEADER_HEIGHT = 22
GAP = 4


def describe() -> list[dict[str, Any]]:
    """One row per task: variants, scenarios (with what they change), horizons, instruction, experts."""
    rows = []
    for spec in TASKS.values():
        rows.append(
            {
                "task": spec.name,
                "variants": list(spec.variants),
                "scenarios": dict(spec.scenario_notes) or {s: "" for s in spec.scenarios},
                "horizon": {v: spec.horizon_for(v) for v in spec.variants},
                "max_steps": spec.max_steps,
                "wide_camera_variants": list(spec.wide_camera_variants),
                "instruction": spec.instruction,
                "experts": list(spec.expert_names),
            }
        )
    return rows


def render_table(rows: list[dict[str, Any]]) -> Any:
    """A rich table of :func:`describe`'s rows."""
    from rich.table import Table

    table = Table(title="wmpo tasks", caption="* wide agentview camera (MimicGen's agentview_full)")
    table.add_column("task", no_wrap=True)
    table.add_column("variants", no_wrap=True)
    table.add_column("horizon", no_wrap=True)
    table.add_column("max steps")
    table.add_column("disrupted scenario")
    table.add_column("experts")
    for row in rows:
        variants = " ".join(f"{v}{'*' if v in row['wide_camera_variants'] else ''}" for v in row["variants"])
        scenarios = row["scenarios"].get("disrupted", "-")
        horizons = "/".join(str(h) for h in row["horizon"].values())
        experts = " ".join(row["experts"])
        table.add_row(row["task"], variants, horizons, str(row["max_steps"]), scenarios, experts)
    return table


@dataclass(frozen=True)
class FrameJob:
    task: str
    variant: str
    scenario: str
    seed: int
    size: int


def initial_frame(job: FrameJob) -> np.ndarray:
    """The upright agentview frame of ``reset(seed)`` (runs in a worker process)."""
    from wmpo_cli.envs.tasks import make_env

    env = make_env(job.task, job.variant, job.scenario, cameras=("agentview",), image_size=job.size)
    try:
        env.reset(job.seed)
        return env.render("agentview")
    finally:
        env.close()


def sheet_rows(tasks: list[str] | None = None) -> list[tuple[str, str]]:
    """The (task, variant) rows of the sheet, in registry order."""
    names = tasks or list(TASKS)
    return [(name, variant) for name in names for variant in get_task(name).variants]


def tile_box(row: int, column: int, size: int) -> tuple[int, int, int, int]:
    """Pixel box (left, top, right, bottom) of a tile on the sheet."""
    left = LABEL_WIDTH + column * (size + GAP)
    top = HEADER_HEIGHT + row * (size + GAP)
    return left, top, left + size, top + size


def contact_sheet(
    path: Path, *, size: int = 128, seed: int = 0, tasks: list[str] | None = None, workers: int = 0
) -> dict[str, Any]:
    """Render every task × variant × scenario's initial frame into one PNG at ``path``."""
    from PIL import Image, ImageDraw

    from wmpo_cli.artifacts.atomic import atomic_path
    from wmpo_cli.envs.pool import default_workers, run_jobs

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"--sheet {path}: the contact sheet is a PNG; give a .png path")
    if not path.parent.is_dir():
        raise UsageError(f"--sheet {path}: directory {path.parent} does not exist")
    if not 32 <= size <= 512:
        raise UsageError(f"--size must be between 32 and 512 pixels, got {size}")
    rows = sheet_rows(tasks)
    jobs = [
        FrameJob(task, variant, scenario, seed, size)
        for task, variant in rows
        for scenario in SCENARIO_COLUMNS
        if scenario in get_task(task).scenarios
    ]
    frames: dict[tuple[str, str, str], np.ndarray] = {}
    workers = min(workers or default_workers(), len(jobs))
    # Results arrive in completion order; each carries its job.
    for job, frame in run_jobs(_frame_with_job, jobs, workers=workers):
        frames[(job.task, job.variant, job.scenario)] = frame
    width = LABEL_WIDTH + len(SCENARIO_COLUMNS) * (size + GAP)
    height = HEADER_HEIGHT + len(rows) * (size + GAP)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for column, scenario in enumerate(SCENARIO_COLUMNS):
        draw.text((tile_box(0, column, size)[0] + 4, 4), scenario, fill=(0, 0, 0))
    for r, (task, variant) in enumerate(rows):
        draw.text((4, tile_box(r, 0, size)[1] + size // 2 - 6), f"{task} {variant}", fill=(0, 0, 0))
        for column, scenario in enumerate(SCENARIO_COLUMNS):
            box = tile_box(r, column, size)
            frame = frames.get((task, variant, scenario))
            if frame is None:
                draw.rectangle(box, fill=(235, 235, 235))
                draw.text((box[0] + 6, box[1] + size // 2 - 6), "n/a", fill=(120, 120, 120))
            else:
                sheet.paste(Image.fromarray(frame), box[:2])
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return {"path": str(path), "rows": [f"{t} {v}" for t, v in rows], "columns": list(SCENARIO_COLUMNS), "size": size}


def _frame_with_job(job: FrameJob) -> tuple[FrameJob, np.ndarray]:
    return job, initial_frame(job)
