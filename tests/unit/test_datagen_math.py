"""MimicGen-style generation math: segmentation, boundary offsets, pose transforms, interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wmpo_cli.datagen.generator import interpolate_poses, pose_distance, shifted_boundaries
from wmpo_cli.datagen.source import subtask_boundaries, target_poses
from wmpo_cli.datagen.specs import DATAGEN_SPECS, DatagenSpec, Subtask, datagen_spec
from wmpo_cli.envs.experts.base import rotation_matrix
from wmpo_cli.envs.tasks import TASKS
from wmpo_cli.errors import UsageError

TWO_STEP = DatagenSpec(
    subtasks=(Subtask("a", "grasp"), Subtask("b", "place"), Subtask("a", None)),
    boundary_offset=(0, 0),
    selection="random",
)


def _signal(length: int, ones: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(length, dtype=bool)
    for start, end in ones:
        out[start:end] = True
    return out


def test_boundaries_end_one_step_after_each_rising_edge() -> None:
    signals = {"grasp": _signal(20, [(4, 12)]), "place": _signal(20, [(9, 20)])}
    # grasp rises at 4 -> ends at 5; place rises at 9 (after 5) -> ends at 10.
    assert subtask_boundaries(signals, TWO_STEP) == (5, 10)


def test_boundaries_need_a_rising_edge_after_the_previous_boundary() -> None:
    # "place" is already true when the second segment starts: it must fall and rise again.
    signals = {"grasp": _signal(20, [(2, 6)]), "place": _signal(20, [(0, 5), (14, 20)])}
    assert subtask_boundaries(signals, TWO_STEP) == (3, 15)
    # A signal that never rises cannot be segmented.
    assert subtask_boundaries({"grasp": _signal(20, [(0, 20)]), "place": _signal(20, [])}, TWO_STEP) is None
    # A boundary at the very end would leave the final segment empty.
    assert subtask_boundaries({"grasp": _signal(8, [(2, 8)]), "place": _signal(8, [(7, 8)])}, TWO_STEP) is None


def test_shifted_boundaries_stay_ordered_and_leave_every_segment_non_empty() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        out = shifted_boundaries((3, 5), 9, (10, 20), rng)
        assert out == [7, 8]  # pushed as far as allowed: segments [0,7) [7,8) [8,9)
    out = shifted_boundaries((10, 30), 100, (5, 5), rng)
    assert out == [15, 35]


def test_target_poses_follow_the_osc_pose_action_convention() -> None:
    eef = np.tile(np.eye(4), (2, 1, 1))
    eef[:, :3, 3] = [0.1, 0.2, 1.0]
    actions = np.array([[1.0, -0.5, 0.0, 0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]])
    targets = target_poses(eef, actions)
    np.testing.assert_allclose(targets[0, :3, 3], [0.15, 0.175, 1.0])
    np.testing.assert_allclose(targets[1, :3, 3], [0.15, 0.2, 1.0])  # clipped to 1 unit = 5 cm
    np.testing.assert_allclose(targets[0, :3, :3], rotation_matrix(np.array([0.0, 0.0, 0.5])), atol=1e-12)
    np.testing.assert_allclose(targets[1, :3, :3], np.eye(3))


def test_object_relative_transform_moves_a_grasp_with_its_object() -> None:
    # A grasp 3 cm above an object, the object then yawed 90 degrees and moved: the transformed
    # grasp must keep its pose relative to the object.
    obj_src = np.eye(4)
    obj_src[:3, 3] = [0.1, 0.0, 0.8]
    grasp = np.eye(4)
    grasp[:3, 3] = [0.1, 0.0, 0.83]
    obj_now = np.eye(4)
    obj_now[:3, :3] = rotation_matrix(np.array([0.0, 0.0, math.pi / 2]))
    obj_now[:3, 3] = [-0.05, 0.2, 0.8]
    moved = obj_now @ np.linalg.inv(obj_src) @ grasp
    np.testing.assert_allclose(moved[:3, 3], [-0.05, 0.2, 0.83], atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(obj_now) @ moved, np.linalg.inv(obj_src) @ grasp, atol=1e-12)


def test_interpolation_is_strictly_between_the_end_poses() -> None:
    start, end = np.eye(4), np.eye(4)
    end[:3, 3] = [0.4, 0.0, -0.2]
    end[:3, :3] = rotation_matrix(np.array([0.0, 0.0, 0.6]))
    poses = interpolate_poses(start, end, 5)
    assert len(poses) == 5
    np.testing.assert_allclose(poses[2][:3, 3], [0.2, 0.0, -0.1])  # alpha = 3/6
    np.testing.assert_allclose(poses[2][:3, :3], rotation_matrix(np.array([0.0, 0.0, 0.3])), atol=1e-12)
    np.testing.assert_allclose(poses[0][:3, 3], [0.4 / 6, 0.0, -0.2 / 6])
    assert interpolate_poses(start, end, 0) == []


def test_pose_distance_adds_metres_and_radians() -> None:
    a, b = np.eye(4), np.eye(4)
    b[:3, 3] = [0.3, 0.4, 0.0]
    b[:3, :3] = rotation_matrix(np.array([0.0, 0.0, 0.25]))
    assert pose_distance(a, b) == pytest.approx(0.5 + 0.25)


def test_every_task_has_a_datagen_spec_matching_the_reference() -> None:
    assert set(DATAGEN_SPECS) == set(TASKS)
    stack = datagen_spec("stack_three")
    assert [(s.object, s.end_signal) for s in stack.subtasks] == [
        ("cubeA", "grasp_1"),
        ("cubeB", "stack_1"),
        ("cubeC", "grasp_2"),
        ("cubeA", None),
    ]
    assert (stack.boundary_offset, stack.selection, stack.select_per_subtask) == ((10, 20), "nearest_object", True)
    square = datagen_spec("square")
    assert (square.signals, square.selection, square.select_per_subtask) == (("grasp",), "nearest_object", False)
    assert datagen_spec("coffee").boundary_offset == (5, 10)
    assembly = datagen_spec("three_piece_assembly")
    assert assembly.signals == ("grasp_1", "insert_1", "grasp_2")
    assert (assembly.selection, assembly.select_per_subtask) == ("nearest_object", False)
    with pytest.raises(UsageError, match="no MimicGen subtask spec for task 'nope'"):
        datagen_spec("nope")
