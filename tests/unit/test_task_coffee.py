"""Coffee task: model, placement per variant, success test on hand-set states, scenario, expert."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from wmpo_cli.envs.tasks import get_task, make_env, make_expert

OBJECTS = {"coffee_pod", "coffee_machine", "pod_holder", "lid"}
SEAT_Z = -0.016 + 0.0231  # pod centre above the holder centre when resting on the floor


@pytest.fixture(scope="module")
def coffee_env() -> Iterator:
    env = make_env("coffee", "D0")
    yield env
    env.close()


def _yaw(rot: np.ndarray) -> float:
    return math.atan2(rot[1, 0], rot[0, 0])


def _set_scene(env, pod_rel: tuple[float, float, float], lid: float) -> None:
    """Put the pod at ``pod_rel`` (holder frame) upright and the lid at ``lid`` rad; no stepping."""
    raw = env.raw
    holder = env.object_poses()["pod_holder"]
    qpos = np.array(raw.sim.data.get_joint_qpos(raw.coffee_pod.joints[0]))
    qpos[:3] = holder[:3, 3] + holder[:3, :3] @ np.array(pod_rel)
    qpos[3:] = (1.0, 0.0, 0.0, 0.0)
    raw.sim.data.set_joint_qpos(raw.coffee_pod.joints[0], qpos)
    raw.sim.data.qpos[raw.lid_qpos_addr] = lid
    env.restore(env.get_state())


def test_bad_variant_or_scenario_is_refused() -> None:
    from wmpo_cli.envs.coffee import Coffee

    with pytest.raises(ValueError, match="D0, D1, D2"):
        Coffee(variant="D3")
    with pytest.raises(ValueError, match="default, disrupted"):
        Coffee(scenario="night")


@pytest.mark.sim
def test_model_geometry_and_hinge_in_radians(coffee_env) -> None:
    import mujoco

    model = coffee_env.raw.sim.model
    joint = model.joint_name2id("coffee_machine_lid_main_joint0")
    # MJCF angles would be degrees without robosuite's <compiler angle="radian">: 2π/3 must stay 2.094.
    np.testing.assert_allclose(model.jnt_range[joint], [0.0, 2.0 * math.pi / 3.0])
    pod = model.geom_name2id("coffee_pod_g0")
    np.testing.assert_allclose(model.geom_size[pod][:2], [0.0243, 0.0231])
    assert model.geom_margin[pod] == 0.0  # robosuite's 1 mm cylinder margin would block the holder
    walls = [n for n in (model.geom_id2name(i) for i in range(model.ngeom)) if n and "pod_holder_wall_" in n]
    assert len([n for n in walls if not n.endswith("_vis")]) == 32
    # Primitives only: no geom of the machine or the pod is a mesh.
    coffee_geoms = [i for i in range(model.ngeom) if (model.geom_id2name(i) or "").startswith("coffee")]
    assert len(coffee_geoms) > 70
    assert all(model.geom_type[i] != mujoco.mjtGeom.mjGEOM_MESH for i in coffee_geoms)


@pytest.mark.sim
@pytest.mark.parametrize("variant", ["D0", "D1", "D2"])
@pytest.mark.parametrize("scenario", ["default", "disrupted"])
def test_variants_reset_and_step(variant: str, scenario: str) -> None:
    from wmpo_cli.envs.coffee import LID_OPEN_ANGLE, PLACEMENTS

    env = make_env("coffee", variant, scenario)
    try:
        assert env.raw.horizon == get_task("coffee").horizon_for(variant)
        for seed in (0, 7):
            env.reset(seed)
            assert set(env.raw.object_body_ids()) == OBJECTS
            assert env.subtask_signals() == {"grasp": False}
            assert env.raw.hinge_angle() == pytest.approx(LID_OPEN_ANGLE)
            assert not env.is_success()
            poses = env.object_poses()
            (mx, my, myaw), (px, py) = PLACEMENTS[variant]["machine"], PLACEMENTS[variant]["pod"]
            machine, pod = poses["coffee_machine"], poses["coffee_pod"]
            assert min(mx) - 1e-6 <= machine[0, 3] <= max(mx) + 1e-6
            assert min(my) - 1e-6 <= machine[1, 3] <= max(my) + 1e-6
            assert machine[2, 3] == pytest.approx(0.8 + 0.1105)
            yaws = np.atleast_1d(myaw)
            yaw = _yaw(machine[:3, :3])
            yaw = min(yaws) + (yaw - min(yaws)) % (2 * math.pi)  # unwrap into the sampled range
            assert min(yaws) - 1e-6 <= yaw <= max(yaws) + 1e-6
            assert min(px) <= pod[0, 3] <= max(px) and min(py) <= pod[1, 3] <= max(py)
            assert _yaw(pod[:3, :3]) == pytest.approx(0.0, abs=1e-9)
        state = env.get_state()
        env.reset(7)
        np.testing.assert_array_equal(env.get_state(), state)  # resets depend only on the seed
        env.step(np.zeros(7))
    finally:
        env.close()


@pytest.mark.sim
def test_success_on_hand_set_states(coffee_env) -> None:
    env, raw = coffee_env, coffee_env.raw
    env.reset(0)
    _set_scene(env, (0.0, 0.0, SEAT_Z), 0.0)
    assert raw.pod_in_holder() and raw.lid_closed() and env.is_success()
    assert raw.reward() == 1.0
    # Near misses: lid at 17°, pod 6 mm off-centre, pod under an open lid, pod on the table.
    _set_scene(env, (0.0, 0.0, SEAT_Z), math.radians(17.0))
    assert not env.is_success()
    _set_scene(env, (0.006, 0.0, SEAT_Z), 0.0)
    assert not env.is_success()
    _set_scene(env, (0.0, 0.0, SEAT_Z), 2.0)
    assert raw.pod_in_holder() and not env.is_success()
    env.reset(0)
    raw.sim.data.qpos[raw.lid_qpos_addr] = 0.0
    env.restore(env.get_state())
    assert raw.lid_closed() and not env.is_success()


@pytest.mark.sim
def test_dropped_pod_seats_and_lid_falls_shut(coffee_env) -> None:
    """Physics check: a pod let go 2 mm off-centre above the rim drops in; a lid past vertical closes."""
    env, raw = coffee_env, coffee_env.raw
    env.reset(1)
    _set_scene(env, (0.002, 0.0, 0.028 + 0.005 + 0.0231), 2.0)
    for _ in range(25):
        env.step(np.zeros(7))
    holder = env.object_poses()["pod_holder"]
    rel = holder[:3, :3].T @ (env.object_poses()["coffee_pod"][:3, 3] - holder[:3, 3])
    assert abs(rel[2] - SEAT_Z) < 0.001 and np.linalg.norm(rel[:2]) < 0.002  # on the floor, centred
    assert env.raw.sim.model.opt.enableflags & 16  # mjENBL_MULTICCD keeps the pod from sinking in
    raw.sim.data.qpos[raw.lid_qpos_addr] = 1.2  # just past vertical: gravity closes it
    env.restore(env.get_state())
    for _ in range(20):
        env.step(np.zeros(7))
    assert raw.hinge_angle() < math.radians(2.0)
    assert env.is_success()


@pytest.mark.sim
def test_disrupted_only_recolours_the_body() -> None:
    from wmpo_cli.envs.coffee import CREAM_RGBA, DARK_RGBA

    default, disrupted = make_env("coffee", "D0", "default"), make_env("coffee", "D0", "disrupted")
    try:
        colours = []
        for env in (default, disrupted):
            model = env.raw.sim.model
            for name in ("coffee_machine_body_vis", "coffee_machine_base_vis"):
                colours.append(tuple(model.mat_rgba[model.geom_matid[model.geom_name2id(name)]]))
        np.testing.assert_allclose(colours[:2], [DARK_RGBA] * 2, atol=1e-6)
        np.testing.assert_allclose(colours[2:], [CREAM_RGBA] * 2, atol=1e-6)
        m0, m1 = default.raw.sim.model, disrupted.raw.sim.model
        for field in ("geom_size", "geom_pos", "geom_friction", "body_mass", "jnt_range", "geom_contype"):
            np.testing.assert_array_equal(getattr(m0, field), getattr(m1, field))
        default.reset(3)
        disrupted.reset(3)
        np.testing.assert_array_equal(default.get_state(), disrupted.get_state())
        for env in (default, disrupted):
            for _ in range(5):
                env.step(np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.0, 1.0]))
        np.testing.assert_array_equal(default.get_state(), disrupted.get_state())
    finally:
        default.close()
        disrupted.close()


@pytest.mark.sim
def test_expert_solves_d0(coffee_env) -> None:
    from wmpo_cli.envs.rollout import run_expert_episode

    expert = make_expert("coffee")
    for seed in (0, 1):
        record = run_expert_episode(coffee_env, expert, seed, get_task("coffee").horizon_for("D0"))
        assert record.success, expert.log
        assert record.success_flags[-10:].all()
        assert len(record) < 300
