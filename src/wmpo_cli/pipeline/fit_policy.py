"""`wmpo fit-policy`: imitation learning of the VLA on an episodes artifact -> ``<run>/policy/``.

    policy/  manifest.json config.json
             export/{config.json, model.safetensors}   the public, loadable policy
             checkpoints/last.ckpt                     private: resume only
             logs/metrics.jsonl (+ logs/tensorboard/ when tensorboard is installed)

Training data are the successful episodes of the artifact's ``train`` mask; its ``valid`` mask
(held-out episodes) gives the validation metrics. The action normalisation statistics (1 %/99 %
quantiles) are fitted on the training actions and travel in ``export/config.json``. Re-running the
same command resumes from ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from wmpo_cli import console
from wmpo_cli.artifacts.atomic import atomic_directory
from wmpo_cli.artifacts.episodes import EPISODES_FILE, EpisodesFile
from wmpo_cli.artifacts.manifest import InputRef, Manifest, check_input, lineage_path
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import FitPolicyConfig
from wmpo_cli.envs.tasks import get_task
from wmpo_cli.errors import ArtifactError, UsageError

ARTIFACT_KIND = "policy"
ARTIFACT_KIND_VERSION = 1
OUTPUT_DIR = "policy"
EXPORT_DIR = "export"


def demos_dir(cfg: FitPolicyConfig, run_dir: Path) -> Path:
    return Path(cfg.demos) if cfg.demos else Path(run_dir) / "demos"


def validate(cfg: FitPolicyConfig) -> None:
    get_task(cfg.task)
    if cfg.encoder not in ("efficientnet_lite0", "vit"):
        raise UsageError(f"unknown encoder '{cfg.encoder}'", hint="encoders: efficientnet_lite0, vit")
    if not 0 <= cfg.encoder_block <= 15:
        raise UsageError(f"encoder_block must be in 0..15 (EfficientNet-Lite0 has 16 blocks), got {cfg.encoder_block}")
    if cfg.image_size and not 16 <= cfg.image_size <= 512:
        raise UsageError(f"image_size must be 0 (the demos' size) or 16..512, got {cfg.image_size}")
    if cfg.encoder == "vit" and cfg.image_size and cfg.image_size % cfg.vit_patch:
        raise UsageError(f"image_size {cfg.image_size} is not a multiple of vit_patch {cfg.vit_patch}")
    if not cfg.cameras:
        raise UsageError("the policy needs at least one camera")
    if cfg.batch_size < 1 or cfg.max_steps < 1 or cfg.chunk < 1 or cfg.bins < 2:
        raise UsageError("batch_size, max_steps and chunk must be >= 1, bins >= 2")
    if cfg.hidden_size % cfg.heads:
        raise UsageError(f"hidden_size {cfg.hidden_size} must be divisible by heads {cfg.heads}")
    if not 0.1 <= cfg.crop_scale <= 1.0:
        raise UsageError(f"crop_scale must be in [0.1, 1], got {cfg.crop_scale}")
    if cfg.lr <= 0 or cfg.encoder_lr <= 0 or cfg.devices < 1:
        raise UsageError("lr and encoder_lr must be > 0, devices >= 1")
    if not (cfg.state_loss_weight >= 0.0 and math.isfinite(cfg.state_loss_weight)):
        raise UsageError(f"state_loss_weight must be a finite number >= 0 (0 = off), got {cfg.state_loss_weight}")


def _load_split(path: Path, cfg: FitPolicyConfig) -> tuple[list[Any], list[Any], int]:
    """(train episodes, valid episodes, frame size) from an episodes file."""
    from wmpo_cli.models.policy.data import EpisodeArrays

    keys = [f"{camera}_image" for camera in cfg.cameras] + list(cfg.proprio_keys)
    with EpisodesFile(path / EPISODES_FILE) as episodes:
        names = episodes.demo_names
        if not names:
            raise ArtifactError(f"{path}: holds no episodes")
        available = set(episodes.obs_keys(names[0]))
        missing = [key for key in keys if key not in available]
        if missing:
            raise UsageError(
                f"{path}: episodes have no {', '.join(missing)} (they have {', '.join(sorted(available)) or 'none'})",
                hint="collect with --cameras ..., or choose cameras/proprio_keys the demos have",
            )
        successes = set(episodes.mask("success"))
        train_names = [n for n in episodes.mask("train") if n in successes]
        valid_names = [n for n in episodes.mask("valid") if n in successes]

        def arrays(name: str) -> EpisodeArrays:
            data = episodes.load(name, obs_keys=keys)
            return EpisodeArrays(
                frames={camera: data.obs[f"{camera}_image"] for camera in cfg.cameras},
                actions=data.actions,
                proprio={key: data.obs[key] for key in cfg.proprio_keys},
                states=data.states if cfg.state_loss_weight > 0 else None,
            )

        train = [arrays(n) for n in train_names]
        valid = [arrays(n) for n in valid_names]
    if not train:
        raise UsageError(f"{path}: no successful training episodes to imitate")
    size = int(train[0].frames[cfg.cameras[0]].shape[1])
    return train, valid, size


def _val_subset(count: int, limit: int) -> list[int]:
    """At most ``limit`` validation frames, evenly spread (deterministic)."""
    if count <= limit:
        return list(range(count))
    return [int(i) for i in np.linspace(0, count - 1, limit).round()]


def quiet_lightning() -> None:
    """Lightning's info chatter (accelerator banners, tips) would drown the progress bar."""
    import logging
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_utilities"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def run(cfg: FitPolicyConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    validate(cfg)
    source = demos_dir(cfg, run_dir)
    source_manifest = check_input(source, "episodes")
    demo_task = source_manifest.extra.get("task")
    if demo_task and demo_task != cfg.task:
        raise UsageError(
            f"{source} holds {demo_task} episodes, but the policy is for {cfg.task}", hint=f"pass --task {demo_task}"
        )
    train, valid, frame_size = _load_split(source, cfg)

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, Subset

    quiet_lightning()

    from wmpo_cli.models.policy.action_tokens import ActionTokenizer
    from wmpo_cli.models.policy.config import VLAConfig
    from wmpo_cli.models.policy.data import ChunkDataset
    from wmpo_cli.models.policy.training import ImitationModule, OptimSettings
    from wmpo_cli.models.policy.vla import ProprioStats, VLAPolicy
    from wmpo_cli.models.state_targets import StateTargets
    from wmpo_cli.pipeline.training_callbacks import fit_trainer, prepare_training_dirs, resolve_precision

    task = get_task(cfg.task)
    out = Path(run_dir) / OUTPUT_DIR
    writer = begin_artifact(
        out,
        kind=ARTIFACT_KIND,
        kind_version=ARTIFACT_KIND_VERSION,
        stage="fit-policy",
        config=cfg,
        seed=cfg.seed,
        inputs=[InputRef("demos", source_manifest.id, lineage_path(source, out))],
        force=force,
        outputs=(EXPORT_DIR,),
        extra={"task": cfg.task, "instruction": task.instruction, "encoder": cfg.encoder},
    )
    dirs = prepare_training_dirs(out, resumed=writer.resumed)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    train_actions = np.concatenate([ep.actions for ep in train])
    tokenizer = ActionTokenizer.fit(train_actions, bins=cfg.bins)
    proprio_stats = None
    proprio_dim = 0
    if cfg.proprio_keys:
        raw = np.concatenate([np.concatenate([ep.proprio[k] for k in cfg.proprio_keys], axis=1) for ep in train])
        proprio_stats = ProprioStats(raw.mean(0), np.maximum(raw.std(0), 1e-6))
        proprio_dim = raw.shape[1]
    model_cfg = VLAConfig(
        task=cfg.task,
        instruction=task.instruction,
        encoder=cfg.encoder,
        pretrained_encoder=cfg.pretrained_encoder,
        encoder_block=cfg.encoder_block,
        image_size=cfg.image_size or frame_size,
        cameras=tuple(cfg.cameras),
        proprio_keys=tuple(cfg.proprio_keys),
        proprio_dim=proprio_dim,
        chunk=cfg.chunk,
        action_dim=int(train_actions.shape[1]),
        bins=cfg.bins,
        hidden_size=cfg.hidden_size,
        layers=cfg.layers,
        heads=cfg.heads,
        vit_patch=cfg.vit_patch,
        vit_layers=cfg.vit_layers,
        vit_hidden=cfg.vit_hidden,
        crop_scale=cfg.crop_scale,
        text_tokens=cfg.text_tokens,
    )
    policy = VLAPolicy(model_cfg, tokenizer, proprio_stats)
    try:
        state_targets = StateTargets.fit(train) if cfg.state_loss_weight > 0 else None
    except ValueError as exc:
        raise UsageError(f"state_loss_weight: {exc}", hint="pass --set state_loss_weight=0") from None
    train_set = ChunkDataset(train, cfg.cameras, tokenizer, cfg.chunk, cfg.proprio_keys, state_targets)
    loaders: dict[str, Any] = {}
    if valid:
        valid_set = ChunkDataset(valid, cfg.cameras, tokenizer, cfg.chunk, cfg.proprio_keys, state_targets)
        loaders["val_dataloaders"] = DataLoader(
            Subset(valid_set, _val_subset(len(valid_set), cfg.val_frames)), batch_size=max(cfg.batch_size, 64)
        )
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=len(train_set) > cfg.batch_size,
        num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    module = ImitationModule(
        policy,
        OptimSettings(cfg.lr, cfg.encoder_lr, cfg.weight_decay, cfg.warmup_steps, cfg.max_steps, cfg.seed),
        state_width=state_targets.width if state_targets is not None else 0,
        state_weight=cfg.state_loss_weight,
    )
    precision = resolve_precision(cfg)
    trainer, ckpt_path, progress = fit_trainer(
        cfg,
        stage="fit-policy",
        dirs=dirs,
        precision=precision,
        validate=bool(valid),
        resumed=writer.resumed,
    )
    console.log(
        f"fit-policy {cfg.task}: {len(train)} train / {len(valid)} valid episodes, {len(train_set)} frames, "
        f"{policy.num_parameters() / 1e6:.2f}M parameters, {precision} on "
        f"{trainer.accelerator.__class__.__name__}"
    )
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_loader, ckpt_path=ckpt_path, **loaders)
    wall_s = time.perf_counter() - started
    if trainer.global_step < cfg.max_steps:
        raise UsageError(f"training stopped at step {trainer.global_step} of {cfg.max_steps}")
    # The last logged training loss, read before validate() replaces the callback metrics.
    train_loss = trainer.callback_metrics.get("train/loss")
    if valid:
        trainer.validate(module, dataloaders=loaders["val_dataloaders"], verbose=False)
    if not trainer.is_global_zero:
        return writer.manifest

    # Export atomically: write beside, then swap in, so a crash never leaves half an export.
    with atomic_directory(out / EXPORT_DIR) as tmp:
        policy.cpu().save_pretrained(tmp)

    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    steps_this_run = progress.steps_seen
    metrics = {
        "steps": int(trainer.global_step),
        "train_episodes": len(train),
        "valid_episodes": len(valid),
        "train_frames": len(train_set),
        "parameters": policy.num_parameters(),
        "train_loss": None if train_loss is None else float(train_loss),
        "val_loss": logged.get("val/loss"),
        "val_token_accuracy": logged.get("val/token_accuracy"),
        "val_action_l1": logged.get("val/action_l1"),
        "val_state_loss": logged.get("val/state_loss"),
        "precision": precision,
        "wall_s": round(wall_s, 2),
        "steps_per_s": round(steps_this_run / wall_s, 3) if wall_s > 0 else None,
        "resumed": bool(ckpt_path),
    }
    (dirs.logs / "summary.json").write_text(json.dumps(metrics, indent=2) + "\n")
    writer.manifest.resume["step"] = int(trainer.global_step)
    return writer.finish([f"{EXPORT_DIR}/config.json", f"{EXPORT_DIR}/model.safetensors"], metrics)
