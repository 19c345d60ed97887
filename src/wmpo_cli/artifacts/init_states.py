"""``init_states.hdf5``: a named, fixed set of initial simulator states (schema ``wmpo.init_states/1``).

WMPO evaluates and optimises from the same 128 initial states every time, so that success rates
of different policies (and of imagined vs real rollouts) are compared on identical scenes. A set
is written once by ``wmpo collect --init-states N`` and referenced by path (its set id travels in
the manifests of everything started from it).

Layout::

    /states   (N, S) float64   flat MuJoCo states [time, qpos, qvel], restorable with SimEnv.reset_to
    /seeds    (N,)   int64     the reset seed each state came from (state i = reset(seeds[i]))
    attrs: wmpo_schema, set_id, task, variant, scenario, count, env_args (JSON), model_file
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wmpo_cli.artifacts.atomic import atomic_path
from wmpo_cli.errors import ArtifactError

INIT_STATES_SCHEMA = "wmpo.init_states/1"
INIT_STATES_FILE = "init_states.hdf5"
ARTIFACT_KIND = "init_states"


def init_state_set_id(task: str, variant: str, scenario: str, count: int, seed: int) -> str:
    """Human-readable set id, e.g. ``square-D0-disrupted-n128-s0``."""
    return f"{task}-{variant}-{scenario}-n{count}-s{seed}"


@dataclass(frozen=True)
class InitStateSet:
    """A loaded initial-state set."""

    set_id: str
    task: str
    variant: str
    scenario: str
    states: np.ndarray
    seeds: np.ndarray
    env_args: dict[str, Any]

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def state_for_episode(self, index: int) -> np.ndarray:
        """Episode ``index`` starts from state ``index mod N`` (budgets larger than N cycle the set)."""
        return self.states[index % len(self)]


def write_init_states(
    path: Path,
    *,
    set_id: str,
    task: str,
    variant: str,
    scenario: str,
    states: np.ndarray,
    seeds: np.ndarray,
    env_args: dict[str, Any],
    model_file: str,
) -> None:
    """Write a set atomically (a crash leaves no partial file at ``path``)."""
    states = np.asarray(states, dtype=np.float64)
    seeds = np.asarray(seeds, dtype=np.int64)
    if states.ndim != 2 or seeds.shape != (states.shape[0],):
        raise ValueError(f"states must be (N, S) and seeds (N,), got {states.shape} and {seeds.shape}")
    with atomic_path(Path(path)) as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset("states", data=states)
        fh.create_dataset("seeds", data=seeds)
        fh.attrs.update(
            {
                "wmpo_schema": INIT_STATES_SCHEMA,
                "set_id": set_id,
                "task": task,
                "variant": variant,
                "scenario": scenario,
                "count": int(states.shape[0]),
                "env_args": json.dumps(env_args, sort_keys=True),
                "model_file": model_file,
            }
        )


def read_init_states(path: Path) -> InitStateSet:
    """Load a set from its artifact directory or its ``init_states.hdf5``; validates the layout."""
    path = Path(path)
    file = path / INIT_STATES_FILE if path.is_dir() else path
    if not file.is_file():
        raise ArtifactError(
            f"{path}: no {INIT_STATES_FILE} found", hint="create one with `wmpo collect --init-states N`"
        )
    try:
        with h5py.File(file, "r") as fh:
            schema = fh.attrs.get("wmpo_schema")
            if schema != INIT_STATES_SCHEMA:
                raise ArtifactError(f"{file}: not an initial-state set (schema {schema!r})")
            states = np.asarray(fh["states"][()], dtype=np.float64)
            seeds = np.asarray(fh["seeds"][()], dtype=np.int64)
            attrs = {k: fh.attrs[k] for k in ("set_id", "task", "variant", "scenario", "env_args")}
    except OSError as exc:
        raise ArtifactError(f"{file}: unreadable HDF5 ({exc})") from None
    except KeyError as exc:
        raise ArtifactError(f"{file}: missing {exc}") from None
    if states.ndim != 2 or len(states) == 0 or seeds.shape != (len(states),):
        raise ArtifactError(f"{file}: malformed states {states.shape} / seeds {seeds.shape}")
    return InitStateSet(
        set_id=str(attrs["set_id"]),
        task=str(attrs["task"]),
        variant=str(attrs["variant"]),
        scenario=str(attrs["scenario"]),
        states=states,
        seeds=seeds,
        env_args=json.loads(str(attrs["env_args"])),
    )
