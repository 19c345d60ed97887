"""What `wmpo inspect` shows: manifest, lineage (as a tree), file verification, content summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.tree import Tree

from wmpo_cli.artifacts.manifest import MANIFEST_NAME, Manifest, read_manifest, verify_files
from wmpo_cli.errors import ArtifactError


@dataclass
class LineageNode:
    role: str
    id: str
    path: str
    kind: str | None
    complete: bool | None
    inputs: list[LineageNode] = field(default_factory=list)


@dataclass
class InspectReport:
    directory: Path
    manifest: Manifest
    lineage: LineageNode
    verified: bool
    problems: list[str]
    content: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.directory),
            "manifest": asdict(self.manifest),
            "lineage": asdict(self.lineage),
            "verified": self.verified,
            "problems": self.problems,
            "content": self.content,
        }


def artifact_dir(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: does not exist")
    return path.parent if path.is_file() else path


def _lineage(directory: Path, role: str, manifest: Manifest, seen: set[str]) -> LineageNode:
    node = LineageNode(role, manifest.id, str(directory), manifest.kind, manifest.complete)
    seen = seen | {manifest.id}
    for ref in manifest.inputs:
        child_dir = (directory / ref.path).resolve() if not Path(ref.path).is_absolute() else Path(ref.path)
        try:
            child = read_manifest(child_dir)
        except ArtifactError:
            node.inputs.append(LineageNode(ref.role, ref.id, str(child_dir), None, None))
            continue
        if child.id in seen:  # a cycle can only come from hand-edited manifests; do not loop
            continue
        node.inputs.append(_lineage(child_dir, ref.role, child, seen))
    return node


def _content(directory: Path, manifest: Manifest) -> dict[str, Any]:
    if manifest.kind == "episodes" and manifest.complete and (directory / "episodes.hdf5").exists():
        from wmpo_cli.artifacts.episodes import EpisodesFile

        try:
            with EpisodesFile(directory / "episodes.hdf5") as episodes:
                return episodes.summary()
        except ArtifactError as exc:
            return {"error": exc.message}
    return {}


def inspect(path: Path, verify: bool = False) -> InspectReport:
    directory = artifact_dir(path)
    if not (directory / MANIFEST_NAME).exists():
        raise ArtifactError(f"{directory}: no {MANIFEST_NAME} here (not a wmpo artifact)")
    manifest = read_manifest(directory)
    problems = verify_files(directory, manifest) if verify else []
    if verify and not manifest.complete:
        problems.insert(0, "artifact is incomplete (its stage was interrupted or is still running)")
    content = {} if problems else _content(directory, manifest)
    return InspectReport(directory, manifest, _lineage(directory, "self", manifest, set()), verify, problems, content)


def raise_for_problems(report: InspectReport) -> None:
    if report.problems:
        raise ArtifactError(
            f"{report.directory}: verification failed: {'; '.join(report.problems)}",
            hint="re-run the stage that wrote it (with --force) to rebuild the artifact",
        )


def render(report: InspectReport) -> Group:
    m = report.manifest
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("path", str(report.directory)),
        ("kind", f"{m.kind} v{m.kind_version}"),
        ("id", m.id),
        ("stage", m.stage),
        ("complete", "yes" if m.complete else "[yellow]no[/yellow]"),
        ("created", m.created_utc),
        ("wmpo", f"{m.wmpo_version} (git {m.git_commit or 'n/a'})"),
        ("seed", str(m.seed)),
        ("config sha256", m.config_sha256[:16]),
    ]
    rows += [(f"file {name}", f"{meta['bytes']} bytes, sha256 {meta['sha256'][:16]}") for name, meta in m.files.items()]
    rows += [(key, _short(value)) for key, value in m.extra.items()]  # task, source, init_state_set, ...
    rows += [(f"metric {key}", str(value)) for key, value in m.metrics.items()]
    rows += [(f"{key}", str(value)) for key, value in report.content.items()]
    for key, value in rows:
        table.add_row(key, value)
    tree = Tree(f"[bold]lineage[/bold] {m.kind} {m.id}")
    _add_children(tree, report.lineage)
    parts: list[Any] = [table, tree]
    if report.verified:
        parts.append(
            "[green]verified: every file matches its recorded sha256[/green]"
            if not report.problems
            else "[red]verification failed:[/red] " + "; ".join(report.problems)
        )
    return Group(*parts)


def _short(value: Any, limit: int = 100) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _add_children(tree: Tree, node: LineageNode) -> None:
    for child in node.inputs:
        status = "missing" if child.kind is None else ("complete" if child.complete else "incomplete")
        branch = tree.add(f"{child.role}: {child.kind or '?'} {child.id} ({status}) {child.path}")
        _add_children(branch, child)
