"""The policy's architecture description, stored as ``config.json`` in every export."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

POLICY_FORMAT = "wmpo.policy/1"
ENCODERS = ("efficientnet_lite0", "vit")
# How a greedy policy turns each token's distribution over the ordered action bins into a token:
# "argmax" (the paper's protocol) or "median" (see wmpo_cli.models.policy.vla.median_tokens).
GREEDY_DECODINGS = ("argmax", "median")


@dataclass(frozen=True)
class VLAConfig:
    """Everything needed to rebuild a policy, apart from its weights and normalisation statistics.

    Attributes:
        task: the registry task the policy was trained on (eval refuses other tasks by default).
        instruction: the language instruction it was trained with.
        encoder: "efficientnet_lite0" (ImageNet-pretrained) or "vit" (a small ViT from scratch).
        pretrained_encoder: start the EfficientNet from the packaged ImageNet weights.
        encoder_block: last EfficientNet block used; block 10 has stride 16 (4x4 tokens at 64 px).
        image_size: square input size; frames of another size are resized.
        cameras: cameras whose ``<camera>_image`` the policy sees (the paper: agentview only).
        proprio_keys / proprio_dim: low-dim observations given as one extra token (none by default).
        chunk / action_dim / bins: K actions x D dims decoded in parallel, each one of ``bins`` tokens.
        hidden_size / layers / heads: the transformer trunk (a transformers BertConfig).
        vit_patch / vit_layers / vit_hidden: the from-scratch ViT option.
        crop_scale: area kept by the centre crop at inference (random-resized-crop scale in training).
    """

    task: str
    instruction: str
    encoder: str = "efficientnet_lite0"
    pretrained_encoder: bool = True
    encoder_block: int = 10
    image_size: int = 64
    cameras: tuple[str, ...] = ("agentview",)
    proprio_keys: tuple[str, ...] = ()
    proprio_dim: int = 0
    chunk: int = 8
    action_dim: int = 7
    bins: int = 256
    hidden_size: int = 192
    layers: int = 4
    heads: int = 4
    vit_patch: int = 8
    vit_layers: int = 4
    vit_hidden: int = 192
    crop_scale: float = 0.9
    text_tokens: int = 8
    format: str = field(default=POLICY_FORMAT)

    @property
    def action_tokens(self) -> int:
        return self.chunk * self.action_dim

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("cameras", "proprio_keys"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLAConfig:
        if data.get("format") != POLICY_FORMAT:
            raise ValueError(f"not a wmpo policy config (format {data.get('format')!r}, expected {POLICY_FORMAT!r})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"normalisation"})
        if unknown:
            raise ValueError(f"unknown policy config keys: {', '.join(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        for key in ("cameras", "proprio_keys"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"policy config is incomplete ({exc})") from None
