"""Lightning module for the reward model: balanced binary cross-entropy (plus, optionally, an
auxiliary regression of the simulator state from the same clip features), validation loss/accuracy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

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
    """Trains ``model``; with ``state_width`` > 0 a linear head on the pooled clip features also
    regresses the standardised simulator state at the clip's last frame (batches then carry
    "state"), weighted by ``state_weight``. The head lives here, not in the model: it is a
    training aid, and exports stay the plain classifier."""

    def __init__(
        self, model: RewardModel, optim: RewardModelOptim, state_width: int = 0, state_weight: float = 0.0
    ) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self.state_weight = float(state_weight)
        self.state_head = nn.Linear(model.feature_size, state_width) if state_width > 0 else None
        self._rng: torch.Generator | None = None
        self._val: dict[str, float] = {}

    def _generator(self, salt: int) -> torch.Generator:
        # Augmentation draws re-seeded per step: a resumed run draws what an uninterrupted one would.
        if self._rng is None:
            self._rng = torch.Generator()
        self._rng.manual_seed(self.optim.seed * 1_000_003 + salt * 7919 + self.global_rank)
        return self._rng

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        pixels = self.model.prepare(batch["clip"], self._generator(self.global_step), train=True)
        features = self.model.features(pixels)
        loss = F.binary_cross_entropy_with_logits(self.model.head(features).float(), batch["label"].float())
        if self.state_head is not None:
            # Huber, not squared error: velocity columns spike at contacts.
            state_loss = F.smooth_l1_loss(self.state_head(features).float(), batch["state"].float())
            self.log("train/success_loss", loss)
            self.log("train/state_loss", state_loss)
            loss = loss + self.state_weight * state_loss
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
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, self.optim.warmup_steps, self.optim.max_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        if self.optim.grad_clip > 0 and not math.isinf(self.optim.grad_clip):
            self.clip_gradients(optimizer, gradient_clip_val=self.optim.grad_clip, gradient_clip_algorithm="norm")
