"""Imagined rollouts: the policy acts on imagined frames, the world model renders what follows.

WMPO's loop (paper Algorithm 1): the context starts as H copies of the real first frame; each
round the policy looks at the most recent frame and emits a chunk of actions, and the world
model predicts the frames those actions produce; the last H frames become the next context.
Imagination never stops early: whether and when the task succeeded is the reward model's call.

Everything random (policy token draws, world-model noise) comes from one seeded CPU generator,
so a seed fixes the rollout on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from wmpo_cli.models.world_model.data import to_uint8, to_unit
from wmpo_cli.models.world_model.model import WorldModel


@dataclass(frozen=True)
class ImaginedRollouts:
    """A batch of imagined episodes.

    Attributes:
        frames: (B, 1 + C*K, S, S, 3) uint8: the real first frame, then one frame per action.
        actions: (B, C, K, D) float64 environment actions the policy chose, chunk by chunk.
        tokens: (B, C, K*D) int64 action tokens.
        log_probs: (B, C, K*D) float32 per-token log-probabilities under the sampling temperature.
    """

    frames: np.ndarray
    actions: np.ndarray
    tokens: np.ndarray
    log_probs: np.ndarray

    @property
    def num_steps(self) -> int:
        return self.frames.shape[1] - 1


def check_compatible(policy: object, world_model: WorldModel) -> None:
    """Chunk and frame counts must line up: one world-model call covers whole policy chunks."""
    chunk = int(policy.cfg.chunk)  # type: ignore[attr-defined]
    f = world_model.cfg.predict_frames
    if chunk % f:
        raise ValueError(f"the policy's chunk of {chunk} actions is not a multiple of the world model's {f} frames")
    camera = world_model.cfg.camera
    if camera not in policy.cfg.cameras:  # type: ignore[attr-defined]
        raise ValueError(f"the world model predicts '{camera}' frames, which the policy does not look at")


@torch.no_grad()
def imagine(
    policy: object,
    world_model: WorldModel,
    first_frames: np.ndarray,
    chunks: int,
    *,
    temperature: float = 1.0,
    greedy: bool = False,
    seed: int = 0,
    instruction: str | None = None,
    sample_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImaginedRollouts:
    """Roll ``policy`` out for ``chunks`` chunks inside ``world_model`` from real ``first_frames``.

    Args:
        policy: a :class:`~wmpo_cli.models.policy.VLAPolicy` (anything with its ``act`` and ``cfg``).
        world_model: the frame predictor.
        first_frames: (B, S, S, 3) uint8 real frames, rendered after the warm-up steps.
        chunks: policy queries per rollout (WMPO: max_steps / chunk, e.g. 40 for StackThree).
        temperature / greedy: how the policy picks tokens (WMPO trains with 1.6).
        seed: fixes every draw.
        sample_steps: Euler steps per world-model call (default: the model's own).
        progress: called as ``progress(done, total)`` after each chunk.
    """
    check_compatible(policy, world_model)
    frames0 = np.asarray(first_frames)
    if frames0.ndim != 4 or frames0.dtype != np.uint8:
        raise ValueError(f"first_frames must be (B, S, S, 3) uint8, got {frames0.shape} {frames0.dtype}")
    cfg = world_model.cfg
    device = world_model.device
    generator = torch.Generator().manual_seed(int(seed))
    current = to_unit(_resize(frames0, cfg.image_size)).to(device)  # (B, 3, S, S)
    context = current[:, None].repeat(1, cfg.context_frames, 1, 1, 1)
    key = f"{cfg.camera}_image"
    frames, actions, tokens, log_probs = [to_uint8(current)], [], [], []
    for done in range(chunks):
        out = policy.act(  # type: ignore[attr-defined]
            {key: to_uint8(context[:, -1])},
            greedy=greedy,
            temperature=temperature,
            instruction=instruction,
            generator=generator,
        )
        chunk_actions = np.asarray(out.actions)
        for start in range(0, chunk_actions.shape[1], cfg.predict_frames):
            part = world_model.normalise_actions(chunk_actions[:, start : start + cfg.predict_frames])
            predicted = world_model.predict(context, part, steps=sample_steps, generator=generator)
            context = torch.cat([context, predicted], dim=1)[:, -cfg.context_frames :]
            frames.append(to_uint8(predicted))  # (B, F, S, S, 3)
        actions.append(chunk_actions)
        tokens.append(out.tokens.cpu().numpy())
        log_probs.append(out.log_prob.float().cpu().numpy())
        if progress is not None:
            progress(done + 1, chunks)
    stacked = np.concatenate([frames[0][:, None], *frames[1:]], axis=1)
    return ImaginedRollouts(
        frames=stacked,
        actions=np.stack(actions, axis=1),
        tokens=np.stack(tokens, axis=1),
        log_probs=np.stack(log_probs, axis=1),
    )


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (B, S, S, 3) -> (B, size, size, 3), bilinear (antialiased) when the sizes differ."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    tensor = torch.as_tensor(frames).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
