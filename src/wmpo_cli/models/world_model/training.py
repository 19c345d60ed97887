"""Lightning module for the world model: rectified-flow loss, EMA weights, validation loss and PSNR.

The EMA copy is what gets exported (WMPO keeps EMA weights too): sampling from an average of
recent weights gives steadier frames than the last noisy SGD iterate. Validation measures both
the training objective (with a fixed noise stream, so numbers compare across steps) and what a
user cares about, the PSNR of one sampled chunk against the real next frames.

A latent world model trains in two phases within one run (so one checkpoint resumes either):
its autoencoder alone for ``autoencoder_steps`` optimiser steps on the windows' frames, then,
with the autoencoder frozen and the latent scale fixed from the first batch, the UNet. Each phase
has its own warm-up and cosine decay.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from wmpo_cli.models.policy.training import warmup_cosine
from wmpo_cli.models.world_model.metrics import psnr
from wmpo_cli.models.world_model.model import WorldModel


@dataclass(frozen=True)
class WorldModelOptim:
    lr: float
    weight_decay: float
    warmup_steps: int
    max_steps: int
    grad_clip: float
    ema_decay: float
    seed: int
    # Latent models only (pixel models ignore it): the first optimiser steps train the autoencoder.
    autoencoder_steps: int = 0
    autoencoder_kl_weight: float = 1e-6


def ema_decay(steps_trained: int, ceiling: float) -> float:
    """EMA decay once the averaged network has completed ``steps_trained`` optimiser steps (<= 0:
    none yet, so the average is a copy). Short runs cannot wait for a 0.999 average to forget the
    random start, so the decay ramps up as (1 + n) / (10 + n) until it reaches ``ceiling``."""
    if steps_trained <= 0:
        return 0.0
    return min(ceiling, (1.0 + steps_trained) / (10.0 + steps_trained))


class WorldModelModule(L.LightningModule):
    def __init__(self, model: WorldModel, optim: WorldModelOptim, val_sample_batches: int = 1) -> None:
        super().__init__()
        self.model = model
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.optim = optim
        self.val_sample_batches = val_sample_batches
        self._rng: torch.Generator | None = None
        self._val: dict[str, float] = {}
        # The last validation PSNR of the autoencoder's reconstructions (latent models only).
        self.autoencoder_psnr: float | None = None

    def _generator(self, salt: int) -> torch.Generator:
        # Noise draws re-seeded per step: a resumed run draws exactly what an uninterrupted one would.
        if self._rng is None:
            self._rng = torch.Generator()
        self._rng.manual_seed(self.optim.seed * 1_000_003 + salt * 7919 + self.global_rank)
        return self._rng

    def _training_autoencoder(self) -> bool:
        return self.global_step < self._unet_phase_start()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        generator = self._generator(self.global_step)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])  # type: ignore[union-attr]
        if self._training_autoencoder():
            frames = torch.cat([batch["context"][:, -1:], batch["target"]], dim=1)
            loss, mse = self.model.autoencoder_loss(frames, self.optim.autoencoder_kl_weight, generator)
            self.log("train/autoencoder_loss", loss, prog_bar=True)
            self.log("train/autoencoder_mse", mse)
            return loss
        if self.model.autoencoder is not None and self.global_step == self._unet_phase_start():
            # The first UNet step: the autoencoder is final, so its latents' scale can be fixed.
            scale = self.model.set_latent_scale(batch["target"])
            self.log("train/latent_scale", scale)
        loss = self.model.loss(batch["context"], batch["target"], batch["actions"], generator)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _unet_phase_start(self) -> int:
        return self.optim.autoencoder_steps if self.model.autoencoder is not None else 0

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Counted from the UNet's first step: during a latent model's autoencoder phase the EMA is a
        # plain copy (so it holds exactly the autoencoder the UNet will train on, which stays frozen
        # from then on), and the UNet's average starts from its own first step, not from a decay
        # already near its ceiling that would keep the random initialisation in the export.
        # global_step already counts the step just taken.
        decay = ema_decay(self.global_step - self._unet_phase_start(), self.optim.ema_decay)
        with torch.no_grad():
            for ema, live in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                ema.lerp_(live.detach(), 1.0 - decay)
            for ema, live in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                ema.copy_(live)

    def on_validation_epoch_start(self) -> None:
        self._val = {"loss": 0.0, "n": 0.0, "psnr": 0.0, "psnr_n": 0.0, "copy": 0.0}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        b = batch["target"].shape[0]
        if self._training_autoencoder():  # the UNet is untrained: score reconstructions instead
            with torch.no_grad():
                frames = self.ema.decode(self.ema.encode(batch["target"]))
            self._val["psnr"] += float(psnr(frames, batch["target"]).sum())
            self._val["psnr_n"] += b
            return
        generator = self._generator(1_000_000 + batch_idx)
        loss = self.ema.loss(batch["context"], batch["target"], batch["actions"], generator)
        self._val["loss"] += float(loss) * b
        self._val["n"] += b
        if batch_idx < self.val_sample_batches:
            frames = self.ema.predict(batch["context"], batch["actions"], generator=generator)
            last = batch["context"][:, -1:].expand_as(batch["target"])
            self._val["psnr"] += float(psnr(frames, batch["target"]).sum())
            self._val["copy"] += float(psnr(last, batch["target"]).sum())
            self._val["psnr_n"] += b

    def on_validation_epoch_end(self) -> None:
        v = self._val
        if not v.get("n") and not v.get("psnr_n"):
            return
        keys = ("loss", "n", "psnr", "psnr_n", "copy")
        reduced = self.all_gather(torch.tensor([v[k] for k in keys], dtype=torch.float64))
        loss, n, total_psnr, psnr_n, copy_psnr = reduced.reshape(-1, len(keys)).sum(0).tolist()
        if self._training_autoencoder():
            self.autoencoder_psnr = total_psnr / psnr_n  # kept: later validations log other keys
            self.log("val/autoencoder_psnr", self.autoencoder_psnr, prog_bar=True, rank_zero_only=True)
            return
        self.log("val/loss", loss / n, prog_bar=True, rank_zero_only=True)
        if psnr_n:
            self.log("val/psnr_1chunk", total_psnr / psnr_n, prog_bar=True, rank_zero_only=True)
            self.log("val/psnr_copy_last", copy_psnr / psnr_n, rank_zero_only=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        first = self._unet_phase_start()

        def factor(step: int) -> float:  # one warm-up and cosine per phase
            if step < first:
                return warmup_cosine(step, self.optim.warmup_steps, first)
            return warmup_cosine(step - first, self.optim.warmup_steps, self.optim.max_steps - first)

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        if self.optim.grad_clip > 0 and not math.isinf(self.optim.grad_clip):
            self.clip_gradients(optimizer, gradient_clip_val=self.optim.grad_clip, gradient_clip_algorithm="norm")
