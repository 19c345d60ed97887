"""Render an episode's frames from its stored states, with a sanity check on what comes back.

Collection runs physics first and renders afterwards from the saved states: physics alone is
~5x faster than stepping with cameras, and frames rendered from states are by construction the
frames a later replay would render. The offscreen renderer occasionally returns blank or
uninitialised frames (seen on OSMesa on the first episode of a process), so every frame is
checked for being blank, and a few frames per episode are rendered twice and compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from wmpo_cli.errors import RenderError


class Renderable(Protocol):
    def restore(self, state: np.ndarray) -> object: ...

    def render(self, camera: str, size: int | None = None) -> np.ndarray: ...


@dataclass
class RenderedEpisode:
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8
    rerendered: int  # frames that had to be rendered again


def is_blank(frame: np.ndarray) -> bool:
    """A frame with (almost) no variation: a cleared or never-drawn framebuffer."""
    return float(frame.std()) < 1.0


def render_states(
    env: Renderable,
    states: np.ndarray,
    cameras: Sequence[str],
    size: int,
    retries: int = 3,
) -> RenderedEpisode:
    if not cameras:  # a low-dim dataset: nothing to restore or draw
        return RenderedEpisode(images={}, rerendered=0)
    steps = len(states)
    images = {camera: np.empty((steps, size, size, 3), dtype=np.uint8) for camera in cameras}
    rerendered = 0

    def draw(t: int, camera: str) -> int:
        frame = env.render(camera, size)
        attempts = 0
        while is_blank(frame) and attempts < retries:
            frame = env.render(camera, size)
            attempts += 1
        if is_blank(frame):
            raise RenderError(
                f"camera '{camera}' returned a blank frame at step {t}, {retries} re-renders did not help"
            )
        images[camera][t] = frame
        return attempts

    for t in range(steps):
        env.restore(states[t])
        for camera in cameras:
            rerendered += draw(t, camera)

    # Double-render check: a garbled renderer does not reproduce its own output.
    for attempt in range(retries + 1):
        bad = False
        for t in sorted({0, steps // 2, steps - 1}):
            env.restore(states[t])
            for camera in cameras:
                if not np.array_equal(env.render(camera, size), images[camera][t]):
                    bad = True
        if not bad:
            break
        if attempt == retries:
            raise RenderError(f"the renderer does not reproduce its own frames after {retries} full re-renders")
        for t in range(steps):
            env.restore(states[t])
            for camera in cameras:
                images[camera][t] = env.render(camera, size)
        rerendered += steps * len(cameras)
    return RenderedEpisode(images=images, rerendered=rerendered)
