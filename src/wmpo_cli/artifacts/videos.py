"""Episode videos: an animated GIF always (Pillow), plus an MP4 when an ffmpeg backend exists.

GIF needs nothing beyond Pillow, which wmpo already depends on; MP4 is written only when
imageio's ffmpeg plugin (the ``imageio-ffmpeg`` package) is installed, so no heavy dependency
is pulled in for it. Every file is written atomically.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from wmpo_cli.artifacts.atomic import atomic_path

CONTROL_HZ = 20  # robosuite control frequency: videos play in real time


def mp4_available() -> bool:
    """Whether MP4 can be encoded here (``imageio-ffmpeg`` ships an ffmpeg binary)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def side_by_side(images: Mapping[str, np.ndarray]) -> np.ndarray:
    """{camera: (T, H, W, 3)} -> (T, H, W * cameras, 3), cameras left to right in the given order."""
    if not images:
        raise ValueError("no camera frames to make a video from")
    return np.concatenate([np.asarray(frames, dtype=np.uint8) for frames in images.values()], axis=2)


def write_video(stem: Path, frames: np.ndarray, fps: int = CONTROL_HZ) -> list[Path]:
    """Write ``stem.gif`` (and ``stem.mp4`` when possible) from (T, H, W, 3) uint8 frames."""
    from PIL import Image

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected (T, H, W, 3) frames, got shape {frames.shape}")
    stem = Path(stem)
    written = []
    gif = stem.with_suffix(".gif")
    pictures = [Image.fromarray(frame) for frame in frames]
    with atomic_path(gif) as tmp:
        # GIF frame times are in 1/100 s; 50 ms per frame is the 20 Hz control rate.
        pictures[0].save(
            tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=round(1000 / fps), loop=0
        )
    written.append(gif)
    if mp4_available():
        import imageio_ffmpeg

        mp4 = stem.with_suffix(".mp4")
        with atomic_path(mp4) as tmp:
            # The temporary name does not end in .mp4, so the container is named explicitly;
            # yuv420p (what players expect) needs even sides, which macro_block_size=2 ensures.
            writer = imageio_ffmpeg.write_frames(
                str(tmp),
                (frames.shape[2], frames.shape[1]),
                fps=fps,
                codec="libx264",
                macro_block_size=2,
                output_params=["-f", "mp4"],
            )
            writer.send(None)  # start ffmpeg
            try:
                for frame in frames:
                    writer.send(np.ascontiguousarray(frame))
            finally:
                writer.close()
        written.append(mp4)
    return written
