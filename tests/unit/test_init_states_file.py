"""The initial-state set file: round trip, validation, cycling."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from wmpo_cli.artifacts.init_states import init_state_set_id, read_init_states, write_init_states
from wmpo_cli.errors import ArtifactError


def _write(path: Path, n: int = 3) -> np.ndarray:
    states = np.arange(n * 5, dtype=np.float64).reshape(n, 5) / 7.0
    write_init_states(
        path,
        set_id="stack_three-D0-default-n3-s0",
        task="stack_three",
        variant="D0",
        scenario="default",
        states=states,
        seeds=np.array([11, 12, 13][:n]),
        env_args={"env_name": "StackThree"},
        model_file="<mujoco/>",
    )
    return states


def test_round_trip_is_exact_and_episodes_cycle_through_the_set(tmp_path: Path) -> None:
    states = _write(tmp_path / "init_states.hdf5")
    loaded = read_init_states(tmp_path)  # the artifact directory works as well as the file
    assert (loaded.set_id, loaded.task, loaded.variant, loaded.scenario) == (
        "stack_three-D0-default-n3-s0",
        "stack_three",
        "D0",
        "default",
    )
    np.testing.assert_array_equal(loaded.states, states)
    assert loaded.seeds.tolist() == [11, 12, 13]
    assert loaded.env_args == {"env_name": "StackThree"}
    assert len(loaded) == 3
    np.testing.assert_array_equal(loaded.state_for_episode(4), states[1])


def test_set_id_names_task_variant_scenario_size_and_seed() -> None:
    assert init_state_set_id("square", "D0", "disrupted", 128, 0) == "square-D0-disrupted-n128-s0"


def test_bad_files_are_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"no init_states\.hdf5 found"):
        read_init_states(tmp_path)
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as fh:
        fh.attrs["wmpo_schema"] = "wmpo.episodes/1"
    with pytest.raises(ArtifactError, match="not an initial-state set"):
        read_init_states(other)
    broken = tmp_path / "broken.hdf5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(ArtifactError, match="unreadable HDF5"):
        read_init_states(broken)


def test_writer_rejects_mismatched_arrays_and_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "init_states.hdf5"
    with pytest.raises(ValueError, match="states must be"):
        write_init_states(
            target,
            set_id="x",
            task="lift",
            variant="D0",
            scenario="default",
            states=np.zeros((3, 4)),
            seeds=np.zeros(2),
            env_args={},
            model_file="",
        )
    assert not target.exists()
