"""Lightning plumbing shared by the fit-* stages: JSONL metrics, optional TensorBoard, rich progress,
and the one Trainer (step-based, checkpointed, resumable) they all train with."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import lightning as L
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from wmpo_cli import console


class JsonlLogger(Logger):
    """One JSON object per logging call: {"step": ..., "<metric>": ...}, appended (resume-safe)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)

    @property
    def name(self) -> str:
        return "jsonl"

    @property
    def version(self) -> str:
        return "0"

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        return None

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        record = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


def optional_tensorboard(log_dir: Path) -> Logger | None:
    """A TensorBoard logger when tensorboard (or tensorboardX) is installed, else None."""
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(log_dir), name="tensorboard", version="")
    except (ImportError, ModuleNotFoundError):
        return None


class RichProgress(L.Callback):
    """The project's rich progress bar (stderr; silent with --quiet/--json) over optimiser steps."""

    def __init__(self, description: str, total_steps: int) -> None:
        self.description = description
        self.total_steps = total_steps
        self.steps_seen = 0
        self._context: Any = None
        self._bar: Any = None
        self._task: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._context = console.progress()
        self._bar = self._context.__enter__()
        self._task = self._bar.add_task(
            self.description, total=self.total_steps, completed=trainer.global_step, info=""
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.steps_seen += 1
        if self._bar is None:
            return
        metrics = trainer.callback_metrics
        info = " ".join(
            f"{label} {float(metrics[key]):.3f}"
            for label, key in (("loss", "train/loss"), ("val acc", "val/token_accuracy"), ("val L1", "val/action_l1"))
            if key in metrics
        )
        self._bar.update(self._task, completed=trainer.global_step, info=info)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = self._bar = None


CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class TrainingDirs:
    """The private training folders of a fit-* artifact: ``checkpoints/last.ckpt`` (resume only)
    and ``logs/`` (``metrics.jsonl``, TensorBoard when installed, the stage's ``summary.json``)."""

    out: Path

    @property
    def checkpoints(self) -> Path:
        return self.out / CHECKPOINT_DIR

    @property
    def logs(self) -> Path:
        return self.out / LOG_DIR

    @property
    def metrics(self) -> Path:
        return self.logs / METRICS_FILE


def prepare_training_dirs(out: Path, *, resumed: bool) -> TrainingDirs:
    """A fresh run drops an earlier run's checkpoints and logs; a resumed one keeps them."""
    dirs = TrainingDirs(Path(out))
    if not resumed:
        shutil.rmtree(dirs.checkpoints, ignore_errors=True)
        shutil.rmtree(dirs.logs, ignore_errors=True)
    dirs.logs.mkdir(parents=True, exist_ok=True)
    return dirs


class TrainerSettings(Protocol):
    """The fields of a fit-* stage config that shape its Trainer (every Fit*Config has them)."""

    @property
    def task(self) -> str: ...
    @property
    def accelerator(self) -> str: ...
    @property
    def devices(self) -> int: ...
    @property
    def strategy(self) -> str: ...
    @property
    def max_steps(self) -> int: ...
    @property
    def val_every(self) -> int: ...
    @property
    def log_every(self) -> int: ...
    @property
    def checkpoint_every(self) -> int: ...
    @property
    def precision(self) -> str: ...


def resolve_precision(cfg: TrainerSettings) -> str:
    """``cfg.precision``, with "auto" = bf16 autocast on a GPU that supports it, else fp32 (bf16
    on a CPU is slower than fp32 here)."""
    if cfg.precision != "auto":
        return cfg.precision
    import torch

    wants_gpu = cfg.accelerator in ("auto", "gpu", "cuda")
    if wants_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class FitTrainer(NamedTuple):
    trainer: L.Trainer
    ckpt_path: str | None  # the checkpoint to resume from; None: start fresh
    progress: RichProgress  # counts the optimiser steps run in this process (throughput)


def fit_trainer(
    cfg: TrainerSettings,
    *,
    stage: str,
    dirs: TrainingDirs,
    precision: str,
    validate: bool,
    resumed: bool,
) -> FitTrainer:
    """The Trainer every fit-* stage uses, the checkpoint to resume from, and its progress bar.

    Step-based (``max_steps``, validation every ``val_every`` steps when ``validate``), JSONL +
    optional TensorBoard logs in ``dirs.logs``, ``last.ckpt`` every ``checkpoint_every`` steps, the
    project's rich progress bar instead of Lightning's. ``resumed`` is the artifact writer's verdict
    (an unchanged config over a partial artifact); only then is ``last.ckpt`` picked up.
    """
    loggers: list[Any] = [JsonlLogger(dirs.metrics)]
    tensorboard = optional_tensorboard(dirs.logs)
    if tensorboard is not None:
        loggers.append(tensorboard)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=dirs.checkpoints, save_last=True, save_top_k=0, every_n_train_steps=cfg.checkpoint_every
    )
    progress = RichProgress(f"{stage} {cfg.task}", cfg.max_steps)
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=precision,  # type: ignore[arg-type]
        max_steps=cfg.max_steps,
        max_epochs=-1,
        val_check_interval=min(cfg.val_every, cfg.max_steps) if validate else None,
        check_val_every_n_epoch=None if validate else 1,
        limit_val_batches=1.0 if validate else 0,
        num_sanity_val_steps=0,
        logger=loggers,
        log_every_n_steps=cfg.log_every,
        callbacks=[checkpoint, progress],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=True,
        default_root_dir=str(dirs.out),
    )
    resume_from = dirs.checkpoints / "last.ckpt"
    ckpt_path = str(resume_from) if resumed and resume_from.exists() else None
    if ckpt_path:
        console.log(f"resuming from {resume_from}")
    return FitTrainer(trainer, ckpt_path, progress)
