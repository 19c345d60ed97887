"""`wmpo eval`: a policy's success rate in the simulator (episodes, eval.json, videos)."""

from __future__ import annotations

import typer

from wmpo_cli import console


def eval_(
    ctx: typer.Context,
    policy: str | None = typer.Option(None, help="Policy artifact (from `wmpo fit-policy`; default <run>/policy)."),
    task: str | None = typer.Option(None, help="Task to evaluate on (default: the policy's)."),
    variant: str | None = typer.Option(None, help="Task variant: D0, D1, D2."),
    scenario: str | None = typer.Option(None, help="Scenario: default or disrupted."),
    episodes: int | None = typer.Option(None, help="Number of evaluation episodes."),
    workers: int | None = typer.Option(None, help="Worker processes (0 = one per core)."),
    init_states: str | None = typer.Option(
        None, "--init-states", "--init-state-set", help="Start episode i from state i mod N of this set."
    ),
    temperature: float | None = typer.Option(None, help="0 = greedy (the paper's protocol); > 0 samples."),
    videos: int | None = typer.Option(None, help="Write videos of the first N episodes."),
    record_size: int | None = typer.Option(
        None, help="Record episodes and videos at this frame size (0 = the policy's; it still sees its own)."
    ),
    decoding: str | None = typer.Option(
        None, help="Greedy token choice: argmax (default, the paper's) or median (the median bin of each token)."
    ),
    allow_task_mismatch: bool | None = typer.Option(None, "--allow-task-mismatch", help="Run on another task."),
    force: bool = typer.Option(False, "--force", help="Replace a complete evaluation / discard an interrupted one."),
) -> None:
    """Evaluate a policy in the simulator: success rate with a 95 % interval, episodes and videos."""
    from wmpo_cli.config import EvalConfig, resolve_config
    from wmpo_cli.pipeline import eval as stage

    opts = ctx.obj
    flags = {
        "policy": policy, "task": task, "variant": variant, "scenario": scenario, "episodes": episodes,
        "workers": workers, "init_state_set": init_states, "temperature": temperature, "videos": videos,
        "allow_task_mismatch": allow_task_mismatch, "seed": opts.seed, "record_size": record_size,
        "decoding": decoding,
    }  # fmt: skip
    cfg = resolve_config(EvalConfig, task=task, recipes=opts.recipes, flags=flags, overrides=opts.sets)
    run_dir = stage.resolve_run_dir(cfg, opts.run_dir)
    manifest = stage.run(cfg, run_dir, force=force)
    m = manifest.metrics
    path = stage.output_dir(cfg, run_dir, m["policy_id"])
    low, high = m["wilson_95"]
    console.result(
        {"path": str(path), "id": manifest.id, "metrics": m},
        f"[green]evaluated[/green] {m['task']} {m['variant']} {m['scenario']}: success {m['successes']}/"
        f"{m['episodes']} = {m['success_rate']:.1%} (95 % CI {low:.1%}-{high:.1%}) -> {path / 'eval.json'}",
    )


def register(app: typer.Typer) -> None:
    app.command(name="eval")(eval_)
