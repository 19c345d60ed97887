"""The world-model audit: open-loop replays of real action chunks, compared with the real frames.

From real context frames of a held-out episode, the world model is fed that episode's own
action chunks autoregressively (its predictions become its context, exactly as in imagination)
and its frames are compared with the recorded ones after 1, 2, 4, 8 ... chunks. Two baselines
run on the same windows in the same call:

* ``copy_last``: the last real context frame repeated (a model that ignores time);
* ``action_shuffle``: the same world model fed the action chunks of a *different* episode, so
  the gap to ``model`` is how much the model actually follows the actions.

Metrics per horizon are averaged over the F frames of that chunk: PSNR (dB, frames in [-1, 1])
and SSIM (8-bit dynamic range, 7x7 Gaussian window of sigma 1.5 on luma-free RGB channels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from wmpo_cli.models.world_model.data import EpisodeFrames, to_uint8, to_unit, window_indices
from wmpo_cli.models.world_model.metrics import psnr, ssim
from wmpo_cli.models.world_model.model import WorldModel

METHODS = ("model", "copy_last", "action_shuffle")


@dataclass
class AuditResult:
    """Per method and horizon (in chunks): mean PSNR, mean SSIM and the number of windows.

    ``video`` holds the first window's frames for the side-by-side clip:
    (T, S, S, 3) uint8 arrays under "real", "model" and "action_shuffle".
    """

    horizons: tuple[int, ...]
    table: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    video: dict[str, np.ndarray] = field(default_factory=dict)
    windows: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "horizons": list(self.horizons),
            "windows": self.windows,
            "metrics": {method: {str(h): values for h, values in rows.items()} for method, rows in self.table.items()},
        }

    def side_by_side(self, gap: int = 2) -> np.ndarray:
        """(T, S, 3S + 2 gap, 3) frames of the first window: real | imagined | |difference| (x2)."""
        real, model = self.video["real"].astype(np.int16), self.video["model"].astype(np.int16)
        diff = np.clip(np.abs(real - model) * 2, 0, 255)
        t, s = real.shape[0], real.shape[1]
        spacer = np.full((t, s, gap, 3), 255, dtype=np.int16)
        return np.concatenate([real, spacer, model, spacer, diff], axis=2).astype(np.uint8)


def audit_windows(
    episodes: Sequence[EpisodeFrames], starts: Sequence[int], context_frames: int, predict_frames: int, chunks: int
) -> list[tuple[int, int]]:
    """(episode, start) pairs with ``chunks`` chunks of recorded future after ``start``."""
    need = chunks * predict_frames
    return [(e, s) for e, ep in enumerate(episodes) for s in starts if s + need < len(ep.frames)]


@torch.no_grad()
def run_audit(
    world_model: WorldModel,
    episodes: Sequence[EpisodeFrames],
    *,
    horizons: Sequence[int] = (1, 2, 4, 8),
    starts: Sequence[int] = (0,),
    max_windows: int = 64,
    batch_size: int = 8,
    seed: int = 0,
    sample_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditResult:
    """Open-loop replay of real chunks on every window long enough for the longest horizon.

    At most ``max_windows`` windows are used, evenly spread. A window whose episode is too short
    for the longest horizon is skipped (so every horizon averages over the same windows).
    Shuffled actions come from the next window in the list that belongs to another episode.
    """
    cfg = world_model.cfg
    horizons = tuple(sorted(set(int(h) for h in horizons)))
    if not horizons or horizons[0] < 1:
        raise ValueError("horizons must be positive chunk counts")
    chunks = horizons[-1]
    windows = audit_windows(episodes, starts, cfg.context_frames, cfg.predict_frames, chunks)
    if len(windows) > max_windows:  # an even spread over episodes and starts, the same every run
        windows = [windows[int(i)] for i in np.linspace(0, len(windows) - 1, max_windows).round()]
    if len({e for e, _ in windows}) < 2:
        raise ValueError(
            f"the audit needs windows from at least 2 episodes with {chunks * cfg.predict_frames + 1} or more steps"
            f" after a start in {list(starts)}; got {len(windows)}"
        )
    sums = {m: {h: {"psnr": 0.0, "ssim": 0.0} for h in horizons} for m in METHODS}
    result = AuditResult(horizons=horizons, windows=len(windows))
    generator = torch.Generator().manual_seed(int(seed))
    device = world_model.device
    f = cfg.predict_frames
    steps = chunks * f
    for first in range(0, len(windows), batch_size):
        batch = windows[first : first + batch_size]
        contexts, reals, own, other = [], [], [], []
        for i, (e, s) in enumerate(batch, start=first):
            ep = episodes[e]
            ctx_idx, _ = window_indices(len(ep.frames), s, cfg.context_frames, f)
            contexts.append(to_unit(ep.frames[ctx_idx]))
            reals.append(to_unit(ep.frames[s + 1 : s + 1 + steps]))
            own.append(ep.actions[s : s + steps])
            other.append(_other_actions(episodes, windows, i, steps))
        context = torch.stack(contexts).to(device)
        real = torch.stack(reals).to(device)  # (B, steps, 3, S, S)
        imagined = {
            "model": _rollout(world_model, context, np.stack(own), sample_steps, generator),
            "action_shuffle": _rollout(world_model, context, np.stack(other), sample_steps, generator),
            "copy_last": context[:, -1:].expand_as(real),
        }
        for method, frames in imagined.items():
            for h in horizons:
                sl = slice((h - 1) * f, h * f)
                pred, truth = frames[:, sl].flatten(0, 1), real[:, sl].flatten(0, 1)
                per_frame_psnr = psnr(pred, truth).view(len(batch), f).mean(1)
                per_frame_ssim = ssim(pred, truth).view(len(batch), f).mean(1)
                sums[method][h]["psnr"] += float(per_frame_psnr.sum())
                sums[method][h]["ssim"] += float(per_frame_ssim.sum())
        if first == 0:
            result.video = {
                "real": to_uint8(torch.cat([context[0, -1:], real[0]])),
                "model": to_uint8(torch.cat([context[0, -1:], imagined["model"][0]])),
                "action_shuffle": to_uint8(torch.cat([context[0, -1:], imagined["action_shuffle"][0]])),
            }
        if progress is not None:
            progress(min(first + batch_size, len(windows)), len(windows))
    n = float(len(windows))
    result.table = {
        m: {h: {"psnr": sums[m][h]["psnr"] / n, "ssim": sums[m][h]["ssim"] / n, "windows": n} for h in horizons}
        for m in METHODS
    }
    return result


def _other_actions(
    episodes: Sequence[EpisodeFrames], windows: Sequence[tuple[int, int]], index: int, steps: int
) -> np.ndarray:
    """The action sequence of the next window (cyclically) that comes from a different episode."""
    e = windows[index][0]
    for offset in range(1, len(windows)):
        other_e, other_s = windows[(index + offset) % len(windows)]
        if other_e != e:
            return episodes[other_e].actions[other_s : other_s + steps]
    raise ValueError("action shuffling needs windows from two episodes")


def _rollout(
    world_model: WorldModel,
    context: torch.Tensor,
    actions: np.ndarray,
    sample_steps: int | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """(B, steps, 3, S, S): autoregressive prediction under (B, steps, D) environment actions."""
    cfg = world_model.cfg
    frames = []
    for start in range(0, actions.shape[1], cfg.predict_frames):
        part = world_model.normalise_actions(actions[:, start : start + cfg.predict_frames])
        predicted = world_model.predict(context, part, steps=sample_steps, generator=generator)
        frames.append(predicted)
        context = torch.cat([context, predicted], dim=1)[:, -cfg.context_frames :]
    return torch.cat(frames, dim=1)
