"""asd.score: a back-end refitted on a finished run's saved representations, without the frontend."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import provide_synthetic_data, run_module_in_process

from asd.evaluation.metrics import read_clip_scores
from asd.predict import main as predict_cli

# no TensorBoard views (a second a run; test_train checks them)
RUN = [
    "machine=ToyRotor",
    "trainer.max_epochs=3",
    "callbacks.epoch_evaluation=null",
    "callbacks.tensorboard_views=null",
    "seed=7",
]


def _train(run_cli, tmp_path, name, *overrides):
    done = run_cli(
        "asd.train", *RUN, *overrides, "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={tmp_path / name}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / name


def _score(tmp_path, run, *arguments, multirun=False):
    arguments = [*(["-m"] if multirun else []), str(run), *arguments]
    return run_module_in_process("asd.score", arguments, tmp_path, {"ASD_ROOT": str(tmp_path)})


def _scores(run):
    (section,) = read_clip_scores(run / "scores.csv")
    return pd.Series(section.scores, index=section.file_names)


def _finished_run(home: Path, synthetic_root: Path, feature_cache: Path, *overrides: str) -> Path:
    """One finished run (RUN's settings and ``overrides``) under ``home``, as a user's command leaves it."""
    provide_synthetic_data(home, synthetic_root, feature_cache)
    arguments = [*RUN, *overrides, "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={home / 'run'}"]
    done = run_module_in_process("asd.train", arguments, home, {"ASD_ROOT": str(home)})
    assert done.returncode == 0, done.stderr[-3000:]
    return home / "run"


# Finished runs shared by the tests that only read them (each test writes its own rescored run).
@pytest.fixture(scope="module")
def knn_run(tmp_path_factory, synthetic_root, feature_cache):
    return _finished_run(tmp_path_factory.mktemp("knn_run"), synthetic_root, feature_cache, "backend=knn")


@pytest.fixture(scope="module")
def mahalanobis_run(tmp_path_factory, synthetic_root, feature_cache):
    return _finished_run(
        tmp_path_factory.mktemp("mahalanobis_run"), synthetic_root, feature_cache, "backend=selective_mahalanobis"
    )


# knn: test_a_multirun_over_backends_gets_its_summary rescores a kNN run with its own back-end, to 1e-9
def test_rescoring_with_the_runs_own_backend_reproduces_its_scores(mahalanobis_run, tmp_path):
    run = mahalanobis_run
    assert (run / "representations" / "ToyRotor.npz").is_file()
    done = _score(tmp_path, run, "backend=selective_mahalanobis", f"hydra.run.dir={tmp_path / 'rescored'}")
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(_scores(tmp_path / "rescored"), _scores(run), rtol=0, atol=1e-9)
    assert (tmp_path / "rescored" / "submission" / "decision_result_ToyRotor_section_00_test.csv").is_file()


# slow (25 s): rescoring a run with its own back-end is covered by the test above, a fused back-end's
# rescoring by test_a_multirun_over_backends_gets_its_summary
@pytest.mark.slow
def test_a_fused_backend_rescored_reproduces_its_scores(run_cli, tmp_path):
    run = _train(run_cli, tmp_path, "run", "backend=fusion_standardised")
    done = _score(tmp_path, run, "backend=fusion_standardised", f"hydra.run.dir={tmp_path / 'rescored'}")
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(_scores(tmp_path / "rescored"), _scores(run), rtol=0, atol=1e-9)


def test_another_backend_equals_a_full_run_with_it(knn_run, mahalanobis_run, tmp_path, synthetic_root):
    # the kNN run and the Mahalanobis run trained the same AE (same seed): rescoring one with the
    # other's back-end gives the other's scores
    done = _score(tmp_path, knn_run, "backend=selective_mahalanobis", f"hydra.run.dir={tmp_path / 'rescored'}")
    assert done.returncode == 0, done.stderr[-3000:]
    rescored = tmp_path / "rescored"
    np.testing.assert_allclose(_scores(rescored), _scores(mahalanobis_run), rtol=1e-6)
    # the rescored run is a run: asd.predict scores new audio with the frontend and the new back-end
    test_dir = synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test"
    assert predict_cli([str(rescored), str(test_dir), "--out", str(tmp_path / "p.csv")]) == 0
    predicted = pd.read_csv(tmp_path / "p.csv").assign(name=lambda t: t["file"].map(lambda f: Path(f).name))
    np.testing.assert_allclose(
        predicted.set_index("name")["anomaly_score"].loc[_scores(rescored).index], _scores(rescored), rtol=1e-6
    )


def test_a_multirun_over_backends_gets_its_summary(knn_run, tmp_path):
    # a kNN run: none of its back-end settings (k_source, ...) may reach the other back-ends
    run = knn_run
    sweep = tmp_path / "sweep"
    done = _score(tmp_path, run, "backend=knn,mahalanobis,fusion", f"hydra.sweep.dir={sweep}", multirun=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    official = summary[summary["machine"] == "official score"]
    assert len(official) == 3 and (official["status"] == "ok").all()
    assert official["configuration"].str.contains("backend=mahalanobis").any()
    (knn_job,) = [
        d
        for d in sweep.iterdir()
        if d.is_dir() and (d / ".hydra").is_dir() and "backend=knn" in (d / ".hydra" / "overrides.yaml").read_text()
    ]
    np.testing.assert_allclose(_scores(knn_job), _scores(run), atol=1e-9)
    assert (knn_job / "submission" / "decision_result_ToyRotor_section_00_test.csv").is_file()


def test_a_run_without_representations_is_a_clear_error(knn_run, tmp_path):
    # what a save_representations=false run leaves: the run without its representations/
    run = tmp_path / "run"
    shutil.copytree(knn_run, run, ignore=shutil.ignore_patterns("representations"))
    done = _score(tmp_path, run, "backend=knn", f"hydra.run.dir={tmp_path / 'rescored'}")
    assert done.returncode == 1
    assert "ToyRotor.npz: missing; the run did not save its representations" in done.stderr


@pytest.mark.parametrize(
    "setting, message",
    [
        ("backend.k_source=-3", "backend.k_source must be at least 1, got -3"),
        ("backend.k_source=abc", "backend.k_source must be an integer, got 'abc'"),
    ],
)
def test_a_backend_parameter_out_of_range_is_refused_naming_the_key(setting, message, knn_run, tmp_path):
    out = tmp_path / "rescored"
    done = _score(tmp_path, knn_run, "backend=knn", setting, f"hydra.run.dir={out}")
    assert done.returncode == 1
    assert message in done.stderr
    assert not (out / "scores.csv").exists() and not (out / "systems").exists()


def test_a_missing_run_directory_is_named(tmp_path):
    done = _score(tmp_path, tmp_path / "no_such_run", "backend=knn", f"hydra.run.dir={tmp_path / 'rescored'}")
    assert done.returncode == 1
    assert f"{tmp_path / 'no_such_run'}: run directory not found" in done.stderr
    assert "grammar" not in done.stderr.lower()


def test_a_run_of_an_earlier_version_without_its_record_is_read_from_its_config(knn_run, tmp_path):
    # runs written before run.json existed: their year and splits come from their config, as before
    run = tmp_path / "old_run"
    shutil.copytree(knn_run, run, ignore=shutil.ignore_patterns("run.json"))
    done = _score(tmp_path, run, "backend=mahalanobis", f"hydra.run.dir={tmp_path / 'rescored'}")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "rescored" / "run.json").read_text())
    assert record["entry_point"] == "asd.score" and record["members"] == [str(run.resolve())]
    assert record["year"] == 2024 and record["machine_splits"] == {"ToyRotor": "dev"}
