"""`wmpo eval` and `wmpo collect --source policy`: every bad policy input fails before anything is written.

No simulation: each case must be refused while the policy is checked, with a one-line error,
the documented exit code, and no output directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers_policy import make_policy_artifact
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import CollectConfig


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def lift_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_policy_artifact(tmp_path_factory.mktemp("policy") / "policy", task="lift")


def _nothing_written(run: Path) -> None:
    assert not (run / "eval").exists() and not (run / "rollouts").exists()


def test_a_non_policy_artifact_is_refused(cli, tmp_path: Path) -> None:
    demos = tmp_path / "demos"
    begin_artifact(demos, kind="episodes", kind_version=1, stage="collect", config=CollectConfig(), seed=0).finish(
        [], {}
    )
    for command in (["eval"], ["collect", "--source", "policy"]):
        result = cli("--run-dir", str(tmp_path), *command, "--policy", str(demos))
        assert result.code == 3, result.stderr
        (line,) = _error_lines(result.stderr)
        assert line == f"error: {demos}: is a 'episodes' artifact, expected 'policy'"
    _nothing_written(tmp_path)


def test_a_missing_or_incomplete_policy_is_refused(cli, tmp_path: Path) -> None:
    result = cli("--run-dir", str(tmp_path), "eval", "--task", "lift")
    assert result.code == 3
    assert _error_lines(result.stderr) == [f"error: {tmp_path / 'policy'}: no policy artifact there"]
    assert "wmpo fit-policy" in result.stderr
    from wmpo_cli.config import FitPolicyConfig

    begin_artifact(
        tmp_path / "policy", kind="policy", kind_version=1, stage="fit-policy", config=FitPolicyConfig(), seed=0
    )
    result = cli("--run-dir", str(tmp_path), "eval")
    assert result.code == 3 and "artifact is incomplete" in result.stderr
    _nothing_written(tmp_path)


def test_a_policy_for_another_task_needs_allow_task_mismatch(cli, lift_policy: Path, tmp_path: Path) -> None:
    for command in (["eval", "--task", "square"], ["collect", "--source", "policy", "--task", "square"]):
        result = cli("--run-dir", str(tmp_path), *command, "--policy", str(lift_policy))
        assert result.code == 2, result.stderr
        (line,) = _error_lines(result.stderr)
        assert line == f"error: {lift_policy}: the policy was trained for task 'lift', not 'square'"
        assert "--allow-task-mismatch" in result.stderr
    _nothing_written(tmp_path)


def test_allow_task_mismatch_runs_it_with_the_other_tasks_instruction(lift_policy: Path) -> None:
    from wmpo_cli.pipeline.policy_episodes import load_policy_input

    own = load_policy_input(lift_policy, "", allow_task_mismatch=False)
    assert (own.task, own.policy_task, own.instruction) == ("lift", "lift", "pick up the cube")
    assert (own.cameras, own.image_size) == (("agentview",), 32)
    other = load_policy_input(lift_policy, "square", allow_task_mismatch=True)
    assert (other.task, other.policy_task) == ("square", "lift")
    assert other.instruction == "Insert the square into the stick"


def test_an_export_without_normalisation_is_a_one_line_error(cli, lift_policy: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(lift_policy, broken)
    config = broken / "export" / "config.json"
    data = json.loads(config.read_text())
    del data["normalisation"]
    config.write_text(json.dumps(data))
    for command in (["eval"], ["collect", "--source", "policy"]):
        result = cli("--run-dir", str(tmp_path), *command, "--policy", str(broken))
        assert result.code == 3, result.stderr
        (line,) = _error_lines(result.stderr)
        assert "normalisation" in line and str(config) in line
        assert "Traceback" not in result.stderr
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--task", "lift", "--episodes", "0"], "--episodes must be a positive number"),
        (["eval", "--task", "lift", "--temperature", "-1"], "--temperature must be 0 (greedy) or positive"),
        (["collect", "--source", "policy", "--successes-only"], "--successes-only cannot be used with --source policy"),
        (
            ["collect", "--policy", "x"],
            "--policy, --allow-task-mismatch and --decoding are only used with --source policy",
        ),
        (["eval", "--task", "lift", "--decoding", "mean"], "--decoding must be one of argmax, median, got 'mean'"),
        (
            ["eval", "--task", "lift", "--decoding", "median", "--temperature", "1.6"],
            "--decoding median is for greedy runs; --temperature 1.6 samples every token",
        ),
        (
            ["collect", "--source", "policy", "--decoding", "median"],
            "--decoding median is for greedy runs; --temperature 1.6 samples every token",
        ),
        (["eval", "--task", "lift", "--record-size", "8"], "--record-size must be 0 (the policy's size) or 16..512"),
        (["collect", "--record-size", "128"], "--record-size is for --source policy"),
        (["eval", "--task", "lift", "--set", "hold_steps=0"], "hold_steps must be >= 1"),
    ],
)
def test_bad_numbers_and_combinations(cli, tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("--run-dir", str(tmp_path), *args)
    assert result.code == 2
    (line,) = _error_lines(result.stderr)
    assert line.startswith(f"error: {message}")
    _nothing_written(tmp_path)


def test_eval_without_a_way_to_find_the_policy(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("eval")
    assert result.code == 2
    assert _error_lines(result.stderr) == ["error: eval needs --task, --policy or --run-dir to find the policy"]
    assert not (tmp_path / "runs").exists()


def test_eval_seeds_are_a_stream_of_their_own() -> None:
    from wmpo_cli.pipeline.collect import episode_seed, rollout_seed
    from wmpo_cli.pipeline.eval import eval_seed

    for base in (0, 1, 1234):
        evals = {eval_seed(base, i) for i in range(200)}
        demos = {episode_seed(base, i) for i in range(200)}
        rollouts = {rollout_seed(base, i) for i in range(200)}
        assert len(evals) == len(demos) == len(rollouts) == 200
        assert not evals & demos and not evals & rollouts and not demos & rollouts
    assert eval_seed(0, 0) == eval_seed(0, 0) != eval_seed(1, 0)
