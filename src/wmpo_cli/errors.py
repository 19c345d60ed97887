"""Error classes that map to exit codes and a one-line hint.

Every failure a user can cause (bad flags, missing or corrupt artifacts, a run dir that already
holds a finished artifact) raises a ``WmpoError`` subclass. The CLI catches it, prints
``error: <message>`` plus ``hint: <hint>`` on one line each and exits with ``exit_code``; no
traceback, and the artifact on disk is left as it was.
"""

from __future__ import annotations


class WmpoError(Exception):
    """Base class: a user-facing error with an exit code and an optional hint."""

    exit_code: int = 1
    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint


class UsageError(WmpoError):
    """Bad command-line input (unknown task, bad number, malformed --set)."""

    exit_code = 2
    default_hint = "run the command with --help to see the accepted values"


class ConfigError(UsageError):
    """A recipe or --set key/value that does not fit the stage's config."""

    default_hint = "`wmpo recipes` lists the recipe blocks and every key a stage accepts"


class UnknownTaskError(UsageError):
    """A task or variant name that is not in the registry."""

    default_hint = "`wmpo recipes` and the README list the tasks and their variants"


class ArtifactError(WmpoError):
    """An input artifact that is missing, incomplete, of the wrong kind, or corrupt."""

    exit_code = 3
    default_hint = "`wmpo inspect PATH --verify` shows what is wrong with an artifact"


class ArtifactExistsError(WmpoError):
    """A complete artifact is already where the stage would write (refused without --force)."""

    exit_code = 4
    default_hint = "pass --force to replace it, or choose another --run-dir"


class ConfigChangedError(WmpoError):
    """Resume refused: the resolved config differs from the partial artifact's config."""

    exit_code = 4
    default_hint = "re-run with the original settings to resume, or pass --force to start fresh"


class RunDirError(WmpoError):
    """The run directory cannot be created or written."""

    exit_code = 5
    default_hint = "choose a writable --run-dir"


class RenderError(WmpoError):
    """The offscreen renderer keeps returning blank or inconsistent frames."""

    exit_code = 6
    default_hint = "check MUJOCO_GL (osmesa on CPU, egl on GPU machines) and that libosmesa6 is installed"
