"""`wmpo fit-world-model`: the pixel world model on demos and real rollouts -> ``<run>/world_model/``.

    world_model/  manifest.json config.json
                  export/{config.json, model.safetensors}   the EMA weights, loadable
                  checkpoints/last.ckpt                     private: resume only
                  logs/metrics.jsonl, logs/summary.json

Training windows come from every episode (successes and failures alike: the model must learn
what failing looks like too) in the ``train`` masks of the demos and of each ``--rollouts``
artifact; the ``valid`` masks give validation loss and one-chunk PSNR. Rollout artifacts are the
real budget P: their ``real_episodes`` are summed into this manifest's ``extra.real_episodes``
(the budget ledger). Action statistics (1 %/99 % quantiles) are fitted on the training actions.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from wmpo_cli import console
from wmpo_cli.artifacts.atomic import atomic_directory
from wmpo_cli.artifacts.episodes import EPISODES_FILE, EpisodesFile
from wmpo_cli.artifacts.manifest import InputRef, Manifest, check_input, lineage_path
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import FitWorldModelConfig
from wmpo_cli.envs.tasks import get_task
from wmpo_cli.errors import ArtifactError, UsageError
from wmpo_cli.pipeline.fit_policy import quiet_lightning
from wmpo_cli.pipeline.frame_sizes import one_frame_size

ARTIFACT_KIND = "world_model"
ARTIFACT_KIND_VERSION = 1
OUTPUT_DIR = "world_model"
EXPORT_DIR = "export"


def demos_dir(cfg: FitWorldModelConfig, run_dir: Path) -> Path:
    return Path(cfg.demos) if cfg.demos else Path(run_dir) / "demos"


def validate(cfg: FitWorldModelConfig) -> None:
    get_task(cfg.task)
    try:
        _model_config(cfg, cfg.image_size or 64).check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if cfg.image_size and not 16 <= cfg.image_size <= 256:
        raise UsageError(f"image_size must be 0 (the demos' size) or 16..256, got {cfg.image_size}")
    if cfg.batch_size < 1 or cfg.max_steps < 1 or cfg.val_every < 1:
        raise UsageError("batch_size, max_steps and val_every must be >= 1")
    if cfg.latent_channels > 0 and not 1 <= cfg.autoencoder_steps < cfg.max_steps:
        raise UsageError(
            f"a latent world model needs 1 <= autoencoder_steps < max_steps (got {cfg.autoencoder_steps} of"
            f" {cfg.max_steps}): the autoencoder trains first, then the UNet"
        )
    if cfg.lr <= 0 or cfg.devices < 1 or not 0.0 <= cfg.ema_decay < 1.0 or cfg.rollout_weight <= 0:
        raise UsageError("lr and rollout_weight must be > 0, devices >= 1, ema_decay in [0, 1)")


def _model_config(cfg: FitWorldModelConfig, image_size: int) -> Any:
    from wmpo_cli.models.world_model.config import WorldModelConfig

    return WorldModelConfig(
        task=cfg.task,
        image_size=image_size,
        camera=cfg.camera,
        context_frames=cfg.context_frames,
        predict_frames=cfg.predict_frames,
        action_embed_dim=cfg.action_embed_dim,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        attention_levels=tuple(cfg.attention_levels),
        objective=cfg.objective,
        context_noise=cfg.context_noise,
        context_noise_sample=cfg.context_noise_sample,
        sample_steps=cfg.sample_steps,
        time_shift=cfg.time_shift,
        latent_channels=cfg.latent_channels,
        autoencoder_channels=tuple(cfg.autoencoder_channels),
        residual=cfg.residual,
    )


def load_frames(path: Path, camera: str, mask: str) -> list[Any]:
    """Frames of ``camera`` and actions of every episode in ``mask`` of an episodes artifact."""
    from wmpo_cli.models.world_model.data import EpisodeFrames

    key = f"{camera}_image"
    with EpisodesFile(path / EPISODES_FILE) as episodes:
        names = episodes.demo_names
        if not names:
            raise ArtifactError(f"{path}: holds no episodes")
        available = episodes.obs_keys(names[0])
        if key not in available:
            raise UsageError(
                f"{path}: episodes have no {key} (they have {', '.join(available) or 'none'})",
                hint="collect with --cameras ..., or pass --set camera=<one they have>",
            )
        result = []
        for name in episodes.mask(mask):
            data = episodes.load(name, obs_keys=[key])
            result.append(EpisodeFrames(frames=data.obs[key], actions=data.actions))
    return result


def _check_task(path: Path, manifest: Manifest, task: str) -> None:
    other = manifest.extra.get("task")
    if other and other != task:
        raise UsageError(
            f"{path} holds {other} episodes, but the world model is for {task}", hint=f"pass --task {other}"
        )


def run(cfg: FitWorldModelConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    validate(cfg)
    source = demos_dir(cfg, run_dir)
    sources = [(source, "demos", check_input(source, "episodes"))]
    for given in cfg.rollouts:
        path = Path(given)
        sources.append((path, "rollouts", check_input(path, "episodes")))
    for path, _, manifest in sources:
        _check_task(path, manifest, cfg.task)
    train: list[Any] = []
    valid: list[Any] = []
    weights: list[float] = []
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for path, role, _ in sources:
        part = load_frames(path, cfg.camera, "train")
        train += part
        weights += [cfg.rollout_weight if role == "rollouts" else 1.0] * len(part)
        held_out = load_frames(path, cfg.camera, "valid")
        valid += held_out
        shapes += [(str(path), e.frames.shape) for e in part + held_out]
    if not train:
        raise UsageError(f"{source}: no training episodes")
    frame_size = one_frame_size(shapes)
    image_size = cfg.image_size or frame_size
    if image_size != frame_size:
        raise UsageError(
            f"the episodes hold {frame_size} px frames but image_size is {image_size}",
            hint="collect at the size the world model should predict, or leave image_size at 0",
        )
    budget = sum(int(m.extra.get("real_episodes", 0)) for _, role, m in sources if role == "rollouts")

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, Subset, WeightedRandomSampler

    quiet_lightning()

    from wmpo_cli.models.policy.action_tokens import ActionTokenizer
    from wmpo_cli.models.world_model.data import WindowDataset
    from wmpo_cli.models.world_model.model import WorldModel
    from wmpo_cli.models.world_model.training import WorldModelModule, WorldModelOptim
    from wmpo_cli.pipeline.training_callbacks import fit_trainer, prepare_training_dirs, resolve_precision

    out = Path(run_dir) / OUTPUT_DIR
    writer = begin_artifact(
        out,
        kind=ARTIFACT_KIND,
        kind_version=ARTIFACT_KIND_VERSION,
        stage="fit-world-model",
        config=cfg,
        seed=cfg.seed,
        inputs=[InputRef(role, m.id, lineage_path(path, out)) for path, role, m in sources],
        force=force,
        outputs=(EXPORT_DIR,),
        extra={"task": cfg.task, "camera": cfg.camera, "real_episodes": budget},
    )
    dirs = prepare_training_dirs(out, resumed=writer.resumed)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    stats = ActionTokenizer.fit(np.concatenate([ep.actions for ep in train]))
    model = WorldModel(_model_config(cfg, image_size), stats)

    def windows(episodes: list[Any]) -> WindowDataset:
        return WindowDataset(
            episodes, [stats.normalise(ep.actions) for ep in episodes], cfg.context_frames, cfg.predict_frames
        )

    train_set = windows(train)
    if len(train_set) == 0:
        raise UsageError(f"no training episode is longer than predict_frames={cfg.predict_frames} steps")
    generator = torch.Generator().manual_seed(cfg.seed)
    if any(w != 1.0 for w in weights):
        per_window = torch.tensor([weights[int(e)] for e in train_set.index[:, 0]], dtype=torch.double)
        sampler: Any = WeightedRandomSampler(per_window, num_samples=len(train_set), generator=generator)
        loader_kw: dict[str, Any] = {"sampler": sampler}
    else:
        loader_kw = {"shuffle": True, "generator": generator}
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        drop_last=len(train_set) > cfg.batch_size,
        num_workers=cfg.num_workers,
        **loader_kw,
    )
    loaders: dict[str, Any] = {}
    valid_set = windows(valid) if valid else None
    if valid_set is not None and len(valid_set):
        # Evenly spread windows, the same every validation, so numbers compare across steps.
        picked = sorted({int(i) for i in np.linspace(0, len(valid_set) - 1, min(cfg.val_windows, len(valid_set)))})
        loaders["val_dataloaders"] = DataLoader(Subset(valid_set, picked), batch_size=cfg.batch_size)
    module = WorldModelModule(
        model,
        WorldModelOptim(
            cfg.lr,
            cfg.weight_decay,
            cfg.warmup_steps,
            cfg.max_steps,
            cfg.grad_clip,
            cfg.ema_decay,
            cfg.seed,
            autoencoder_steps=cfg.autoencoder_steps,  # ignored by pixel models
            autoencoder_kl_weight=cfg.autoencoder_kl_weight,
        ),
        val_sample_batches=cfg.val_sample_batches,
    )
    precision = resolve_precision(cfg)
    has_valid = bool(loaders)
    trainer_cfg = cfg
    if cfg.latent_channels > 0 and cfg.strategy == "ddp":
        # Each phase leaves the other's parameters without gradients, which plain DDP refuses.
        trainer_cfg = replace(cfg, strategy="ddp_find_unused_parameters_true")
    trainer, ckpt_path, progress = fit_trainer(
        trainer_cfg,
        stage="fit-world-model",
        dirs=dirs,
        precision=precision,
        validate=has_valid,
        resumed=writer.resumed,
    )
    console.log(
        f"fit-world-model {cfg.task}: {len(train)} train / {len(valid)} valid episodes, {len(train_set)} windows, "
        f"{model.num_parameters() / 1e6:.2f}M parameters, {precision}, real budget {budget} episodes"
    )
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_loader, ckpt_path=ckpt_path, **loaders)
    wall_s = time.perf_counter() - started
    if trainer.global_step < cfg.max_steps:
        raise UsageError(f"training stopped at step {trainer.global_step} of {cfg.max_steps}")
    train_loss = trainer.callback_metrics.get("train/loss")
    if has_valid:
        trainer.validate(module, dataloaders=loaders["val_dataloaders"], verbose=False)
    if not trainer.is_global_zero:
        return writer.manifest

    # The EMA weights are the export; written beside and swapped in so a crash leaves no half export.
    with atomic_directory(out / EXPORT_DIR) as tmp:
        module.ema.cpu().save_pretrained(tmp)

    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics = {
        "steps": int(trainer.global_step),
        "train_episodes": len(train),
        "valid_episodes": len(valid),
        "train_windows": len(train_set),
        "parameters": model.num_parameters(),
        "train_loss": None if train_loss is None else float(train_loss),
        "val_loss": logged.get("val/loss"),
        "val_psnr_1chunk": logged.get("val/psnr_1chunk"),
        "val_psnr_copy_last": logged.get("val/psnr_copy_last"),
        "val_autoencoder_psnr": module.autoencoder_psnr,
        "real_episodes": budget,
        "precision": precision,
        "wall_s": round(wall_s, 2),
        "steps_per_s": round(progress.steps_seen / wall_s, 3) if wall_s > 0 else None,
        "resumed": bool(ckpt_path),
    }
    (dirs.logs / "summary.json").write_text(json.dumps(metrics, indent=2) + "\n")
    writer.manifest.resume["step"] = int(trainer.global_step)
    return writer.finish([f"{EXPORT_DIR}/config.json", f"{EXPORT_DIR}/model.safetensors"], metrics)
