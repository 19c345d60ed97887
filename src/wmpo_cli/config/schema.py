"""One frozen dataclass per stage: the complete, typed description of what a stage run does.

A resolved config is written to ``config.json`` beside the stage's output and hashed into the
manifest, so two runs with equal configs produce the same artifact id. Fields listed in a
config's ``EXECUTION_ONLY`` tuple change how fast a run goes, never what it writes (for example
the number of worker processes), so they are left out of the hash and of resume checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class CollectConfig:
    """`wmpo collect`: scripted-expert demonstrations for one task/variant/scenario."""

    task: str = "lift"
    variant: str = "D0"
    scenario: str = "default"
    # "expert" (scripted), or "mimicgen" (generated from the demos in source_path).
    source: str = "expert"
    # --from: source demos for "mimicgen" (an episodes artifact dir or any robomimic-layout HDF5).
    source_path: str = ""
    episodes: int = 50
    seed: int = 0
    # 0 = one worker process per CPU core.
    workers: int = 0
    image_size: int = 84
    # Cameras rendered into obs/<camera>_image; an empty list gives a low-dim (state-only) dataset.
    cameras: tuple[str, ...] = ("agentview",)
    # Std of Gaussian noise on the 6 arm action dims; > 0 produces labelled failures on purpose.
    expert_noise: float = 0.0
    successes_only: bool = False
    # With --successes-only: give up after this many attempts (0 = 10 x episodes).
    max_attempts: int = 0
    # 0 = the task's collection horizon from the registry.
    horizon: int = 0
    # An episode ends once this many consecutive frames show success (so the frames show it).
    hold_steps: int = 10
    valid_fraction: float = 0.1
    # gzip level for image datasets (0 = uncompressed); robomimic readers accept any level.
    compression: int = 4
    # Frames that come back blank or garbled from the offscreen renderer are re-rendered up to this often.
    render_retries: int = 3
    # --init-states N: write a fixed set of N initial states (no episodes) instead of demos.
    init_states: int = 0
    # --init-state-set PATH: start episode i from state i mod N of a set instead of a seeded reset.
    init_state_set: str = ""
    # MimicGen generation: action noise std on the arm dims and interpolation poses per segment.
    generation_noise: float = 0.05
    interpolation_steps: int = 5

    STAGE: ClassVar[str] = "collect"
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("workers",)


STAGE_CONFIGS: dict[str, type] = {"collect": CollectConfig}
