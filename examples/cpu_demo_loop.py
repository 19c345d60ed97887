"""The CPU demo loop from Python instead of the CLI: collect demos, then read them back.

    python examples/cpu_demo_loop.py --task stack_three --episodes 4 --run-dir runs/example

Uses the same library calls the `wmpo` commands use (`wmpo_cli.pipeline`), so whatever works
here works on the command line and vice versa. Later stages (fit-policy, fit-world-model, ...)
will be appended here as they land.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def main() -> None:
    from wmpo_cli.artifacts.episodes import EpisodesFile
    from wmpo_cli.config import CollectConfig, resolve_config
    from wmpo_cli.pipeline import collect

    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="lift")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/example"))
    args = parser.parse_args()

    cfg = resolve_config(CollectConfig, task=args.task, recipes=["tiny"], flags={"episodes": args.episodes})
    manifest = collect.run(cfg, args.run_dir, force=True)
    print(f"collected {manifest.metrics['episodes']} episodes, success rate {manifest.metrics['success_rate']:.0%}")

    with EpisodesFile(args.run_dir / "demos" / "episodes.hdf5") as episodes:
        for name in episodes.demo_names:
            episode = episodes.load(name, obs_keys=["agentview_image"])
            frames = episode.obs["agentview_image"]
            print(
                f"{name}: {episode.num_samples} steps, frames {frames.shape}, "
                f"success at step {episode.attrs['success_step']}"
            )


if __name__ == "__main__":
    main()
