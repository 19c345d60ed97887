"""Evaluation throughput: episodes/s and env steps/s of `wmpo eval` with 1 and 2 workers.

Runs the real eval stage (policy forward passes, robosuite physics, live offscreen rendering) on
the same policy and episodes for each worker count, in fresh temporary run directories, and
prints one JSON document:

    python benchmarks/eval.py --task lift --episodes 8 --out benchmarks/results/eval.json

Without ``--policy`` an untrained policy (fixed seed) is built: it never succeeds, so every
episode runs the full ``--max-steps``, the slowest case. Timings include worker start-up (spawn,
imports, policy load, env build), as a user sees them; the ``steady_*`` numbers exclude it.
Run it on an otherwise idle machine: two workers on two cores are only meaningful alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def untrained_policy(directory: Path, task: str, image_size: int) -> Path:
    """A complete policy artifact holding a seeded, untrained VLA (no training needed)."""
    import numpy as np
    import torch

    from wmpo_cli.artifacts.store import begin_artifact
    from wmpo_cli.config import FitPolicyConfig
    from wmpo_cli.envs.tasks import get_task
    from wmpo_cli.models.policy.action_tokens import ActionTokenizer
    from wmpo_cli.models.policy.config import VLAConfig
    from wmpo_cli.models.policy.vla import VLAPolicy

    writer = begin_artifact(
        directory,
        kind="policy",
        kind_version=1,
        stage="fit-policy",
        config=FitPolicyConfig(task=task, image_size=image_size),
        seed=0,
    )
    torch.manual_seed(0)
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(256, 7))
    cfg = VLAConfig(task=task, instruction=get_task(task).instruction, image_size=image_size)
    VLAPolicy(cfg, ActionTokenizer.fit(actions)).save_pretrained(directory / "export")
    writer.finish(["export/config.json", "export/model.safetensors"], {})
    return directory


def measure(policy: Path, task: str, episodes: int, workers: int, max_steps: int) -> dict[str, Any]:
    from wmpo_cli import console
    from wmpo_cli.config import EvalConfig
    from wmpo_cli.pipeline import eval as stage

    console.mode.quiet = True
    cfg = EvalConfig(
        policy=str(policy), task=task, episodes=episodes, workers=workers, max_steps=max_steps, videos=0, seed=1234
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = stage.run(cfg, Path(tmp))
        wall = time.perf_counter() - start
        report = json.loads((stage.output_dir(cfg, Path(tmp), manifest.metrics["policy_id"]) / "eval.json").read_text())
    m = manifest.metrics
    env_steps = m["env_steps"]
    busy = m["physics_s"] + m["render_s"] + m["policy_s"]
    return {
        "task": task,
        "workers": workers,
        "episodes": episodes,
        "max_steps": m["max_steps"],
        "env_steps": env_steps,
        "success_rate": m["success_rate"],
        "wall_s": round(wall, 2),
        "episodes_per_s": round(episodes / wall, 3),
        "env_steps_per_s": round(env_steps / wall, 1),
        # Per-episode work summed over workers: what the pool sustains once it is up.
        "steady_episodes_per_s": round(episodes * workers / busy, 3),
        "steady_env_steps_per_s": round(env_steps * workers / busy, 1),
        "physics_s": m["physics_s"],
        "render_s": m["render_s"],
        "policy_s": m["policy_s"],
        "per_episode": report["per_episode"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--policy", type=Path, default=None, help="policy artifact (default: an untrained one)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64, help="frame size of the untrained policy")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="wmpo-bench-eval-"))
    try:
        policy = args.policy or untrained_policy(scratch / "policy", args.task, args.image_size)
        rows = [measure(policy, args.task, args.episodes, w, args.max_steps) for w in args.workers]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = rows[0]
    for row in rows[1:]:
        row["speedup_vs_1_worker" if base["workers"] == 1 else "speedup_vs_first"] = round(
            row["episodes_per_s"] / base["episodes_per_s"], 2
        )
        # Each episode is a pure function of its seed: any worker count must give the same episodes.
        row["same_episodes_as_first"] = row["per_episode"] == base["per_episode"]
    for row in rows:
        del row["per_episode"]
    report = {
        "benchmark": "eval",
        "policy": "untrained (seeded)" if args.policy is None else str(args.policy),
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
