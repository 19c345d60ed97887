"""`wmpo imagine`: imagined rollouts of a policy, and (``--audit``) the world model's audit.

    imagine/audit-<world model id>/          manifest.json config.json audit.json audit.gif
    imagine/<policy id>-<world model id>/    manifest.json config.json imagined.hdf5 videos/

The audit replays the real action chunks of held-out episodes open-loop from their real context
frames and compares the imagined frames with the recorded ones per horizon, next to the
copy-last-frame and action-shuffle baselines (see :mod:`wmpo_cli.rl.audit`). Imagination starts
from the first frames of real episodes (policy rollouts and eval episodes record their first
frame after the no-op warm-up, as WMPO renders it), or from an initial-state set rendered the
same way (``--init-states SET``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from wmpo_cli import console
from wmpo_cli.artifacts.atomic import atomic_path, atomic_write_text
from wmpo_cli.artifacts.episodes import EPISODES_FILE, EpisodesFile
from wmpo_cli.artifacts.manifest import InputRef, Manifest, check_input, lineage_path
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import ImagineConfig
from wmpo_cli.errors import UsageError
from wmpo_cli.pipeline.fit_world_model import EXPORT_DIR as WM_EXPORT_DIR
from wmpo_cli.pipeline.fit_world_model import OUTPUT_DIR as WM_DIR
from wmpo_cli.pipeline.fit_world_model import load_frames

OUTPUT_DIR = "imagine"
AUDIT_KIND = "audit"
IMAGINED_KIND = "imagined"
KIND_VERSION = 1
AUDIT_FILE = "audit.json"
AUDIT_VIDEO = "audit"
IMAGINED_FILE = "imagined.hdf5"


def world_model_dir(cfg: ImagineConfig, run_dir: Path) -> Path:
    return Path(cfg.world_model) if cfg.world_model else Path(run_dir) / WM_DIR


def episodes_dir(cfg: ImagineConfig, run_dir: Path) -> Path:
    return Path(cfg.source) if cfg.source else Path(run_dir) / "demos"


def validate(cfg: ImagineConfig) -> None:
    if not cfg.horizons or min(cfg.horizons) < 1:
        raise UsageError("horizons must be positive numbers of chunks")
    if not cfg.starts or min(cfg.starts) < 0:
        raise UsageError("starts must be steps >= 0")
    if cfg.max_windows < 2 or cfg.batch_size < 1 or cfg.sample_steps < 0 or cfg.rollouts < 1 or cfg.chunks < 0:
        raise UsageError("max_windows must be >= 2; batch_size, rollouts >= 1; sample_steps, chunks >= 0")
    if not cfg.audit and cfg.temperature < 0:
        raise UsageError(f"temperature must be >= 0 (0 = greedy), got {cfg.temperature}")


def _load_world_model(path: Path) -> tuple[Manifest, Any]:
    from wmpo_cli.models.world_model.model import WorldModel, WorldModelLoadError

    manifest = check_input(path, "world_model")
    try:
        return manifest, WorldModel.from_pretrained(path / WM_EXPORT_DIR)
    except WorldModelLoadError as exc:
        raise UsageError(str(exc)) from None


def run_audit(cfg: ImagineConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    """The audit table and side-by-side video of a world model on held-out real episodes."""
    import torch

    from wmpo_cli.artifacts.videos import write_video
    from wmpo_cli.rl.audit import run_audit as audit

    validate(cfg)
    wm_path, source = world_model_dir(cfg, run_dir), episodes_dir(cfg, run_dir)
    wm_manifest, model = _load_world_model(wm_path)
    source_manifest = check_input(source, "episodes")
    task = source_manifest.extra.get("task")
    if task and task != model.cfg.task:
        raise UsageError(f"{source} holds {task} episodes, but the world model was trained on {model.cfg.task}")
    episodes = load_frames(source, model.cfg.camera, "valid")
    if episodes and episodes[0].frames.shape[1] != model.cfg.image_size:
        raise UsageError(
            f"{source} holds {episodes[0].frames.shape[1]} px frames,"
            f" the world model predicts {model.cfg.image_size} px"
        )
    out = Path(run_dir) / OUTPUT_DIR / f"audit-{wm_manifest.id}"
    writer = begin_artifact(
        out,
        kind=AUDIT_KIND,
        kind_version=KIND_VERSION,
        stage="imagine",
        config=cfg,
        seed=cfg.seed,
        inputs=[
            InputRef("world_model", wm_manifest.id, lineage_path(wm_path, out)),
            InputRef("episodes", source_manifest.id, lineage_path(source, out)),
        ],
        force=force,
        outputs=(AUDIT_FILE,),
        extra={"task": model.cfg.task},
    )
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    with console.progress() as bar:
        bar_task = bar.add_task(f"audit {model.cfg.task}", total=None, info="")

        def progress(done: int, total: int) -> None:
            bar.update(bar_task, completed=done, total=total, info=f"{done}/{total} windows")

        try:
            result = audit(
                model,
                episodes,
                horizons=cfg.horizons,
                starts=cfg.starts,
                max_windows=cfg.max_windows,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
                sample_steps=cfg.sample_steps or None,
                progress=progress,
            )
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
    wall_s = time.perf_counter() - started
    report = {"world_model_id": wm_manifest.id, "episodes_id": source_manifest.id, **result.to_dict()}
    report["wall_s"] = round(wall_s, 2)
    atomic_write_text(out / AUDIT_FILE, json.dumps(report, indent=2) + "\n")
    videos = [p.relative_to(out).as_posix() for p in write_video(out / AUDIT_VIDEO, result.side_by_side())]
    metrics: dict[str, Any] = {"windows": result.windows, "wall_s": round(wall_s, 2)}
    for method, rows in result.table.items():
        for h, values in rows.items():
            metrics[f"{method}/psnr@{h}"] = round(values["psnr"], 3)
            metrics[f"{method}/ssim@{h}"] = round(values["ssim"], 4)
    return writer.finish([AUDIT_FILE, *videos], metrics)


def read_audit(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / AUDIT_FILE).read_text())


def audit_table(report: dict[str, Any]) -> str:
    """The audit as a plain-text table: PSNR / SSIM per method (rows) and horizon (columns)."""
    horizons = [str(h) for h in report["horizons"]]
    head = f"{'method':<16}" + "".join(f"{'@' + h + ' chunk(s)':>22}" for h in horizons)
    lines = [f"audit of world model {report['world_model_id']} on {report['windows']} held-out windows", head]
    for method, rows in report["metrics"].items():
        cells = "".join(f"{rows[h]['psnr']:>11.2f} dB {rows[h]['ssim']:>7.3f}" for h in horizons)
        lines.append(f"{method:<16}{cells}")
    return "\n".join(lines)


def first_frames(path: Path, camera: str, count: int) -> np.ndarray:
    """Frame 0 of the first ``count`` episodes of an episodes artifact (valid ones first)."""
    key = f"{camera}_image"
    with EpisodesFile(path / EPISODES_FILE) as episodes:
        names = episodes.mask("valid") + [n for n in episodes.mask("train") if n not in episodes.mask("valid")]
        if len(names) < count:
            names = episodes.demo_names
        if not names:
            raise UsageError(f"{path}: holds no episodes")
        picked = [names[i % len(names)] for i in range(count)]
        return np.stack([episodes.load(name, obs_keys=[key]).obs[key][0] for name in picked])


def init_state_frames(path: Path, task: str, camera: str, size: int, count: int) -> np.ndarray:
    """First frames rendered from an initial-state set: state i (cycling) after the no-op warm-up."""
    from wmpo_cli.artifacts.init_states import read_init_states
    from wmpo_cli.envs.policy_rollout import render_checked, start_episode
    from wmpo_cli.envs.tasks import cached_env

    states = read_init_states(path)
    if states.task != task:
        raise UsageError(
            f"--init-states {path} holds {states.task} states, but the world model is for {task}",
            hint=f"create a {task} set with `wmpo collect --task {task} --init-states N`",
        )
    env = cached_env(states.task, states.variant, states.scenario, cameras=(camera,), image_size=size)
    frames = []
    for i in range(count):
        start_episode(env, seed=int(states.seeds[i % len(states)]), initial_state=states.state_for_episode(i))
        frames.append(render_checked(env, camera, size)[0])
    return np.stack(frames)


def run_imagine(cfg: ImagineConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    """Imagined rollouts of the policy inside the world model, saved with videos."""
    import h5py

    from wmpo_cli.artifacts.videos import write_video
    from wmpo_cli.envs.tasks import get_task
    from wmpo_cli.pipeline.policy_episodes import load_policy_input, policy_path
    from wmpo_cli.rl.imagine import check_compatible, imagine

    validate(cfg)
    wm_path, source = world_model_dir(cfg, run_dir), episodes_dir(cfg, run_dir)
    wm_manifest, model = _load_world_model(wm_path)
    policy_input = load_policy_input(policy_path(cfg.policy, run_dir), model.cfg.task, allow_task_mismatch=False)
    from wmpo_cli.models.policy.vla import VLAPolicy

    policy = VLAPolicy.from_pretrained(policy_input.export_dir)
    try:
        check_compatible(policy, model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if cfg.init_state_set:
        start_path, start_kind = Path(cfg.init_state_set), "init_states"
    else:
        start_path, start_kind = source, "episodes"
    start_manifest = check_input(start_path, start_kind)
    task = get_task(model.cfg.task)
    chunks = cfg.chunks or -(-task.max_steps // policy.cfg.chunk)
    out = Path(run_dir) / OUTPUT_DIR / f"{policy_input.manifest.id}-{wm_manifest.id}"
    writer = begin_artifact(
        out,
        kind=IMAGINED_KIND,
        kind_version=KIND_VERSION,
        stage="imagine",
        config=cfg,
        seed=cfg.seed,
        inputs=[
            InputRef("world_model", wm_manifest.id, lineage_path(wm_path, out)),
            InputRef("policy", policy_input.manifest.id, lineage_path(policy_input.directory, out)),
            InputRef(start_kind, start_manifest.id, lineage_path(start_path, out)),
        ],
        force=force,
        outputs=(IMAGINED_FILE,),
        extra={"task": model.cfg.task},
    )
    if cfg.init_state_set:
        frames0 = init_state_frames(start_path, model.cfg.task, model.cfg.camera, model.cfg.image_size, cfg.rollouts)
    else:
        frames0 = first_frames(source, model.cfg.camera, cfg.rollouts)
    started = time.perf_counter()
    with console.progress() as bar:
        bar_task = bar.add_task(f"imagine {model.cfg.task}", total=chunks, info=f"{cfg.rollouts} rollouts")
        rollouts = imagine(
            policy,
            model,
            frames0,
            chunks,
            temperature=cfg.temperature or 1.0,
            greedy=cfg.temperature == 0,
            seed=cfg.seed,
            instruction=policy_input.instruction,
            sample_steps=cfg.sample_steps or None,
            progress=lambda done, total: bar.update(bar_task, completed=done),
        )
    wall_s = time.perf_counter() - started
    with atomic_path(out / IMAGINED_FILE) as tmp, h5py.File(tmp, "w") as fh:
        fh.attrs["wmpo_schema"] = "wmpo.imagined/1"
        fh.create_dataset("frames", data=rollouts.frames, chunks=(1, 1, *rollouts.frames.shape[2:]), compression="gzip")
        fh.create_dataset("actions", data=rollouts.actions)
        fh.create_dataset("tokens", data=rollouts.tokens)
        fh.create_dataset("log_probs", data=rollouts.log_probs)
    files = [IMAGINED_FILE]
    (out / "videos").mkdir(exist_ok=True)
    for i in range(min(cfg.videos, len(rollouts.frames))):
        files += [
            p.relative_to(out).as_posix() for p in write_video(out / "videos" / f"imagined_{i:03d}", rollouts.frames[i])
        ]
    steps = rollouts.num_steps * len(rollouts.frames)
    metrics = {
        "rollouts": len(rollouts.frames),
        "chunks": chunks,
        "imagined_steps": steps,
        "wall_s": round(wall_s, 2),
        "imagined_steps_per_s": round(steps / wall_s, 2) if wall_s > 0 else None,
    }
    return writer.finish(files, metrics)
