"""Lightning module for imitation learning of the VLA: token cross-entropy on demo chunks.

Validation reports what a user wants to know of a behaviour-cloned policy before rolling it
out: greedy token accuracy and the L1 distance between the decoded greedy chunk and the
demonstrated one, in environment action units.

Optionally (``state_weight`` > 0) a linear head regresses the standardised simulator state from
the visual tokens, every token with its own weights, so the encoder must say *where* the objects
are (see :mod:`wmpo_cli.models.state_targets`). The head lives here, not in the policy: it is a
training device, and exports stay the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from wmpo_cli.models.policy.vla import VLAPolicy


@dataclass(frozen=True)
class OptimSettings:
    lr: float
    encoder_lr: float
    weight_decay: float
    warmup_steps: int
    max_steps: int
    seed: int


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.1) -> float:
    """LR factor: linear warm-up from 1/warmup to 1 (never 0), then cosine decay to ``floor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class ImitationModule(L.LightningModule):
    def __init__(
        self, policy: VLAPolicy, optim: OptimSettings, state_width: int = 0, state_weight: float = 0.0
    ) -> None:
        super().__init__()
        self.policy = policy
        self.optim = optim
        self.state_weight = float(state_weight)
        self.state_head = (
            nn.Linear(policy.visual_token_count * policy.cfg.hidden_size, state_width) if state_width > 0 else None
        )
        self._augment_rng: torch.Generator | None = None
        self._val_sums: dict[str, float] = {}

    def _generator(self) -> torch.Generator:
        # Augmentation draws come from their own stream, re-seeded per step so a resumed run
        # crops exactly as an uninterrupted one would.
        if self._augment_rng is None:
            self._augment_rng = torch.Generator()
        self._augment_rng.manual_seed(self.optim.seed * 1_000_003 + int(self.global_step) * 7919 + self.global_rank)
        return self._augment_rng

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs = self.policy.prepare(batch, train=True, generator=self._generator())
        logits, visual = self.policy.logits_and_visual(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["tokens"].flatten())
        accuracy = (logits.argmax(-1) == batch["tokens"]).float().mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/token_accuracy", accuracy)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])  # type: ignore[union-attr]
        if self.state_head is not None:
            state_loss = self._state_loss(visual, batch["state"])
            self.log("train/state_loss", state_loss)
            loss = loss + self.state_weight * state_loss
        return loss

    def _state_loss(self, visual: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Smooth-L1 of the regressed state (velocity spikes of contacts would dominate an MSE)."""
        assert self.state_head is not None
        return F.smooth_l1_loss(self.state_head(visual.flatten(1)).float(), target.float())

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {"loss": 0.0, "correct": 0.0, "l1": 0.0, "tokens": 0.0, "values": 0.0, "state": 0.0}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits, visual = self.policy.logits_and_visual(self.policy.prepare(batch))
        logits = logits.float()
        tokens = batch["tokens"]
        greedy = logits.argmax(-1)
        decoded = torch.as_tensor(self.policy.decode(greedy), dtype=torch.float32).flatten(1).to(logits.device)
        sums = self._val_sums
        sums["loss"] += float(F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="sum"))
        sums["correct"] += float((greedy == tokens).sum())
        sums["tokens"] += tokens.numel()
        sums["l1"] += float((decoded - batch["actions"]).abs().sum())
        sums["values"] += batch["actions"].numel()
        if self.state_head is not None:
            sums["state"] += float(self._state_loss(visual, batch["state"])) * len(tokens)

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums
        if not sums.get("tokens"):
            return
        keys = ("loss", "correct", "tokens", "l1", "values", "state")
        reduced = self.all_gather(torch.tensor([sums[k] for k in keys]))
        loss, correct, tokens, l1, values, state = reduced.reshape(-1, len(keys)).sum(0).tolist()
        self.log("val/loss", loss / tokens, rank_zero_only=True)
        self.log("val/token_accuracy", correct / tokens, prog_bar=True, rank_zero_only=True)
        self.log("val/action_l1", l1 / values, prog_bar=True, rank_zero_only=True)
        if self.state_head is not None:
            # Frames, not tokens: the state loss is a mean per frame.
            frames = tokens / self.policy.cfg.action_tokens
            self.log("val/state_loss", state / frames, rank_zero_only=True)

    def configure_optimizers(self) -> Any:
        encoder = [p for p in self.policy.encoder.parameters() if p.requires_grad]
        encoder_ids = {id(p) for p in encoder}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in encoder_ids]
        encoder_lr = self.optim.encoder_lr if self.policy.cfg.pretrained_encoder else self.optim.lr
        optimizer = torch.optim.AdamW(
            [{"params": rest, "lr": self.optim.lr}, {"params": encoder, "lr": encoder_lr}],
            weight_decay=self.optim.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, self.optim.warmup_steps, self.optim.max_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
