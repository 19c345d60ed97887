"""`wmpo demo`: every implemented stage, in order, on ``lift`` at the tiny recipe.

    collect (200 expert demos at 64 px) -> fit-policy -> eval (greedy, fresh seeds)

A stage whose complete artifact is already there with the same config is reused, so re-running
`make demo` after an interruption continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from wmpo_cli import console
from wmpo_cli.artifacts.manifest import MANIFEST_NAME, Manifest, read_manifest
from wmpo_cli.config import CollectConfig, EvalConfig, FitPolicyConfig, config_hash, resolve_config
from wmpo_cli.errors import ArtifactError, ConfigError
from wmpo_cli.pipeline import collect, fit_policy
from wmpo_cli.pipeline import eval as evaluate

DEMO_TASK = "lift"


def _reusable(directory: Path, cfg: Any) -> Manifest | None:
    if not (directory / MANIFEST_NAME).exists():
        return None
    try:
        manifest = read_manifest(directory)
    except ArtifactError:
        return None
    return manifest if manifest.complete and manifest.config_sha256 == config_hash(cfg) else None


def run(
    run_dir: Path,
    *,
    recipes: Sequence[str] = ("tiny",),
    sets: Sequence[str] = (),
    seed: int | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    task_dir = Path(run_dir) / DEMO_TASK
    flags = {"task": DEMO_TASK, "seed": seed}
    stage_sets = _sets_per_stage(sets, (CollectConfig, FitPolicyConfig, EvalConfig))
    steps: list[dict[str, Any]] = []

    def stage(name: str, cfg: Any, out: Path, runner: Any) -> Manifest:
        manifest = None if force else _reusable(out, cfg)
        if manifest is not None:
            console.log(f"{name}: reusing the complete artifact in {out}")
        else:
            console.log(f"{name}: running")
            manifest = runner(cfg, task_dir, force=force)
        steps.append(
            {"stage": name, "task": DEMO_TASK, "path": str(out), "id": manifest.id, "metrics": manifest.metrics}
        )
        return manifest

    collect_cfg = resolve_config(
        CollectConfig, task=DEMO_TASK, recipes=recipes, flags=flags, overrides=stage_sets[CollectConfig]
    )
    stage("collect", collect_cfg, collect.output_dir(collect_cfg, task_dir), collect.run)
    fit_cfg = resolve_config(
        FitPolicyConfig, task=DEMO_TASK, recipes=recipes, flags=flags, overrides=stage_sets[FitPolicyConfig]
    )
    policy = stage("fit-policy", fit_cfg, task_dir / fit_policy.OUTPUT_DIR, fit_policy.run)
    eval_cfg = resolve_config(
        EvalConfig, task=DEMO_TASK, recipes=recipes, flags=flags, overrides=stage_sets[EvalConfig]
    )
    stage("eval", eval_cfg, evaluate.output_dir(eval_cfg, task_dir, policy.id), evaluate.run)
    return steps


def _sets_per_stage(sets: Sequence[str], stages: Sequence[type]) -> dict[type, list[str]]:
    """Each ``--set key=value`` goes to every stage whose config has ``key`` (at least one must)."""
    from dataclasses import fields

    from wmpo_cli.config.recipes import parse_set_option

    out: dict[type, list[str]] = {cls: [] for cls in stages}
    for item in sets:
        key, _ = parse_set_option(item)
        owners = [cls for cls in stages if key in {f.name for f in fields(cls)}]
        if not owners:
            raise ConfigError(f"--set: no demo stage has the key '{key}'")
        for cls in owners:
            out[cls].append(item)
    return out


def _summary(step: dict[str, Any]) -> str:
    m = step["metrics"]
    if step["stage"] == "fit-policy":
        accuracy = m.get("val_token_accuracy")
        shown = "n/a" if accuracy is None else f"{accuracy:.3f}"
        return f"{m.get('steps')} steps in {m.get('wall_s', 0):.0f} s, val token accuracy {shown}"
    if step["stage"] == "eval":
        lo, hi = m.get("wilson_95", [0.0, 0.0])
        rate = m.get("success_rate", 0)
        return f"success {m.get('successes')}/{m.get('episodes')} ({rate:.0%}, 95% CI {lo:.0%}-{hi:.0%})"
    return f"{m.get('episodes')} episodes, success {m.get('success_rate', 0):.0%}"


def render(run_dir: Path, steps: list[dict[str, Any]]) -> Table:
    table = Table(title=f"wmpo demo: artifacts under {run_dir}", title_justify="left")
    for column in ("stage", "task", "artifact", "result"):
        table.add_column(column, overflow="fold")
    for step in steps:
        table.add_row(step["stage"], step["task"], step["path"], _summary(step))
    return table
