"""Manifest, atomic writes and the artifact life cycle (begin / resume / refuse / finish)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wmpo_cli.artifacts.atomic import atomic_directory, atomic_path, atomic_write_text, file_sha256
from wmpo_cli.artifacts.manifest import (
    MANIFEST_SCHEMA,
    InputRef,
    artifact_id,
    check_input,
    read_manifest,
    verify_files,
)
from wmpo_cli.artifacts.store import PARTIAL_DIR, begin_artifact
from wmpo_cli.config import CollectConfig
from wmpo_cli.errors import ArtifactError, ArtifactExistsError, ConfigChangedError, RunDirError


def _begin(directory: Path, cfg: CollectConfig, **kwargs: object):
    return begin_artifact(
        directory, kind="episodes", kind_version=1, stage="collect", config=cfg, seed=cfg.seed, **kwargs
    )


def test_atomic_write_replaces_whole_file_and_cleans_up_on_error(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "one")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    assert file_sha256(target) == "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"


def test_atomic_directory_replaces_a_whole_export_and_keeps_it_on_error(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "old.bin").write_text("old")
    with atomic_directory(export) as tmp:
        assert not tmp.exists()  # save_pretrained makes it
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
        assert (export / "old.bin").exists()  # the old export stays until the new one is whole
    assert sorted(p.name for p in export.iterdir()) == ["new.bin"]
    with pytest.raises(RuntimeError), atomic_directory(export) as tmp:
        tmp.mkdir()
        (tmp / "half.bin").write_text("half")
        raise RuntimeError("killed mid-save")
    assert sorted(p.name for p in export.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary left behind


def test_training_dirs_reset_unless_resumed(tmp_path: Path) -> None:
    from wmpo_cli.pipeline.training_callbacks import prepare_training_dirs

    dirs = prepare_training_dirs(tmp_path, resumed=False)
    assert (dirs.checkpoints, dirs.metrics) == (tmp_path / "checkpoints", tmp_path / "logs" / "metrics.jsonl")
    dirs.checkpoints.mkdir()
    (dirs.checkpoints / "last.ckpt").write_text("ckpt")
    dirs.metrics.write_text("{}\n")
    prepare_training_dirs(tmp_path, resumed=True)
    assert (dirs.checkpoints / "last.ckpt").exists() and dirs.metrics.exists()
    prepare_training_dirs(tmp_path, resumed=False)
    assert not dirs.checkpoints.exists() and dirs.logs.is_dir() and not any(dirs.logs.iterdir())


def test_artifact_id_depends_on_config_inputs_and_version() -> None:
    base = artifact_id("episodes", 1, "abc", ["x", "y"])
    assert base == artifact_id("episodes", 1, "abc", ["y", "x"])
    assert len(base) == 16
    assert base != artifact_id("episodes", 2, "abc", ["x", "y"])
    assert base != artifact_id("episodes", 1, "abd", ["x", "y"])
    assert base != artifact_id("episodes", 1, "abc", ["x"])


def test_begin_writes_incomplete_manifest_then_finish_completes(tmp_path: Path) -> None:
    cfg = CollectConfig(episodes=3)
    out = tmp_path / "demos"
    writer = _begin(out, cfg, inputs=[InputRef("source", "0123", "../src")])
    manifest = read_manifest(out)
    assert manifest.schema == MANIFEST_SCHEMA
    assert not manifest.complete and not writer.resumed
    assert json.loads((out / "config.json").read_text())["episodes"] == 3
    assert (out / PARTIAL_DIR).is_dir()
    (out / "data.bin").write_bytes(b"12345")
    writer.finish(["data.bin"], {"episodes": 3})
    done = read_manifest(out)
    assert done.complete and done.metrics == {"episodes": 3}
    assert done.files == {"data.bin": {"sha256": file_sha256(out / "data.bin"), "bytes": 5}}
    assert done.inputs == [InputRef("source", "0123", "../src")]
    assert not (out / PARTIAL_DIR).exists()
    assert verify_files(out, done) == []
    (out / "data.bin").write_bytes(b"12346")
    assert verify_files(out, done) == ["data.bin: sha256 differs from the recorded one (file was modified)"]
    (out / "data.bin").write_bytes(b"123")
    assert verify_files(out, done) == ["data.bin: size 3 != recorded 5"]
    (out / "data.bin").unlink()
    assert verify_files(out, done) == ["data.bin: missing"]


def test_complete_artifact_is_refused_without_force(tmp_path: Path) -> None:
    cfg = CollectConfig()
    writer = _begin(tmp_path, cfg)
    (tmp_path / "data.bin").write_bytes(b"x")
    writer.finish(["data.bin"], {})
    before = (tmp_path / "manifest.json").read_text()
    with pytest.raises(ArtifactExistsError, match="already holds a complete 'episodes' artifact"):
        _begin(tmp_path, cfg)
    assert (tmp_path / "manifest.json").read_text() == before
    assert not _begin(tmp_path, cfg, force=True).resumed


def test_interrupted_artifact_resumes_only_with_the_same_config(tmp_path: Path) -> None:
    _begin(tmp_path, CollectConfig(episodes=5, workers=1))
    (tmp_path / PARTIAL_DIR / "attempt_000000.h5").write_bytes(b"shard")
    with pytest.raises(ConfigChangedError, match=r"episodes: 5 -> 6; image_size: 84 -> 32"):
        _begin(tmp_path, CollectConfig(episodes=6, image_size=32))
    resumed = _begin(tmp_path, CollectConfig(episodes=5, workers=2))  # workers do not change results
    assert resumed.resumed
    assert (tmp_path / PARTIAL_DIR / "attempt_000000.h5").exists()
    fresh = _begin(tmp_path, CollectConfig(episodes=6), force=True)
    assert not fresh.resumed and not (tmp_path / PARTIAL_DIR / "attempt_000000.h5").exists()


def test_foreign_files_corrupt_and_wrong_kind(tmp_path: Path) -> None:
    (tmp_path / "episodes.hdf5").write_bytes(b"someone else's")
    with pytest.raises(ArtifactExistsError, match="not written by wmpo"):
        _begin(tmp_path, CollectConfig(), outputs=("episodes.hdf5",))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt manifest"):
        _begin(tmp_path, CollectConfig())
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": MANIFEST_SCHEMA, "kind": "policy"}))
    with pytest.raises(ArtifactError, match="manifest is missing fields"):
        read_manifest(tmp_path)
    other = tmp_path / "other"
    begin_artifact(other, kind="policy", kind_version=1, stage="fit-policy", config=CollectConfig(), seed=0)
    with pytest.raises(ArtifactError, match="holds a 'policy' artifact, not 'episodes'"):
        _begin(other, CollectConfig())


def test_check_input_entry_checks(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        check_input(tmp_path / "nope", "episodes")
    writer = _begin(tmp_path / "a", CollectConfig())
    with pytest.raises(ArtifactError, match="incomplete"):
        check_input(tmp_path / "a", "episodes")
    writer.finish([], {})
    with pytest.raises(ArtifactError, match="is a 'episodes' artifact, expected 'policy'"):
        check_input(tmp_path / "a", "policy")
    assert check_input(tmp_path / "a" / "manifest.json", "episodes").complete
    data = json.loads((tmp_path / "a" / "manifest.json").read_text())
    data["kind_version"] = 99
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="version 99 is newer"):
        check_input(tmp_path / "a", "episodes")


def test_unwritable_run_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunDirError, match="cannot write"):
        _begin(blocker / "demos", CollectConfig())
