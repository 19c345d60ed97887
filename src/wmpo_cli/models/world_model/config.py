"""The world model's architecture description, stored as ``config.json`` in every export."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

WORLD_MODEL_FORMAT = "wmpo.world_model/1"
OBJECTIVES = ("velocity", "epsilon", "x0")


@dataclass(frozen=True)
class WorldModelConfig:
    """Everything needed to rebuild a world model, apart from its weights and action statistics.

    The model is a diffusers ``UNet2DModel`` over a window of frames stacked along channels:
    ``context_frames`` clean (noise-augmented in training) past frames, then ``predict_frames``
    noisy future frames, one per action of the chunk. A 64 px window of 4 + 8 frames is one
    2-D image of 36 channels, which is what makes training in pixel space feasible on a CPU.

    Attributes:
        task: the task whose episodes trained it (imagination refuses other tasks by default).
        image_size: square frame size in pixels (frames of another size are resized).
        camera: the camera whose frames it predicts (the policy's first camera).
        context_frames: H, past frames given as context.
        predict_frames: F, frames predicted per call; frame j is the one observed after action j.
        action_dim: D of each action (7 for the OSC pose controller).
        action_embed_dim: channels of each action's embedding plane (see ``ActionConditioner``).
        block_out_channels / layers_per_block / attention_levels: the UNet's shape.
        objective: what the network outputs on the rectified-flow path (default "x0", the
            stage default too): "velocity" (v = x0 - eps,
            as WMPO's code), "epsilon", or "x0" (the clean sample, x-prediction; its loss is the
            velocity loss weighted by t^2). All three share one Euler sampler. A small network
            reproduces unit noise poorly (it is rarely trained near t = 1, where a velocity or eps
            net must output the noise itself), which leaves noise in few-step samples; predicting
            x0 skips that: one step from pure noise gives the conditional mean frame.
        context_noise: in training, context frames become (1 - s) x + s eps with s ~ U[0,
            context_noise] (WMPO: fixed 0.015 of the diffusion range) against autoregressive drift;
            at sampling the context is clean and flagged with ``context_noise_sample``.
        context_noise_sample: the context noise level the model is told at sampling time.
        sample_steps: Euler steps of the few-step sampler (WMPO: 30).
        time_shift: s >= 1 moves the noise levels towards pure noise, t -> s t / (1 + (s - 1) t),
            in training (on the logit-normal draw) and on the sampler's grid alike (SD3's timestep
            shift). A few-step sampler's first step is the prediction at t = 1, the conditional mean
            frame; unshifted logit-normal training visits t > 0.9 only 1.4 % of the time, s = 3 makes
            that 14 %. 1 = no shift.
        latent_channels: 0 (the default) = the UNet works on pixels. > 0 = on the latents of a
            diffusers ``AutoencoderKL`` with this many channels, trained on the same frames first
            (for 128-256 px frames, where a pixel UNet is too slow); frames still go in and come
            out of ``predict`` as pixels.
        autoencoder_channels: the autoencoder's block widths; each level after the first halves
            the frame, so (64, 128, 128) turns 128 px frames into 32 x 32 latents.
        residual: generate each future frame as its change from the last context frame rather
            than the frame itself. Most pixels of a manipulation scene do not move within a chunk,
            so the change is mostly zero and the model's capacity goes to what moves (the arm,
            the grasped object) instead of redrawing the static scene.
    """

    task: str
    image_size: int = 64
    camera: str = "agentview"
    context_frames: int = 4
    predict_frames: int = 8
    action_dim: int = 7
    action_embed_dim: int = 8
    block_out_channels: tuple[int, ...] = (64, 128, 192, 256)
    layers_per_block: int = 1
    attention_levels: tuple[bool, ...] = (False, False, True, True)
    objective: str = "x0"
    context_noise: float = 0.1
    context_noise_sample: float = 0.02
    sample_steps: int = 10
    time_shift: float = 1.0
    latent_channels: int = 0
    autoencoder_channels: tuple[int, ...] = (64, 128, 128)
    residual: bool = True
    format: str = field(default=WORLD_MODEL_FORMAT)

    @property
    def window(self) -> int:
        return self.context_frames + self.predict_frames

    @property
    def latent(self) -> bool:
        return self.latent_channels > 0

    @property
    def latent_factor(self) -> int:
        """How many pixels one latent cell spans per side (1 in pixel space)."""
        return 2 ** (len(self.autoencoder_channels) - 1) if self.latent else 1

    @property
    def channels(self) -> int:
        """Channels of one frame as the UNet sees it (RGB or latent)."""
        return self.latent_channels if self.latent else 3

    @property
    def sample_size(self) -> int:
        """Side of one frame as the UNet sees it."""
        return self.image_size // self.latent_factor

    def check(self) -> None:
        """Raise ValueError for a configuration that cannot be built."""
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r} (one of {', '.join(OBJECTIVES)})")
        if len(self.attention_levels) != len(self.block_out_channels):
            raise ValueError("attention_levels needs one entry per block_out_channels entry")
        if self.context_frames < 1 or self.predict_frames < 1 or self.sample_steps < 1:
            raise ValueError("context_frames, predict_frames and sample_steps must be >= 1")
        if self.latent_channels < 0 or (self.latent and not self.autoencoder_channels):
            raise ValueError("latent_channels must be >= 0 (0 = pixel space), with at least one autoencoder level")
        halvings = self.latent_factor * 2 ** (len(self.block_out_channels) - 1)
        if self.image_size % halvings:
            levels = "per autoencoder level after the first and per UNet level" if self.latent else "per UNet level"
            where = f" (one halving {levels})"
            raise ValueError(f"image_size {self.image_size} must be divisible by {halvings}{where}")
        if not self.time_shift >= 1.0:
            raise ValueError(f"time_shift must be >= 1 (1 = no shift), got {self.time_shift}")
        if not 0.0 <= self.context_noise < 1.0 or not 0.0 <= self.context_noise_sample < 1.0:
            raise ValueError("context_noise and context_noise_sample must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("block_out_channels", "attention_levels", "autoencoder_channels"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldModelConfig:
        if data.get("format") != WORLD_MODEL_FORMAT:
            raise ValueError(
                f"not a wmpo world-model config (format {data.get('format')!r}, expected {WORLD_MODEL_FORMAT!r})"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"normalisation"})
        if unknown:
            raise ValueError(f"unknown world-model config keys: {', '.join(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        for key in ("block_out_channels", "attention_levels", "autoencoder_channels"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            cfg = cls(**values)
        except TypeError as exc:
            raise ValueError(f"world-model config is incomplete ({exc})") from None
        cfg.check()
        return cfg
