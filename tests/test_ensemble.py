"""asd.ensemble: runs combined on constructed scores where the answer is known, and on real runs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asd.ensemble import main as ensemble_cli
from asd.evaluation.metrics import SectionResult, official_score, read_clip_scores, write_clip_scores
from asd.predict import main as predict_cli


def _section(machine, scores, domains, labels):
    names = np.array([f"{machine}_{i:03d}.wav" for i in range(len(scores))])
    return SectionResult(
        machine,
        "00",
        names,
        np.asarray(labels),
        np.asarray(domains),
        np.asarray(scores, float),
        np.zeros(len(scores), int),
    )


def _fake_run(folder, test_scores, training_scores, test_domains, test_labels, training_domains, order=None):
    """A run directory with scores.csv and training_scores.csv (the files asd.train writes); ``order``
    lists the test clips in another order."""
    test = _section("fan", test_scores, test_domains, test_labels)
    if order is not None:
        test = SectionResult(
            "fan",
            "00",
            test.file_names[order],
            test.labels[order],
            test.domains[order],
            test.scores[order],
            test.decisions[order],
        )
    training = _section("fan", training_scores, training_domains, np.zeros(len(training_scores), int))
    folder.mkdir()
    write_clip_scores(folder / "scores.csv", [test])
    write_clip_scores(folder / "training_scores.csv", [training])
    return folder


@pytest.fixture
def constructed(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 0, 1], 10)
    domains = np.repeat([0, 0, 1, 1], 10)
    a_test = rng.normal(size=40) + labels
    a_train = rng.normal(size=30)
    train_domains = np.r_[np.zeros(27, int), np.ones(3, int)]
    b_order = rng.permutation(40)
    a = _fake_run(tmp_path / "a", a_test, a_train, domains, labels, train_domains)
    # run b: the same scores on another scale (3x + 7), clips listed in another order
    b = _fake_run(tmp_path / "b", 3 * a_test + 7, 3 * a_train + 7, domains, labels, train_domains, order=b_order)
    return a, b, a_test, a_train, labels, domains


def test_runs_on_different_scales_agree_after_normalisation(constructed, tmp_path):
    a, b, a_test, a_train, labels, domains = constructed
    assert ensemble_cli([str(a), str(b), "--out", str(tmp_path / "ens")]) == 0
    (fused,) = read_clip_scores(tmp_path / "ens" / "scores.csv")
    expected = (a_test - a_train.mean()) / a_train.std()  # both members give exactly this
    np.testing.assert_allclose(fused.scores, expected, atol=1e-12)
    assert official_score([fused.metrics()]) == pytest.approx(
        official_score([_section("fan", a_test, domains, labels).metrics()]), abs=1e-12
    )
    for name in (
        "result.csv",
        "summary.csv",
        "training_scores.csv",
        "submission/anomaly_score_fan_section_00_test.csv",
    ):
        assert (tmp_path / "ens" / name).is_file()
    decisions = pd.read_csv(tmp_path / "ens" / "submission" / "decision_result_fan_section_00_test.csv", header=None)[1]
    assert set(decisions) <= {0, 1}


@pytest.mark.parametrize("combine, reduce", [("max", np.max), ("min", np.min)])
def test_max_and_min_take_the_extreme_normalised_member(combine, reduce, tmp_path):
    rng = np.random.default_rng(1)
    labels, domains = np.repeat([0, 1], 10), np.repeat([0, 1, 0, 1], 5)
    tests = [rng.normal(size=20), rng.normal(size=20)]
    trains = [rng.normal(size=15), 5 * rng.normal(size=15)]
    runs = [_fake_run(tmp_path / f"r{i}", tests[i], trains[i], domains, labels, np.zeros(15, int)) for i in range(2)]
    assert ensemble_cli([*map(str, runs), "--out", str(tmp_path / "ens"), "--combine", combine]) == 0
    (fused,) = read_clip_scores(tmp_path / "ens" / "scores.csv")
    z = [(t - tr.mean()) / tr.std() for t, tr in zip(tests, trains)]
    np.testing.assert_allclose(fused.scores, reduce(np.stack(z), axis=0), atol=1e-12)


def test_runs_of_other_clips_or_without_training_scores_are_refused(constructed, tmp_path, capsys):
    a, b, a_test, a_train, labels, domains = constructed
    other = _fake_run(tmp_path / "other", a_test[:-1], a_train, domains[:-1], labels[:-1], np.zeros(30, int))
    assert ensemble_cli([str(a), str(other), "--out", str(tmp_path / "ens")]) == 2
    assert f"{other}: fan section 00 scored other clips than the first run" in capsys.readouterr().err
    (b / "training_scores.csv").unlink()
    assert ensemble_cli([str(a), str(b), "--out", str(tmp_path / "ens")]) == 2
    assert "training_scores.csv: missing" in capsys.readouterr().err
    assert ensemble_cli([str(a), "--out", str(tmp_path / "ens")]) == 2
    assert ensemble_cli([str(a), str(b), "--out", str(a)]) == 2


def test_an_existing_folder_is_never_written_into(constructed, tmp_path, capsys):
    a, b, *_ = constructed
    before = {path: path.read_bytes() for path in b.rglob("*") if path.is_file()}
    assert ensemble_cli([str(a), str(b), "--out", str(b)]) == 2  # another finished run
    assert f"--out {b} exists and is not an empty folder" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in b.rglob("*") if path.is_file()} == before
    (tmp_path / "notes.txt").write_text("mine")
    assert ensemble_cli([str(a), str(b), "--out", str(tmp_path / "notes.txt")]) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert ensemble_cli([str(a), str(b), "--out", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / "scores.csv").is_file()


def test_an_ensemble_judges_a_clip_as_most_members_did_and_decides_by_that_domains_threshold(tmp_path):
    """Normal target clips score higher than source ones (few target training clips): the source
    threshold alone would flag nearly all of them. Each clip is judged as the domain most members
    judged it as (scores.csv's judged_domain) and decided by that domain's threshold."""
    rng = np.random.default_rng(0)
    training_domains = np.r_[np.zeros(300, int), np.ones(40, int)]
    test_domains, test_labels = np.repeat([0, 1], 400), np.tile(np.repeat([0, 1], [350, 50]), 2)
    training_base = rng.gamma(4.0, 1.0, 340) + 6.0 * training_domains
    test_base = rng.gamma(4.0, 1.0, 800) + 6.0 * test_domains + 8.0 * test_labels
    runs = []
    for name, judged_wrong in (("a", 0), ("b", 40), ("c", 0)):  # run b misjudges 40 target clips
        judged = test_domains.copy()
        judged[400 : 400 + judged_wrong] = 0
        test = SectionResult(
            "fan",
            "00",
            np.array([f"t{i}.wav" for i in range(800)]),
            test_labels,
            test_domains,
            test_base + 0.1 * rng.normal(size=800),
            np.zeros(800, int),
            judged,
        )
        training = SectionResult(
            "fan",
            "00",
            np.array([f"r{i}.wav" for i in range(340)]),
            np.zeros(340, int),
            training_domains,
            training_base + 0.1 * rng.normal(size=340),
            np.zeros(340, int),
            training_domains,
        )
        (tmp_path / name).mkdir()
        write_clip_scores(tmp_path / name / "scores.csv", [test])
        write_clip_scores(tmp_path / name / "training_scores.csv", [training])
        runs.append(str(tmp_path / name))
    assert ensemble_cli([*runs, "--out", str(tmp_path / "ens")]) == 0
    (fused,) = read_clip_scores(tmp_path / "ens" / "scores.csv")
    assert (fused.judged_domains == fused.domains).all()  # two of three members judged each clip right
    for domain in (0, 1):
        flagged = fused.decisions[(fused.domains == domain) & (fused.labels == 0)].mean()
        assert 0.04 <= flagged <= 0.25, f"domain {domain}: {flagged:.0%} of normal clips flagged"


def test_runs_written_before_judged_domains_were_recorded_are_refused(constructed, tmp_path, capsys):
    a, b = constructed[:2]
    for run in (a, b):
        table = pd.read_csv(run / "scores.csv").drop(columns="judged_domain")
        table.to_csv(run / "scores.csv", index=False)
    assert ensemble_cli([str(a), str(b), "--out", str(tmp_path / "ens")]) == 2
    assert "records no domain each clip was judged as" in capsys.readouterr().err


def test_two_seeds_of_a_real_run_combine(make_cfg, tmp_path, capsys):
    from omegaconf import open_dict

    from asd.train import train

    runs = []
    for seed in (1, 2):
        cfg = make_cfg("machine=ToyHum", "trainer.max_epochs=5", f"seed={seed}", "callbacks.epoch_evaluation=null")
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"seed{seed}")
        train(cfg)
        runs.append(tmp_path / f"seed{seed}")
    assert ensemble_cli([*map(str, runs), "--out", str(tmp_path / "ens")]) == 0
    (fused,) = read_clip_scores(tmp_path / "ens" / "scores.csv")
    members = [read_clip_scores(run / "scores.csv")[0] for run in runs]
    trainings = [read_clip_scores(run / "training_scores.csv")[0] for run in runs]
    assert all(list(m.file_names) == list(fused.file_names) for m in members)
    z = [(m.scores - t.scores.mean()) / t.scores.std() for m, t in zip(members, trainings)]
    np.testing.assert_allclose(fused.scores, np.mean(z, axis=0), atol=1e-12)
    assert len(trainings[0].scores) == 100 and (trainings[0].labels == 0).all()
    # asd.predict reads the ensemble's record: it names the member runs that hold systems
    test_dir = Path(cfg.data.root) / "dev_data" / "raw" / "ToyHum" / "test"
    assert predict_cli([str(tmp_path / "ens"), str(test_dir), "--out", str(tmp_path / "p.csv")]) == 2
    error = capsys.readouterr().err
    assert f"an ensemble of {runs[0]}, {runs[1]}" in error and "give one of its members" in error


def test_an_ensemble_of_an_earlier_version_is_read_through_its_members_txt(tmp_path):
    from omegaconf import OmegaConf

    from asd.run_directory import read_run_record

    member = tmp_path / "member"
    (member / ".hydra").mkdir(parents=True)
    config = {"data": {"year": 2021, "root": str(tmp_path), "data_split": "dev"}, "machine": {"types": ["fan"]}}
    OmegaConf.save(OmegaConf.create(config), member / ".hydra" / "config.yaml")
    old_ensemble = tmp_path / "old_ensemble"  # what asd.ensemble wrote before run.json: members.txt
    old_ensemble.mkdir()
    (old_ensemble / "members.txt").write_text(f"{member}\n{tmp_path / 'other'}\n")
    record = read_run_record(old_ensemble)
    assert record.year == 2021 and record.machine_splits == {"fan": "dev"}
    scores_alone = tmp_path / "scores_alone"  # a folder of score files: no record, no config
    scores_alone.mkdir()
    assert read_run_record(scores_alone, required=False) is None


def test_the_recommended_system_runs_as_the_readme_writes_it(run_cli, tmp_path):
    """README: one multirun of the twin and ae_mahalanobis, then asd.ensemble of its jobs 0 and 1 (short
    trainings here; the recipe lengths' ensemble: test_reliability.py's slow default-length test)."""
    done = run_cli(
        "asd.train",
        "-m",
        "experiment=multibranch_sc_adacos_knn,ae_mahalanobis",
        "seed=0",
        "machine=ToyHum",
        "trainer.max_epochs=1",
        "callbacks.epoch_evaluation=null",
        "callbacks.progress_bar.refresh_rate=0",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    chosen = [(sweep / job / ".hydra" / "overrides.yaml").read_text() for job in ("0", "1")]
    assert "experiment=multibranch_sc_adacos_knn" in chosen[0] and "experiment=ae_mahalanobis" in chosen[1]
    assert ensemble_cli([str(sweep / "0"), str(sweep / "1"), "--out", str(tmp_path / "twin_ae")]) == 0
    (fused,) = read_clip_scores(tmp_path / "twin_ae" / "scores.csv")
    members = [read_clip_scores(sweep / job / "scores.csv")[0] for job in ("0", "1")]
    assert all(list(m.file_names) == list(fused.file_names) for m in members)
    # the two families' scores differ, and the ensemble is neither member's
    assert not np.allclose(members[0].scores, members[1].scores)
    assert all(np.corrcoef(fused.scores, m.scores)[0, 1] < 1 - 1e-6 for m in members)
    summary = pd.read_csv(tmp_path / "twin_ae" / "summary.csv")
    assert "official score" in set(summary["machine"])
