"""ThreePieceAssembly: piece geometry, variants/scenarios, the success test and the scripted expert."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytest

from wmpo_cli.envs.tasks import make_env, make_expert

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv

TASK = "three_piece_assembly"
OBJECTS = {"piece_1", "piece_2", "base"}
SIGNALS = {"grasp_1", "insert_1", "grasp_2"}


# ------------------------------------------------------------------------------ pure geometry


def test_box_pattern_merge_is_exact_and_small() -> None:
    from wmpo_cli.envs.three_piece_assembly import (
        BASE_PATTERN,
        PIECE_1_PATTERN,
        PIECE_2_PATTERN,
        merge_box_pattern,
    )

    for pattern, max_boxes in ((PIECE_1_PATTERN, 2), (PIECE_2_PATTERN, 4), (BASE_PATTERN, 4)):
        boxes = merge_box_pattern(pattern)
        assert len(boxes) <= max_boxes
        cover = np.zeros((len(pattern[0]), len(pattern[0][0]), len(pattern)), dtype=int)  # x, y, z
        for (i, j, k), (ex, ey, ez) in boxes:
            cover[i : i + ex, j : j + ey, k : k + ez] += 1
        filled = np.transpose(np.array(pattern, dtype=bool), (1, 2, 0)).astype(int)
        np.testing.assert_array_equal(cover, filled)  # every filled cell exactly once, nothing else


# ------------------------------------------------------------------------------ sim fixtures


@pytest.fixture(scope="module")
def env_d0() -> Iterator[SimEnv]:
    env = make_env(TASK, "D0")
    yield env
    env.close()


def _set_piece(env: SimEnv, name: str, pos: tuple[float, float, float], yaw: float) -> None:
    raw = env.raw
    joint = getattr(raw, name).joints[0]
    raw.sim.data.set_joint_qpos(joint, np.array([*pos, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]))
    raw.sim.data.set_joint_qvel(joint, np.zeros(6))
    raw.sim.forward()


def _settle(env: SimEnv, steps: int = 30) -> None:
    for _ in range(steps):
        env.step(np.zeros(7))


@pytest.mark.sim
@pytest.mark.parametrize("variant", ["D0", "D1", "D2"])
def test_variants_build_reset_and_step(variant: str) -> None:
    with make_env(TASK, variant) as env:
        base_yaws = []
        for seed in (0, 1, 2):
            env.reset(seed)
            poses = env.object_poses()
            assert set(poses) == OBJECTS
            assert set(env.subtask_signals()) == SIGNALS
            assert not env.is_success()
            base = poses["base"]
            base_yaws.append(math.atan2(base[1, 0], base[0, 0]))
            for name in ("piece_1", "piece_2"):
                assert np.linalg.norm(poses[name][:2, 3] - base[:2, 3]) > 0.15  # sampled clear of the base
            if variant == "D0":
                np.testing.assert_allclose(base[:2, 3], 0.0, atol=1e-6)
        obs, reward = env.step(np.zeros(7))
        assert reward == 0.0 and "piece_1_pos" in obs
        if variant == "D2":
            assert all(abs(y) <= math.pi / 4 + 1e-6 for y in base_yaws) and np.ptp(base_yaws) > 0
        else:
            np.testing.assert_allclose(base_yaws, 0.0, atol=1e-6)
        # Resets depend only on the seed.
        first = env.reset(3)["piece_1_pos"]
        env.reset(4)
        np.testing.assert_array_equal(env.reset(3)["piece_1_pos"], first)


@pytest.mark.sim
def test_unknown_variant_and_scenario_are_refused() -> None:
    from wmpo_cli.envs.three_piece_assembly import ThreePieceAssembly

    with pytest.raises(ValueError, match="D0, D1, D2"):
        ThreePieceAssembly(variant="D3")
    with pytest.raises(ValueError, match="default, disrupted"):
        ThreePieceAssembly(scenario="dark")


@pytest.mark.sim
def test_solved_state_succeeds_and_near_misses_do_not(env_d0: SimEnv) -> None:
    env = env_d0
    env.reset(0)
    base = env.object_poses()["base"][:3, 3]
    bx, by = float(base[0]), float(base[1])
    # Solved: piece_1's plate on the table inside the hole, piece_2's legs on the base.
    _set_piece(env, "piece_1", (bx, by, 0.852), 0.0)
    _set_piece(env, "piece_2", (bx, by, 0.92), 0.0)
    _settle(env)
    poses = env.object_poses()
    # The geometry puts piece_2 0.019 above MimicGen's nominal base_z + 0.08 (inside its ±0.02).
    assert abs(poses["piece_2"][2, 3] - (poses["base"][2, 3] + 0.08)) == pytest.approx(0.019, abs=0.001)
    assert env.is_success()
    assert env.subtask_signals() == {"grasp_1": False, "insert_1": True, "grasp_2": False}
    assert env.raw.reward() == 1.0

    # Near miss: piece_2 turned 90° cannot straddle the ridge and rests on top of it.
    env.reset(0)
    _set_piece(env, "piece_1", (bx, by, 0.852), 0.0)
    _set_piece(env, "piece_2", (bx, by, 0.99), math.pi / 2)
    _settle(env)
    assert env.subtask_signals()["insert_1"]
    assert not env.is_success()

    # Near miss: piece_2 seated correctly but piece_1 is not in the base.
    env.reset(0)
    _set_piece(env, "piece_1", (bx + 0.25, by, 0.852), 0.0)
    _set_piece(env, "piece_2", (bx + 0.25, by, 0.881 + 0.068), 0.0)
    _settle(env)
    assert not env.subtask_signals()["insert_1"]
    assert not env.is_success()


@pytest.mark.sim
def test_disrupted_scenario_darkens_the_base_only() -> None:
    with make_env(TASK, "D0") as default, make_env(TASK, "D0", "disrupted") as disrupted:

        def base_material(env: SimEnv) -> np.ndarray:
            model = env.raw.sim.model
            matid = model.geom_matid[model.geom_name2id("base_g0_vis")]
            return np.array([*model.mat_rgba[matid], model.mat_specular[matid], model.mat_shininess[matid]])

        dark = base_material(disrupted)
        np.testing.assert_allclose(dark, [0.22, 0.18, 0.16, 1.0, 0.1, 0.05], atol=1e-6)
        assert base_material(default)[:3].min() == 1.0  # plain wood texture
        # Physics is identical: same masses, geoms and initial state for a seed.
        m0, m1 = default.raw.sim.model, disrupted.raw.sim.model
        np.testing.assert_array_equal(m0.body_mass, m1.body_mass)
        np.testing.assert_array_equal(m0.geom_size, m1.geom_size)
        default.reset(5)
        disrupted.reset(5)
        np.testing.assert_array_equal(default.get_state(), disrupted.get_state())


@pytest.mark.sim
def test_expert_solves_a_d0_episode(env_d0: SimEnv) -> None:
    from wmpo_cli.envs.rollout import run_expert_episode

    expert = make_expert(TASK)
    record = run_expert_episode(env_d0, expert, seed=0, horizon=500)
    assert record.success, expert.log
    assert len(record) < 400
