import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from conftest import TINY_MFN_OVERRIDES
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from asd.data.audio import load_audio
from asd.data.index import DatasetError
from asd.evaluate import evaluate
from asd.train import train


def test_ae_beats_chance_clearly_on_the_easiest_machine(make_cfg):
    cfg = make_cfg("machine=ToyRotor", "model=ae", "backend=mse", "trainer.max_epochs=30", views=True)
    metrics, objects = train(cfg)
    # ToyRotor's anomalies (an inharmonic partial, bearing ticks) are the easiest to hear.
    assert metrics["ToyRotor/section_00/auc_source"] > 0.9
    assert metrics["ToyRotor/section_00/auc_target"] > 0.8
    assert metrics["official_score"] > 0.8
    run = Path(cfg.paths.output_dir)
    scores = pd.read_csv(run / "submission" / "anomaly_score_ToyRotor_section_00_test.csv", header=None)
    decisions = pd.read_csv(run / "submission" / "decision_result_ToyRotor_section_00_test.csv", header=None)
    assert len(scores) == len(decisions) == 100
    assert set(decisions[1]) <= {0, 1} and 0 < decisions[1].sum() < 100
    assert (run / "result.csv").is_file() and (run / "summary.csv").is_file()
    # metrics reach TensorBoard, a checkpoint is saved
    events = EventAccumulator(str(next((run / "tensorboard" / "ToyRotor").glob("events.out.tfevents.*")).parent))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "test/official_score",
        "test/ToyRotor/section_00/auc_source",
        "test/ToyRotor/section_00/pauc",
        "train/loss",
        "val/loss",  # model=ae holds out 10 % of the training frame vectors, as the baseline
    } <= tags
    histograms = set(events.Tags()["histograms"])
    assert {
        f"scores/ToyRotor/section_00/{d}_{label}" for d in ("source", "target") for label in ("normal", "anomaly")
    } <= histograms
    images = set(events.Tags()["images"])
    assert "roc/ToyRotor/section_00" in images
    assert {
        f"log_mel/ToyRotor/section_00/{d}_{label}" for d in ("source", "target") for label in ("normal", "anomaly")
    } <= images
    assert "_hparams_/session_end_info" in events.PluginTagToContent("hparams")
    # AUC / pAUC curves over the 30 epochs: one point every 5 epochs
    curve = events.Scalars("epoch/ToyRotor/section_00/auc_target")
    assert len(curve) == 6 and all(0.0 <= point.value <= 1.0 for point in curve)
    assert {"epoch/official_score", "epoch/ToyRotor/section_00/pauc"} <= tags
    # embeddings in the projector, one row per test clip with its label, domain and attributes
    log_dir = run / "tensorboard" / "ToyRotor"
    assert "test_embeddings" in (log_dir / "projector_config.pbtxt").read_text()
    metadata = pd.read_csv(next(log_dir.glob("*/test_embeddings/metadata.tsv")), sep="\t")
    assert list(metadata.columns) == ["label", "domain", "section", "attributes", "file"] and len(metadata) == 100
    assert set(metadata["label"]) == {"normal", "anomaly"} and set(metadata["domain"]) == {"source", "target"}
    assert list((run / "tensorboard" / "ToyRotor" / "checkpoints").glob("last.ckpt"))


def test_training_is_deterministic_on_cpu(make_cfg, tmp_path):
    first, _ = train(make_cfg("machine=ToyHum", "backend=mahalanobis", "trainer.max_epochs=2"))
    second, _ = train(make_cfg("machine=ToyHum", "backend=mahalanobis", "trainer.max_epochs=2"))
    assert first == second


def test_eval_split_scores_renamed_files_and_matches_the_evaluator(make_cfg, synthetic_root):
    cfg = make_cfg("machine=ToyRotor", "data.data_split=eval", "trainer.max_epochs=3")
    metrics, _ = train(cfg)
    run = Path(cfg.paths.output_dir)
    with open(run / "submission" / "anomaly_score_ToyRotor_section_00_test.csv") as file:
        names = [row[0] for row in csv.reader(file)]
    assert names == sorted(f"section_00_{i:04d}.wav" for i in range(100))
    result = evaluate(run / "submission", synthetic_root / "ground_truth", run / "evaluated")
    with open(result) as file:
        official = [row for row in csv.reader(file) if row and row[0] == "official score"][0][2]
    assert float(official) == pytest.approx(metrics["official_score"], abs=1e-12)


def test_eval_split_without_ground_truth_writes_scores_only(make_cfg):
    cfg = make_cfg("machine=ToyRotor", "data.data_split=eval", "data.ground_truth_dir=null", "debug=fdr")
    metrics, _ = train(cfg)
    assert metrics == {}
    assert (Path(cfg.paths.output_dir) / "submission" / "decision_result_ToyRotor_section_00_test.csv").is_file()


def test_missing_dataset_is_a_clear_error(make_cfg, tmp_path):
    cfg = make_cfg("data=dcase2024", "machine=fan", f"data.root={tmp_path}/nowhere")
    with pytest.raises(DatasetError, match="dataset root not found"):
        train(cfg)


def official_row(result_csv: Path) -> float:
    with open(result_csv) as file:
        return float([row for row in csv.reader(file) if row and row[0] == "official score"][0][2])


def section_rows(result_csv: Path) -> dict[str, list[float]]:
    """machine -> [AUC (source), AUC (target), pAUC] of section 00, from a job's result.csv."""
    rows, machine = {}, None
    with open(result_csv) as file:
        for row in csv.reader(file):
            if len(row) == 1:
                machine = row[0]
            elif row and row[0] == "00":
                rows[machine] = [float(v) for v in row[2:5]]
    return rows


# slow (38 s): a failing job in a multirun is covered by test_optuna_search_resumes_and_scores_a_failed_trial_worst,
# a real multirun and its report by test_report.py::test_a_runs_official_score_is_its_years_everywhere, and
# the report's grouping and failed-job rows by test_report.py's hand-made multiruns
@pytest.mark.slow
def test_cli_multirun_machines_by_models_with_a_failing_job_and_summary(tmp_path, run_cli):
    # 3 machine types x 2 models; "fan" is not in the synthetic data, so its two jobs fail
    done = run_cli(
        "asd.train",
        "-m",
        "machine=ToyRotor,fan,ToyHum",
        "model=ae,mfn_arcface",
        "debug=fdr",
        "callbacks.progress_bar.refresh_rate=0",
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "2 job(s) failed (2, 3)" in done.stderr
    sweep = next((tmp_path / "logs" / "debug" / "multiruns").iterdir())
    for failed in ("2", "3"):
        assert "machine type folder not found" in (sweep / failed / "error.txt").read_text()
    jobs = sorted(p.parent.name for p in sweep.glob("*/result.csv"))
    assert jobs == ["0", "1", "4", "5"]  # the failures lost nothing of the others

    summary = pd.read_csv(sweep / "summary.csv")
    assert set(summary["configuration"]) == {
        f"model={m} debug=fdr callbacks.progress_bar.refresh_rate=0" for m in ("ae", "mfn_arcface")
    }
    for model, machine_jobs in {
        "ae": {"ToyRotor": "0", "ToyHum": "4"},
        "mfn_arcface": {"ToyRotor": "1", "ToyHum": "5"},
    }.items():
        rows = summary[summary["configuration"].str.startswith(f"model={model} ")].set_index("machine")
        assert rows.loc["fan", "status"].startswith("failed: asd.data.index.DatasetError")
        per_job = {}
        for machine, job in machine_jobs.items():
            per_job[machine] = section_rows(sweep / job / "result.csv")[machine]
            summary_values = rows.loc[machine, ["AUC (source)", "AUC (target)", "pAUC"]].to_numpy(dtype=float)
            np.testing.assert_allclose(summary_values, 100 * np.array(per_job[machine]), rtol=0, atol=1e-9)
            assert rows.loc[machine, "score"] == pytest.approx(100 * official_row(sweep / job / "result.csv"), abs=1e-9)
        official = rows.loc["official score"]
        expected = scipy.stats.hmean([v for values in per_job.values() for v in values])
        assert official["score"] == pytest.approx(100 * expected, abs=1e-9)
        assert official["status"] == "incomplete: 1 failed job(s)" and 0 < official["ci95"] < 10
    markdown = (sweep / "summary.md").read_text()
    assert "| `model=ae debug=fdr callbacks.progress_bar.refresh_rate=0` |" in markdown
    assert "job 2 (`model=ae" in markdown and "machine type folder not found" in markdown

    # rerunning the report by hand gives the same table
    again = run_cli("asd.report", str(sweep))
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(pd.read_csv(sweep / "summary.csv"), summary)


SMALL_MFN = ["model.width=16", "model.channels=32", "model.final_channels=64", "model.embedding_dim=32"]


def test_mfn_arcface_with_knn_end_to_end(make_cfg):
    # seed 2: AUC (source) 0.886 on one thread, 0.894 on two (seed 1234 gave 0.698 / 0.714: the test's
    # margin must not hang on the thread count); seeds 1-3 give 0.84-0.89; chance is 0.5
    cfg = make_cfg("model=mfn_arcface", "machine=ToyRotor", "trainer.max_epochs=8", "seed=2", *SMALL_MFN)
    metrics, _ = train(cfg)
    assert metrics["ToyRotor/section_00/auc_source"] > 0.7
    assert metrics["official_score"] > 0.65
    checkpoint = torch.load(
        Path(cfg.paths.output_dir) / "tensorboard" / "ToyRotor" / "checkpoints" / "last.ckpt", weights_only=False
    )
    assert checkpoint["class_names"] == [f"ToyRotor/section_00/spd_{s}_loc_{loc}" for s in "12" for loc in "AB"]


def test_mfn_logits_with_the_classifier_score(make_cfg):
    cfg = make_cfg(
        "model=mfn_adacos",
        "backend=classifier",
        "model.representation=logits",
        "model.use_tgram=true",
        "machine=ToyHum",
        "debug=fdr",
        *TINY_MFN_OVERRIDES,
    )
    train(cfg)
    from scipy.special import log_softmax

    from asd.predict import score_files
    from asd.system import load_systems

    (system,) = load_systems(cfg.paths.output_dir).values()
    module = system.module
    assert module.class_names == [f"ToyHum/section_00/am_{a}_load_{lo}" for a in "25" for lo in ("hi", "lo")]
    # a clip's score is -log softmax of its most probable class among those its section's
    # training clips were predicted as, from the classifier's own logits
    submitted = pd.read_csv(
        Path(cfg.paths.output_dir) / "submission" / "anomaly_score_ToyHum_section_00_test.csv", header=None
    )
    test_dir = Path(cfg.data.root) / "dev_data" / "raw" / "ToyHum" / "test"
    section_classes = module.backend.states["ToyHum/section_00"]
    assert 1 <= len(section_classes) <= 4
    for name, score in submitted.head(5).itertuples(index=False):
        (row,) = score_files(system, "ToyHum/section_00", [test_dir / name])
        batch = {"features": [system_log_mel(system, test_dir / name)], "waveform": [load_audio(test_dir / name)]}
        logits = module.representations(batch)[0].detach().numpy()
        assert logits.shape == (1, 4)
        expected = float(np.mean(-np.max(log_softmax(logits, axis=1)[:, section_classes], axis=1)))
        assert row["anomaly_score"] == pytest.approx(expected, rel=1e-5) and score == pytest.approx(expected, rel=1e-5)


def system_log_mel(system, path):
    from asd.data.features import LogMel

    return LogMel(system.feature_config)(load_audio(path))


def test_pretrained_encoder_is_a_memory_bank_model(make_cfg, tiny_wav2vec2):
    cfg = make_cfg("model=pretrained", "encoder=hf", f"encoder.path={tiny_wav2vec2}", "machine=ToyRotor")
    metrics, _ = train(cfg)
    assert 0.0 <= metrics["official_score"] <= 1.0
    run = Path(cfg.paths.output_dir)
    assert (run / "submission" / "anomaly_score_ToyRotor_section_00_test.csv").is_file()
    assert not list(run.rglob("*.ckpt"))  # nothing was trained, so nothing to checkpoint


def test_optuna_search_resumes_and_scores_a_failed_trial_worst(tmp_path, run_cli):
    import optuna

    search = ["hparams_search=ae_optuna", "debug=fdr", "callbacks.progress_bar.refresh_rate=0"]
    first = run_cli("asd.train", *search, "machine.types=[ToyRotor,ToyHum]", "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    storage = f"sqlite:///{tmp_path / 'logs' / 'optuna' / 'ae.db'}"
    trials = optuna.load_study(study_name="ae", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    # each trial trained and tested every machine type: its objective is their official score
    sweep = next((tmp_path / "logs" / "debug" / "multiruns").iterdir())
    for trial, job in zip(trials, ("0", "1")):
        assert trial.value == pytest.approx(official_row(sweep / job / "result.csv"), abs=1e-12)
        assert set(section_rows(sweep / job / "result.csv")) == {"ToyRotor", "ToyHum"}
        assert {"model.lr", "model.bottleneck_dim", "data.n_frames"} <= set(trial.params)
    assert len(pd.read_csv(sweep / "summary.csv").query("machine == 'official score'")) == 2

    # the same command resumes the study; a trial that fails (no such machine type) scores 0 and the study survives
    again = run_cli("asd.train", *search, "machine=fan", "hydra.sweeper.n_trials=1")
    assert again.returncode == 1 and "1 job(s) failed" in again.stderr
    resumed = optuna.load_study(study_name="ae", storage=storage)
    assert [t.number for t in resumed.trials] == [0, 1, 2]
    assert resumed.trials[2].state == optuna.trial.TrialState.COMPLETE and resumed.trials[2].value == 0.0
    assert resumed.best_value == max(t.value for t in trials)


# slow (35 s): the launcher's config is composed by test_configs.py::test_launchers_compose and a
# multirun's jobs and summary by test_report.py::test_a_runs_official_score_is_its_years_everywhere
@pytest.mark.slow
def test_parallel_launcher_runs_jobs_in_two_worker_processes(tmp_path, run_cli):
    done = run_cli(
        "asd.train",
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "machine=ToyRotor,ToyHum",
        "debug=fdr",
        "callbacks.progress_bar.refresh_rate=0",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr
    sweep = next((tmp_path / "logs" / "debug" / "multiruns").iterdir())
    summary = pd.read_csv(sweep / "summary.csv").set_index("machine")
    for job, machine in (("0", "ToyRotor"), ("1", "ToyHum")):
        assert summary.loc[machine, "score"] == pytest.approx(100 * official_row(sweep / job / "result.csv"), abs=1e-9)


def test_joint_scope_trains_one_model_on_every_selected_machine_type(make_cfg):
    from asd.system import load_systems

    cfg = make_cfg(
        "model=mfn_arcface", "scope=joint", "machine.types=[ToyRotor,ToyHum]", "debug=fdr", *TINY_MFN_OVERRIDES
    )
    metrics, _ = train(cfg)
    assert {"ToyRotor/section_00/auc_source", "ToyHum/section_00/auc_source"} <= set(metrics)
    (system,) = load_systems(cfg.paths.output_dir).values()  # one system for both machine types
    assert system.sections == ["ToyHum/section_00", "ToyRotor/section_00"]
    # one classifier over both machine types' section x attribute classes
    assert {name.split("/")[0] for name in system.module.class_names} == {"ToyRotor", "ToyHum"}
    assert len(system.module.class_names) == 8


EXPERIMENTS = [
    # the BEATs recipes need asd[beats] (conftest.py)
    pytest.param(p.stem, marks=[pytest.mark.beats] if "override /encoder: beats" in p.read_text() else [])
    for p in sorted((Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))
]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_end_to_end(experiment, make_cfg, tmp_path):
    from conftest import build_tiny_beats_checkpoint

    overrides = [f"experiment={experiment}", "machine=ToyRotor", "debug=fdr"]
    recipe = (Path(__file__).parents[1] / "conf" / "experiment" / f"{experiment}.yaml").read_text()
    if "override /model: multibranch" in recipe or experiment.startswith("multibranch"):
        # 4.5-s clips and narrow branches: the recipe's path end to end, not its 12-s, 2.5M-weight network
        overrides += ["model.clip_seconds=4.5", "model.branch_dim=16"]
    if "override /model: mfn" in recipe or experiment.startswith("mfn"):  # narrow blocks; the recipe's head
        overrides += ["model.width=8", "model.channels=16", "model.final_channels=32"]
    if "override /encoder: beats" in recipe:  # no real weights here: a tiny BEATs in the official layout
        build_tiny_beats_checkpoint(tmp_path / "BEATs_tiny.pt")
        overrides.append(f"encoder.path={tmp_path / 'BEATs_tiny.pt'}")
    cfg = make_cfg(*overrides)
    metrics, _ = train(cfg)
    run = Path(cfg.paths.output_dir)
    scores = pd.read_csv(run / "submission" / "anomaly_score_ToyRotor_section_00_test.csv", header=None)
    assert len(scores) == 100 and np.isfinite(scores[1]).all()
    assert metrics["official_score"] == pytest.approx(official_row(run / "result.csv"), abs=1e-12)
    assert (run / "systems" / "ToyRotor.pt").is_file()


def test_feature_exchange_trains_and_its_saved_system_reloads_with_both_heads(make_cfg):
    """A run with FeatEx as a user starts it: the exchange head trains, is saved with the system and is
    rebuilt when the system is loaded (the saved state names its weights); the embeddings score alone."""
    from asd.system import load_systems

    cfg = make_cfg(
        "experiment=multibranch_sc_adacos_knn",
        "machine=ToyRotor",
        "debug=fdr",
        "model.clip_seconds=4.5",
        "model.branch_dim=16",
        "model.feature_exchange_probability=0.5",
    )
    metrics, _ = train(cfg)
    assert np.isfinite(metrics["official_score"])
    (system,) = load_systems(cfg.paths.output_dir).values()
    module = system.module
    classes = len(module.class_names)
    assert module.exchange_head is not None and module.exchange_head.n_classes == classes * 3
    assert module.exchange_head.weight.shape == (classes * 3 * 16, 32)
