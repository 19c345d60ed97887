"""`wmpo eval`: a policy's success rate in the simulator, with its episodes and videos.

Writes ``<run>/eval/<policy id>/<scenario>/`` (``<scenario>-<variant>`` for variants other than
D0): ``episodes.hdf5`` (an ``episodes`` artifact like collect's, ``source = "policy"``, so later
stages can read it), ``eval.json`` (success rate with a Wilson 95 % interval, episode lengths,
throughput and one row per episode) and ``videos/episode_XXXX.gif`` (+ ``.mp4`` when an ffmpeg
backend is installed) of the first ``videos`` episodes.

The protocol is WMPO's (see :mod:`wmpo_cli.envs.policy_rollout`): warm-up, greedy chunks by
default, success ends an episode. Episode i starts from ``reset(eval_seed(seed, i))``, a seed
stream distinct from collect's so evaluation never replays the demos' initial states, or from
state i mod N of ``--init-states SET``. Episodes are stored one shard each while the stage runs,
so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from wmpo_cli import console
from wmpo_cli.artifacts.atomic import atomic_write_text
from wmpo_cli.artifacts.episodes import EPISODES_FILE, merge_shards
from wmpo_cli.artifacts.manifest import InputRef, Manifest, check_input, lineage_path
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import EvalConfig
from wmpo_cli.envs.pool import default_workers, run_jobs
from wmpo_cli.envs.tasks import check_scenario, check_variant, get_task
from wmpo_cli.errors import UsageError
from wmpo_cli.pipeline.policy_episodes import (
    PolicyEpisodeResult,
    PolicyInput,
    check_decoding,
    load_policy_input,
    policy_job,
    policy_path,
    policy_task,
    read_policy_shard,
    run_policy_job,
)
from wmpo_cli.stats import wilson_interval

ARTIFACT_KIND = "episodes"
ARTIFACT_KIND_VERSION = 1
OUTPUT_DIR = "eval"
EVAL_FILE = "eval.json"
VIDEOS_DIR = "videos"
EVAL_SEED_STREAM = 0xE7A1


def eval_seed(base_seed: int, index: int) -> int:
    """Reset seed of evaluation episode ``index``; never equal to collect's ``episode_seed`` stream."""
    return int(np.random.SeedSequence([base_seed, index, EVAL_SEED_STREAM]).generate_state(1)[0])


def validate(cfg: EvalConfig) -> None:
    """Reject bad numbers before any file is read or written."""
    if cfg.episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {cfg.episodes}")
    if cfg.workers < 0:
        raise UsageError(f"--workers must be 0 (one per core) or more, got {cfg.workers}")
    if cfg.temperature < 0:
        raise UsageError(f"--temperature must be 0 (greedy) or positive, got {cfg.temperature}")
    if cfg.warmup_steps < 0 or cfg.max_steps < 0 or cfg.videos < 0:
        raise UsageError("warmup_steps, max_steps and --videos must be >= 0")
    if not 0 <= cfg.compression <= 9:
        raise UsageError(f"compression must be a gzip level 0..9, got {cfg.compression}")
    if cfg.record_size and not 16 <= cfg.record_size <= 512:
        raise UsageError(f"--record-size must be 0 (the policy's size) or 16..512 pixels, got {cfg.record_size}")
    if cfg.hold_steps < 1:
        raise UsageError(f"hold_steps must be >= 1 (1 = stop at the first success), got {cfg.hold_steps}")
    check_decoding(cfg.decoding, cfg.temperature)


def resolve_run_dir(cfg: EvalConfig, run_dir: Path | None) -> Path:
    """--run-dir, else ``runs/<task>`` with the task from --task or from the --policy artifact."""
    if run_dir is not None:
        return Path(run_dir)
    if cfg.task:
        return Path("runs") / cfg.task
    if cfg.policy:
        return Path("runs") / policy_task(Path(cfg.policy))
    raise UsageError("eval needs --task, --policy or --run-dir to find the policy")


def prepare(cfg: EvalConfig, run_dir: Path) -> tuple[EvalConfig, PolicyInput]:
    """Every check, nothing written: the config with its task filled in, and the checked policy."""
    validate(cfg)
    if cfg.task:  # fail fast on names, before the policy takes seconds to load
        check_variant(get_task(cfg.task), cfg.variant)
        check_scenario(get_task(cfg.task), cfg.scenario)
    policy = load_policy_input(policy_path(cfg.policy, run_dir), cfg.task, allow_task_mismatch=cfg.allow_task_mismatch)
    cfg = dataclasses.replace(cfg, task=policy.task)  # config.json names the task actually run
    task = get_task(cfg.task)
    check_variant(task, cfg.variant)
    check_scenario(task, cfg.scenario)
    return cfg, policy


def output_dir(cfg: EvalConfig, run_dir: Path, policy_id: str) -> Path:
    """``<run>/eval/<policy id>/<scenario>`` (D0) or ``.../<scenario>-<variant>``."""
    name = cfg.scenario if cfg.variant == "D0" else f"{cfg.scenario}-{cfg.variant}"
    return Path(run_dir) / OUTPUT_DIR / policy_id / name


def _init_state_input(cfg: EvalConfig, out_dir: Path) -> tuple[InputRef, str]:
    """The --init-states set, checked against the task, variant and scenario being evaluated."""
    from wmpo_cli.artifacts.init_states import read_init_states

    manifest = check_input(Path(cfg.init_state_set), "init_states")
    states = read_init_states(Path(cfg.init_state_set))
    if (states.task, states.variant, states.scenario) != (cfg.task, cfg.variant, cfg.scenario):
        raise UsageError(
            f"--init-states {cfg.init_state_set} holds {states.task} {states.variant} {states.scenario} states, "
            f"not {cfg.task} {cfg.variant} {cfg.scenario}",
            hint="create a set for this setting with `wmpo collect --task ... --variant ... --init-states N`",
        )
    return InputRef("init_states", manifest.id, lineage_path(Path(cfg.init_state_set), out_dir)), states.set_id


def _shard_path(partial: Path, index: int) -> Path:
    return partial / f"episode_{index:06d}.h5"


def run(cfg: EvalConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    cfg, policy = prepare(cfg, run_dir)
    task = get_task(cfg.task)
    max_steps = cfg.max_steps or task.max_steps
    out_dir = output_dir(cfg, run_dir, policy.manifest.id)
    inputs = [InputRef("policy", policy.manifest.id, lineage_path(policy.directory, out_dir))]
    extra: dict[str, Any] = {
        "task": cfg.task,
        "variant": cfg.variant,
        "scenario": cfg.scenario,
        "source": "policy",
        "policy_id": policy.manifest.id,
    }
    if cfg.init_state_set:
        ref, extra["init_state_set"] = _init_state_input(cfg, out_dir)
        inputs.append(ref)
    writer = begin_artifact(
        out_dir,
        kind=ARTIFACT_KIND,
        kind_version=ARTIFACT_KIND_VERSION,
        stage="eval",
        config=cfg,
        seed=cfg.seed,
        inputs=inputs,
        force=force,
        outputs=(EPISODES_FILE, EVAL_FILE),
        extra=extra,
    )
    partial = writer.partial_dir
    results: dict[int, PolicyEpisodeResult] = {}
    for path in sorted(partial.glob("episode_*.h5")):
        index = int(path.stem.split("_")[1])
        if index < cfg.episodes:
            results[index] = read_policy_shard(path, index)
    resumed = set(results)
    if resumed:
        console.log(f"resuming: {len(resumed)} finished episode(s) found in {partial}")
    workers = min(cfg.workers or default_workers(), cfg.episodes)
    jobs = (
        policy_job(
            policy,
            cfg,
            index=index,
            seed=eval_seed(cfg.seed, index),
            shard=_shard_path(partial, index),
            max_steps=max_steps,
        )
        for index in range(cfg.episodes)
        if index not in results
    )
    successes = sum(r.success for r in results.values())
    started = time.perf_counter()
    with console.progress() as bar:
        label = f"eval {cfg.task} {cfg.variant} {cfg.scenario}"
        bar_task = bar.add_task(label, total=cfg.episodes, completed=len(results), info="")
        for res in run_jobs(run_policy_job, jobs, workers=workers):
            results[res.index] = res
            successes += res.success
            bar.update(bar_task, completed=len(results), info=f"success {successes}/{len(results)}")
    wall_s = time.perf_counter() - started

    ordered = [results[index] for index in range(cfg.episodes)]
    shards = [_shard_path(partial, index) for index in range(cfg.episodes)]
    merge_shards(out_dir / EPISODES_FILE, shards, valid_names=[])
    videos = _write_videos(shards[: cfg.videos], partial, out_dir)
    fresh = [r for r in ordered if r.index not in resumed]
    summary = _summary(cfg, policy, ordered, fresh, max_steps=max_steps, workers=workers, wall_s=wall_s)
    report = {**summary, "per_episode": [_episode_row(r) for r in ordered]}
    atomic_write_text(out_dir / EVAL_FILE, json.dumps(report, indent=2) + "\n")
    writer.manifest.resume["step"] = len(results)
    return writer.finish([EPISODES_FILE, EVAL_FILE, *videos], summary)


def _episode_row(result: PolicyEpisodeResult) -> dict[str, Any]:
    return {
        "index": result.index,
        "seed": result.seed,
        "success": result.success,
        "length": result.length,
        "init_state_index": result.init_state_index,
    }


def _summary(
    cfg: EvalConfig,
    policy: PolicyInput,
    ordered: list[PolicyEpisodeResult],
    fresh: list[PolicyEpisodeResult],
    *,
    max_steps: int,
    workers: int,
    wall_s: float,
) -> dict[str, Any]:
    """eval.json without the per-episode rows (also the manifest's metrics)."""
    successes = sum(r.success for r in ordered)
    lengths = [r.length for r in ordered if r.success]
    low, high = wilson_interval(successes, len(ordered))
    fresh_steps = sum(r.env_steps for r in fresh)
    return {
        "policy_id": policy.manifest.id,
        "policy": str(policy.directory),
        "policy_task": policy.policy_task,
        "task": cfg.task,
        "variant": cfg.variant,
        "scenario": cfg.scenario,
        "instruction": policy.instruction,
        "episodes": len(ordered),
        "successes": successes,
        "success_rate": successes / len(ordered),
        "wilson_95": [low, high],
        "mean_success_length": float(np.mean(lengths)) if lengths else None,
        "median_success_length": float(statistics.median(lengths)) if lengths else None,
        "temperature": cfg.temperature,
        "decoding": cfg.decoding,
        "max_steps": max_steps,
        "warmup_steps": cfg.warmup_steps,
        "seed": cfg.seed,
        "init_state_set": cfg.init_state_set,
        # Every simulator step, warm-up included (that is what the episodes cost).
        "env_steps": int(sum(r.env_steps for r in ordered)),
        "resumed_episodes": len(ordered) - len(fresh),
        "workers": workers,
        "wall_s": round(wall_s, 3),
        "episodes_per_s": round(len(fresh) / wall_s, 4) if fresh and wall_s > 0 else None,
        "env_steps_per_s": round(fresh_steps / wall_s, 2) if fresh and wall_s > 0 else None,
        "physics_s": round(sum(r.physics_s for r in fresh), 3),
        "render_s": round(sum(r.render_s for r in fresh), 3),
        "policy_s": round(sum(r.policy_s for r in fresh), 3),
        "frames_rerendered": int(sum(r.rerendered for r in fresh)),
    }


def _write_videos(shards: list[Path], partial: Path, out_dir: Path) -> list[str]:
    """Videos of the given episodes, built in ``.partial`` and moved into place together."""
    import h5py

    from wmpo_cli.artifacts.videos import side_by_side, write_video

    staging = partial / VIDEOS_DIR
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names: list[str] = []
    for shard in shards:
        index = int(shard.stem.split("_")[1])
        with h5py.File(shard, "r") as fh:
            obs = fh["episode"]["obs"]
            images = {key[: -len("_image")]: obs[key][()] for key in obs if key.endswith("_image")}
        for path in write_video(staging / f"episode_{index:04d}", side_by_side(images)):
            names.append(f"{VIDEOS_DIR}/{path.name}")
    final = out_dir / VIDEOS_DIR
    # A replaced (--force) evaluation must not keep videos of its predecessor.
    shutil.rmtree(final, ignore_errors=True)
    if names:
        os.replace(staging, final)
    return sorted(names)
