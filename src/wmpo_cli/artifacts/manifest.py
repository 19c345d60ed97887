"""``manifest.json``: what an artifact is, where it came from, and whether it is complete.

Schema ``wmpo.manifest/1``. A stage writes its manifest with ``resume.complete = false`` before it
produces anything and flips it to ``true`` (with file hashes and metrics) only at the very end,
so an interrupted stage can never be mistaken for a finished one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wmpo_cli import __version__
from wmpo_cli.artifacts.atomic import atomic_write_text, file_sha256
from wmpo_cli.errors import ArtifactError

MANIFEST_SCHEMA = "wmpo.manifest/1"
MANIFEST_NAME = "manifest.json"
CONFIG_NAME = "config.json"

# kind -> the newest kind_version this wmpo writes and reads.
SUPPORTED_KIND_VERSIONS: dict[str, int] = {
    "episodes": 1,
    "init_states": 1,
    "policy": 1,
    "world_model": 1,
    "reward_model": 1,
    "audit": 1,
    "imagined": 1,
}


@dataclass
class InputRef:
    """One lineage edge: the artifact this one was built from, and in which role."""

    role: str
    id: str
    path: str


@dataclass
class Manifest:
    kind: str
    kind_version: int
    id: str
    stage: str
    config_sha256: str
    seed: int
    inputs: list[InputRef] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    resume: dict[str, Any] = field(default_factory=lambda: {"step": 0, "complete": False})
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created_utc: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    wmpo_version: str = __version__
    git_commit: str | None = field(default_factory=lambda: git_commit())
    schema: str = MANIFEST_SCHEMA

    @property
    def complete(self) -> bool:
        return bool(self.resume.get("complete"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> None:
        atomic_write_text(Path(directory) / MANIFEST_NAME, self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str) -> Manifest:
        if data.get("schema") != MANIFEST_SCHEMA:
            raise ArtifactError(f"{origin}: not a wmpo manifest (schema {data.get('schema')!r})")
        try:
            inputs = [InputRef(**ref) for ref in data.get("inputs", [])]
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "inputs"}
            return cls(inputs=inputs, **known)
        except TypeError as exc:
            raise ArtifactError(f"{origin}: manifest is missing fields ({exc})") from exc


def artifact_id(kind: str, kind_version: int, config_sha256: str, input_ids: list[str]) -> str:
    """Content id: the same config, inputs and format version give the same id."""
    text = json.dumps([kind, kind_version, config_sha256, sorted(input_ids)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_manifest(directory: Path) -> Manifest:
    """Load ``directory/manifest.json``; a missing, unreadable or foreign file is an ArtifactError."""
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        raise ArtifactError(f"{directory}: no {MANIFEST_NAME} (not a wmpo artifact)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt manifest ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: corrupt manifest (not a JSON object)")
    return Manifest.from_dict(data, str(path))


def hash_files(directory: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    directory = Path(directory)
    return {
        name: {"sha256": file_sha256(directory / name), "bytes": (directory / name).stat().st_size} for name in names
    }


def verify_files(directory: Path, manifest: Manifest) -> list[str]:
    """Every problem with the files the manifest lists: missing, wrong size, wrong hash."""
    problems = []
    for name, meta in sorted(manifest.files.items()):
        path = Path(directory) / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != meta.get("bytes"):
            problems.append(f"{name}: size {path.stat().st_size} != recorded {meta.get('bytes')}")
        elif file_sha256(path) != meta.get("sha256"):
            problems.append(f"{name}: sha256 differs from the recorded one (file was modified)")
    return problems


def check_input(path: Path, kind: str) -> Manifest:
    """Entry check of a stage input: exists, complete, of ``kind``, of a version this wmpo reads."""
    path = Path(path)
    directory = path.parent if path.name == MANIFEST_NAME or path.is_file() else path
    if not directory.exists():
        raise ArtifactError(f"{path}: does not exist")
    manifest = read_manifest(directory)
    if manifest.kind != kind:
        raise ArtifactError(
            f"{directory}: is a '{manifest.kind}' artifact, expected '{kind}'",
            hint="pass the directory of the right stage's output",
        )
    supported = SUPPORTED_KIND_VERSIONS.get(kind, 0)
    if manifest.kind_version > supported:
        raise ArtifactError(
            f"{directory}: {kind} version {manifest.kind_version} is newer than this wmpo reads ({supported})",
            hint="upgrade wmpo",
        )
    if not manifest.complete:
        raise ArtifactError(
            f"{directory}: artifact is incomplete (its stage was interrupted or is still running)",
            hint="re-run the stage that writes it to resume it",
        )
    return manifest


_GIT_COMMIT: list[str | None] = []


def git_commit() -> str | None:
    """The commit of the wmpo source checkout, if it is one (cached; None for wheel installs)."""
    if not _GIT_COMMIT:
        try:
            out = subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            _GIT_COMMIT.append(out.stdout.strip() or None if out.returncode == 0 else None)
        except (OSError, subprocess.SubprocessError):
            _GIT_COMMIT.append(None)
    return _GIT_COMMIT[0]


def lineage_path(target: Path, artifact_dir: Path) -> str:
    """An input's path as a manifest stores it: relative to the artifact that uses it (what
    `wmpo inspect` resolves), so a run directory can be moved or copied as a whole."""
    return os.path.relpath(Path(target).resolve(), Path(artifact_dir).resolve())
