"""End-to-end `wmpo eval` and `wmpo collect --source policy` with an untrained policy on tiny Lift runs.

Both record the policy's own episodes; each must be a pure function of (policy, initial state,
seed), so repeated runs and runs on 1 or 2 workers write identical episodes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers_policy import make_policy_artifact
from wmpo_cli.artifacts.episodes import EpisodesFile
from wmpo_cli.artifacts.manifest import InputRef, read_manifest

pytestmark = pytest.mark.sim


def _ok(cli, *args: str):
    result = cli(*args)
    assert result.code == 0, result.stderr
    return result


def _episodes(path: Path) -> dict[str, dict]:
    with EpisodesFile(path) as f:
        out = {}
        for name in f.demo_names:
            ep = f.load(name)
            out[name] = {
                "arrays": {"actions": ep.actions, "states": ep.states, "rewards": ep.rewards, **ep.obs},
                "attrs": {k: v for k, v in ep.attrs.items() if k != "model_file"},
            }
        return out


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_policy_artifact(tmp_path_factory.mktemp("policy") / "policy", task="lift", image_size=32)


@pytest.fixture(scope="module")
def sampled_eval(policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two debug episodes (16 steps) sampled at temperature 1.6 on one worker."""
    from wmpo_cli import console
    from wmpo_cli.cli import main

    run = tmp_path_factory.mktemp("eval-one")
    console.mode.quiet = True
    args = ["--run-dir", str(run), "--recipe", "debug", "--quiet", "eval", "--policy", str(policy)]
    try:
        main([*args, "--temperature", "1.6", "--workers", "1"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    policy_id = read_manifest(policy).id
    return run / "eval" / policy_id / "default"


def test_eval_writes_episodes_report_and_video(sampled_eval: Path, policy: Path) -> None:
    from PIL import Image

    from wmpo_cli.pipeline.eval import eval_seed
    from wmpo_cli.stats import wilson_interval

    policy_id = read_manifest(policy).id
    manifest = read_manifest(sampled_eval)
    assert manifest.complete and (manifest.kind, manifest.kind_version, manifest.stage) == ("episodes", 1, "eval")
    # Lineage paths are relative to the artifact (what `wmpo inspect` resolves).
    assert manifest.inputs == [InputRef("policy", policy_id, os.path.relpath(policy, sampled_eval))]
    assert set(manifest.files) == {"episodes.hdf5", "eval.json", "videos/episode_0000.gif"}
    report = json.loads((sampled_eval / "eval.json").read_text())
    rows = report.pop("per_episode")
    assert report == manifest.metrics
    seeds = [eval_seed(0, 0), eval_seed(0, 1)]
    # An untrained policy does not lift the cube within 16 steps.
    assert rows == [
        {"index": i, "seed": seeds[i], "success": False, "length": 16, "init_state_index": -1} for i in range(2)
    ]
    assert (report["episodes"], report["successes"], report["success_rate"]) == (2, 0, 0.0)
    assert report["wilson_95"] == list(wilson_interval(0, 2))
    assert report["mean_success_length"] is None and report["median_success_length"] is None
    assert (report["task"], report["variant"], report["scenario"], report["policy_id"]) == (
        "lift",
        "D0",
        "default",
        policy_id,
    )
    assert (report["temperature"], report["max_steps"], report["warmup_steps"], report["workers"]) == (1.6, 16, 10, 1)
    assert report["episodes_per_s"] > 0 and report["env_steps_per_s"] > 0
    config = json.loads((sampled_eval / "config.json").read_text())
    assert config["task"] == "lift"  # filled in from the policy

    episodes = _episodes(sampled_eval / "episodes.hdf5")
    assert list(episodes) == ["demo_0", "demo_1"]
    for i, ep in enumerate(episodes.values()):
        attrs, arrays = ep["attrs"], ep["arrays"]
        assert attrs["source"] == "policy" and attrs["policy_id"] == policy_id
        assert (attrs["seed"], attrs["success"], attrs["success_step"], attrs["temperature"]) == (seeds[i], 0, -1, 1.6)
        assert attrs["instruction"] == "pick up the cube" and attrs["warmup_steps"] == 10
        assert arrays["actions"].shape == (16, 7) and arrays["agentview_image"].shape == (16, 32, 32, 3)
    with Image.open(sampled_eval / "videos" / "episode_0000.gif") as gif:
        assert (gif.n_frames, gif.size) == (16, (32, 32))


def test_eval_episodes_follow_the_protocol_and_replay_exactly(sampled_eval: Path) -> None:
    """Entry 0 is the state after reset(seed) + 10 dummy steps; the actions replay bit-exactly."""
    from wmpo_cli.envs.policy_rollout import WARMUP_ACTION
    from wmpo_cli.envs.tasks import make_env

    ep = _episodes(sampled_eval / "episodes.hdf5")["demo_0"]
    states, actions, frames = ep["arrays"]["states"], ep["arrays"]["actions"], ep["arrays"]["agentview_image"]
    env = make_env("lift", cameras=("agentview",), image_size=32)
    try:
        env.reset(ep["attrs"]["seed"])
        for _ in range(10):
            env.step(WARMUP_ACTION)
        np.testing.assert_array_equal(env.get_state(), states[0])
        env.restore(states[0])
        for t in range(len(actions) - 1):
            env.step(actions[t])
            assert np.array_equal(env.get_state(), states[t + 1]), f"replay diverged at step {t + 1}"
            np.testing.assert_array_equal(env.render("agentview", 32), frames[t + 1])
    finally:
        env.close()


def test_eval_repeats_exactly_on_two_workers(sampled_eval: Path, policy: Path, cli, tmp_path: Path) -> None:
    _ok(cli, "--run-dir", str(tmp_path), "--recipe", "debug", "--quiet", "eval", "--policy", str(policy),
        "--temperature", "1.6", "--workers", "2")  # fmt: skip
    other = tmp_path / "eval" / read_manifest(policy).id / "default"
    one, two = json.loads((sampled_eval / "eval.json").read_text()), json.loads((other / "eval.json").read_text())
    assert one["per_episode"] == two["per_episode"] and two["workers"] == 2
    first, second = _episodes(sampled_eval / "episodes.hdf5"), _episodes(other / "episodes.hdf5")
    assert first.keys() == second.keys()
    for name in first:
        assert first[name]["attrs"] == second[name]["attrs"]
        for key, array in first[name]["arrays"].items():
            np.testing.assert_array_equal(array, second[name]["arrays"][key], err_msg=f"{name}/{key}")
    assert read_manifest(other).id == read_manifest(sampled_eval).id


def test_an_interrupted_eval_resumes_to_the_same_result(
    sampled_eval: Path, policy: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wmpo_cli.pipeline import eval as stage

    real_job = stage.run_policy_job

    def interrupted(job):
        if job.index == 1:
            raise KeyboardInterrupt
        return real_job(job)

    args = ("--run-dir", str(tmp_path), "--recipe", "debug", "--quiet", "eval", "--policy", str(policy),
            "--temperature", "1.6", "--workers", "1")  # fmt: skip
    monkeypatch.setattr(stage, "run_policy_job", interrupted)
    assert cli(*args).code == 130
    out = tmp_path / "eval" / read_manifest(policy).id / "default"
    assert not read_manifest(out).complete and not (out / "eval.json").exists()
    assert [p.name for p in (out / ".partial").glob("episode_*.h5")] == ["episode_000000.h5"]
    monkeypatch.setattr(stage, "run_policy_job", real_job)
    _ok(cli, *args)
    report = json.loads((out / "eval.json").read_text())
    assert report["resumed_episodes"] == 1 and not (out / ".partial").exists()
    assert report["per_episode"] == json.loads((sampled_eval / "eval.json").read_text())["per_episode"]
    first, resumed = _episodes(sampled_eval / "episodes.hdf5"), _episodes(out / "episodes.hdf5")
    for name in first:
        for key, array in first[name]["arrays"].items():
            np.testing.assert_array_equal(array, resumed[name]["arrays"][key], err_msg=f"{name}/{key}")


def test_greedy_eval_differs_and_a_finished_eval_is_not_overwritten(policy: Path, cli, tmp_path: Path) -> None:
    args = ("--run-dir", str(tmp_path), "--recipe", "debug", "--quiet", "eval", "--policy", str(policy))
    _ok(cli, *args, "--set", "max_steps=8", "--videos", "0")
    out = tmp_path / "eval" / read_manifest(policy).id / "default"
    report = json.loads((out / "eval.json").read_text())
    assert report["temperature"] == 0.0 and [r["length"] for r in report["per_episode"]] == [8, 8]
    assert not (out / "videos").exists() and set(read_manifest(out).files) == {"episodes.hdf5", "eval.json"}
    again = cli(*args, "--set", "max_steps=8", "--videos", "0")
    assert again.code == 4 and "already holds a complete 'episodes' artifact" in again.stderr
    assert report["decoding"] == "argmax"


def test_median_decoding_acts_on_each_tokens_median_bin(policy: Path, cli, tmp_path: Path) -> None:
    """Each episode's first chunk is what the policy's median decoding makes of the recorded first frame."""
    from wmpo_cli.models.policy.vla import VLAPolicy
    from wmpo_cli.pipeline.policy_episodes import one_torch_thread

    runs = {}
    for decoding in ("argmax", "median"):
        run = tmp_path / decoding
        _ok(cli, "--run-dir", str(run), "--recipe", "debug", "--quiet", "eval", "--policy", str(policy),
            "--set", "max_steps=8", "--videos", "0", "--decoding", decoding)  # fmt: skip
        runs[decoding] = run / "eval" / read_manifest(policy).id / "default"
    report = json.loads((runs["median"] / "eval.json").read_text())
    assert report["decoding"] == "median" and report["temperature"] == 0.0
    model = VLAPolicy.from_pretrained(policy / "export")
    median, argmax = _episodes(runs["median"] / "episodes.hdf5"), _episodes(runs["argmax"] / "episodes.hdf5")
    for name, ep in median.items():
        assert ep["attrs"]["decoding"] == "median" and argmax[name]["attrs"]["decoding"] == "argmax"
        first = {"agentview_image": ep["arrays"]["agentview_image"][:1]}
        with one_torch_thread():  # as the episode loop runs it
            expected = model.act(first, decoding="median").actions[0]
        np.testing.assert_allclose(ep["arrays"]["actions"], expected, rtol=0, atol=1e-6)
        # Same seed, same start: only the decoding differs, and it changes the untrained policy's actions.
        np.testing.assert_array_equal(ep["arrays"]["states"][0], argmax[name]["arrays"]["states"][0])
        assert not np.array_equal(ep["arrays"]["actions"], argmax[name]["arrays"]["actions"])


def test_collect_policy_rollouts_record_the_budget_and_lineage(policy: Path, cli, tmp_path: Path) -> None:
    from wmpo_cli.pipeline.collect import episode_seed, rollout_seed

    run = tmp_path / "run"
    make_policy_artifact(run / "policy", task="lift", image_size=32)  # the default --policy
    policy_id = read_manifest(run / "policy").id
    result = _ok(cli, "--run-dir", str(run), "--recipe", "debug", "--json", "collect", "--source", "policy",
                 "--episodes", "2", "--set", "max_steps=12", "--image-size", "40", "--temperature", "1.6")  # fmt: skip
    assert json.loads(result.stdout)["path"] == str(run / "rollouts")
    manifest = read_manifest(run / "rollouts")
    assert manifest.complete and manifest.kind == "episodes" and manifest.stage == "collect"
    assert manifest.inputs == [InputRef("policy", policy_id, "../policy")]
    assert manifest.extra["real_episodes"] == 2 and manifest.extra["source"] == "policy"
    assert manifest.extra["policy_id"] == policy_id
    assert (manifest.metrics["episodes"], manifest.metrics["attempts"], manifest.metrics["total_steps"]) == (2, 2, 24)
    config = json.loads((run / "rollouts" / "config.json").read_text())
    # The rollouts record what the policy sees, whatever --image-size said.
    assert (config["image_size"], config["cameras"], config["source"]) == (32, ["agentview"], "policy")
    episodes = _episodes(run / "rollouts" / "episodes.hdf5")
    for i, ep in enumerate(episodes.values()):
        attrs = ep["attrs"]
        assert (attrs["source"], attrs["policy_id"], attrs["temperature"]) == ("policy", policy_id, 1.6)
        assert attrs["seed"] == rollout_seed(0, i) != episode_seed(0, i)
        assert ep["arrays"]["agentview_image"].shape == (12, 32, 32, 3)
    assert not (run / "demos").exists()

    # --record-size keeps larger frames (e.g. for a reward model) while the policy still acts on
    # native 32 px ones: the same seeds give the same episodes, only the recorded frames differ.
    _ok(cli, "--run-dir", str(tmp_path / "big"), "--recipe", "debug", "--quiet", "collect", "--source", "policy",
        "--policy", str(run / "policy"), "--episodes", "2", "--set", "max_steps=12", "--temperature", "1.6",
        "--record-size", "48")  # fmt: skip
    config = json.loads((tmp_path / "big" / "rollouts" / "config.json").read_text())
    assert (config["image_size"], config["record_size"]) == (32, 48)
    big = _episodes(tmp_path / "big" / "rollouts" / "episodes.hdf5")
    for name, ep in episodes.items():
        assert big[name]["arrays"]["agentview_image"].shape == (12, 48, 48, 3)
        np.testing.assert_array_equal(big[name]["arrays"]["actions"], ep["arrays"]["actions"])


def test_expert_collect_records_its_attempts_as_real_episodes(cli, tmp_path: Path) -> None:
    _ok(cli, "--run-dir", str(tmp_path), "--recipe", "debug", "--quiet", "collect", "--episodes", "1")
    manifest = read_manifest(tmp_path / "demos")
    assert manifest.extra["real_episodes"] == manifest.metrics["attempts"] == 1
