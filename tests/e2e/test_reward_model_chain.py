"""`wmpo fit-reward-model` at the debug recipe on real robosuite episodes of lift.

Successes: expert demos. Failures: the same expert cut off after 20 steps (before the lift), so
the labels are known. Checks lineage, the threshold in the export, the calibration files, that
the reported metrics are exactly what the exported model scores, resume, and bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmpo_cli.artifacts.manifest import read_manifest

pytestmark = pytest.mark.sim


def _main(*args: str) -> None:
    from wmpo_cli.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"wmpo {' '.join(args)} exited {exc.code}"


def _collect(run: Path, *extra: str) -> None:
    _main("--run-dir", str(run), "--recipe", "debug", "--quiet", "collect", "--task", "lift", *extra)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rm")
    _collect(root / "train_ok", "--set", "episodes=4", "--set", "valid_fraction=0.5")
    _collect(root / "train_fail", "--set", "episodes=4", "--set", "horizon=20", "--seed", "50")
    _collect(root / "test_ok", "--set", "episodes=2", "--seed", "100")
    _collect(root / "test_fail", "--set", "episodes=2", "--set", "horizon=20", "--seed", "150")
    return root


def _fit_args(data: Path, run: Path) -> list[str]:
    return [
        "--run-dir", str(run), "--recipe", "debug", "--quiet", "fit-reward-model", "--task", "lift",
        "--episodes", str(data / "train_ok" / "demos"), "--episodes", str(data / "train_fail" / "demos"),
        "--test", str(data / "test_ok" / "demos"), "--test", str(data / "test_fail" / "demos"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(data: Path) -> Path:
    run = data / "run"
    _main(*_fit_args(data, run))
    return run


def test_failures_are_labelled_failures(data: Path) -> None:
    assert read_manifest(data / "train_ok" / "demos").metrics["successes"] == 4
    assert read_manifest(data / "train_fail" / "demos").metrics["successes"] == 0


def test_manifest_lineage_export_and_calibration_files(run: Path, data: Path) -> None:
    from wmpo_cli.models.reward_model import RewardModel

    manifest = read_manifest(run / "reward_model")
    assert manifest.complete and manifest.kind == "reward_model"
    assert [(r.role, r.path) for r in manifest.inputs] == [
        ("episodes", "../../train_ok/demos"),
        ("episodes", "../../train_fail/demos"),
        ("test", "../../test_ok/demos"),
        ("test", "../../test_fail/demos"),
    ]
    assert manifest.extra["real_episodes"] == 0  # expert episodes are not the budget P
    m = manifest.metrics
    # train_ok keeps its own valid mask (2 of 4); train_fail has no successes, so its stratified
    # split holds out round(0.1 * 4) -> at least one failure.
    assert (m["train_episodes"], m["valid_episodes"], m["test_episodes"]) == (5, 3, 4)
    assert m["steps"] == 4 and m["evaluated_on"] == "test" and m["eval_failure_fraction"] == 0.5
    assert m["eval_true_positives"] + m["eval_false_negatives"] == 2
    assert m["eval_false_positives"] + m["eval_true_negatives"] == 2
    model = RewardModel.from_pretrained(run / "reward_model" / "export")
    assert model.cfg.threshold == m["threshold"] and model.cfg.target_precision == 0.95
    assert model.cfg.clip_frames == 8 and model.cfg.hidden_size == 32
    # Balanced batches assume even odds; the export carries log(success / other) training windows.
    assert model.cfg.logit_offset == pytest.approx(
        np.log(m["train_success_clips"] / (m["train_clips"] - m["train_success_clips"]))
    )
    assert sorted(manifest.files) == [
        "calibration/reliability.png", "calibration/scores.json", "export/config.json", "export/model.safetensors"
    ]  # fmt: skip
    with Image.open(run / "reward_model" / "calibration" / "reliability.png") as png:
        assert png.format == "PNG" and png.size == (560, 600)
    lines = [json.loads(x) for x in (run / "reward_model" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "train/loss" in r] == [0, 1, 2, 3]
    assert any("val/balanced_accuracy" in r for r in lines)


def test_reported_metrics_are_what_the_export_scores(run: Path, data: Path) -> None:
    from wmpo_cli.models.reward_model import RewardModel
    from wmpo_cli.models.reward_model.calibration import episode_metrics
    from wmpo_cli.pipeline.fit_reward_model import load_labelled, score_episodes

    model = RewardModel.from_pretrained(run / "reward_model" / "export")
    test = load_labelled(data / "test_ok" / "demos", "agentview") + load_labelled(
        data / "test_fail" / "demos", "agentview"
    )
    scores = score_episodes(model, test, batch_size=7)
    recomputed = episode_metrics(scores, model.cfg.threshold)
    m = read_manifest(run / "reward_model").metrics
    assert recomputed.f1 == pytest.approx(m["eval_f1"]) and recomputed.recall == pytest.approx(m["eval_recall"])
    saved = json.loads((run / "reward_model" / "calibration" / "scores.json").read_text())
    assert [e["detected_step"] for e in saved["test"]] == [model.first_success(e.frames) for e in test]
    assert [e["success_step"] for e in saved["test"]] == [e.success_step for e in test]
    assert saved["test"][2]["success_step"] is None and saved["test"][0]["success_step"] > 0
    assert set(saved["test_by_source"]) == {str(data / "test_ok" / "demos"), str(data / "test_fail" / "demos")}
    assert np.all([0 <= e["max_probability"] <= 1 for e in saved["validation"]])


def test_fit_reward_model_resumes_from_its_last_checkpoint(data: Path, tmp_path: Path, monkeypatch) -> None:
    import torch

    from wmpo_cli.config import FitRewardModelConfig, resolve_config
    from wmpo_cli.models.reward_model import training
    from wmpo_cli.pipeline import fit_reward_model

    flags = {"sources": (str(data / "train_ok" / "demos"), str(data / "train_fail" / "demos"))}
    cfg = resolve_config(FitRewardModelConfig, task="lift", recipes=("debug",), flags=flags, overrides=())
    original = training.RewardModelModule.training_step

    def crash_at_step_three(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        if self.global_step == 3:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(training.RewardModelModule, "training_step", crash_at_step_three)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_reward_model.run(cfg, tmp_path)
    assert not read_manifest(tmp_path / "reward_model").complete
    assert not (tmp_path / "reward_model" / "export").exists()
    monkeypatch.setattr(training.RewardModelModule, "training_step", original)
    manifest = fit_reward_model.run(cfg, tmp_path)
    assert manifest.complete and manifest.metrics["resumed"] is True and manifest.metrics["steps"] == 4
    assert manifest.metrics["evaluated_on"] == "validation"
    ckpt = torch.load(tmp_path / "reward_model" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4


def test_reward_model_bad_inputs(run: Path, data: Path, cli, tmp_path: Path) -> None:
    common = ("--run-dir", str(tmp_path), "--recipe", "debug", "fit-reward-model", "--task", "lift")
    only_successes = cli(*common, "--episodes", str(data / "train_ok" / "demos"))
    assert only_successes.code == 2 and "needs both successes and failures" in only_successes.stderr
    same = str(data / "train_ok" / "demos")
    overlap = cli(*common, "--episodes", same, "--episodes", str(data / "train_fail" / "demos"), "--test", same)
    assert overlap.code == 2 and "both a training and a --test artifact" in overlap.stderr
    wrong_kind = cli(*common, "--episodes", str(run / "reward_model"))
    assert wrong_kind.code == 3 and "expected 'episodes'" in wrong_kind.stderr
    wrong_task = cli(*common[:-1], "stack_three", "--episodes", same)
    assert wrong_task.code == 2 and "holds lift episodes" in wrong_task.stderr
    bad = cli(*common, "--target-precision", "1.5")
    assert bad.code == 2 and "target_precision" in bad.stderr
    negative = cli(*common, "--set", "state_loss_weight=-1")
    assert negative.code == 2 and "state_loss_weight must be a finite number >= 0" in negative.stderr
    assert not (tmp_path / "reward_model").exists()
    again = cli(*_fit_args(data, run)[:1], str(run), *_fit_args(data, run)[2:])
    assert again.code != 0 and "already holds a complete 'reward_model' artifact" in again.stderr
    assert read_manifest(run / "reward_model").complete
