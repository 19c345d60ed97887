"""`wmpo collect`: expert, MimicGen-generated or policy episodes, or a fixed initial-state set."""

from __future__ import annotations

import typer

from wmpo_cli import console
from wmpo_cli.cli._common import run_dir_for


def collect(
    ctx: typer.Context,
    task: str | None = typer.Option(None, help="Task: lift, stack_three, square, three_piece_assembly, coffee."),
    variant: str | None = typer.Option(None, help="Task variant: D0, D1, D2 (`wmpo tasks` lists them)."),
    scenario: str | None = typer.Option(None, help="Scenario: default or disrupted."),
    source: str | None = typer.Option(
        None, help="Episode source: expert (scripted), mimicgen (needs --from) or policy (rollouts -> rollouts/)."
    ),
    source_path: str | None = typer.Option(
        None, "--from", help="Source demos for --source mimicgen: an episodes artifact or robomimic HDF5."
    ),
    init_states: int | None = typer.Option(
        None, "--init-states", help="Write a fixed set of N initial states (no episodes) to init_states/<set id>."
    ),
    init_state_set: str | None = typer.Option(
        None, "--init-state-set", help="Start episode i from state i mod N of this initial-state set."
    ),
    episodes: int | None = typer.Option(None, help="Episodes to keep (successes with --successes-only)."),
    workers: int | None = typer.Option(None, help="Worker processes (0 = one per core)."),
    image_size: int | None = typer.Option(None, help="Square frame size in pixels."),
    cameras: list[str] | None = typer.Option(None, help="Camera(s), repeatable: agentview, robot0_eye_in_hand."),
    expert: str | None = typer.Option(
        None, help="--source expert: which expert (scripted; stack_three also has reactive, `wmpo tasks`)."
    ),
    expert_noise: float | None = typer.Option(None, help="Std of action noise on the arm (labelled failures)."),
    successes_only: bool | None = typer.Option(None, "--successes-only", help="Keep successful episodes only."),
    policy: str | None = typer.Option(
        None, help="--source policy: the policy artifact (default <run>/policy); frames are what it sees."
    ),
    temperature: float | None = typer.Option(None, help="--source policy: sampling temperature (0 = greedy)."),
    record_size: int | None = typer.Option(
        None, help="--source policy: record frames at this size (0 = the policy's); it still sees its own."
    ),
    allow_task_mismatch: bool | None = typer.Option(
        None, "--allow-task-mismatch", help="--source policy: run a policy trained for another task."
    ),
    decoding: str | None = typer.Option(
        None, help="--source policy, greedy (--temperature 0): pick each token's argmax (default) or median bin."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a complete artifact / discard an interrupted one."),
) -> None:
    """Collect demonstrations or policy rollouts (the real budget), or an initial-state set."""
    from wmpo_cli.config import CollectConfig, resolve_config
    from wmpo_cli.pipeline import collect as stage

    opts = ctx.obj
    flags = {
        "task": task, "variant": variant, "scenario": scenario, "episodes": episodes, "workers": workers,
        "image_size": image_size, "cameras": tuple(cameras) if cameras else None,
        "expert": expert, "expert_noise": expert_noise, "successes_only": successes_only, "seed": opts.seed,
        "source": source, "source_path": source_path, "init_states": init_states,
        "init_state_set": init_state_set, "policy": policy, "temperature": temperature,
        "record_size": record_size, "allow_task_mismatch": allow_task_mismatch, "decoding": decoding,
    }  # fmt: skip
    cfg = resolve_config(CollectConfig, task=task, recipes=opts.recipes, flags=flags, overrides=opts.sets)
    manifest = stage.run(cfg, run_dir_for(opts, cfg.task), force=force)
    path = stage.output_dir(cfg, run_dir_for(opts, cfg.task))
    m = manifest.metrics
    if cfg.init_states:
        console.result(
            {"path": str(path), "id": manifest.id, "set_id": manifest.extra["init_state_set"], "metrics": m},
            f"[green]wrote[/green] initial-state set {manifest.extra['init_state_set']} "
            f"({m['init_states']} states) -> {path / 'init_states.hdf5'}",
        )
        return
    console.result(
        {"path": str(path), "id": manifest.id, "metrics": m},
        f"[green]collected[/green] {m['episodes']} {cfg.source} episodes of {cfg.task} {cfg.variant} "
        f"(success {m['successes']}/{m['episodes']}, {m['total_steps']} steps) -> {path / 'episodes.hdf5'}",
    )


def register(app: typer.Typer) -> None:
    app.command()(collect)
