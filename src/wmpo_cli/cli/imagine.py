"""`wmpo imagine`: imagined rollouts of a policy in the world model, or the world model's audit."""

from __future__ import annotations

import typer

from wmpo_cli import console
from wmpo_cli.cli._common import run_dir_for


def imagine(
    ctx: typer.Context,
    task: str | None = typer.Option(None, help="Task (selects the default run dir runs/<task>)."),
    world_model: str | None = typer.Option(None, help="World-model artifact (default: <run>/world_model)."),
    policy: str | None = typer.Option(None, help="Policy artifact for imagination (default: <run>/policy)."),
    source: str | None = typer.Option(
        None, "--from", help="Real episodes (default <run>/demos): held out ones for --audit, first frames otherwise."
    ),
    init_states: str | None = typer.Option(
        None, "--init-states", help="Start imagination from this initial-state set, rendered (instead of --from)."
    ),
    audit: bool = typer.Option(False, "--audit", help="Replay real action chunks open-loop and score the frames."),
    rollouts: int | None = typer.Option(None, help="Imagined rollouts (one per real first frame)."),
    chunks: int | None = typer.Option(None, help="Policy chunks per rollout (0 = the task's max_steps / chunk)."),
    temperature: float | None = typer.Option(None, help="Policy sampling temperature (0 = greedy)."),
    sample_steps: int | None = typer.Option(None, help="World-model Euler steps (0 = the model's own)."),
    force: bool = typer.Option(False, "--force", help="Replace a finished result instead of refusing."),
) -> None:
    """Imagine policy rollouts from real first frames, or with --audit measure the world model."""
    from wmpo_cli.config import ImagineConfig, resolve_config
    from wmpo_cli.pipeline import imagine as stage

    opts = ctx.obj
    flags = {
        "task": task, "world_model": world_model, "policy": policy, "source": source, "init_state_set": init_states,
        "audit": audit or None,
        "rollouts": rollouts, "chunks": chunks, "temperature": temperature, "sample_steps": sample_steps,
        "seed": opts.seed,
    }  # fmt: skip
    cfg = resolve_config(ImagineConfig, task=task, recipes=opts.recipes, flags=flags, overrides=opts.sets)
    run_dir = run_dir_for(opts, cfg.task or "lift")
    if cfg.audit:
        manifest = stage.run_audit(cfg, run_dir, force=force)
        path = run_dir / stage.OUTPUT_DIR / f"audit-{manifest.inputs[0].id}"
        report = stage.read_audit(path)
        console.result({"path": str(path), "id": manifest.id, "audit": report}, stage.audit_table(report))
        return
    manifest = stage.run_imagine(cfg, run_dir, force=force)
    m = manifest.metrics
    path = run_dir / stage.OUTPUT_DIR / f"{manifest.inputs[1].id}-{manifest.inputs[0].id}"
    console.result(
        {"path": str(path), "id": manifest.id, "metrics": m},
        f"[green]imagined[/green] {m['rollouts']} rollouts x {m['chunks']} chunks in {m['wall_s']:.0f} s"
        f" ({m['imagined_steps_per_s']} imagined steps/s) -> {path}",
    )


def register(app: typer.Typer) -> None:
    app.command(name="imagine")(imagine)
