"""The world-model stages at the debug recipe on real robosuite episodes.

collect (lift, 4 expert episodes, 2 held out) -> fit-world-model -> imagine --audit, and
fit-policy -> imagine (the policy in the loop). Checks lineage, the budget ledger, exports,
exact audit baselines, determinism, resume and bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from wmpo_cli.artifacts.manifest import read_manifest

pytestmark = pytest.mark.sim


def _main(*args: str) -> None:
    from wmpo_cli.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"wmpo {' '.join(args)} exited {exc.code}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("wm")
    common = ("--run-dir", str(run), "--recipe", "debug", "--quiet")
    _main(*common, "collect", "--task", "lift", "--set", "episodes=4", "--set", "valid_fraction=0.5")
    _main(*common, "fit-world-model", "--task", "lift")
    _main(*common, "imagine", "--audit")
    _main(*common, "fit-policy", "--task", "lift")
    _main(*common, "imagine", "--task", "lift")
    return run


def test_world_model_manifest_lineage_and_export(run: Path) -> None:
    from wmpo_cli.models.world_model import WorldModel

    demos, wm = read_manifest(run / "demos"), read_manifest(run / "world_model")
    assert wm.complete and wm.kind == "world_model"
    assert [(r.role, r.id, r.path) for r in wm.inputs] == [("demos", demos.id, "../demos")]
    assert wm.extra["real_episodes"] == 0  # expert demos are not the budget P
    m = wm.metrics
    assert m["steps"] == 4 and m["train_episodes"] == 2 and m["valid_episodes"] == 2
    assert m["val_loss"] > 0 and m["val_psnr_1chunk"] > 0 and m["val_psnr_copy_last"] > 0
    assert sorted(wm.files) == ["export/config.json", "export/model.safetensors"]
    model = WorldModel.from_pretrained(run / "world_model" / "export")
    assert model.cfg.image_size == 32 and model.cfg.block_out_channels == (32, 32)
    lines = [json.loads(x) for x in (run / "world_model" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "train/loss" in r] == [0, 1, 2, 3]


def test_audit_report_baselines_are_exact(run: Path) -> None:
    from wmpo_cli.artifacts.episodes import EpisodesFile
    from wmpo_cli.models.world_model.data import to_unit
    from wmpo_cli.models.world_model.metrics import psnr

    wm = read_manifest(run / "world_model")
    audit_dir = run / "imagine" / f"audit-{wm.id}"
    report = json.loads((audit_dir / "audit.json").read_text())
    assert report["horizons"] == [1, 2] and set(report["metrics"]) == {"model", "copy_last", "action_shuffle"}
    assert (audit_dir / "audit.gif").exists()
    with EpisodesFile(run / "demos" / "episodes.hdf5") as f:
        valid = [f.load(n, obs_keys=["agentview_image"]).obs["agentview_image"] for n in f.mask("valid")]
    # The debug recipe starts every window at step 0: copy-last repeats frame 0.
    expected = []
    for frames in valid:
        real = to_unit(frames[1:9])
        expected.append(float(psnr(to_unit(frames[[0]]).expand_as(real), real).mean()))
    assert report["windows"] == 2
    assert report["metrics"]["copy_last"]["1"]["psnr"] == pytest.approx(np.mean(expected), rel=1e-6)


def test_imagination_with_the_policy_in_the_loop(run: Path, cli) -> None:
    policy, wm = read_manifest(run / "policy"), read_manifest(run / "world_model")
    out = run / "imagine" / f"{policy.id}-{wm.id}"
    with h5py.File(out / "imagined.hdf5") as fh:
        frames, tokens, log_probs = fh["frames"][()], fh["tokens"][()], fh["log_probs"][()]
    assert frames.shape == (2, 1 + 2 * 8, 32, 32, 3) and tokens.shape == (2, 2, 56) and log_probs.shape == (2, 2, 56)
    assert (log_probs <= 0).all()
    # Same seed, same rollouts: a forced re-run writes identical arrays.
    again = cli("--run-dir", str(run), "--recipe", "debug", "--quiet", "imagine", "--task", "lift", "--force")
    assert again.code == 0, again.stderr
    with h5py.File(out / "imagined.hdf5") as fh:
        assert np.array_equal(fh["frames"][()], frames) and np.array_equal(fh["tokens"][()], tokens)
    assert read_manifest(out).metrics["imagined_steps"] == 2 * 16


def test_imagination_from_a_rendered_initial_state_set(run: Path, cli, tmp_path: Path) -> None:
    from wmpo_cli.pipeline.imagine import init_state_frames

    common = ("--run-dir", str(tmp_path), "--recipe", "debug", "--quiet", "--seed", "3")
    assert cli(*common, "collect", "--task", "lift", "--init-states", "2").code == 0
    set_dir = tmp_path / "init_states" / "lift-D0-default-n2-s3"
    result = cli(
        *common, "imagine", "--task", "lift", "--world-model", str(run / "world_model"),
        "--policy", str(run / "policy"), "--init-states", str(set_dir), "--set", "rollouts=3", "--set", "chunks=1",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    policy, wm = read_manifest(run / "policy"), read_manifest(run / "world_model")
    out = tmp_path / "imagine" / f"{policy.id}-{wm.id}"
    manifest = read_manifest(out)
    assert [ref.role for ref in manifest.inputs] == ["world_model", "policy", "init_states"]
    starts = init_state_frames(set_dir, "lift", "agentview", 32, 3)
    with h5py.File(out / "imagined.hdf5") as fh:
        frames = fh["frames"][()]
    assert frames.shape == (3, 1 + 8, 32, 32, 3)
    # Rollout i starts from state i mod 2, rendered after the warm-up: rollouts 0 and 2 share it.
    assert np.array_equal(frames[:, 0], starts) and np.array_equal(starts[0], starts[2])
    assert not np.array_equal(starts[0], starts[1]) and starts.std() > 10
    not_a_set = cli(*common, "imagine", "--task", "lift", "--world-model", str(run / "world_model"),
                    "--policy", str(run / "policy"), "--init-states", str(run / "demos"), "--force")  # fmt: skip
    assert not_a_set.code == 3 and "expected 'init_states'" in not_a_set.stderr


def test_world_model_bad_inputs(run: Path, cli, tmp_path: Path) -> None:
    missing = cli("--run-dir", str(tmp_path), "fit-world-model", "--task", "lift", "--recipe", "debug")
    assert missing.code == 3 and "does not exist" in missing.stderr
    wrong_kind = cli("--run-dir", str(run), "imagine", "--audit", "--world-model", str(run / "policy"))
    assert wrong_kind.code == 3 and "expected 'world_model'" in wrong_kind.stderr
    bad = cli("--run-dir", str(tmp_path), "fit-world-model", "--recipe", "debug", "--set", "objective=x1")
    assert bad.code == 2 and "unknown objective 'x1'" in bad.stderr
    assert not (tmp_path / "world_model").exists()


def test_fit_world_model_resumes_from_its_last_checkpoint(run: Path, tmp_path: Path, monkeypatch) -> None:
    from wmpo_cli.config import FitWorldModelConfig, resolve_config
    from wmpo_cli.models.world_model import training
    from wmpo_cli.pipeline import fit_world_model

    cfg = resolve_config(
        FitWorldModelConfig, task="lift", recipes=("debug",), flags={"demos": str(run / "demos")}, overrides=()
    )
    original = training.WorldModelModule.training_step

    def crash_at_step_three(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        if self.global_step == 3:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(training.WorldModelModule, "training_step", crash_at_step_three)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_world_model.run(cfg, tmp_path)
    assert not read_manifest(tmp_path / "world_model").complete
    monkeypatch.setattr(training.WorldModelModule, "training_step", original)
    manifest = fit_world_model.run(cfg, tmp_path)
    assert manifest.complete and manifest.metrics["resumed"] is True and manifest.metrics["steps"] == 4
    ckpt = torch.load(tmp_path / "world_model" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4
    # The EMA copy is part of the checkpoint, so a resumed run exports a continued average.
    assert any(key.startswith("ema.") for key in ckpt["state_dict"])


def test_a_latent_world_model_trains_its_autoencoder_first_then_audits(run: Path, cli, tmp_path: Path) -> None:
    from wmpo_cli.models.world_model import WorldModel

    common = ("--run-dir", str(tmp_path), "--recipe", "debug", "--quiet")
    latent = ("--set", "latent_channels=4", "--set", "autoencoder_channels=[16,16]", "--set", "autoencoder_steps=3")
    fit = cli(*common, "fit-world-model", "--task", "lift", "--demos", str(run / "demos"), "--max-steps", "5", *latent)
    assert fit.code == 0, fit.stderr
    wm = read_manifest(tmp_path / "world_model")
    assert wm.complete and wm.metrics["steps"] == 5 and wm.metrics["val_autoencoder_psnr"] > 0
    lines = [json.loads(x) for x in (tmp_path / "world_model" / "logs" / "metrics.jsonl").read_text().splitlines()]
    # Steps 0-2 train the autoencoder (the validation after 2 steps scores its reconstructions);
    # step 3 fixes the latent scale and the UNet trains from there, its learning-rate schedule
    # restarted. (Lightning repeats a key's last value on later lines of the epoch.)
    train = {r["step"]: r for r in lines if "train/lr" in r}
    assert min(s for s, r in train.items() if "train/autoencoder_loss" in r) == 0
    assert [s for s, r in train.items() if "train/loss" in r] == [3, 4]
    assert train[3]["train/lr"] == train[0]["train/lr"] > train[2]["train/lr"]
    validations = [r for r in lines if any(k.startswith("val/") for k in r)]
    assert "val/autoencoder_psnr" in validations[0] and "val/loss" not in validations[0]
    assert all("val/loss" in r and "val/autoencoder_psnr" not in r for r in validations[1:])
    scale = sorted({r["train/latent_scale"] for r in lines if "train/latent_scale" in r})
    model = WorldModel.from_pretrained(tmp_path / "world_model" / "export")
    assert len(scale) == 1 and float(model.latent_scale) == pytest.approx(scale[0], rel=1e-6)
    assert model.cfg.latent_channels == 4 and model.cfg.sample_size == 16  # 32 px frames, one halving
    audit = cli(*common, "imagine", "--audit", "--from", str(run / "demos"))
    assert audit.code == 0, audit.stderr
    report = json.loads((tmp_path / "imagine" / f"audit-{wm.id}" / "audit.json").read_text())
    pixel_report = json.loads(
        (run / "imagine" / f"audit-{read_manifest(run / 'world_model').id}" / "audit.json").read_text()
    )
    # Scored in pixels on the same windows as the pixel model: the copy-last baseline is identical.
    assert report["windows"] == 2 and report["metrics"]["copy_last"] == pixel_report["metrics"]["copy_last"]
    assert report["metrics"]["model"]["1"]["psnr"] > 0
    # The exported (EMA) autoencoder is exactly the one the UNet trained on, not an average of it.
    state = torch.load(tmp_path / "world_model" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    live = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.autoencoder.")}
    assert live and all(torch.equal(v, state[f"ema.{k}"]) for k, v in live.items())
    too_few = cli(*common, "fit-world-model", "--task", "lift", "--demos", str(run / "demos"), "--force", *latent,
                  "--set", "autoencoder_steps=4")  # fmt: skip
    assert too_few.code == 2 and "1 <= autoencoder_steps < max_steps" in too_few.stderr
    assert read_manifest(tmp_path / "world_model").id == wm.id  # the refused run left the artifact alone
