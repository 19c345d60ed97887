"""The one frame size a training stage's episodes must share (clips are batched as stored)."""

from __future__ import annotations

from collections.abc import Iterable

from wmpo_cli.errors import UsageError


def one_frame_size(frames_by_source: Iterable[tuple[str, tuple[int, ...]]]) -> int:
    """The common (square) frame size of ``(source, frames.shape)`` pairs, or a one-line error.

    Training batches stack frames as they are stored, so artifacts collected at different
    ``--image-size`` (or ``--record-size``) cannot be mixed; the error names two that differ.
    """
    sizes: dict[tuple[int, int], str] = {}
    for source, shape in frames_by_source:
        sizes.setdefault((int(shape[1]), int(shape[2])), source)
    if not sizes:
        raise ValueError("no frames to take a size from")
    if len(sizes) > 1:
        (first, first_source), (other, other_source) = list(sizes.items())[:2]
        raise UsageError(
            f"training episodes differ in frame size: {first_source} has {first[0]}x{first[1]}, "
            f"{other_source} has {other[0]}x{other[1]}",
            hint="collect every training artifact with the same --image-size / --record-size",
        )
    return next(iter(sizes))[0]
