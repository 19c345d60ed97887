"""Scripted experts that solve the tasks from privileged object state (one module per task).

Shared math, gripper geometry and motion primitives live in :mod:`wmpo_cli.envs.experts.base`;
each task module holds one expert class, named in the task registry (``TaskSpec.expert_class``).
"""

from wmpo_cli.envs.experts.base import ScriptedExpert, ScriptExpertBase

__all__ = ["ScriptExpertBase", "ScriptedExpert"]
