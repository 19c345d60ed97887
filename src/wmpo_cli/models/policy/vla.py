"""The vision-language-action policy: OpenVLA-OFT's shape at a size that trains on a CPU.

Sequence fed to a bidirectional transformer trunk (a transformers ``BertModel`` used on
embeddings only):

    [instruction tokens] [proprio token]? [visual tokens per camera] [K*D action queries]

Visual tokens are the cells of an image encoder's feature map (ImageNet-pretrained
EfficientNet-Lite0 by default, or a small ViT from scratch). The K*D learned action queries are
decoded in parallel, one forward pass per chunk, into logits over ``bins`` action tokens each
(OFT's parallel decoding). Batch norms stay in inference mode throughout, so a policy scores the
same observation identically when acting and when re-scoring it for RL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wmpo_cli.models.policy.action_tokens import ActionTokenizer
from wmpo_cli.models.policy.config import GREEDY_DECODINGS, VLAConfig
from wmpo_cli.models.policy.images import augment, preprocess
from wmpo_cli.models.policy.text import TEXT_WIDTH, encode_instruction

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def median_tokens(logits: torch.Tensor) -> torch.Tensor:
    """(..., bins) logits -> (...) the median bin of each token's distribution.

    The bins are ordered action values, so the median is the token that minimises the expected
    absolute action error (the argmax minimises the chance of a wrong bin). Under uncertainty the
    argmax lands on whichever narrow spike is tallest (saturated +-1, an expert's speed cap) while
    the median stays in the bulk of the mass; for a two-valued dimension (the gripper) it still
    picks the heavier side. Ties (a cumulative mass of exactly 0.5) take the lower bin.
    """
    cumulative = torch.softmax(logits.float(), dim=-1).cumsum(dim=-1)
    return (cumulative < 0.5).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


class PolicyLoadError(ValueError):
    """An export that is not a loadable policy (wrong format, missing statistics or weights)."""


@dataclass
class ActOutput:
    """One chunk per observation.

    Attributes:
        actions: (B, K, D) float64 actions in environment units (bin centres, de-normalised).
        tokens: (B, K*D) int64 action tokens.
        log_prob: (B, K*D) per-token log-probabilities under the sampling temperature (1 when greedy);
            ``log_prob.sum(-1)`` is the chunk log-probability.
    """

    actions: np.ndarray
    tokens: torch.Tensor
    log_prob: torch.Tensor


@dataclass(frozen=True)
class ProprioStats:
    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProprioStats:
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64))


class EfficientNetEncoder(nn.Module):
    def __init__(self, cfg: VLAConfig) -> None:
        super().__init__()
        from wmpo_cli.models.policy.efficientnet_lite import LITE0_BLOCKS, EfficientNetLite0, load_pretrained

        net = load_pretrained() if cfg.pretrained_encoder else EfficientNetLite0()
        # Only the blocks that are used are kept (the head and classifier would be dead weights).
        net._blocks = net._blocks[: cfg.encoder_block + 1]
        del net._conv_head, net._bn1, net._fc
        self.net = net
        self.block = cfg.encoder_block
        self.channels = LITE0_BLOCKS[cfg.encoder_block].out_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] -> (B, N, C) tokens."""
        maps = self.net.features(images, upto_block=self.block)
        return maps.flatten(2).transpose(1, 2)


class ViTEncoder(nn.Module):
    def __init__(self, cfg: VLAConfig) -> None:
        super().__init__()
        from transformers import ViTConfig, ViTModel

        vit_cfg = ViTConfig(
            image_size=cfg.image_size,
            patch_size=cfg.vit_patch,
            hidden_size=cfg.vit_hidden,
            num_hidden_layers=cfg.vit_layers,
            num_attention_heads=max(1, cfg.vit_hidden // 64),
            intermediate_size=4 * cfg.vit_hidden,
        )
        self.net = ViTModel(vit_cfg, add_pooling_layer=False)
        self.channels = cfg.vit_hidden

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=images).last_hidden_state[:, 1:]  # patch tokens, no CLS


class VLAPolicy(nn.Module):
    """The policy. Build new with ``VLAPolicy(cfg, tokenizer)``, load with :meth:`from_pretrained`."""

    def __init__(
        self,
        cfg: VLAConfig,
        tokenizer: ActionTokenizer,
        proprio: ProprioStats | None = None,
        *,
        encode_text: bool = True,
    ) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        if cfg.encoder not in ("efficientnet_lite0", "vit"):
            raise ValueError(f"unknown encoder {cfg.encoder!r}")
        if tokenizer.bins != cfg.bins or len(tokenizer.low) != cfg.action_dim:
            raise ValueError("the action tokenizer does not match the config (bins or action dims)")
        if cfg.proprio_keys and (proprio is None or len(proprio.mean) != cfg.proprio_dim):
            raise ValueError("proprio inputs need normalisation statistics of length proprio_dim")
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.proprio = proprio
        self.encoder: nn.Module = EfficientNetEncoder(cfg) if cfg.encoder == "efficientnet_lite0" else ViTEncoder(cfg)
        width = cfg.hidden_size
        self.visual_proj = nn.Linear(self.encoder.channels, width)
        with torch.no_grad():  # the token count of one frame, whatever the encoder's strides
            grid = self.encoder(torch.zeros(1, 3, cfg.image_size, cfg.image_size)).shape[1]
        self.visual_pos = nn.Parameter(torch.zeros(len(cfg.cameras), grid, width))
        self.text_proj = nn.Linear(TEXT_WIDTH, width)
        self.proprio_proj = nn.Linear(cfg.proprio_dim, width) if cfg.proprio_keys else None
        self.action_queries = nn.Parameter(torch.randn(cfg.action_tokens, width) * 0.02)
        n_tokens = cfg.text_tokens + (1 if cfg.proprio_keys else 0) + self.visual_pos.shape[1] * len(cfg.cameras)
        trunk_cfg = BertConfig(
            vocab_size=1,  # only embeddings go in
            hidden_size=width,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            intermediate_size=4 * width,
            max_position_embeddings=n_tokens + cfg.action_tokens,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        self.trunk = BertModel(trunk_cfg, add_pooling_layer=False)
        self.head = nn.Linear(width, cfg.bins)
        # The training instruction's MiniLM states travel with the weights (no MiniLM needed to act).
        # (Loading skips MiniLM: the saved states overwrite this buffer anyway.)
        states = (
            encode_instruction(cfg.instruction, cfg.text_tokens)
            if encode_text
            else torch.zeros(cfg.text_tokens, TEXT_WIDTH)
        )
        self.register_buffer("instruction_states", states)
        self._other_instructions: dict[str, torch.Tensor] = {}
        nn.init.trunc_normal_(self.visual_pos, std=0.02)

    # ----------------------------------------------------------------- running the network
    def train(self, mode: bool = True) -> VLAPolicy:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()  # pretrained statistics stay fixed (see module docstring)
        return self

    def _instruction(self, instruction: str | None) -> torch.Tensor:
        if instruction is None or instruction == self.cfg.instruction:
            return self.instruction_states
        if instruction not in self._other_instructions:
            states = encode_instruction(instruction, self.cfg.text_tokens)
            self._other_instructions[instruction] = states.to(self.instruction_states.device)
        return self._other_instructions[instruction]

    def prepare(
        self, obs: Mapping[str, Any], *, train: bool = False, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Observation dict (batched or single) -> network inputs on the policy's device."""
        device = self.action_queries.device
        images = []
        for camera in self.cfg.cameras:
            key = f"{camera}_image"
            if key not in obs:
                raise KeyError(f"observation has no '{key}' (the policy sees {', '.join(self.cfg.cameras)})")
            frames = torch.as_tensor(np.asarray(obs[key]) if not torch.is_tensor(obs[key]) else obs[key])
            if frames.ndim == 3:
                frames = frames.unsqueeze(0)
            frames = frames.to(device)
            if train:
                images.append(augment(frames, self.cfg.image_size, self.cfg.crop_scale, generator))
            else:
                images.append(preprocess(frames, self.cfg.image_size, self.cfg.crop_scale))
        inputs = {"images": torch.stack(images, dim=1)}  # (B, cameras, 3, S, S)
        if self.cfg.proprio_keys:
            assert self.proprio is not None
            # Training batches arrive as tensors already on the device, acting observations as arrays.
            parts = [
                (obs[k] if torch.is_tensor(obs[k]) else torch.as_tensor(np.asarray(obs[k]))).to(device, torch.float32)
                for k in self.cfg.proprio_keys
            ]
            parts = [p.unsqueeze(0) if p.ndim == 1 else p for p in parts]
            raw = torch.cat(parts, dim=-1)
            mean = torch.as_tensor(self.proprio.mean, dtype=torch.float32, device=device)
            std = torch.as_tensor(self.proprio.std, dtype=torch.float32, device=device)
            inputs["proprio"] = (raw - mean) / std
        return inputs

    @property
    def visual_token_count(self) -> int:
        """Visual tokens per observation, all cameras together."""
        return int(self.visual_pos.shape[0] * self.visual_pos.shape[1])

    def logits(self, inputs: Mapping[str, torch.Tensor], instruction: str | None = None) -> torch.Tensor:
        """(B, K*D, bins) action-token logits from prepared inputs."""
        return self.logits_and_visual(inputs, instruction)[0]

    def logits_and_visual(
        self, inputs: Mapping[str, torch.Tensor], instruction: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits, and the (B, cameras * N, hidden) visual tokens the trunk saw (for auxiliary losses)."""
        images = inputs["images"]
        batch, n_cams = images.shape[:2]
        visual = self.encoder(images.flatten(0, 1))  # (B*cams, N, C)
        visual = self.visual_proj(visual).view(batch, n_cams, -1, self.cfg.hidden_size) + self.visual_pos
        visual = visual.flatten(1, 2)
        text = self.text_proj(self._instruction(instruction)).expand(batch, -1, -1)
        parts = [text]
        if self.proprio_proj is not None:
            parts.append(self.proprio_proj(inputs["proprio"]).unsqueeze(1))
        parts.append(visual)
        parts.append(self.action_queries.expand(batch, -1, -1))
        hidden = self.trunk(inputs_embeds=torch.cat(parts, dim=1)).last_hidden_state
        return self.head(hidden[:, -self.cfg.action_tokens :]), visual

    # ----------------------------------------------------------------- the public API
    @torch.no_grad()
    def act(
        self,
        obs: Mapping[str, Any],
        *,
        greedy: bool = True,
        temperature: float = 1.0,
        instruction: str | None = None,
        generator: torch.Generator | None = None,
        decoding: str = "argmax",
    ) -> ActOutput:
        """One action chunk per observation: greedy, or a draw per token at ``temperature``.

        Greedy ``decoding`` picks each token's ``"argmax"`` (the paper's protocol) or its
        ``"median"`` bin (see :func:`median_tokens`); sampling ignores it.
        """
        if decoding not in GREEDY_DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(GREEDY_DECODINGS)}, got {decoding!r}")
        was_training = self.training
        self.eval()
        try:
            logits = self.logits(self.prepare(obs), instruction).float()
        finally:
            self.train(was_training)
        if greedy:
            tokens = logits.argmax(dim=-1) if decoding == "argmax" else median_tokens(logits)
            log_probs = F.log_softmax(logits, dim=-1)
        else:
            if temperature <= 0:
                raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
            log_probs = F.log_softmax(logits / temperature, dim=-1)
            flat = log_probs.exp().flatten(0, 1).cpu()
            tokens = torch.multinomial(flat, 1, generator=generator).view(logits.shape[:2]).to(logits.device)
        chosen = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        actions = self.decode(tokens)
        return ActOutput(actions=actions, tokens=tokens, log_prob=chosen)

    def log_prob(
        self,
        obs: Mapping[str, Any],
        tokens: torch.Tensor,
        *,
        temperature: float = 1.0,
        instruction: str | None = None,
    ) -> torch.Tensor:
        """(B, K*D) log-probabilities of ``tokens`` at ``temperature``, with gradients (for RL)."""
        logits = self.logits(self.prepare(obs), instruction).float()
        log_probs = F.log_softmax(logits / temperature, dim=-1)
        return log_probs.gather(-1, tokens.long().to(logits.device).unsqueeze(-1)).squeeze(-1)

    def decode(self, tokens: torch.Tensor) -> np.ndarray:
        """(B, K*D) tokens -> (B, K, D) environment actions."""
        flat = tokens.detach().cpu().numpy().reshape(-1, self.cfg.chunk, self.cfg.action_dim)
        return self.tokenizer.decode(flat)

    def encode_actions(self, actions: np.ndarray) -> torch.Tensor:
        """(B, K, D) environment actions -> (B, K*D) tokens."""
        tokens = self.tokenizer.encode(np.asarray(actions))
        return torch.as_tensor(tokens.reshape(tokens.shape[0], -1), dtype=torch.long)

    # ----------------------------------------------------------------- save / load
    def export_config(self) -> dict[str, Any]:
        data = self.cfg.to_dict()
        data["normalisation"] = {
            "actions": self.tokenizer.to_dict(),
            "proprio": None if self.proprio is None else self.proprio.to_dict(),
        }
        return data

    def save_pretrained(self, directory: Path) -> None:
        """``config.json`` (architecture + normalisation statistics) and ``model.safetensors``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": self.cfg.format})
        (directory / CONFIG_FILE).write_text(json.dumps(self.export_config(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(cls, directory: Path, map_location: str = "cpu") -> VLAPolicy:
        """Load an export; every problem is a one-line :class:`PolicyLoadError`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not config_path.exists() or not weights_path.exists():
            raise PolicyLoadError(f"{directory}: not a policy export (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            data = json.loads(config_path.read_text())
            cfg = VLAConfig.from_dict(data)
        except (OSError, json.JSONDecodeError, ValueError) as exc:
            raise PolicyLoadError(f"{config_path}: {exc}") from None
        norm = data.get("normalisation")
        if not isinstance(norm, dict) or not isinstance(norm.get("actions"), dict):
            raise PolicyLoadError(f"{config_path}: missing normalisation statistics ('normalisation.actions')")
        try:
            tokenizer = ActionTokenizer.from_dict(norm["actions"])
            proprio = ProprioStats.from_dict(norm["proprio"]) if norm.get("proprio") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyLoadError(f"{config_path}: {exc}") from None
        if cfg.proprio_keys and proprio is None:
            raise PolicyLoadError(f"{config_path}: missing normalisation statistics for proprio inputs")
        # The weights file holds every parameter: skip loading the ImageNet checkpoint first.
        policy = cls(cfg_without_pretraining(cfg), tokenizer, proprio, encode_text=False)
        try:
            state = load_file(str(weights_path), device=map_location)
            policy.load_state_dict(state, strict=True)
        except (RuntimeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise PolicyLoadError(f"{weights_path}: weights do not fit the config ({first})") from None
        policy.cfg = cfg
        return policy.to(map_location).eval()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def cfg_without_pretraining(cfg: VLAConfig) -> VLAConfig:
    from dataclasses import replace

    return replace(cfg, pretrained_encoder=False)
