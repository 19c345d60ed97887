"""Task registry: names, variants, horizons and the factories for envs and scripted experts.

This module must stay import-light (no robosuite, no mujoco): the CLI imports it to validate task
names and print ``--help``. The simulation modules are imported inside :func:`make_env` and
:func:`make_expert` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wmpo_cli.errors import UnknownTaskError

if TYPE_CHECKING:
    from wmpo_cli.envs.experts import ScriptedExpert
    from wmpo_cli.envs.sim import SimEnv


# Every task's own scripted expert; some tasks offer others (TaskSpec.other_experts).
DEFAULT_EXPERT = "scripted"


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
        env_class: "module:Class" of the robosuite env (imported lazily, so this module stays light).
        expert_class: "module:Class" of the default scripted expert (named ``scripted``).
        other_experts: (name, "module:Class") of further experts ``wmpo collect --expert`` offers.
        scenario_notes: one line per scenario saying what it changes (shown by ``wmpo tasks``).
        variant_horizons: per-variant overrides of ``horizon`` (MimicGen's wider variants are longer).
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
    env_class: str = ""
    expert_class: str = ""
    other_experts: tuple[tuple[str, str], ...] = ()
    scenario_notes: tuple[tuple[str, str], ...] = ()
    variant_horizons: tuple[tuple[str, int], ...] = ()

    @property
    def expert_names(self) -> tuple[str, ...]:
        """Names ``wmpo collect --expert`` accepts for this task (``scripted`` first)."""
        return (DEFAULT_EXPERT, *(name for name, _ in self.other_experts))

    def expert_class_for(self, name: str) -> str:
        """ "module:Class" of the expert called ``name``; raises ``UnknownTaskError`` if there is none."""
        classes = {DEFAULT_EXPERT: self.expert_class, **dict(self.other_experts)}
        if name not in classes:
            raise UnknownTaskError(
                f"unknown expert {name!r} for task {self.name!r}; known: {', '.join(self.expert_names)}"
            )
        return classes[name]

    def horizon_for(self, variant: str) -> int:
        """Collection step limit of ``variant``."""
        return dict(self.variant_horizons).get(variant, self.horizon)

    @property
    def env_name(self) -> str:
        """Class name of the robosuite env (robomimic's ``env_name``)."""
        return self.env_class.rpartition(":")[2]


_CAMERAS = ("agentview", "robot0_eye_in_hand")

_DEFAULT = ("default", "as defined")
_SCENARIOS = ("default", "disrupted")
_VARIANTS = ("D0", "D1", "D2")

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
        env_class="wmpo_cli.envs.lift:FixedCubeLift",
        expert_class="wmpo_cli.envs.experts.lift:LiftExpert",
        scenario_notes=(_DEFAULT,),
    ),
    "stack_three": TaskSpec(
        name="stack_three",
        instruction="stack_three",
        horizon=400,
        max_steps=320,
        variants=("D0", "D1"),
        scenarios=_SCENARIOS,
        cameras=_CAMERAS,
        default_cameras=("agentview",),
        wide_camera_variants=("D1",),
        env_class="wmpo_cli.envs.stack_three:StackThree",
        expert_class="wmpo_cli.envs.experts.stack_three:StackThreeExpert",
        # Memoryless (every action a function of the current frame's state): what a single-frame
        # policy can imitate; the scripted expert's history-dependent phases cannot be cloned.
        other_experts=(("reactive", "wmpo_cli.envs.experts.stack_three:StackThreeReactiveExpert"),),
        scenario_notes=(_DEFAULT, ("disrupted", "grey table top")),
    ),
    "square": TaskSpec(
        name="square",
        instruction="Insert the square into the stick",
        horizon=400,
        max_steps=184,
        variants=_VARIANTS,
        scenarios=_SCENARIOS,
        cameras=_CAMERAS,
        default_cameras=("agentview",),
        wide_camera_variants=("D2",),
        env_class="wmpo_cli.envs.square:Square",
        expert_class="wmpo_cli.envs.experts.square:SquareExpert",
        scenario_notes=(_DEFAULT, ("disrupted", "peg shifted by U(-4, 0) cm in y")),
    ),
    "three_piece_assembly": TaskSpec(
        name="three_piece_assembly",
        instruction="three_piece_assembly",
        horizon=500,
        max_steps=384,
        variants=_VARIANTS,
        scenarios=_SCENARIOS,
        cameras=_CAMERAS,
        default_cameras=("agentview",),
        wide_camera_variants=_VARIANTS,
        env_class="wmpo_cli.envs.three_piece_assembly:ThreePieceAssembly",
        expert_class="wmpo_cli.envs.experts.three_piece_assembly:ThreePieceAssemblyExpert",
        scenario_notes=(_DEFAULT, ("disrupted", "dark base")),
        variant_horizons=(("D1", 700), ("D2", 700)),
    ),
    "coffee": TaskSpec(
        name="coffee",
        instruction="coffee",
        horizon=400,
        max_steps=256,
        variants=_VARIANTS,
        scenarios=_SCENARIOS,
        cameras=_CAMERAS,
        default_cameras=("agentview",),
        env_class="wmpo_cli.envs.coffee:Coffee",
        expert_class="wmpo_cli.envs.experts.coffee:CoffeeExpert",
        scenario_notes=(_DEFAULT, ("disrupted", "cream machine body")),
        variant_horizons=(("D1", 550), ("D2", 550)),
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


_ENV_CACHE: dict[tuple[Any, ...], SimEnv] = {}


def cached_env(
    task: str, variant: str, scenario: str, *, cameras: tuple[str, ...] = (), image_size: int = 64
) -> SimEnv:
    """One simulator per worker process and setting (building one costs ~1-2 s), shared by every stage."""
    key = (task, variant, scenario, tuple(cameras), int(image_size))
    if key not in _ENV_CACHE:
        _ENV_CACHE[key] = make_env(task, variant, scenario, cameras=cameras, image_size=image_size)
    return _ENV_CACHE[key]


def make_expert(task: str, noise: float = 0.0, expert: str = DEFAULT_EXPERT) -> ScriptedExpert:
    """The expert called ``expert`` for ``task``; ``noise`` is the std of Gaussian noise on the 6 arm dims."""
    spec = get_task(task)
    expert_cls = load_class(spec.expert_class_for(expert))
    return expert_cls(noise=noise)


def load_class(path: str) -> type:
    """Import ``"package.module:Class"``."""
    import importlib

    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
