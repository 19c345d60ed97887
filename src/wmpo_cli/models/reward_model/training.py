"""Lightning module for the reward model: balanced binary cross-entropy, validation loss/accuracy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from wmpo_cli.models.policy.training import warmup_cosine
from wmpo_cli.models.reward_model.model import RewardModel


@dataclass(frozen=True)
class RewardModelOptim:
    lr: float
    weight_decay: float
    warmup_steps: int
    max_steps: int
    grad_clip: float
    seed: int


class RewardModelModule(L.LightningModule):
    def __init__(self, model: RewardModel, optim: RewardModelOptim) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self._rng: torch.Generator | None = None
        self._val: dict[str, float] = {}

    def _generator(self, salt: int) -> torch.Generator:
        # Augmentation draws re-seeded per step: a resumed run draws what an uninterrupted one would.
        if self._rng is None:
            self._rng = torch.Generator()
        self._rng.manual_seed(self.optim.seed * 1_000_003 + salt * 7919 + self.global_rank)
        return self._rng

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model.loss(batch["clip"], batch["label"], self._generator(self.global_step))
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])  # type: ignore[union-attr]
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = {"loss": 0.0, "n": 0.0, "tp": 0.0, "pos": 0.0, "tn": 0.0, "neg": 0.0}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        labels = batch["label"].float()
        logits = self.model(self.model.prepare(batch["clip"])).float()
        v = self._val
        v["loss"] += float(F.binary_cross_entropy_with_logits(logits, labels, reduction="sum"))
        v["n"] += len(labels)
        predicted = logits >= 0
        v["tp"] += float((predicted & (labels > 0.5)).sum())
        v["pos"] += float((labels > 0.5).sum())
        v["tn"] += float((~predicted & (labels < 0.5)).sum())
        v["neg"] += float((labels < 0.5).sum())

    def on_validation_epoch_end(self) -> None:
        keys = ("loss", "n", "tp", "pos", "tn", "neg")
        if not self._val.get("n"):
            return
        reduced = self.all_gather(torch.tensor([self._val[k] for k in keys], dtype=torch.float64))
        loss, n, tp, pos, tn, neg = reduced.reshape(-1, len(keys)).sum(0).tolist()
        self.log("val/loss", loss / n, prog_bar=True, rank_zero_only=True)
        # Balanced accuracy at probability 0.5: the mean of the per-class recalls.
        recalls = [r for r in (tp / pos if pos else None, tn / neg if neg else None) if r is not None]
        self.log("val/balanced_accuracy", sum(recalls) / len(recalls), prog_bar=True, rank_zero_only=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, self.optim.warmup_steps, self.optim.max_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        if self.optim.grad_clip > 0 and not math.isinf(self.optim.grad_clip):
            self.clip_gradients(optimizer, gradient_clip_val=self.optim.grad_clip, gradient_clip_algorithm="norm")
