"""Collection throughput: episodes/s and env steps/s with 1 and 2 workers, with and without images.

Runs the real `wmpo collect` stage (scripted expert, robosuite physics, offscreen rendering from
saved states) in fresh temporary run directories and prints one JSON document:

    python benchmarks/collect.py --task lift --episodes 8 --out benchmarks/results/collect.json

Timings include worker start-up (spawn + robosuite import + env build), as a user sees them.
Run it on an otherwise idle machine: two workers on two cores are only meaningful alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def measure(task: str, variant: str, episodes: int, workers: int, cameras: tuple[str, ...], size: int) -> dict:
    from wmpo_cli import console
    from wmpo_cli.config import CollectConfig
    from wmpo_cli.pipeline import collect

    console.mode.quiet = True
    cfg = CollectConfig(
        task=task, variant=variant, episodes=episodes, workers=workers, cameras=cameras, image_size=size, seed=1234
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = collect.run(cfg, Path(tmp))
        wall = time.perf_counter() - start
    m = manifest.metrics
    return {
        "task": task,
        "variant": variant,
        "workers": workers,
        "images": bool(cameras),
        "cameras": list(cameras),
        "image_size": size if cameras else None,
        "episodes": m["episodes"],
        "env_steps": m["total_steps"],
        "wall_s": round(wall, 2),
        "episodes_per_s": round(m["episodes"] / wall, 3),
        "env_steps_per_s": round(m["total_steps"] / wall, 1),
        # Excluding worker start-up (spawn, imports, env build): per-episode work summed over workers.
        "steady_episodes_per_s": round(m["episodes"] * workers / (m["physics_s"] + m["render_s"]), 3),
        "steady_env_steps_per_s": round(m["total_steps"] * workers / (m["physics_s"] + m["render_s"]), 1),
        "physics_s": m["physics_s"],
        "render_s": m["render_s"],
        "frames_rerendered": m["frames_rerendered"],
        "success_rate": m["success_rate"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--variant", default="D0")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [
        measure(args.task, args.variant, args.episodes, workers, cameras, args.image_size)
        for cameras in ((), ("agentview",))
        for workers in (1, 2)
    ]
    for images in (False, True):
        one, two = (r for r in rows if r["images"] is images)
        two["speedup_vs_1_worker"] = round(two["episodes_per_s"] / one["episodes_per_s"], 2)
    report = {
        "benchmark": "collect",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "results": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
