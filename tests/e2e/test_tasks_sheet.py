"""`wmpo tasks`: the listing, and a contact sheet whose disrupted tiles really differ."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmpo_cli.pipeline.tasks import SCENARIO_COLUMNS, sheet_rows, tile_box

SIZE = 64
# The square peg's disrupted shift is random (U(-4, 0) cm); reset seed 6 draws -3.96 cm, so the
# move is plain to see. Every other disruption is visible at any seed.
SHEET_SEED = 6
# (task, expected brightness change of the changed pixels: -1 darker, +1 lighter, 0 either way,
#  its least size in grey levels (mean of R, G, B), minimum share of the tile that changes)
DISRUPTIONS = [
    ("stack_three", -1, 40, 0.25),  # the grey table top covers much of the frame
    ("three_piece_assembly", -1, 25, 0.01),  # dark base (from red: the mean of R, G, B drops less)
    ("coffee", 1, 40, 0.02),  # cream machine body
    ("square", 0, 0, 0.003),  # the peg moved (the nut stays: same seed, same scene otherwise)
]


def test_tasks_lists_the_suite_as_json(cli) -> None:
    result = cli("--json", "tasks")
    assert result.code == 0, result.stderr
    rows = {row["task"]: row for row in json.loads(result.stdout)["tasks"]}
    assert list(rows) == ["lift", "stack_three", "square", "three_piece_assembly", "coffee"]
    assert rows["square"]["variants"] == ["D0", "D1", "D2"]
    assert rows["square"]["max_steps"] == 184
    assert rows["coffee"]["horizon"] == {"D0": 400, "D1": 550, "D2": 550}
    assert rows["three_piece_assembly"]["wide_camera_variants"] == ["D0", "D1", "D2"]
    assert set(rows["stack_three"]["scenarios"]) == {"default", "disrupted"}
    assert rows["stack_three"]["experts"] == ["scripted", "reactive"] and rows["lift"]["experts"] == ["scripted"]


def test_sheet_rejects_bad_paths(cli, tmp_path: Path) -> None:
    not_png = cli("tasks", "--sheet", str(tmp_path / "sheet.jpg"))
    assert not_png.code == 2 and "give a .png path" in not_png.stderr
    no_dir = cli("tasks", "--sheet", str(tmp_path / "missing" / "sheet.png"))
    assert no_dir.code == 2 and "does not exist" in no_dir.stderr


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    from wmpo_cli import console
    from wmpo_cli.cli import main

    path = tmp_path_factory.mktemp("sheet") / "tasks.png"
    console.mode.quiet = True
    try:
        main(["--quiet", "--seed", str(SHEET_SEED), "tasks", "--sheet", str(path), "--size", str(SIZE)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return np.asarray(Image.open(path).convert("RGB"))


def _tile(sheet: np.ndarray, task: str, variant: str, scenario: str) -> np.ndarray:
    row = sheet_rows().index((task, variant))
    left, top, right, bottom = tile_box(row, SCENARIO_COLUMNS.index(scenario), SIZE)
    return sheet[top:bottom, left:right].astype(float)


@pytest.mark.sim
def test_sheet_has_a_tile_per_task_variant_and_scenario(sheet: np.ndarray) -> None:
    rows = sheet_rows()
    assert len(rows) == 12  # lift 1 + stack_three 2 + 3 x 3
    assert sheet.shape[0] >= len(rows) * SIZE
    for task, variant in rows:
        assert _tile(sheet, task, variant, "default").std() > 10, f"{task} {variant} default tile is blank"
    # lift has no disrupted scenario: its tile is the flat grey placeholder.
    assert _tile(sheet, "lift", "D0", "disrupted").std() < 30


@pytest.mark.sim
@pytest.mark.parametrize(("task", "direction", "min_shift", "min_share"), DISRUPTIONS)
def test_disrupted_tiles_differ_in_the_changed_region(
    sheet: np.ndarray, task: str, direction: int, min_shift: float, min_share: float
) -> None:
    default = _tile(sheet, task, "D0", "default")
    disrupted = _tile(sheet, task, "D0", "disrupted")
    luma_default, luma_disrupted = default.mean(axis=2), disrupted.mean(axis=2)
    changed = np.abs(luma_disrupted - luma_default) > 25
    assert changed.mean() >= min_share, f"{task}: only {changed.mean():.4f} of the tile changed"
    shift = float(luma_disrupted[changed].mean() - luma_default[changed].mean())
    if direction:
        assert np.sign(shift) == direction and abs(shift) > min_shift, f"{task}: changed region moved by {shift:.1f}"
