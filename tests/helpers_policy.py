"""Policy artifacts for tests, made without training: a seeded, untrained VLA saved like fit-policy.

Building a VLA takes seconds (ImageNet encoder, MiniLM instruction states), so each (task, image
size) policy is built once per test process and its export copied into every artifact asked for.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

_EXPORTS: dict[tuple[str, int], Path] = {}


def _export(task: str, image_size: int) -> Path:
    """A saved untrained policy for ``task`` (built once per process, fixed torch seed)."""
    key = (task, image_size)
    if key not in _EXPORTS:
        import torch

        from wmpo_cli.envs.tasks import get_task
        from wmpo_cli.models.policy.action_tokens import ActionTokenizer
        from wmpo_cli.models.policy.config import VLAConfig
        from wmpo_cli.models.policy.vla import VLAPolicy

        actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(256, 7))
        torch.manual_seed(0)
        cfg = VLAConfig(task=task, instruction=get_task(task).instruction, image_size=image_size)
        policy = VLAPolicy(cfg, ActionTokenizer.fit(actions))
        directory = Path(tempfile.mkdtemp(prefix=f"wmpo-test-policy-{task}-")) / "export"
        policy.save_pretrained(directory)
        _EXPORTS[key] = directory
    return _EXPORTS[key]


def make_policy_artifact(directory: Path, task: str = "lift", image_size: int = 32) -> Path:
    """A complete ``policy`` artifact at ``directory`` (manifest, config.json, export/)."""
    from wmpo_cli.artifacts.store import begin_artifact
    from wmpo_cli.config import FitPolicyConfig

    directory = Path(directory)
    writer = begin_artifact(
        directory,
        kind="policy",
        kind_version=1,
        stage="fit-policy",
        config=FitPolicyConfig(task=task, image_size=image_size),
        seed=0,
    )
    shutil.copytree(_export(task, image_size), directory / "export")
    writer.finish(["export/config.json", "export/model.safetensors"], {})
    return directory
