"""episodes.hdf5: shards, merge, masks, robomimic-compatible layout and validation."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from wmpo_cli.artifacts.episodes import EPISODES_SCHEMA, EpisodeData, EpisodesFile, merge_shards, write_shard
from wmpo_cli.errors import ArtifactError

ENV_ARGS = {"env_name": "Lift", "env_type": 1, "env_kwargs": {"robots": ["Panda"]}}


def _episode(steps: int, success: bool, seed: int) -> EpisodeData:
    rng = np.random.default_rng(seed)
    flags = np.zeros(steps, dtype=bool)
    if success:
        flags[-3:] = True
    return EpisodeData(
        actions=rng.uniform(-1, 1, (steps, 7)),
        states=rng.normal(size=(steps, 10)),
        rewards=np.r_[flags[1:], flags[-1]].astype(float),
        dones=np.r_[np.zeros(steps - 1), 1].astype(int),
        step_success=flags,
        obs={
            "agentview_image": rng.integers(0, 256, (steps, 8, 8, 3), dtype=np.uint8),
            "robot0_eef_pos": rng.normal(size=(steps, 3)),
        },
        attrs={
            "model_file": "<mujoco/>",
            "success": success,
            "success_step": steps - 3 if success else -1,
            "seed": seed,
            "instruction": "pick up the cube",
            "source": "expert",
        },
    )


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[EpisodeData]]:
    episodes = [_episode(6, True, 1), _episode(4, False, 2), _episode(5, True, 3)]
    shards = []
    for i, episode in enumerate(episodes):
        shard = tmp_path / f"s{i}.h5"
        write_shard(shard, episode, env_args=ENV_ARGS, compression=4)
        shards.append(shard)
    counts = merge_shards(tmp_path / "episodes.hdf5", shards, valid_names=["demo_1"])
    assert counts == {"train": 2, "valid": 1, "success": 2, "failure": 1}
    return tmp_path / "episodes.hdf5", episodes


def test_roundtrip_is_exact(dataset: tuple[Path, list[EpisodeData]]) -> None:
    path, episodes = dataset
    with EpisodesFile(path) as f:
        assert f.demo_names == ["demo_0", "demo_1", "demo_2"]
        for name, original in zip(f.demo_names, episodes, strict=True):
            loaded = f.load(name)
            np.testing.assert_array_equal(loaded.actions, original.actions)
            np.testing.assert_array_equal(loaded.states, original.states)
            np.testing.assert_array_equal(loaded.step_success, original.step_success)
            np.testing.assert_array_equal(loaded.obs["agentview_image"], original.obs["agentview_image"])
            assert loaded.attrs["num_samples"] == len(original.actions)
            assert loaded.attrs["success"] == original.attrs["success"]
            assert loaded.attrs["success_step"] == original.attrs["success_step"]
        assert f.mask("success") == ["demo_0", "demo_2"]
        assert f.mask("failure") == ["demo_1"]
        assert f.mask("train") == ["demo_0", "demo_2"]
        assert f.mask("valid") == ["demo_1"]
        assert f.env_args == ENV_ARGS
        summary = f.summary()
        assert summary["episodes"] == 3 and summary["total_steps"] == 15 and summary["successes"] == 2
        assert summary["obs"] == {"agentview_image": [8, 8, 3], "robot0_eef_pos": [3]}


def test_layout_is_robomimic_superset(dataset: tuple[Path, list[EpisodeData]]) -> None:
    path, _ = dataset
    with h5py.File(path, "r") as fh:
        assert fh.attrs["wmpo_schema"] == EPISODES_SCHEMA
        assert fh["data"].attrs["total"] == 15
        assert json.loads(fh["data"].attrs["env_args"])["env_name"] == "Lift"
        demo = fh["data/demo_0"]
        assert demo["actions"].shape == (6, 7) and demo["actions"].dtype == np.float64
        assert demo["obs/agentview_image"].dtype == np.uint8
        assert demo["obs/agentview_image"].compression == "gzip"
        assert demo.attrs["model_file"] == "<mujoco/>"
        assert fh["mask/train"].dtype.kind == "S"
        assert list(fh["mask/valid"][()]) == [b"demo_1"]


def test_shard_length_mismatch_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    bad = _episode(5, False, 0)
    bad.rewards = bad.rewards[:-1]
    with pytest.raises(ValueError, match="'rewards' has 4 steps"):
        write_shard(tmp_path / "bad.h5", bad, env_args=ENV_ARGS)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_and_foreign_files_are_artifact_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.hdf5").write_bytes(b"\x89HDF garbage")
    with pytest.raises(ArtifactError, match="not a readable HDF5 file"):
        EpisodesFile(tmp_path / "junk.hdf5")
    with h5py.File(tmp_path / "plain.hdf5", "w") as fh:
        fh.create_group("data")
    with pytest.raises(ArtifactError, match="not a wmpo episodes file"):
        EpisodesFile(tmp_path / "plain.hdf5")
    with h5py.File(tmp_path / "partial.hdf5", "w") as fh:
        fh.attrs["wmpo_schema"] = EPISODES_SCHEMA
        fh.create_group("mask")
        fh.create_group("data/demo_0").create_dataset("actions", data=np.zeros((2, 7)))
    with pytest.raises(ArtifactError, match="demo_0 lacks states, rewards, dones, step_success"):
        EpisodesFile(tmp_path / "partial.hdf5")
