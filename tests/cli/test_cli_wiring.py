"""CLI wiring: help, global options, recipes listing and every bad input (no simulation needed).

Bad input must give a one-line error (plus a hint), a non-zero exit code, and leave what is on
disk untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.cli import hoist_global_options
from wmpo_cli.config import CollectConfig


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_help_lists_commands_without_importing_heavy_libraries() -> None:
    code = (
        "import sys; from wmpo_cli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('robosuite', 'mujoco', 'torch', 'h5py') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for command in ("collect", "tasks", "inspect", "recipes", "demo", "fit-reward-model"):
        assert command in out
    assert "HEAVY []" in out


def test_global_options_may_follow_the_subcommand() -> None:
    argv = ["collect", "--task", "lift", "--recipe", "debug", "--set=episodes=3", "--json", "--seed", "4"]
    assert hoist_global_options(argv) == [
        "--recipe", "debug", "--set=episodes=3", "--json", "--seed", "4", "collect", "--task", "lift",
    ]  # fmt: skip
    assert hoist_global_options(["inspect", "--", "--json"]) == ["inspect", "--", "--json"]


def test_recipes_json_lists_blocks_and_keys(cli) -> None:
    result = cli("recipes", "collect", "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    collect = data["stages"]["collect"]
    assert {"defaults", "debug", "tiny", "gpu"} <= set(collect["blocks"])
    assert collect["blocks"]["debug"]["episodes"] == 2
    assert collect["keys"]["episodes"] == 50 and collect["keys"]["cameras"] == ["agentview"]
    assert cli("recipes", "nosuchstage").code == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["collect", "--task", "pour"], 2, "unknown task 'pour'"),
        (["collect", "--task", "stack_three", "--variant", "D7"], 2, "unknown variant 'D7'"),
        (["collect", "--task", "lift", "--variant", "D1"], 2, "unknown variant 'D1'"),
        (["collect", "--task", "lift", "--scenario", "moon"], 2, "unknown scenario 'moon'"),
        (["collect", "--task", "lift", "--episodes", "0"], 2, "--episodes must be a positive number"),
        (["collect", "--task", "lift", "--episodes", "-3"], 2, "--episodes must be a positive number"),
        (["collect", "--task", "lift", "--cameras", "sky"], 2, "unknown camera(s) 'sky'"),
        (["collect", "--task", "lift", "--image-size", "4"], 2, "--image-size must be between"),
        (["collect", "--task", "lift", "--set", "episode=3"], 2, "--set: unknown key 'episode'"),
        (["collect", "--task", "lift", "--set", "episodes=lots"], 2, "'episodes' must be an integer"),
        (["collect", "--task", "lift", "--recipe", "huge"], 2, "recipe 'huge' is not a block"),
        (["collect", "--task", "coffee", "--variant", "D3"], 2, "unknown variant 'D3' for task 'coffee'"),
        (["collect", "--task", "lift", "--scenario", "disrupted"], 2, "unknown scenario 'disrupted'"),
        (["collect", "--task", "lift", "--source", "teleop"], 2, "unknown source 'teleop'"),
        (["collect", "--task", "lift", "--source", "mimicgen"], 2, "--source mimicgen needs --from PATH"),
        (["collect", "--task", "lift", "--from", "x.hdf5"], 2, "--from is only used with --source mimicgen"),
        (["collect", "--task", "lift", "--init-states", "-2"], 2, "--init-states must be a positive number"),
        (["collect", "--source", "mimicgen", "--from", "/nonexistent.hdf5"], 2, "no such file"),
        (["collect", "--task", "lift", "--expert", "reactive"], 2, "unknown expert 'reactive' for task 'lift'"),
        (["collect", "--task", "stack_three", "--source", "policy", "--expert", "reactive"], 2, "--expert is for"),
    ],
)
def test_bad_collect_input_is_one_line_error(cli, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    result = cli("--run-dir", str(tmp_path / "run"), *args)
    assert result.code == code
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_unwritable_run_dir(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = cli("collect", "--task", "lift", "--run-dir", str(blocker / "run"), "--recipe", "debug")
    assert result.code == 5
    assert "cannot write to" in _error_lines(result.stderr)[0]
    assert blocker.read_text() == "keep me"


def _complete_artifact(directory: Path, kind: str = "episodes") -> str:
    writer = begin_artifact(directory, kind=kind, kind_version=1, stage="collect", config=CollectConfig(), seed=0)
    (directory / "episodes.hdf5").write_bytes(b"precious")
    writer.finish(["episodes.hdf5"], {})
    return (directory / "manifest.json").read_text()


def test_complete_artifact_is_not_overwritten(cli, tmp_path: Path) -> None:
    before = _complete_artifact(tmp_path / "run" / "demos")
    result = cli("--run-dir", str(tmp_path / "run"), "collect", "--task", "lift", "--recipe", "debug")
    assert result.code == 4
    assert "already holds a complete 'episodes' artifact" in _error_lines(result.stderr)[0]
    assert "--force" in result.stderr
    assert (tmp_path / "run" / "demos" / "manifest.json").read_text() == before
    assert (tmp_path / "run" / "demos" / "episodes.hdf5").read_bytes() == b"precious"


def test_wrong_kind_and_corrupt_manifest_are_refused(cli, tmp_path: Path) -> None:
    _complete_artifact(tmp_path / "run" / "demos", kind="policy")
    result = cli("--run-dir", str(tmp_path / "run"), "collect", "--task", "lift", "--recipe", "debug")
    assert result.code == 3 and "holds a 'policy' artifact" in _error_lines(result.stderr)[0]
    (tmp_path / "run" / "demos" / "manifest.json").write_text("{truncated")
    result = cli("--run-dir", str(tmp_path / "run"), "collect", "--task", "lift", "--recipe", "debug")
    assert result.code == 3 and "corrupt manifest" in _error_lines(result.stderr)[0]
    assert (tmp_path / "run" / "demos" / "manifest.json").read_text() == "{truncated"


def test_inspect_verify_catches_modified_and_missing_files(cli, tmp_path: Path) -> None:
    directory = tmp_path / "demos"
    _complete_artifact(directory)
    ok = cli("inspect", str(directory), "--verify", "--json")
    assert ok.code == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["problems"] == [] and report["manifest"]["kind"] == "episodes"
    (directory / "episodes.hdf5").write_bytes(b"precioux")
    bad = cli("inspect", str(directory), "--verify")
    assert bad.code == 3
    assert "episodes.hdf5: sha256 differs" in _error_lines(bad.stderr)[0]
    (directory / "episodes.hdf5").unlink()
    gone = cli("inspect", str(directory / "manifest.json"), "--verify")
    assert gone.code == 3 and "episodes.hdf5: missing" in _error_lines(gone.stderr)[0]
    assert cli("inspect", str(tmp_path / "nothing")).code == 3
    (tmp_path / "empty").mkdir()
    assert "not a wmpo artifact" in _error_lines(cli("inspect", str(tmp_path / "empty")).stderr)[0]


def test_inspect_shows_lineage_tree(cli, tmp_path: Path) -> None:
    from wmpo_cli.artifacts.manifest import InputRef, read_manifest

    _complete_artifact(tmp_path / "demos")
    parent = read_manifest(tmp_path / "demos")
    writer = begin_artifact(
        tmp_path / "policy",
        kind="policy",
        kind_version=1,
        stage="fit-policy",
        config=CollectConfig(),
        seed=0,
        inputs=[InputRef("demos", parent.id, "../demos")],
    )
    writer.finish([], {})
    result = cli("inspect", str(tmp_path / "policy"))
    assert result.code == 0
    assert f"demos: episodes {parent.id} (complete)" in result.stdout
    data = json.loads(cli("inspect", str(tmp_path / "policy"), "--json").stdout)
    assert data["lineage"]["inputs"][0]["id"] == parent.id


def test_fit_policy_bad_inputs_write_nothing(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli("--run-dir", str(run), "fit-policy", "--task", "lift", "--recipe", "debug")
    assert result.code == 3 and "does not exist" in _error_lines(result.stderr)[0]
    _complete_artifact(run / "demos", kind="init_states")
    result = cli("--run-dir", str(run), "fit-policy", "--task", "lift", "--recipe", "debug")
    assert result.code == 3 and "expected 'episodes'" in _error_lines(result.stderr)[0]
    result = cli("--run-dir", str(run), "fit-policy", "--recipe", "debug", "--encoder", "resnet")
    assert result.code == 2 and "unknown encoder 'resnet'" in _error_lines(result.stderr)[0]
    result = cli("--run-dir", str(run), "fit-policy", "--recipe", "debug", "--set", "state_loss_weight=-1")
    assert result.code == 2 and "state_loss_weight must be a finite number >= 0" in _error_lines(result.stderr)[0]
    assert not (run / "policy").exists()
