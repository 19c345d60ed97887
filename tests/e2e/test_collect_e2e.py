"""End-to-end `wmpo collect` on real (tiny) robosuite runs: files, exact replay, resume, workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wmpo_cli.artifacts.episodes import EpisodesFile
from wmpo_cli.artifacts.manifest import read_manifest

pytestmark = pytest.mark.sim


def _collect(cli, run_dir: Path, *args: str):
    result = cli("--run-dir", str(run_dir), "--recipe", "debug", "--quiet", "collect", *args)
    assert result.code == 0, result.stderr
    return result


def _arrays(path: Path) -> dict[str, dict[str, np.ndarray]]:
    with EpisodesFile(path) as f:
        out = {}
        for name in f.demo_names:
            ep = f.load(name)
            out[name] = {"actions": ep.actions, "states": ep.states, **ep.obs}
        return out


@pytest.fixture(scope="module")
def lift_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three debug Lift episodes collected once for several tests (in-process, one worker)."""
    from wmpo_cli import console
    from wmpo_cli.cli import main

    run = tmp_path_factory.mktemp("lift")
    console.mode.quiet = True
    try:
        main(["--run-dir", str(run), "--recipe", "debug", "--quiet", "collect", "--task", "lift", "--episodes", "3"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return run


def test_collect_writes_a_complete_robomimic_style_dataset(lift_run: Path, cli) -> None:
    out = lift_run / "demos"
    manifest = read_manifest(out)
    assert manifest.complete and manifest.kind == "episodes" and manifest.kind_version == 1
    assert set(manifest.files) == {"episodes.hdf5"}
    m = manifest.metrics
    assert (m["episodes"], m["attempts"], m["successes"], m["failures"]) == (3, 3, 3, 0)
    assert m["resumed_episodes"] == 0
    assert (m["train"], m["valid"]) == (2, 1)
    config = json.loads((out / "config.json").read_text())
    assert (config["task"], config["episodes"], config["image_size"]) == ("lift", 3, 32)
    with EpisodesFile(out / "episodes.hdf5") as f:
        assert f.demo_names == ["demo_0", "demo_1", "demo_2"]
        assert f.env_args["env_kwargs"]["camera_heights"] == 32
        for name in f.demo_names:
            ep = f.load(name)
            steps = len(ep.actions)
            assert ep.obs["agentview_image"].shape == (steps, 32, 32, 3)
            assert ep.obs["agentview_image"].dtype == np.uint8
            assert ep.obs["robot0_eef_pos"].shape == (steps, 3)
            assert ep.states.shape[0] == steps and ep.actions.shape == (steps, 7)
            assert np.all(np.abs(ep.actions) <= 1.0)
            assert ep.dones.tolist() == [0] * (steps - 1) + [1]
            first = int(np.argmax(ep.step_success))
            assert ep.attrs["success"] and ep.attrs["success_step"] == first
            # The episode ends once success has held for hold_steps (10) frames.
            assert ep.step_success[-10:].all() and not ep.step_success[:first].any()
            assert ep.attrs["instruction"] == "pick up the cube"
            assert ep.attrs["source"] == "expert" and ep.attrs["scenario"] == "default"
            assert ep.attrs["model_file"].startswith("<mujoco")
        assert f.mask("success") == ["demo_0", "demo_1", "demo_2"] and f.mask("failure") == []


def test_inspect_verify_passes_then_catches_a_modified_dataset(lift_run: Path, cli, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "demos"
    shutil.copytree(lift_run / "demos", copy)
    ok = cli("inspect", str(copy), "--verify", "--json")
    assert ok.code == 0, ok.stderr
    assert json.loads(ok.stdout)["content"]["episodes"] == 3
    data = bytearray((copy / "episodes.hdf5").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "episodes.hdf5").write_bytes(bytes(data))
    bad = cli("inspect", str(copy), "--verify")
    assert bad.code == 3 and "episodes.hdf5: sha256 differs" in bad.stderr


@pytest.mark.parametrize(("task", "variant"), [("lift", "D0"), ("stack_three", "D0"), ("stack_three", "D1")])
def test_stored_states_rerender_and_replay_exactly(cli, tmp_path: Path, task: str, variant: str) -> None:
    from wmpo_cli.envs.tasks import make_env

    _collect(cli, tmp_path, "--task", task, "--variant", variant, "--episodes", "1")
    with EpisodesFile(tmp_path / "demos" / "episodes.hdf5") as f:
        ep = f.load("demo_0")
    env = make_env(task, variant, cameras=("agentview",), image_size=32)
    try:
        steps = len(ep.actions)
        for t in (0, steps // 3, steps - 1):
            env.restore(ep.states[t])
            np.testing.assert_array_equal(env.render("agentview", 32), ep.obs["agentview_image"][t])
        env.restore(ep.states[0])
        for t in range(steps - 1):
            env.step(ep.actions[t])
            assert np.array_equal(env.get_state(), ep.states[t + 1]), f"replay diverged at step {t + 1}"
        assert env.is_success() == bool(ep.step_success[-1])
    finally:
        env.close()


def test_two_workers_write_the_same_dataset_as_one(lift_run: Path, cli, tmp_path: Path) -> None:
    _collect(cli, tmp_path, "--task", "lift", "--episodes", "3", "--workers", "2")
    one, two = _arrays(lift_run / "demos" / "episodes.hdf5"), _arrays(tmp_path / "demos" / "episodes.hdf5")
    assert one.keys() == two.keys()
    for name in one:
        for key in one[name]:
            np.testing.assert_array_equal(one[name][key], two[name][key], err_msg=f"{name}/{key}")
    assert read_manifest(tmp_path / "demos").id == read_manifest(lift_run / "demos").id


def test_kill_9_leaves_an_incomplete_artifact_and_rerun_resumes(lift_run: Path, cli, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "wmpo_cli", "--run-dir", str(tmp_path), "--recipe", "debug", "--quiet",
        "collect", "--task", "lift", "--episodes", "3", "--workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env={**os.environ}, start_new_session=True)
    first_shard = tmp_path / "demos" / ".partial" / "attempt_000000.h5"
    deadline = time.time() + 120
    while not first_shard.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first_shard.exists(), "collect never finished its first episode"
    manifest = read_manifest(tmp_path / "demos")
    assert not manifest.complete
    assert not (tmp_path / "demos" / "episodes.hdf5").exists()
    verify = cli("inspect", str(tmp_path / "demos"), "--verify")
    assert verify.code == 3 and "incomplete" in verify.stderr
    changed = cli("--run-dir", str(tmp_path), "--recipe", "debug", "collect", "--task", "lift", "--episodes", "4")
    assert changed.code == 4 and "episodes: 3 -> 4" in changed.stderr
    resumed = _collect(cli, tmp_path, "--task", "lift", "--episodes", "3", "--workers", "1")
    assert read_manifest(tmp_path / "demos").complete
    assert read_manifest(tmp_path / "demos").metrics["resumed_episodes"] >= 1
    assert resumed.code == 0
    fresh, again = _arrays(lift_run / "demos" / "episodes.hdf5"), _arrays(tmp_path / "demos" / "episodes.hdf5")
    for name in fresh:
        for key in fresh[name]:
            np.testing.assert_array_equal(fresh[name][key], again[name][key], err_msg=f"{name}/{key}")


def test_noisy_expert_failures_are_labelled_and_successes_only_filters(cli, tmp_path: Path) -> None:
    noisy = tmp_path / "noisy"
    _collect(cli, noisy, "--task", "lift", "--episodes", "4", "--expert-noise", "0.5", "--cameras", "agentview")
    with EpisodesFile(noisy / "demos" / "episodes.hdf5") as f:
        labels = {name: bool(f.attrs(name)["success"]) for name in f.demo_names}
        assert f.mask("success") == [n for n, ok in labels.items() if ok]
        assert f.mask("failure") == [n for n, ok in labels.items() if not ok]
        for name in f.mask("failure"):
            ep = f.load(name, obs_keys=[])
            assert ep.attrs["success_step"] == -1 and not ep.step_success.any()
        # Measured: at noise 0.5 the Lift expert succeeds on 2 of these 4 seeded attempts.
        assert len(f.mask("success")) == 2 and len(f.mask("failure")) == 2
    only = tmp_path / "only"
    _collect(
        cli, only, "--task", "lift", "--episodes", "2", "--expert-noise", "0.5", "--successes-only", "--workers", "1"
    )
    manifest = read_manifest(only / "demos")
    assert manifest.metrics["successes"] == 2 and manifest.metrics["failures"] == 0
    # Seeded: the 2nd success at noise 0.5 comes on attempt 4; failed attempts are not kept.
    assert manifest.metrics["attempts"] == 4 and manifest.metrics["episodes"] == 2
    with EpisodesFile(only / "demos" / "episodes.hdf5") as f:
        assert f.mask("success") == ["demo_0", "demo_1"] and f.mask("failure") == []
