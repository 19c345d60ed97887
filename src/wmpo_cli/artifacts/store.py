"""The life cycle of one artifact directory: begin (or resume) -> write files -> finish.

``begin_artifact`` decides between starting fresh, resuming an interrupted run, and refusing:
- a complete artifact is never touched without ``force``;
- an incomplete one is resumed only if its resolved config is the same (else the changed keys
  are listed), and its partial work (in ``.partial/``) is kept;
- ``force`` starts fresh, but the old public files stay in place until the new ones replace
  them atomically at the end.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmpo_cli.artifacts.atomic import atomic_write_text
from wmpo_cli.artifacts.manifest import (
    CONFIG_NAME,
    MANIFEST_NAME,
    InputRef,
    Manifest,
    artifact_id,
    hash_files,
    read_manifest,
)
from wmpo_cli.config.recipes import config_diff, config_hash, config_to_dict
from wmpo_cli.errors import ArtifactError, ArtifactExistsError, ConfigChangedError, RunDirError

PARTIAL_DIR = ".partial"


@dataclass
class ArtifactWriter:
    """An artifact being produced; ``partial_dir`` holds resumable pieces until ``finish``."""

    directory: Path
    manifest: Manifest
    resumed: bool

    @property
    def partial_dir(self) -> Path:
        return self.directory / PARTIAL_DIR

    def finish(self, files: list[str], metrics: dict[str, Any]) -> Manifest:
        """Hash the public files, mark the manifest complete, drop the partial pieces."""
        self.manifest.files = hash_files(self.directory, files)
        self.manifest.metrics = metrics
        self.manifest.resume = {"step": self.manifest.resume.get("step", 0), "complete": True}
        self.manifest.write(self.directory)
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        return self.manifest


def ensure_writable_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) and prove it is writable, or raise RunDirError."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{id(directory)}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"cannot write to {directory}: {exc.strerror or exc}") from exc


def begin_artifact(
    directory: Path,
    *,
    kind: str,
    kind_version: int,
    stage: str,
    config: Any,
    seed: int,
    inputs: list[InputRef] | None = None,
    force: bool = False,
    extra: dict[str, Any] | None = None,
    outputs: tuple[str, ...] = (),
) -> ArtifactWriter:
    directory = Path(directory)
    inputs = inputs or []
    new_config = config_to_dict(config)
    digest = config_hash(config)
    execution_only = tuple(getattr(config, "EXECUTION_ONLY", ()))
    resumed = False

    if (directory / MANIFEST_NAME).exists():
        try:
            old = read_manifest(directory)
        except ArtifactError:
            if not force:
                raise
            old = None
        if old is not None and old.kind != kind and not force:
            raise ArtifactError(
                f"{directory} holds a '{old.kind}' artifact, not '{kind}'",
                hint="choose another --run-dir, or pass --force to replace it",
            )
        if old is not None and not force:
            if old.complete:
                raise ArtifactExistsError(f"{directory} already holds a complete '{kind}' artifact ({old.id})")
            if old.config_sha256 != digest:
                old_config = _read_config(directory)
                changes = config_diff(old_config, new_config, ignore=execution_only)
                raise ConfigChangedError(
                    f"{directory} holds an interrupted run with a different config: "
                    + ("; ".join(changes) if changes else "config.json differs"),
                )
            resumed = True
    elif not force:
        # A directory without a manifest that already holds our output names belongs to someone else.
        clashes = [name for name in outputs if (directory / name).exists()]
        if clashes:
            raise ArtifactExistsError(f"{directory} already has {', '.join(clashes)} (not written by wmpo)")
    ensure_writable_dir(directory)
    if not resumed:
        shutil.rmtree(directory / PARTIAL_DIR, ignore_errors=True)
    manifest = Manifest(
        kind=kind,
        kind_version=kind_version,
        id=artifact_id(kind, kind_version, digest, [ref.id for ref in inputs]),
        stage=stage,
        config_sha256=digest,
        seed=seed,
        inputs=inputs,
        extra=extra or {},
    )
    # Incomplete manifest first: from here on, a crash leaves a visibly unfinished artifact.
    manifest.write(directory)
    atomic_write_text(directory / CONFIG_NAME, json.dumps(new_config, indent=2, sort_keys=True) + "\n")
    (directory / PARTIAL_DIR).mkdir(exist_ok=True)
    return ArtifactWriter(directory=directory, manifest=manifest, resumed=resumed)


def _read_config(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / CONFIG_NAME).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}
