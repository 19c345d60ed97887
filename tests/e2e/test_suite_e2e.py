"""End-to-end: initial-state sets and MimicGen-style generation through `wmpo collect`."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from wmpo_cli.artifacts.episodes import EpisodesFile
from wmpo_cli.artifacts.init_states import read_init_states
from wmpo_cli.artifacts.manifest import read_manifest

pytestmark = pytest.mark.sim

LOWDIM = ("--set", "cameras=[]")


def _ok(result) -> None:
    assert result.code == 0, result.stderr


def test_init_state_set_is_written_and_episodes_start_from_it(cli, tmp_path: Path) -> None:
    from wmpo_cli.envs.tasks import make_env
    from wmpo_cli.pipeline.collect import episode_seed

    run = tmp_path / "run"
    _ok(cli("--run-dir", str(run), "--quiet", "--seed", "5", "collect", "--task", "lift", "--init-states", "3"))
    set_dir = run / "init_states" / "lift-D0-default-n3-s5"
    manifest = read_manifest(set_dir)
    assert manifest.complete and manifest.kind == "init_states"
    assert manifest.extra["init_state_set"] == "lift-D0-default-n3-s5"
    assert manifest.metrics["init_states"] == 3
    states = read_init_states(set_dir)
    env = make_env("lift")
    try:
        for i in range(3):
            env.reset(episode_seed(5, i))
            assert np.array_equal(env.get_state(), states.states[i])
    finally:
        env.close()

    # Episodes (seed 0) start from the set's states, not from their own seeded resets.
    _ok(
        cli("--run-dir", str(run), "--recipe", "debug", "--quiet", *LOWDIM, "collect", "--task", "lift",
            "--episodes", "2", "--init-state-set", str(set_dir))
    )  # fmt: skip
    demos = read_manifest(run / "demos")
    assert demos.extra["init_state_set"] == "lift-D0-default-n3-s5"
    shown = cli("inspect", str(run / "demos"))
    assert shown.code == 0 and any(
        line.split()[:2] == ["init_state_set", "lift-D0-default-n3-s5"] for line in shown.stdout.splitlines()
    ), shown.stdout
    assert [(ref.role, ref.id) for ref in demos.inputs] == [("init_states", manifest.id)]
    with EpisodesFile(run / "demos" / "episodes.hdf5") as f:
        for i, name in enumerate(f.demo_names):
            assert np.array_equal(f.load(name).states[0], states.states[i])
            assert f.attrs(name)["init_state_set"] == "lift-D0-default-n3-s5"
            assert f.attrs(name)["init_state_index"] == i


def test_init_state_set_errors_are_one_line(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _ok(cli("--run-dir", str(run), "--quiet", "collect", "--task", "lift", "--init-states", "2"))
    set_dir = run / "init_states" / "lift-D0-default-n2-s0"
    wrong = cli("--run-dir", str(tmp_path / "x"), "collect", "--task", "stack_three", "--init-state-set", str(set_dir))
    assert wrong.code == 2
    assert "holds lift states, not stack_three" in wrong.stderr
    both = cli("--run-dir", str(tmp_path / "y"), "collect", "--init-states", "2", "--init-state-set", str(set_dir))
    assert both.code == 2 and "cannot be combined" in both.stderr
    not_a_set = cli("--run-dir", str(tmp_path / "z"), "collect", "--init-state-set", str(tmp_path))
    assert not_a_set.code == 3
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.fixture(scope="module")
def lift_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wmpo_cli import console
    from wmpo_cli.cli import main

    run = tmp_path_factory.mktemp("sources")
    console.mode.quiet = True
    try:
        main(["--run-dir", str(run), "--recipe", "debug", "--quiet", *LOWDIM, "collect", "--task", "lift",
              "--episodes", "4"])  # fmt: skip
    except SystemExit as exc:
        assert exc.code in (0, None)
    return run / "demos"


def test_mimicgen_generation_from_expert_sources(cli, lift_sources: Path, tmp_path: Path) -> None:
    run = tmp_path / "gen"
    _ok(
        cli("--run-dir", str(run), "--recipe", "debug", "--quiet", *LOWDIM, "collect", "--task", "lift",
            "--source", "mimicgen", "--from", str(lift_sources), "--episodes", "3")
    )  # fmt: skip
    manifest = read_manifest(run / "demos")
    assert manifest.extra["source"] == "mimicgen"
    assert manifest.extra["generation_sources"]["usable"] == ["demo_0", "demo_1", "demo_2", "demo_3"]
    assert [ref.role for ref in manifest.inputs] == ["source"]
    assert manifest.metrics["episodes"] == 3
    assert manifest.metrics["successes"] == 3
    with EpisodesFile(run / "demos" / "episodes.hdf5") as f:
        for name in f.demo_names:
            attrs = f.attrs(name)
            assert attrs["source"] == "mimicgen"
            assert attrs["expert_noise"] == pytest.approx(0.05)
            chosen = attrs["generation_sources"].split(",")
            assert len(chosen) == 2 and len(set(chosen)) == 1  # lift: one source demo per attempt
            assert chosen[0] in {"demo_0", "demo_1", "demo_2", "demo_3"}


def test_mimicgen_accepts_a_plain_robomimic_file_and_refuses_other_tasks(
    cli, lift_sources: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "teleop.hdf5"
    with EpisodesFile(lift_sources / "episodes.hdf5") as src, h5py.File(plain, "w") as out:
        data = out.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "FixedCubeLift", "env_type": 1, "env_kwargs": {}})
        for i, name in enumerate(src.demo_names[:2]):
            ep = src.load(name)
            group = data.create_group(f"demo_{i}")
            group.create_dataset("states", data=ep.states)
            group.create_dataset("actions", data=ep.actions)
    run = tmp_path / "gen"
    _ok(
        cli("--run-dir", str(run), "--recipe", "debug", "--quiet", *LOWDIM, "collect", "--task", "lift",
            "--source", "mimicgen", "--from", str(plain), "--episodes", "2")
    )  # fmt: skip
    manifest = read_manifest(run / "demos")
    assert manifest.inputs == []  # a plain file has no manifest: its hash is recorded instead
    assert len(manifest.extra["generation_sources"]["sha256"]) == 64
    assert manifest.metrics["episodes"] == 2

    wrong = cli("--run-dir", str(tmp_path / "w"), "collect", "--task", "stack_three", "--source", "mimicgen",
                "--from", str(plain))  # fmt: skip
    assert wrong.code == 2 and "demos are for 'FixedCubeLift', not 'stack_three'" in wrong.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was written
    missing = cli("--run-dir", str(tmp_path / "m"), "collect", "--task", "lift", "--source", "mimicgen")
    assert missing.code == 2 and "needs --from PATH" in missing.stderr
