"""Episode videos: GIF always, MP4 only with an ffmpeg backend; cameras side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wmpo_cli.artifacts.videos import mp4_available, side_by_side, write_video


def _frames(steps: int, size: int, value: int) -> np.ndarray:
    frames = np.zeros((steps, size, size, 3), dtype=np.uint8)
    frames[..., 0] = value
    frames[:, 0, 0, 1] = np.arange(steps) * 20  # a different frame per step
    return frames


def test_gif_has_every_frame_at_the_control_rate(tmp_path: Path) -> None:
    from PIL import Image

    written = write_video(tmp_path / "episode_0003", _frames(6, 16, 200))
    assert written[0] == tmp_path / "episode_0003.gif"
    assert (tmp_path / "episode_0003.mp4" in written) == mp4_available()
    with Image.open(written[0]) as gif:
        assert (gif.n_frames, gif.size, gif.info["duration"]) == (6, (16, 16), 50)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temporaries left


def test_cameras_are_placed_left_to_right() -> None:
    joined = side_by_side({"agentview": _frames(3, 8, 10), "robot0_eye_in_hand": _frames(3, 8, 90)})
    assert joined.shape == (3, 8, 16, 3)
    assert joined[0, 4, 4, 0] == 10 and joined[0, 4, 12, 0] == 90


def test_bad_frames_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frames"):
        write_video(tmp_path / "x", np.zeros((0, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="no camera"):
        side_by_side({})


@pytest.mark.skipif(not mp4_available(), reason="imageio-ffmpeg is not installed")
def test_mp4_has_every_frame(tmp_path: Path) -> None:
    import imageio_ffmpeg

    write_video(tmp_path / "v", _frames(7, 16, 120))
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "v.mp4"))
    meta = next(reader)
    assert meta["size"] == (16, 16) and meta["fps"] == 20 and len(list(reader)) == 7
