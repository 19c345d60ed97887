"""The demo chain at the debug recipe on real robosuite runs: collect -> fit-policy -> eval.

Checks what links the stages (lineage ids, the held-out split feeding validation, the policy
export eval loads), fit-policy's training behaviour and resume, and that a second `wmpo demo`
reuses every complete artifact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wmpo_cli.artifacts.manifest import read_manifest

pytestmark = pytest.mark.sim


def demo_args(run: Path) -> list[str]:
    # 4 episodes, half held out: the audit needs held-out windows from two episodes.
    return ["--run-dir", str(run), "--recipe", "debug", "--quiet", "--set", "episodes=4",
            "--set", "valid_fraction=0.5", "demo"]  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wmpo_cli.cli import main

    run = tmp_path_factory.mktemp("demo")
    try:
        main(demo_args(run))
    except SystemExit as exc:
        assert exc.code in (0, None)
    return run / "lift"


def test_demo_chain_links_its_artifacts(demo_run: Path) -> None:
    demos, policy = read_manifest(demo_run / "demos"), read_manifest(demo_run / "policy")
    assert demos.complete and policy.complete
    # Inputs are stored relative to the artifact using them, so a run directory can move as a whole.
    assert [(ref.role, ref.id, ref.path) for ref in policy.inputs] == [("demos", demos.id, "../demos")]
    # 4 debug episodes, valid fraction 0.5: 2 train, 2 held out.
    assert policy.metrics["train_episodes"] == 2 and policy.metrics["valid_episodes"] == 2
    assert policy.metrics["steps"] == 4
    assert policy.metrics["train_loss"] > 0.0
    assert 0.0 <= policy.metrics["val_token_accuracy"] <= 1.0
    assert policy.metrics["val_action_l1"] > 0.0
    assert sorted(policy.files) == ["export/config.json", "export/model.safetensors"]
    eval_dir = demo_run / "eval" / policy.id / "default"
    report = json.loads((eval_dir / "eval.json").read_text())
    assert report["episodes"] == 4 and len(report["per_episode"]) == 4
    assert report["policy_id"] == policy.id and report["task"] == "lift"
    assert [(ref.role, ref.path) for ref in read_manifest(eval_dir).inputs] == [("policy", "../../../policy")]


def test_demo_fits_a_world_model_and_audits_it(demo_run: Path) -> None:
    demos, wm = read_manifest(demo_run / "demos"), read_manifest(demo_run / "world_model")
    assert wm.complete and [(r.role, r.id) for r in wm.inputs] == [("demos", demos.id)]
    audit = demo_run / "imagine" / f"audit-{wm.id}"
    report = json.loads((audit / "audit.json").read_text())
    assert report["world_model_id"] == wm.id and report["horizons"] == [1, 2] and report["windows"] == 2
    assert read_manifest(audit).complete


def test_demo_fits_a_reward_model_on_demos_noisy_episodes_and_eval(demo_run: Path) -> None:
    demos, policy = read_manifest(demo_run / "demos"), read_manifest(demo_run / "policy")
    noisy = read_manifest(demo_run / "noisy" / "demos")
    assert noisy.complete and noisy.metrics["episodes"] == 4 and noisy.id != demos.id
    rm = read_manifest(demo_run / "reward_model")
    assert rm.complete and [(r.role, r.path) for r in rm.inputs] == [
        ("episodes", "../demos"),
        ("episodes", "../noisy/demos"),
        ("episodes", f"../eval/{policy.id}/default"),
    ]
    # The 4 eval episodes are real policy rollouts: they count into the budget ledger.
    assert rm.extra["real_episodes"] == 4
    assert rm.metrics["evaluated_on"] == "validation" and 0.0 <= rm.metrics["threshold"] <= 1.0


def test_fit_policy_logs_and_exports_a_loadable_policy(demo_run: Path) -> None:
    from wmpo_cli.models.policy.vla import VLAPolicy

    lines = [json.loads(line) for line in (demo_run / "policy" / "logs" / "metrics.jsonl").read_text().splitlines()]
    train_steps = [rec["step"] for rec in lines if "train/loss" in rec]
    assert train_steps == [0, 1, 2, 3]  # debug logs every step
    assert any("val/token_accuracy" in rec for rec in lines)
    policy = VLAPolicy.from_pretrained(demo_run / "policy" / "export")
    assert policy.cfg.task == "lift" and policy.cfg.image_size == 32 and policy.cfg.hidden_size == 64
    # The normalisation statistics are the demos' 1 %/99 % action quantiles.
    from wmpo_cli.artifacts.episodes import EpisodesFile

    with EpisodesFile(demo_run / "demos" / "episodes.hdf5") as f:
        train = f.mask("train")
        actions = np.concatenate([f.load(name, obs_keys=[]).actions for name in train])
    low = np.quantile(actions, 0.01, axis=0)
    np.testing.assert_allclose(policy.tokenizer.low[:6], low[:6])
    frame = np.zeros((32, 32, 3), dtype=np.uint8)
    assert policy.act({"agentview_image": frame}).actions.shape == (1, 8, 7)


def test_second_demo_reuses_every_artifact(demo_run: Path) -> None:
    from wmpo_cli.cli import main

    before = {p: p.read_text() for p in demo_run.rglob("manifest.json")}
    try:
        main(demo_args(demo_run.parent))
    except SystemExit as exc:
        assert exc.code in (0, None)
    assert {p: p.read_text() for p in demo_run.rglob("manifest.json")} == before


def test_fit_policy_resumes_from_its_last_checkpoint(demo_run: Path, tmp_path: Path, monkeypatch) -> None:
    from wmpo_cli.config import FitPolicyConfig, resolve_config
    from wmpo_cli.models.policy import training
    from wmpo_cli.pipeline import fit_policy

    cfg = resolve_config(
        FitPolicyConfig, task="lift", recipes=("debug",), flags={"demos": str(demo_run / "demos")}, overrides=()
    )
    original = training.ImitationModule.training_step

    def crash_at_step_three(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        if self.global_step == 3:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(training.ImitationModule, "training_step", crash_at_step_three)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_policy.run(cfg, tmp_path)
    assert not read_manifest(tmp_path / "policy").complete
    assert (tmp_path / "policy" / "checkpoints" / "last.ckpt").exists()
    monkeypatch.setattr(training.ImitationModule, "training_step", original)
    manifest = fit_policy.run(cfg, tmp_path)
    assert manifest.complete and manifest.metrics["resumed"] is True and manifest.metrics["steps"] == 4
    # Only the step after the checkpoint (step 2) was trained again: steps 2 and 3.
    ckpt = torch.load(tmp_path / "policy" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4


def test_fit_policy_with_the_state_loss_logs_it_and_exports_the_same_policy_shape(
    demo_run: Path, tmp_path: Path
) -> None:
    from wmpo_cli.config import FitPolicyConfig, resolve_config
    from wmpo_cli.models.policy.vla import VLAPolicy
    from wmpo_cli.pipeline import fit_policy

    cfg = resolve_config(
        FitPolicyConfig,
        task="lift",
        recipes=("debug",),
        flags={"demos": str(demo_run / "demos")},
        overrides=("state_loss_weight=1",),
    )
    manifest = fit_policy.run(cfg, tmp_path)
    assert manifest.complete
    lines = [json.loads(line) for line in (tmp_path / "policy" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in lines if "train/state_loss" in rec] == [0, 1, 2, 3]
    # The manifest's value is the held-out loss of the final weights, which the last in-training
    # validation (after step 4 of 4) already logged.
    val_state = [rec["val/state_loss"] for rec in lines if "val/state_loss" in rec]
    assert val_state and manifest.metrics["val_state_loss"] == pytest.approx(val_state[-1], rel=1e-6)
    assert manifest.metrics["val_state_loss"] > 0
    # The head trained in the checkpoint, but the export holds exactly the policy without it.
    ckpt = torch.load(tmp_path / "policy" / "checkpoints" / "last.ckpt", weights_only=False)
    assert any(key.startswith("state_head.") for key in ckpt["state_dict"])
    with_head = VLAPolicy.from_pretrained(tmp_path / "policy" / "export")
    without = VLAPolicy.from_pretrained(demo_run / "policy" / "export")
    assert set(with_head.state_dict()) == set(without.state_dict())
