"""Lightning plumbing shared by the fit-* stages: JSONL metrics, optional TensorBoard, rich progress."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

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
