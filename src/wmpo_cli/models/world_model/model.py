"""The action-conditioned pixel world model: a diffusers UNet over a window of stacked frames.

Given H past frames and a chunk of F actions, it generates the F frames observed after each
action. Frames live in [-1, 1]. With ``cfg.residual`` (the default) the generated quantity is each future
frame minus the last context frame, added back after sampling. The generative objective is
rectified flow (WMPO's code):
``x_t = (1 - t) x0 + t eps`` with the network regressing the velocity ``v = x0 - eps`` (or eps),
``t`` drawn logit-normal in training, and a few Euler steps from pure noise at sampling.

Action conditioning is frame-level, in two complementary ways:

* each normalised action ``a_j`` goes through a small MLP (Linear, SiLU, Linear, as WMPO's action
  encoder) to an embedding that is broadcast as a plane of channels placed right after the noisy
  frame ``j`` it produced, so frame ``j`` and its action meet in the first convolution;
* the whole chunk (plus the context-noise level, WMPO's separate t0 flag) is embedded and
  added to the diffusion-timestep embedding that modulates every residual block.

With ``cfg.latent_channels > 0`` all of this happens on the latents of a diffusers
``AutoencoderKL`` (trained first on the same frames, see ``autoencoder_loss``) instead of on
pixels; ``predict`` still takes and returns pixel frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wmpo_cli.models.policy.action_tokens import ActionTokenizer
from wmpo_cli.models.world_model.config import WorldModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TIMESTEP_SCALE = 1000.0  # the UNet's sinusoidal embedding expects diffusion-scale timesteps


class WorldModelLoadError(Exception):
    """A world-model export that cannot be loaded (missing file, bad config, weights mismatch)."""


class ActionConditioner(nn.Module):
    """Per-frame action planes and a chunk embedding for the timestep embedding."""

    def __init__(self, cfg: WorldModelConfig, time_embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.action_embed_dim
        self.per_action = nn.Sequential(nn.Linear(cfg.action_dim, 4 * e), nn.SiLU(), nn.Linear(4 * e, e))
        chunk_in = cfg.predict_frames * cfg.action_dim + 1  # + the context-noise level
        self.chunk = nn.Sequential(
            nn.Linear(chunk_in, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )
        # Start as "no extra conditioning" so the timestep embedding is undisturbed at step 0.
        nn.init.zeros_(self.chunk[-1].weight)
        nn.init.zeros_(self.chunk[-1].bias)

    def forward(self, actions: torch.Tensor, context_noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, D) normalised actions, (B,) noise level -> ((B, F, E) per-frame, (B, T) chunk)."""
        per_frame = self.per_action(actions)
        chunk = self.chunk(torch.cat([actions.flatten(1), context_noise[:, None]], dim=1))
        return per_frame, chunk


class WorldModel(nn.Module):
    """``velocity(noisy, t, context, actions)`` for training; ``predict(context, actions)`` to imagine."""

    def __init__(self, cfg: WorldModelConfig, actions: ActionTokenizer) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        cfg.check()
        self.cfg = cfg
        self.action_stats = actions
        h, f, e, c = cfg.context_frames, cfg.predict_frames, cfg.action_embed_dim, cfg.channels
        time_embed_dim = cfg.block_out_channels[0] * 4
        down = tuple("AttnDownBlock2D" if attn else "DownBlock2D" for attn in cfg.attention_levels)
        up = tuple("AttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(cfg.attention_levels))
        self.autoencoder: Any = None
        if cfg.latent:
            from diffusers import AutoencoderKL

            levels = len(cfg.autoencoder_channels)
            self.autoencoder = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * levels,
                up_block_types=("UpDecoderBlock2D",) * levels,
                block_out_channels=cfg.autoencoder_channels,
                layers_per_block=1,
                latent_channels=cfg.latent_channels,
                norm_num_groups=_groups(cfg.autoencoder_channels),
                sample_size=cfg.image_size,
            )
            # Latents are multiplied by this (1 / their std, set once the autoencoder is trained)
            # so the diffusion sees unit-scale data, as Stable Diffusion's scaling factor.
            self.register_buffer("latent_scale", torch.ones(()))
        self.unet = UNet2DModel(
            sample_size=cfg.sample_size,
            in_channels=c * h + (c + e) * f,
            out_channels=c * f,
            block_out_channels=cfg.block_out_channels,
            layers_per_block=cfg.layers_per_block,
            down_block_types=down,
            up_block_types=up,
            attention_head_dim=min(32, min(cfg.block_out_channels)),
            norm_num_groups=_groups(cfg.block_out_channels),
            class_embed_type="identity",
        )
        self.conditioner = ActionConditioner(cfg, time_embed_dim)

    # -- the network ------------------------------------------------------------------------
    def forward(
        self,
        noisy: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        actions: torch.Tensor,
        context_noise: torch.Tensor,
    ) -> torch.Tensor:
        """Network output for ``noisy`` (B, F, C, s, s) at times ``t`` (B,) in [0, 1].

        ``context`` (B, H, C, s, s) and ``noisy`` are in [-1, 1] frame units (or scaled latents,
        C = ``cfg.channels``); ``actions`` (B, F, D) are already normalised; ``context_noise`` (B,)
        is the level the context was noised with.
        Returns the (B, F, C, s, s) velocity, eps or x0, per ``cfg.objective``.
        """
        b, f, c, s, _ = noisy.shape
        per_frame, chunk = self.conditioner(actions, context_noise)
        planes = per_frame[:, :, :, None, None].expand(-1, -1, -1, s, s)
        # Each frame's channels are followed by its own action's plane: [ctx..., x1, a1, x2, a2, ...].
        targets = torch.cat([noisy, planes.to(noisy.dtype)], dim=2).flatten(1, 2)
        sample = torch.cat([context.flatten(1, 2), targets], dim=1)
        out = self.unet(sample, t * TIMESTEP_SCALE, class_labels=chunk).sample
        return out.view(b, f, c, s, s)

    def normalise_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Environment actions (..., D) -> the network's [-1, 1] scale (1 %/99 % quantiles, clipped)."""
        array = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        return torch.as_tensor(self.action_stats.normalise(array), dtype=torch.float32, device=self.device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- the latent space (cfg.latent_channels > 0) ---------------------------------------------
    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Pixel frames (B, N, 3, S, S) -> what the UNet models: the frames themselves, or the
        scaled posterior means (B, N, C, S / k, S / k) of the frozen autoencoder."""
        if self.autoencoder is None:
            return frames
        b, n = frames.shape[:2]
        latents = self.autoencoder.encode(frames.flatten(0, 1)).latent_dist.mean * self.latent_scale
        return latents.view(b, n, *latents.shape[1:])

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`encode`: (B, N, C, s, s) -> pixel frames (B, N, 3, S, S) in [-1, 1]."""
        if self.autoencoder is None:
            return latents.clamp(-1.0, 1.0)
        b, n = latents.shape[:2]
        frames = self.autoencoder.decode(latents.flatten(0, 1) / self.latent_scale).sample
        return frames.view(b, n, *frames.shape[1:]).clamp(-1.0, 1.0)

    def autoencoder_loss(
        self, frames: torch.Tensor, kl_weight: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, reconstruction MSE) of the autoencoder on pixel frames (..., 3, S, S).

        Reconstruction MSE (per pixel) of a posterior sample plus ``kl_weight`` x the KL to the unit
        Gaussian (summed per frame, averaged over frames; a small weight, as latent diffusion's
        1e-6: the KL only keeps the latents bounded).
        """
        if self.autoencoder is None:
            raise ValueError("a pixel-space world model has no autoencoder")
        x = frames.reshape(-1, *frames.shape[-3:])
        posterior = self.autoencoder.encode(x).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator, device="cpu").to(x.device, x.dtype)
        sample = posterior.mean + posterior.std * noise
        reconstruction = self.autoencoder.decode(sample).sample
        mse = F.mse_loss(reconstruction.float(), x.float())
        return mse + kl_weight * posterior.kl().mean(), mse

    @torch.no_grad()
    def set_latent_scale(self, frames: torch.Tensor) -> float:
        """Fix ``latent_scale`` to 1 / std of the latents of ``frames``; returns it."""
        if self.autoencoder is None:
            raise ValueError("a pixel-space world model has no latent scale")
        self.latent_scale.fill_(1.0)
        std = float(self.encode(frames).float().std())
        self.latent_scale.fill_(1.0 / max(std, 1e-6))
        return float(self.latent_scale)

    # -- the objective ------------------------------------------------------------------------
    def loss(
        self,
        context: torch.Tensor,
        target: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Rectified-flow (or eps) MSE on the F target frames; context noise augmentation included.

        ``context`` (B, H, 3, S, S) and ``target`` (B, F, 3, S, S) in [-1, 1]; ``actions`` normalised.
        A latent model encodes both with its frozen autoencoder first.
        """
        context, target = self.encode(context), self.encode(target)
        b = target.shape[0]
        dev = target.device
        # The residual is taken from the clean last frame: that is the frame added back at sampling.
        x0 = target - context[:, -1:] if self.cfg.residual else target

        def randn(shape: tuple[int, ...]) -> torch.Tensor:
            return torch.randn(shape, generator=generator, device="cpu").to(dev)

        # Logit-normal t concentrates training on mid noise levels, where the content is decided;
        # the shift then moves that mass towards the noisy end the few-step sampler starts from.
        t = self.shift_time(torch.sigmoid(randn((b,))))
        eps = randn(tuple(x0.shape))
        x_t = (1.0 - t)[:, None, None, None, None] * x0 + t[:, None, None, None, None] * eps
        level = torch.rand((b,), generator=generator).to(dev) * self.cfg.context_noise
        ctx_eps = randn(tuple(context.shape))
        noisy_context = (1.0 - level)[:, None, None, None, None] * context + level[:, None, None, None, None] * ctx_eps
        out = self(x_t, t, noisy_context, actions, level)
        goal = {"velocity": x0 - eps, "epsilon": eps, "x0": x0}[self.cfg.objective]
        return F.mse_loss(out.float(), goal.float())

    def shift_time(self, t: torch.Tensor) -> torch.Tensor:
        """``s t / (1 + (s - 1) t)``: monotone on [0, 1], fixes 0 and 1, moves the rest towards 1."""
        s = self.cfg.time_shift
        return t if s == 1.0 else s * t / (1.0 + (s - 1.0) * t)

    # -- sampling -------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The F frames (B, F, 3, S, S) in [-1, 1] that follow ``context`` under ``actions``.

        Euler integration of the learned flow from unit noise at t = 1 to the data at t = 0.
        ``actions`` are normalised (B, F, D); noise comes from ``generator`` (CPU), so a seed
        fixes the result on any device.
        """
        steps = int(steps or self.cfg.sample_steps)
        context = self.encode(context)
        b = context.shape[0]
        shape = (b, self.cfg.predict_frames, self.cfg.channels, self.cfg.sample_size, self.cfg.sample_size)
        z = torch.randn(shape, generator=generator, device="cpu").to(context.device, context.dtype)
        level = torch.full((b,), self.cfg.context_noise_sample, device=context.device)
        # Euler grid from t = 1 to 0, shifted like the training times (uniform when time_shift = 1).
        grid = self.shift_time(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)).tolist()
        for i in range(steps):
            t_now, t_next = grid[i], grid[i + 1]
            t = torch.full((b,), t_now, device=context.device)
            out = self(z, t, context, actions, level).to(z.dtype)
            if self.cfg.objective == "velocity":
                velocity = out
            elif self.cfg.objective == "x0":  # the straight path through z at t ends at x0
                velocity = (out - z) / t_now
            else:  # x0 from eps on the straight path, then the same Euler step
                x0 = (z - t_now * out) / max(1.0 - t_now, 1e-3)
                velocity = x0 - out
            z = z + velocity * (t_now - t_next)
        if self.cfg.residual:
            z = z + context[:, -1:]
        return self.decode(z)

    # -- persistence ------------------------------------------------------------------------
    def export_config(self) -> dict[str, Any]:
        data = self.cfg.to_dict()
        data["normalisation"] = {"actions": self.action_stats.to_dict()}
        return data

    def save_pretrained(self, directory: Path) -> None:
        """``config.json`` (architecture + action statistics) and ``model.safetensors``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": self.cfg.format})
        (directory / CONFIG_FILE).write_text(json.dumps(self.export_config(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(cls, directory: Path, map_location: str = "cpu") -> WorldModel:
        """Load an export; every problem is a one-line :class:`WorldModelLoadError`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not config_path.exists() or not weights_path.exists():
            raise WorldModelLoadError(f"{directory}: not a world-model export (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            data = json.loads(config_path.read_text())
            cfg = WorldModelConfig.from_dict(data)
            stats = ActionTokenizer.from_dict(data["normalisation"]["actions"])
        except (OSError, json.JSONDecodeError, ValueError) as exc:
            raise WorldModelLoadError(f"{config_path}: {exc}") from None
        except (KeyError, TypeError):
            raise WorldModelLoadError(
                f"{config_path}: missing normalisation statistics ('normalisation.actions')"
            ) from None
        model = cls(cfg, stats)
        try:
            model.load_state_dict(load_file(str(weights_path), device=map_location), strict=True)
        except (RuntimeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise WorldModelLoadError(f"{weights_path}: weights do not fit the config ({first})") from None
        return model.to(map_location).eval()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _groups(channels: tuple[int, ...]) -> int:
    """GroupNorm groups that divide every width (32 as diffusers' default where possible)."""
    return 32 if min(channels) % 32 == 0 else 8
