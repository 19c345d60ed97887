"""The reliability (calibration) diagram as a PNG, drawn with Pillow (no plotting dependency).

Top panel: observed success frequency per probability bin (bars) against the diagonal of perfect
calibration, each bar's mean prediction as a dot, and the decision threshold as a vertical line.
Bottom panel: how many windows fall in each bin (log scale), since a bin of three windows says
little.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wmpo_cli.models.reward_model.calibration import Reliability

WIDTH, HEIGHT = 560, 600
LEFT, RIGHT, TOP = 70, 20, 40
MAIN_H, GAP, HIST_H = 380, 50, 90


def draw_reliability(path: Path, diagram: Reliability, *, threshold: float, title: str) -> None:
    """Write the diagram to ``path`` (PNG)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    plot_w = WIDTH - LEFT - RIGHT

    def x_of(p: float) -> float:
        return LEFT + p * plot_w

    def y_of(q: float) -> float:
        return TOP + (1.0 - q) * MAIN_H

    draw.text((LEFT, 12), f"{title}   ECE {diagram.ece:.3f}", fill="black")
    draw.rectangle([LEFT, TOP, LEFT + plot_w, TOP + MAIN_H], outline="black")
    for tick in np.linspace(0.0, 1.0, 6):
        draw.line([x_of(tick), TOP + MAIN_H, x_of(tick), TOP + MAIN_H + 4], fill="black")
        draw.text((x_of(tick) - 8, TOP + MAIN_H + 6), f"{tick:.1f}", fill="black")
        draw.line([LEFT - 4, y_of(tick), LEFT, y_of(tick)], fill="black")
        draw.text((LEFT - 30, y_of(tick) - 6), f"{tick:.1f}", fill="black")
    draw.line([x_of(0), y_of(0), x_of(1), y_of(1)], fill=(150, 150, 150), width=1)
    edges = diagram.edges
    for i in range(len(diagram.counts)):
        if diagram.counts[i] == 0:
            continue
        draw.rectangle(
            [x_of(edges[i]) + 2, y_of(float(diagram.observed[i])), x_of(edges[i + 1]) - 2, y_of(0.0)],
            fill=(120, 160, 220),
            outline=(40, 80, 160),
        )
        px, py = x_of(float(diagram.mean_predicted[i])), y_of(float(diagram.observed[i]))
        draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(200, 60, 40))
    draw.line([x_of(threshold), TOP, x_of(threshold), TOP + MAIN_H], fill=(220, 120, 0), width=2)
    label = f"threshold {threshold:.3f}"
    # Left of the line when the line is near the right edge, so the label stays inside the image.
    label_x = x_of(threshold) - 8 - 6 * len(label) if threshold > 0.7 else x_of(threshold) + 4
    draw.text((label_x, TOP + 4), label, fill=(220, 120, 0))
    draw.text((LEFT + plot_w / 2 - 60, TOP + MAIN_H + 22), "predicted probability", fill="black")
    draw.text((8, TOP - 16), "observed success frequency", fill="black")

    hist_top = TOP + MAIN_H + GAP
    draw.rectangle([LEFT, hist_top, LEFT + plot_w, hist_top + HIST_H], outline="black")
    top_count = max(1, int(diagram.counts.max()))
    scale = math.log10(top_count + 1)
    for i, count in enumerate(diagram.counts):
        if count == 0:
            continue
        height = HIST_H * math.log10(int(count) + 1) / scale
        draw.rectangle(
            [x_of(edges[i]) + 2, hist_top + HIST_H - height, x_of(edges[i + 1]) - 2, hist_top + HIST_H], fill="grey"
        )
        draw.text((x_of(edges[i]) + 3, hist_top + HIST_H - height - 12), str(int(count)), fill="black")
    draw.text((8, hist_top + HIST_H + 6), "windows per bin (log scale)", fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
