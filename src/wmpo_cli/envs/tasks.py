"""Task registry: names, variants, horizons and the factories for envs and scripted experts.

This module must stay import-light (no robosuite, no mujoco): the CLI imports it to validate task
names and print ``--help``. The simulation modules are imported inside :func:`make_env` and
:func:`make_expert` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wmpo_cli.errors import UnknownTaskError

if TYPE_CHECKING:
    from wmpo_cli.envs.experts import ScriptedExpert
    from wmpo_cli.envs.sim import SimEnv


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one task.

    Attributes:
        name: registry key ("lift", "stack_three").
        instruction: language instruction given to the policy (WMPO uses the bare task name for
            the MimicGen tasks).
        horizon: step limit for data collection (MimicGen's evaluation horizon).
        max_steps: step limit for policy rollouts (WMPO's evaluation limit).
        variants: initial-state distributions ("D0" is the training one).
        scenarios: evaluation scenarios ("default" is the unmodified task).
        cameras: image cameras a dataset may contain.
        default_cameras: cameras recorded when the user names none.
        wide_camera_variants: variants whose ``agentview`` uses MimicGen's wider ``agentview_full`` pose.
    """

    name: str
    instruction: str
    horizon: int
    max_steps: int
    variants: tuple[str, ...]
    scenarios: tuple[str, ...]
    cameras: tuple[str, ...]
    default_cameras: tuple[str, ...]
    wide_camera_variants: tuple[str, ...] = ()


_CAMERAS = ("agentview", "robot0_eye_in_hand")

TASKS: dict[str, TaskSpec] = {
    "lift": TaskSpec(
        name="lift",
        instruction="pick up the cube",
        horizon=200,
        max_steps=160,
        variants=("D0",),
        scenarios=("default",),
        cameras=_CAMERAS,
        default_cameras=("agentview",),
    ),
    "stack_three": TaskSpec(
        name="stack_three",
        instruction="stack_three",
        horizon=400,
        max_steps=320,
        variants=("D0", "D1"),
        scenarios=("default",),
        cameras=_CAMERAS,
        default_cameras=("agentview",),
        wide_camera_variants=("D1",),
    ),
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; raises ``UnknownTaskError`` listing the known names."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def check_variant(task: TaskSpec, variant: str) -> None:
    """Raise ``UnknownTaskError`` unless ``variant`` is one of the task's variants."""
    if variant not in task.variants:
        raise UnknownTaskError(f"unknown variant {variant!r} for task {task.name!r}; known: {', '.join(task.variants)}")


def check_scenario(task: TaskSpec, scenario: str) -> None:
    """Raise ``UnknownTaskError`` unless ``scenario`` is one of the task's scenarios."""
    if scenario not in task.scenarios:
        raise UnknownTaskError(
            f"unknown scenario {scenario!r} for task {task.name!r}; known: {', '.join(task.scenarios)}"
        )


def check_cameras(task: TaskSpec, cameras: tuple[str, ...]) -> None:
    """Raise ``UnknownTaskError`` if any camera is not available for the task."""
    unknown = [c for c in cameras if c not in task.cameras]
    if unknown:
        raise UnknownTaskError(
            f"unknown camera(s) {', '.join(map(repr, unknown))} for task {task.name!r}; "
            f"known: {', '.join(task.cameras)}"
        )


def make_env(
    task: str,
    variant: str = "D0",
    scenario: str = "default",
    *,
    cameras: tuple[str, ...] = (),
    image_size: int = 64,
) -> SimEnv:
    """Build the simulation wrapper for ``task``/``variant``/``scenario``.

    ``cameras`` lists the cameras :meth:`SimEnv.render` will be asked for; with none, no offscreen
    renderer (GL context) is created, which keeps physics-only workers cheap.
    """
    spec = get_task(task)
    check_variant(spec, variant)
    check_scenario(spec, scenario)
    check_cameras(spec, tuple(cameras))
    from wmpo_cli.envs.sim import SimEnv

    return SimEnv(spec, variant=variant, scenario=scenario, cameras=tuple(cameras), image_size=image_size)


def make_expert(task: str, noise: float = 0.0) -> ScriptedExpert:
    """Scripted expert for ``task``; ``noise`` is the std of Gaussian noise on the 6 arm action dims."""
    spec = get_task(task)
    from wmpo_cli.envs.experts import LiftExpert, StackThreeExpert

    if spec.name == "lift":
        return LiftExpert(noise=noise)
    return StackThreeExpert(noise=noise)
