"""`wmpo collect --init-states N`: a fixed, named set of initial simulator states.

State i is the state right after ``reset(episode_seed(seed, i))`` — the very seeds ``wmpo collect``
uses for episode i — so a set and a dataset collected with the same seed start identically.
Resets are cheap (no physics is stepped), so the set is built in this process.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from wmpo_cli import console
from wmpo_cli.artifacts.init_states import (
    ARTIFACT_KIND,
    INIT_STATES_FILE,
    init_state_set_id,
    write_init_states,
)
from wmpo_cli.artifacts.manifest import Manifest
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import CollectConfig

ARTIFACT_KIND_VERSION = 1
OUTPUT_DIR = "init_states"


def set_id_for(cfg: CollectConfig) -> str:
    return init_state_set_id(cfg.task, cfg.variant, cfg.scenario, cfg.init_states, cfg.seed)


def set_dir(cfg: CollectConfig, run_dir: Path) -> Path:
    """``<run>/init_states/<set id>``."""
    return Path(run_dir) / OUTPUT_DIR / set_id_for(cfg)


def run(cfg: CollectConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    from wmpo_cli.envs.tasks import make_env
    from wmpo_cli.pipeline.collect import episode_seed

    set_id = set_id_for(cfg)
    writer = begin_artifact(
        set_dir(cfg, run_dir),
        kind=ARTIFACT_KIND,
        kind_version=ARTIFACT_KIND_VERSION,
        stage="collect",
        config=cfg,
        seed=cfg.seed,
        force=force,
        outputs=(INIT_STATES_FILE,),
        extra={
            "task": cfg.task,
            "variant": cfg.variant,
            "scenario": cfg.scenario,
            "init_state_set": set_id,
        },
    )
    started = time.perf_counter()
    seeds = np.array([episode_seed(cfg.seed, i) for i in range(cfg.init_states)], dtype=np.int64)
    env = make_env(cfg.task, cfg.variant, cfg.scenario)
    try:
        states = []
        with console.progress() as bar:
            job = bar.add_task(f"initial states {set_id}", total=len(seeds), info="")
            for seed in seeds:
                env.reset(int(seed))
                states.append(env.get_state())
                bar.advance(job)
        write_init_states(
            writer.directory / INIT_STATES_FILE,
            set_id=set_id,
            task=cfg.task,
            variant=cfg.variant,
            scenario=cfg.scenario,
            states=np.asarray(states),
            seeds=seeds,
            env_args=env.env_args(),
            model_file=env.model_xml(),
        )
    finally:
        env.close()
    metrics = {
        "init_states": len(seeds),
        "state_size": int(np.asarray(states).shape[1]),
        "wall_s": round(time.perf_counter() - started, 3),
    }
    return writer.finish([INIT_STATES_FILE], metrics)
