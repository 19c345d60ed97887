"""What `wmpo eval` and `wmpo collect --source policy` share: the policy input and its episodes.

* :func:`load_policy_input` checks a policy artifact before anything is written: manifest kind
  and completeness, a loadable export (normalisation statistics included), the task it was
  trained on, and cameras the task has.
* :func:`run_policy_job` is the worker body: one policy episode (:mod:`wmpo_cli.envs.policy_rollout`)
  written as one episodes shard. The loaded policy and the simulator are cached per worker
  process, and torch runs on one thread during the episode, so an episode is a pure function of
  its job (policy, task, initial state, seed): results do not depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmpo_cli.artifacts.episodes import EpisodeData, write_shard
from wmpo_cli.artifacts.manifest import Manifest, check_input
from wmpo_cli.envs.tasks import check_cameras, get_task
from wmpo_cli.errors import ArtifactError, UsageError
from wmpo_cli.models.policy.config import GREEDY_DECODINGS

POLICY_KIND = "policy"
POLICY_DIR = "policy"  # <run>/policy, written by `wmpo fit-policy`
EXPORT_DIR = "export"


@dataclass(frozen=True)
class PolicyInput:
    """A checked policy artifact.

    Attributes:
        directory: the artifact directory.
        manifest: its manifest (``id`` is the lineage id).
        task: the task the policy will run on (its own unless a mismatch was allowed).
        policy_task: the task it was trained on.
        instruction: what it will be told: its training instruction on its own task, the task's
            instruction on another one.
        cameras / image_size: what it sees (episodes record exactly these frames).
    """

    directory: Path
    manifest: Manifest
    task: str
    policy_task: str
    instruction: str
    cameras: tuple[str, ...]
    image_size: int

    @property
    def export_dir(self) -> Path:
        return self.directory / EXPORT_DIR


def check_decoding(decoding: str, temperature: float) -> None:
    """--decoding names a greedy decoding, and only a greedy run (temperature 0) may change it."""
    if decoding not in GREEDY_DECODINGS:
        raise UsageError(f"--decoding must be one of {', '.join(GREEDY_DECODINGS)}, got {decoding!r}")
    if decoding != "argmax" and temperature > 0:
        raise UsageError(f"--decoding {decoding} is for greedy runs; --temperature {temperature:g} samples every token")


def policy_path(given: str, run_dir: Path) -> Path:
    """``--policy``, or ``<run>/policy`` when none was given."""
    return Path(given) if given else Path(run_dir) / POLICY_DIR


def policy_task(path: Path) -> str:
    """The task a policy artifact was trained on (read from its export config; no model built)."""
    import json

    manifest_checked(path)
    config = path / EXPORT_DIR / "config.json"
    try:
        task = json.loads(config.read_text()).get("task")
    except (OSError, ValueError, AttributeError) as exc:
        raise ArtifactError(f"{config}: not a readable policy config ({exc.__class__.__name__})") from None
    if not isinstance(task, str):
        raise ArtifactError(f"{config}: names no task")
    return task


def manifest_checked(path: Path) -> Manifest:
    """``check_input(path, "policy")``, with a pointer to `wmpo fit-policy` when nothing is there."""
    if not Path(path).exists():
        raise ArtifactError(
            f"{path}: no policy artifact there", hint="train one with `wmpo fit-policy`, or pass --policy PATH"
        )
    return check_input(Path(path), POLICY_KIND)


def load_policy_input(path: Path, task: str, *, allow_task_mismatch: bool) -> PolicyInput:
    """Check the policy artifact at ``path`` for running on ``task`` ("" = its own task).

    Loads the export once in this process (the in-process worker of a one-worker run reuses it),
    so a broken export fails here, before any output directory exists.
    """
    from wmpo_cli.models.policy.vla import PolicyLoadError

    path = Path(path)
    manifest = manifest_checked(path)
    try:
        policy = cached_policy(str(path / EXPORT_DIR))
    except PolicyLoadError as exc:
        raise ArtifactError(str(exc), hint="re-export the policy with `wmpo fit-policy`") from None
    cfg = policy.cfg
    target = task or cfg.task
    if target != cfg.task and not allow_task_mismatch:
        raise UsageError(
            f"{path}: the policy was trained for task '{cfg.task}', not '{target}'",
            hint="pass --allow-task-mismatch to run it on another task anyway",
        )
    spec = get_task(target)
    check_cameras(spec, tuple(cfg.cameras))
    instruction = cfg.instruction if target == cfg.task else spec.instruction
    return PolicyInput(
        directory=path,
        manifest=manifest,
        task=target,
        policy_task=cfg.task,
        instruction=instruction,
        cameras=tuple(cfg.cameras),
        image_size=int(cfg.image_size),
    )


# --------------------------------------------------------------------------------- the worker
@dataclass(frozen=True)
class PolicyEpisodeJob:
    """Everything one policy episode depends on (plus where its shard goes)."""

    index: int
    seed: int
    shard: str
    export_dir: str
    policy_id: str
    task: str
    variant: str
    scenario: str
    instruction: str
    cameras: tuple[str, ...]
    image_size: int
    max_steps: int
    warmup_steps: int
    temperature: float
    init_state_set: str = ""
    compression: int = 4
    render_retries: int = 3
    # Size of the recorded frames (0 = image_size, what the policy sees).
    record_size: int = 0
    # Entries recorded from the first success on (1 = stop at it).
    hold_steps: int = 1
    # How a greedy policy picks its tokens ("argmax" or "median").
    decoding: str = "argmax"

    @property
    def frame_size(self) -> int:
        return self.record_size or self.image_size


def policy_job(
    policy: PolicyInput, cfg: Any, *, index: int, seed: int, shard: Path, max_steps: int
) -> PolicyEpisodeJob:
    """The job for episode ``index`` of ``policy`` under a collect or eval config.

    ``cfg`` supplies task, variant, scenario, warmup_steps, temperature, init_state_set,
    compression, record_size, hold_steps, decoding and, when it has one, render_retries (the fields
    CollectConfig and EvalConfig share).
    """
    return PolicyEpisodeJob(
        index=index,
        seed=seed,
        shard=str(shard),
        export_dir=str(policy.export_dir),
        policy_id=policy.manifest.id,
        task=cfg.task,
        variant=cfg.variant,
        scenario=cfg.scenario,
        instruction=policy.instruction,
        cameras=policy.cameras,
        image_size=policy.image_size,
        max_steps=max_steps,
        warmup_steps=cfg.warmup_steps,
        temperature=cfg.temperature,
        init_state_set=cfg.init_state_set,
        compression=cfg.compression,
        render_retries=getattr(cfg, "render_retries", PolicyEpisodeJob.render_retries),
        record_size=cfg.record_size,
        hold_steps=cfg.hold_steps,
        decoding=cfg.decoding,
    )


@dataclass(frozen=True)
class PolicyEpisodeResult:
    """What the parent needs of a finished episode (the arrays stay in the shard).

    ``steps`` is the number of recorded entries; ``length`` the actions the policy needed for
    success (``success_step``), or all it took on failure.
    """

    index: int
    seed: int
    success: bool
    success_step: int
    steps: int
    length: int
    env_steps: int
    init_state_index: int
    rerendered: int
    wall_s: float
    physics_s: float
    render_s: float
    policy_s: float


_POLICIES: dict[str, Any] = {}
_INIT_SETS: dict[str, Any] = {}


def cached_policy(export_dir: str) -> Any:
    """The loaded policy of ``export_dir``, built once per process (loading takes seconds)."""
    if export_dir not in _POLICIES:
        from wmpo_cli.models.policy.vla import VLAPolicy

        _POLICIES[export_dir] = VLAPolicy.from_pretrained(Path(export_dir))
    return _POLICIES[export_dir]


def _env_for(job: PolicyEpisodeJob) -> Any:
    from wmpo_cli.envs.tasks import cached_env

    return cached_env(job.task, job.variant, job.scenario, cameras=job.cameras, image_size=job.image_size)


def _init_set(path: str) -> Any:
    from wmpo_cli.artifacts.init_states import read_init_states

    if path not in _INIT_SETS:
        _INIT_SETS[path] = read_init_states(Path(path))
    return _INIT_SETS[path]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one torch thread: CPU matmuls may round differently with more threads,
    and an episode must not depend on whether it ran in the parent or in a single-thread worker."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_policy_job(job: PolicyEpisodeJob) -> PolicyEpisodeResult:
    """Worker body: run one policy episode and store it as an episodes shard."""
    from wmpo_cli.envs.policy_rollout import run_policy_episode

    started = time.perf_counter()
    policy = cached_policy(job.export_dir)
    env = _env_for(job)
    init_set = _init_set(job.init_state_set) if job.init_state_set else None
    with one_torch_thread():
        record, images = run_policy_episode(
            env,
            policy,
            seed=job.seed,
            max_steps=job.max_steps,
            warmup_steps=job.warmup_steps,
            temperature=job.temperature,
            initial_state=None if init_set is None else init_set.state_for_episode(job.index),
            cameras=job.cameras,
            image_size=job.image_size,
            instruction=job.instruction,
            render_retries=job.render_retries,
            record_size=job.record_size,
            hold_steps=job.hold_steps,
            decoding=job.decoding,
        )
    obs: dict[str, Any] = {f"{camera}_image": frames for camera, frames in images.items()}
    obs.update(record.proprio)
    success_step = -1 if record.success_step is None else int(record.success_step)
    init_index = -1 if init_set is None else job.index % len(init_set)
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
            "success_step": success_step,
            "source": "policy",
            "policy_id": job.policy_id,
            "task": job.task,
            "variant": job.variant,
            "scenario": job.scenario,
            "seed": int(job.seed),
            "attempt": int(job.index),
            "instruction": job.instruction,
            "temperature": float(job.temperature),
            "decoding": job.decoding,
            "warmup_steps": int(job.warmup_steps),
            "init_state_set": "" if init_set is None else init_set.set_id,
            "init_state_index": init_index,
        },
    )
    env_args = env.env_args()
    env_args.setdefault("env_kwargs", {}).update(
        {"camera_names": list(job.cameras), "camera_heights": job.frame_size, "camera_widths": job.frame_size}
    )
    write_shard(Path(job.shard), episode, env_args=env_args, compression=job.compression)
    return PolicyEpisodeResult(
        index=job.index,
        seed=int(job.seed),
        success=bool(record.success),
        success_step=success_step,
        steps=len(record),
        length=success_step if record.success else len(record),
        env_steps=record.env_steps,
        init_state_index=init_index,
        rerendered=record.rerendered,
        wall_s=time.perf_counter() - started,
        physics_s=record.timings.get("physics_s", 0.0),
        render_s=record.timings.get("render_s", 0.0),
        policy_s=record.timings.get("policy_s", 0.0),
    )


def read_policy_shard(path: Path, index: int) -> PolicyEpisodeResult:
    """The result of an episode finished by an earlier (interrupted) run, from its shard."""
    import h5py

    with h5py.File(path, "r") as fh:
        attrs = fh["episode"].attrs
        success = bool(attrs["success"])
        success_step = int(attrs["success_step"])
        steps = int(attrs["num_samples"])
        warmup = int(attrs["warmup_steps"])
        return PolicyEpisodeResult(
            index=index,
            seed=int(attrs["seed"]),
            success=success,
            success_step=success_step,
            steps=steps,
            length=success_step if success else steps,
            env_steps=warmup + steps,
            init_state_index=int(attrs["init_state_index"]),
            rerendered=0,
            wall_s=0.0,
            physics_s=0.0,
            render_s=0.0,
            policy_s=0.0,
        )
