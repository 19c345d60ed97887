"""Imagination throughput against the simulator, measured in one run on one machine.

Imagined env-steps per second: a batch of ``--batch`` rollouts (default 16) of the policy inside
the world model, ``--chunks`` policy chunks each (every chunk is 8 imagined steps per rollout),
policy forward passes included. Simulator steps per second: one robosuite env of the same task
stepping with its camera rendered at the world model's frame size (what a real rollout costs),
the policy excluded (so the ratio flatters the simulator). Prints one JSON document:

    python benchmarks/imagine.py --world-model runs/st3/world_model --policy runs/st3/policy \
        --out benchmarks/results/imagine.json

Without ``--world-model`` / ``--policy`` seeded untrained models of the ``tiny`` shapes are used
(speed does not depend on the weights). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def _models(args: argparse.Namespace) -> tuple[Any, Any]:
    import numpy as np
    import torch

    from wmpo_cli.envs.tasks import get_task
    from wmpo_cli.models.policy.action_tokens import ActionTokenizer
    from wmpo_cli.models.policy.config import VLAConfig
    from wmpo_cli.models.policy.vla import VLAPolicy
    from wmpo_cli.models.world_model.config import WorldModelConfig
    from wmpo_cli.models.world_model.model import WorldModel

    torch.manual_seed(0)
    stats = ActionTokenizer.fit(np.random.default_rng(0).uniform(-1, 1, (256, 7)))
    if args.world_model:
        world_model = WorldModel.from_pretrained(Path(args.world_model) / "export", map_location=args.device)
    else:
        cfg = WorldModelConfig(
            task=args.task, image_size=args.image_size, block_out_channels=(32, 64, 128),
            attention_levels=(False, False, True), sample_steps=8,
        )  # fmt: skip
        world_model = WorldModel(cfg, stats).to(args.device).eval()
    if args.policy:
        policy = VLAPolicy.from_pretrained(Path(args.policy) / "export", map_location=args.device)
    else:
        task = get_task(world_model.cfg.task)
        cfg_p = VLAConfig(task=task.name, instruction=task.instruction, image_size=world_model.cfg.image_size)
        policy = VLAPolicy(cfg_p, stats, encode_text=True).to(args.device).eval()
    return world_model, policy


def imagined_rate(world_model: Any, policy: Any, batch: int, chunks: int) -> dict[str, Any]:
    import numpy as np

    from wmpo_cli.rl.imagine import imagine

    size = world_model.cfg.image_size
    frames = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    imagine(policy, world_model, frames, 1, seed=0)  # warm-up: allocator, kernels, caches
    start = time.perf_counter()
    out = imagine(policy, world_model, frames, chunks, temperature=1.6, seed=1)
    wall = time.perf_counter() - start
    steps = out.num_steps * batch
    return {"batch": batch, "chunks": chunks, "imagined_steps": steps, "wall_s": round(wall, 3),
            "imagined_steps_per_s": round(steps / wall, 2)}  # fmt: skip


def simulator_rate(task: str, image_size: int, steps: int) -> dict[str, Any]:
    import numpy as np

    from wmpo_cli.envs.sim import SimEnv
    from wmpo_cli.envs.tasks import get_task

    env = SimEnv(get_task(task), cameras=("agentview",), image_size=image_size)
    env.reset(seed=0)
    action = np.zeros(7)
    start = time.perf_counter()
    for _ in range(steps):  # what a real rollout does per step: physics + control, then a frame
        env.step(action)
        env.render("agentview")
    wall = time.perf_counter() - start
    env.close()
    return {"steps": steps, "wall_s": round(wall, 3), "sim_steps_per_s": round(steps / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="stack_three")
    parser.add_argument("--world-model", default="")
    parser.add_argument("--policy", default="")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--sim-steps", type=int, default=200)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    world_model, policy = _models(args)
    imagined = imagined_rate(world_model, policy, args.batch, args.chunks)
    sim = simulator_rate(world_model.cfg.task, world_model.cfg.image_size, args.sim_steps)
    import torch

    result = {
        "benchmark": "imagine",
        "device": args.device,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "world_model": {
            "parameters": world_model.num_parameters(),
            "sample_steps": world_model.cfg.sample_steps,
            "image_size": world_model.cfg.image_size,
        },
        "imagination": imagined,
        "simulator": sim,
        "ratio_imagined_to_sim": round(imagined["imagined_steps_per_s"] / sim["sim_steps_per_s"], 3),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
