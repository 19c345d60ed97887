"""`wmpo collect`: expert or generated episodes -> ``<run>/demos/episodes.hdf5`` + manifest.

Sources: ``expert`` (the task's scripted expert), ``mimicgen`` (MimicGen-style generation from
the demos in ``--from``) and ``policy`` (the rollouts of a trained policy, ``--policy``, into
``<run>/rollouts/``: the real budget P that the world and reward models learn from; they record
what the policy sees, its cameras at its image size). ``--init-states N`` instead writes a fixed
initial-state set (:mod:`wmpo_cli.pipeline.init_states`), and ``--init-state-set PATH`` starts
episode i from state i mod N of such a set.

Every episodes manifest records ``extra["real_episodes"]``, the simulator episodes the artifact
cost (attempts, failures included): the ledger that a real-rollout budget is checked against.

Each episode is a pure function of (task, variant, scenario, episode seed): episode ``i`` uses
the seed derived from (config seed, i), so results do not depend on the number of workers or on
the order in which they finish, and a resumed run produces the same file as an uninterrupted
one. Each finished episode is stored as its own shard in ``demos/.partial`` (atomically);
the shards are merged into ``episodes.hdf5`` when all are there.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmpo_cli import console
from wmpo_cli.artifacts.episodes import EPISODES_FILE, EpisodeData, merge_shards, write_shard
from wmpo_cli.artifacts.init_states import InitStateSet, read_init_states
from wmpo_cli.artifacts.manifest import InputRef, Manifest, check_input, lineage_path
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import CollectConfig
from wmpo_cli.envs.pool import default_workers, run_jobs
from wmpo_cli.envs.tasks import DEFAULT_EXPERT, TaskSpec, check_cameras, check_scenario, check_variant, get_task
from wmpo_cli.errors import UsageError
from wmpo_cli.pipeline.policy_episodes import (
    PolicyEpisodeJob,
    PolicyInput,
    check_decoding,
    load_policy_input,
    policy_job,
    policy_path,
    run_policy_job,
)

ARTIFACT_KIND = "episodes"
ARTIFACT_KIND_VERSION = 1
OUTPUT_DIR = "demos"
ROLLOUTS_DIR = "rollouts"  # --source policy
IMPLEMENTED_SOURCES = ("expert", "mimicgen", "policy")
ROLLOUT_SEED_STREAM = 0xB0D6  # policy rollouts start from other states than the demos did
SOURCES_FILE = "sources.npz"  # annotated MimicGen source demos, shared with the workers


def episode_seed(base_seed: int, index: int) -> int:
    """The simulator seed of attempt ``index``: independent streams per (base seed, index)."""
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1)[0])


def rollout_seed(base_seed: int, index: int) -> int:
    """The reset seed of policy rollout ``index`` (``--source policy``): a stream of its own."""
    return int(np.random.SeedSequence([base_seed, index, ROLLOUT_SEED_STREAM]).generate_state(1)[0])


def validate(cfg: CollectConfig) -> TaskSpec:
    """Reject bad settings before anything is written or any simulator is built."""
    task = get_task(cfg.task)
    check_variant(task, cfg.variant)
    check_scenario(task, cfg.scenario)
    check_cameras(task, cfg.cameras)
    if cfg.source not in IMPLEMENTED_SOURCES:
        raise UsageError(f"unknown source '{cfg.source}'", hint=f"sources: {', '.join(IMPLEMENTED_SOURCES)}")
    if cfg.episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {cfg.episodes}")
    if cfg.workers < 0:
        raise UsageError(f"--workers must be 0 (one per core) or more, got {cfg.workers}")
    if not 16 <= cfg.image_size <= 512:
        raise UsageError(f"--image-size must be between 16 and 512 pixels, got {cfg.image_size}")
    if cfg.record_size and not 16 <= cfg.record_size <= 512:
        raise UsageError(f"--record-size must be 0 (the policy's size) or 16..512 pixels, got {cfg.record_size}")
    if cfg.record_size and cfg.source != "policy":
        raise UsageError("--record-size is for --source policy; expert and mimicgen episodes use --image-size")
    task.expert_class_for(cfg.expert)  # the registry's "unknown expert ..." error, like check_variant's
    if cfg.expert != DEFAULT_EXPERT and cfg.source != "expert":
        raise UsageError(
            f"--expert is for --source expert, not --source {cfg.source}", hint="drop --expert, or use --source expert"
        )
    if cfg.expert_noise < 0:
        raise UsageError(f"--expert-noise must be >= 0, got {cfg.expert_noise}")
    if not 0.0 <= cfg.valid_fraction < 1.0:
        raise UsageError(f"valid_fraction must be in [0, 1), got {cfg.valid_fraction}")
    if cfg.hold_steps < 1 or cfg.horizon < 0 or cfg.max_attempts < 0:
        raise UsageError("hold_steps must be >= 1, horizon and max_attempts >= 0")
    if cfg.source == "mimicgen" and not cfg.source_path:
        raise UsageError("--source mimicgen needs --from PATH (source demos)")
    if cfg.source != "mimicgen" and cfg.source_path:
        raise UsageError("--from is only used with --source mimicgen")
    if cfg.generation_noise < 0 or cfg.interpolation_steps < 0:
        raise UsageError("generation_noise and interpolation_steps must be >= 0")
    if cfg.init_states < 0:
        raise UsageError(f"--init-states must be a positive number of states, got {cfg.init_states}")
    if cfg.init_states and cfg.init_state_set:
        raise UsageError("--init-states N writes a new set; it cannot be combined with --init-state-set")
    if cfg.source != "policy" and (cfg.policy or cfg.allow_task_mismatch or cfg.decoding != "argmax"):
        raise UsageError("--policy, --allow-task-mismatch and --decoding are only used with --source policy")
    if cfg.source == "policy":
        if cfg.successes_only:
            raise UsageError(
                "--successes-only cannot be used with --source policy",
                hint="every policy rollout counts against the real budget, failures included",
            )
        if cfg.init_states:
            raise UsageError("--init-states N writes an initial-state set; it takes no --source policy")
        if cfg.temperature < 0 or cfg.warmup_steps < 0 or cfg.max_steps < 0:
            raise UsageError("--temperature, warmup_steps and max_steps must be >= 0")
        check_decoding(cfg.decoding, cfg.temperature)
    return task


def load_init_state_set(cfg: CollectConfig) -> tuple[InitStateSet, Manifest]:
    """The set named by ``--init-state-set``, checked against the task."""
    manifest = check_input(Path(cfg.init_state_set), "init_states")
    states = read_init_states(Path(cfg.init_state_set))
    if states.task != cfg.task:
        raise UsageError(
            f"--init-state-set {cfg.init_state_set} holds {states.task} states, not {cfg.task}",
            hint="create a set for this task with `wmpo collect --task ... --init-states N`",
        )
    return states, manifest


@dataclass(frozen=True)
class EpisodeJob:
    index: int
    seed: int
    shard: str
    cfg: CollectConfig
    sources_file: str = ""  # annotated MimicGen sources (source "mimicgen")


@dataclass(frozen=True)
class EpisodeResult:
    index: int
    success: bool
    steps: int
    rerendered: int
    physics_s: float
    render_s: float
    policy_s: float = 0.0


_LOADED: dict[str, Any] = {}  # per-process cache of init-state sets and annotated sources


def _cached(path: str, loader: Any) -> Any:
    if path not in _LOADED:
        _LOADED[path] = loader(Path(path))
    return _LOADED[path]


def make_controller(cfg: CollectConfig, sources_file: str) -> Any:
    """The episode's controller: the scripted expert, or the MimicGen generator."""
    from wmpo_cli.envs.tasks import make_expert

    if cfg.source == "mimicgen":
        from wmpo_cli.datagen.generator import MimicGenController
        from wmpo_cli.datagen.source import load_sources
        from wmpo_cli.datagen.specs import datagen_spec

        sources = _cached(sources_file, load_sources)
        return MimicGenController(
            sources,
            datagen_spec(cfg.task),
            cfg.generation_noise,
            interpolation_steps=cfg.interpolation_steps,
        )
    return make_expert(cfg.task, noise=cfg.expert_noise, expert=cfg.expert)


def _env_for(cfg: CollectConfig) -> Any:
    from wmpo_cli.envs.tasks import cached_env

    return cached_env(cfg.task, cfg.variant, cfg.scenario, cameras=cfg.cameras, image_size=cfg.image_size)


def collect_episode(job: EpisodeJob) -> EpisodeResult:
    """Worker body: physics with the expert, then frames rendered from the stored states."""
    from wmpo_cli.envs.frames import render_states
    from wmpo_cli.envs.rollout import run_expert_episode

    cfg = job.cfg
    task = get_task(cfg.task)
    env = _env_for(cfg)
    controller = make_controller(cfg, job.sources_file)
    init_set: InitStateSet | None = _cached(cfg.init_state_set, read_init_states) if cfg.init_state_set else None
    start = time.perf_counter()
    record = run_expert_episode(
        env,
        controller,
        seed=job.seed,
        horizon=cfg.horizon or task.horizon_for(cfg.variant),
        hold_steps=cfg.hold_steps,
        initial_state=None if init_set is None else init_set.state_for_episode(job.index),
    )
    physics_s = time.perf_counter() - start
    rendered = render_states(env, record.states, cfg.cameras, cfg.image_size, retries=cfg.render_retries)
    render_s = time.perf_counter() - start - physics_s
    obs = {f"{camera}_image": frames for camera, frames in rendered.images.items()}
    obs.update(record.proprio)
    episode = EpisodeData(
        actions=record.actions,
        states=record.states,
        rewards=record.rewards,
        dones=record.dones,
        step_success=record.success_flags,
        obs=obs,
        attrs={
            "model_file": record.model_xml,
            "success": bool(record.success),
            "success_step": -1 if record.success_step is None else int(record.success_step),
            "source": cfg.source,
            "policy_id": "",
            "task": cfg.task,
            "variant": cfg.variant,
            "scenario": cfg.scenario,
            "seed": int(job.seed),
            "attempt": int(job.index),
            "instruction": task.instruction,
            "expert_noise": float(cfg.expert_noise if cfg.source == "expert" else cfg.generation_noise),
            "init_state_set": "" if init_set is None else init_set.set_id,
            "init_state_index": -1 if init_set is None else job.index % len(init_set),
            "generation_sources": ",".join(getattr(controller, "chosen", [])),
        },
    )
    env_args = env.env_args()
    env_args.setdefault("env_kwargs", {}).update(
        {"camera_names": list(cfg.cameras), "camera_heights": cfg.image_size, "camera_widths": cfg.image_size}
    )
    write_shard(Path(job.shard), episode, env_args=env_args, compression=cfg.compression)
    return EpisodeResult(
        index=job.index,
        success=bool(record.success),
        steps=len(record.actions),
        rerendered=rendered.rerendered,
        physics_s=physics_s,
        render_s=render_s,
    )


def collect_policy_episode(job: PolicyEpisodeJob) -> EpisodeResult:
    """Worker body of ``--source policy``: one rollout of the policy, stored as a shard."""
    res = run_policy_job(job)
    return EpisodeResult(
        index=res.index,
        success=res.success,
        steps=res.steps,
        rerendered=res.rerendered,
        physics_s=res.physics_s,
        render_s=res.render_s,
        policy_s=res.policy_s,
    )


def _policy_jobs(cfg: CollectConfig, policy: PolicyInput, partial: Path, indices: list[int]) -> list[PolicyEpisodeJob]:
    max_steps = cfg.max_steps or get_task(cfg.task).max_steps
    return [
        policy_job(
            policy,
            cfg,
            index=index,
            seed=rollout_seed(cfg.seed, index),
            shard=_shard_path(partial, index),
            max_steps=max_steps,
        )
        for index in indices
    ]


def _shard_path(partial: Path, index: int) -> Path:
    return partial / f"attempt_{index:06d}.h5"


def _read_shard_result(path: Path, index: int) -> EpisodeResult:
    import h5py

    with h5py.File(path, "r") as fh:
        attrs = fh["episode"].attrs
        return EpisodeResult(index, bool(attrs["success"]), int(attrs["num_samples"]), 0, 0.0, 0.0)


def _valid_split(count: int, fraction: float, seed: int) -> set[int]:
    """Held-out positions: a seeded choice, at least one when there are >= 2 episodes."""
    n_valid = round(count * fraction)
    if fraction > 0 and count >= 2:
        n_valid = max(1, n_valid)
    order = np.random.default_rng([seed, 7]).permutation(count)
    return {int(i) for i in order[:n_valid]}


def output_dir(cfg: CollectConfig, run_dir: Path) -> Path:
    """Where a collect run writes: ``demos/``, ``rollouts/`` (--source policy), or
    ``init_states/<set id>/`` with --init-states."""
    if cfg.init_states:
        from wmpo_cli.pipeline.init_states import set_dir

        return set_dir(cfg, run_dir)
    return Path(run_dir) / (ROLLOUTS_DIR if cfg.source == "policy" else OUTPUT_DIR)


def run(cfg: CollectConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    validate(cfg)
    if cfg.init_states:
        from wmpo_cli.pipeline.init_states import run as write_set

        return write_set(cfg, run_dir, force=force)
    policy: PolicyInput | None = None
    if cfg.source == "policy":
        policy = load_policy_input(
            policy_path(cfg.policy, run_dir), cfg.task, allow_task_mismatch=cfg.allow_task_mismatch
        )
        # The rollouts record what the policy sees; config.json says so rather than the defaults.
        cfg = dataclasses.replace(cfg, cameras=policy.cameras, image_size=policy.image_size)
    out_dir = output_dir(cfg, run_dir)
    inputs: list[InputRef] = []
    extra: dict[str, Any] = {"task": cfg.task, "variant": cfg.variant, "scenario": cfg.scenario, "source": cfg.source}
    if policy is not None:
        inputs.append(InputRef("policy", policy.manifest.id, lineage_path(policy.directory, out_dir)))
        extra["policy_id"] = policy.manifest.id
    if cfg.init_state_set:
        init_set, set_manifest = load_init_state_set(cfg)
        inputs.append(InputRef("init_states", set_manifest.id, lineage_path(Path(cfg.init_state_set), out_dir)))
        extra["init_state_set"] = init_set.set_id
    sources: list[Any] = []
    if cfg.source == "mimicgen":
        # Read and annotate the sources before anything is written: a bad source file must not
        # leave a half-made artifact behind.
        sources, extra["generation_sources"] = _prepare_sources(cfg)
        source_ref = _source_input(Path(cfg.source_path), out_dir)
        if source_ref is not None:
            inputs.append(source_ref)
    writer = begin_artifact(
        out_dir,
        kind=ARTIFACT_KIND,
        kind_version=ARTIFACT_KIND_VERSION,
        stage="collect",
        config=cfg,
        seed=cfg.seed,
        inputs=inputs,
        force=force,
        outputs=(EPISODES_FILE,),
        extra=extra,
    )
    partial = writer.partial_dir
    sources_file = ""
    if sources:
        from wmpo_cli.datagen.source import save_sources

        sources_file = str(partial / SOURCES_FILE)  # workers load the annotated sources from here
        save_sources(Path(sources_file), sources)
    workers = cfg.workers or default_workers()
    max_attempts = (cfg.max_attempts or 10 * cfg.episodes) if cfg.successes_only else cfg.episodes

    results: dict[int, EpisodeResult] = {}
    for path in sorted(partial.glob("attempt_*.h5")):
        index = int(path.stem.split("_")[1])
        if index < max_attempts:
            results[index] = _read_shard_result(path, index)
    resumed = set(results)
    if resumed:
        console.log(f"resuming: {len(resumed)} finished episode(s) found in {partial}")
    successes = sum(r.success for r in results.values())

    def kept_so_far() -> int:
        """What the progress bar counts: successes with --successes-only, else finished episodes."""
        return successes if cfg.successes_only else len(results)

    todo = [index for index in range(max_attempts) if index not in results]
    jobs: Any
    if policy is not None:
        worker: Any = collect_policy_episode
        jobs = _policy_jobs(cfg, policy, partial, todo)
    else:
        worker = collect_episode
        jobs = (
            EpisodeJob(index, episode_seed(cfg.seed, index), str(_shard_path(partial, index)), cfg, sources_file)
            for index in todo
        )
    started = time.perf_counter()
    with console.progress() as bar:
        bar_task = bar.add_task(
            f"collect {cfg.task} {cfg.variant}", total=cfg.episodes, completed=kept_so_far(), info=""
        )
        stop = (lambda: successes >= cfg.episodes) if cfg.successes_only else (lambda: False)
        for res in run_jobs(worker, jobs, workers=min(workers, max_attempts), should_stop=stop):
            results[res.index] = res
            successes += res.success
            bar.update(bar_task, completed=min(kept_so_far(), cfg.episodes), info=f"success {successes}/{len(results)}")
    wall_s = time.perf_counter() - started

    chosen = _choose_episodes(cfg, results)
    if len(chosen) < cfg.episodes:
        raise UsageError(
            f"only {len(chosen)} of {cfg.episodes} requested successful episodes after {max_attempts} attempts",
            hint="raise --set max_attempts=..., or lower --expert-noise",
        )
    valid_positions = _valid_split(len(chosen), cfg.valid_fraction, cfg.seed)
    shards = [_shard_path(partial, index) for index in chosen]
    mask_counts = merge_shards(
        out_dir / EPISODES_FILE,
        shards,
        valid_names=[f"demo_{pos}" for pos in sorted(valid_positions)],
    )
    kept = [results[index] for index in chosen]
    fresh = [r for index, r in results.items() if index not in resumed]
    new_steps = sum(r.steps for r in fresh)
    lengths = [r.steps for r in kept]
    success_lengths = [r.steps for r in kept if r.success]
    metrics = {
        "episodes": len(kept),
        "attempts": len(results),
        "resumed_episodes": len(resumed),
        "successes": mask_counts["success"],
        "failures": mask_counts["failure"],
        "success_rate": mask_counts["success"] / len(kept),
        "attempt_success_rate": successes / len(results),
        "train": mask_counts["train"],
        "valid": mask_counts["valid"],
        "total_steps": int(sum(lengths)),
        "mean_length": float(np.mean(lengths)),
        "mean_success_length": float(np.mean(success_lengths)) if success_lengths else None,
        "frames_rerendered": int(sum(r.rerendered for r in fresh)),
        "workers": workers,
        "wall_s": round(wall_s, 3),
        "episodes_per_s": round(len(fresh) / wall_s, 4) if fresh and wall_s > 0 else None,
        "env_steps_per_s": round(new_steps / wall_s, 2) if fresh and wall_s > 0 else None,
        "physics_s": round(sum(r.physics_s for r in fresh), 3),
        "render_s": round(sum(r.render_s for r in fresh), 3),
    }
    if policy is not None:
        metrics["policy_s"] = round(sum(r.policy_s for r in fresh), 3)
    writer.manifest.resume["step"] = len(results)
    # The budget ledger: every simulator episode run for this artifact, kept or not.
    writer.manifest.extra["real_episodes"] = len(results)
    return writer.finish([EPISODES_FILE], metrics)


def _choose_episodes(cfg: CollectConfig, results: dict[int, EpisodeResult]) -> list[int]:
    """The attempt indices that make up the dataset, in attempt order (deterministic)."""
    ordered = sorted(results)
    if not cfg.successes_only:
        return ordered[: cfg.episodes]
    return [index for index in ordered if results[index].success][: cfg.episodes]


def _source_input(path: Path, out_dir: Path) -> InputRef | None:
    """Lineage of ``--from``: the episodes artifact it belongs to, if it is one."""
    from wmpo_cli.artifacts.manifest import MANIFEST_NAME

    directory = path if path.is_dir() else path.parent
    if not (directory / MANIFEST_NAME).exists():
        return None  # a plain robomimic file: its hash goes into the manifest instead
    manifest = check_input(directory, "episodes")
    return InputRef("source", manifest.id, lineage_path(directory, out_dir))


def _prepare_sources(cfg: CollectConfig) -> tuple[list[Any], dict[str, Any]]:
    """Read and annotate the source demos in this process: (usable demos, lineage record)."""
    from wmpo_cli.artifacts.atomic import file_sha256
    from wmpo_cli.datagen.source import annotate, read_source_file
    from wmpo_cli.datagen.specs import datagen_spec
    from wmpo_cli.envs.tasks import make_env

    spec = datagen_spec(cfg.task)
    path = Path(cfg.source_path)
    raw = read_source_file(path, cfg.task, get_task(cfg.task).env_name)
    successful = [demo for demo in raw if demo.success]
    env = make_env(cfg.task, cfg.variant, cfg.scenario)
    try:
        annotated = [annotate(env, demo, spec) for demo in successful]
    finally:
        env.close()
    usable = [demo for demo in annotated if demo is not None]
    if not usable:
        raise UsageError(
            f"--from {path}: none of its {len(raw)} demos ({len(successful)} successful) can be split into "
            f"the subtasks of {cfg.task} ({', '.join(spec.signals)})",
            hint="use successful demos of this task",
        )
    file = path / EPISODES_FILE if path.is_dir() else path
    console.log(f"sources: {len(usable)} of {len(raw)} demos usable from {file}")
    info = {"file": str(file), "sha256": file_sha256(file), "demos": len(raw), "usable": [d.name for d in usable]}
    return usable, info
