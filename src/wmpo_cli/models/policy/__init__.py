"""The vision-language-action policy: :class:`VLAPolicy` and what it is built from."""

from wmpo_cli.models.policy.action_tokens import ActionTokenizer
from wmpo_cli.models.policy.config import VLAConfig
from wmpo_cli.models.policy.vla import ActOutput, PolicyLoadError, VLAPolicy

__all__ = ["ActOutput", "ActionTokenizer", "PolicyLoadError", "VLAConfig", "VLAPolicy"]
