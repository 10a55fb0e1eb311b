"""asd.report on hand-made multirun folders: the per-year official scores and bad folders."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from asd.evaluation.metrics import (
    SectionResult,
    official_score,
    read_clip_scores,
    write_clip_scores,
    year_section_metrics,
)
from asd.report import ReportError, main, write_report


def random_section(machine: str, seed: int, section_id: str = "00") -> SectionResult:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 0, 1], [40, 10, 40, 10])
    domains = np.repeat([0, 0, 1, 1], [40, 10, 40, 10])
    scores = rng.normal(size=100) + 1.2 * labels - 0.5 * domains * labels
    return SectionResult(
        machine,
        section_id,
        np.array([f"clip_{i:04d}.wav" for i in range(100)]),
        labels,
        domains,
        scores,
        (scores > 0.5).astype(int),
    )


def make_job(
    sweep: Path, name: str, overrides: list[str], machines: list[str], year: int, seed: int
) -> list[SectionResult]:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    config = {"data": {"root": "/data/dcase", "data_split": "dev", "year": year}, "machine": {"types": machines}}
    OmegaConf.save(OmegaConf.create(config), job / ".hydra" / "config.yaml")
    sections = [random_section(m, seed + i) for i, m in enumerate(machines)]
    write_clip_scores(job / "scores.csv", sections)
    return sections


def test_clip_scores_round_trip(tmp_path):
    sections = [random_section("fan", 1), random_section("valve", 2, "01")]
    back = read_clip_scores(write_clip_scores(tmp_path / "scores.csv", sections))
    for original, read in zip(sections, back):
        assert (read.machine, read.section_id) == (original.machine, original.section_id)
        np.testing.assert_array_equal(read.scores, original.scores)  # exact: written in round-trip form
        assert read.metrics() == original.metrics()


def test_year_definitions():
    section = random_section("fan", 3)
    in_2020 = year_section_metrics(section, 2020)
    assert in_2020 == {"AUC": section.metrics()["AUC (all)"], "pAUC": section.metrics()["pAUC"]}
    in_2021 = year_section_metrics(section, 2021)
    target = section.domains == 1
    assert in_2021["AUC (target)"] == roc_auc_score(section.labels[target], section.scores[target])
    assert in_2021["pAUC (source)"] == roc_auc_score(section.labels[~target], section.scores[~target], max_fpr=0.1)
    assert official_score([in_2021], 2021) == pytest.approx(scipy.stats.hmean(list(in_2021.values())), abs=1e-15)
    assert official_score([in_2020], 2020) == pytest.approx(np.mean(list(in_2020.values())), abs=1e-15)
    for year in (2022, 2024, 2025):
        assert official_score([year_section_metrics(section, year)], year) == official_score([section.metrics()])
    with pytest.raises(ValueError, match="before 2020"):
        year_section_metrics(section, 2019)


@pytest.mark.parametrize("year", [2020, 2021, 2024])
def test_report_groups_by_configuration_and_uses_the_years_definition(tmp_path, year):
    sweep = tmp_path / "multirun"
    ae = make_job(sweep, "0", ["machine=fan", "model=ae"], ["fan"], year, seed=10)
    ae += make_job(sweep, "1", ["machine=valve", "model=ae"], ["valve"], year, seed=20)
    knn = make_job(sweep, "2", ["machine.types=[fan,valve]", "model=pretrained"], ["fan", "valve"], year, seed=30)
    summary = write_report(sweep).set_index(["configuration", "machine"])
    for configuration, sections in (("model=ae", ae), ("model=pretrained", knn)):
        metrics = [year_section_metrics(s, year) for s in sections]
        official = summary.loc[(configuration, "official score")]
        assert official["score"] == pytest.approx(100 * official_score(metrics, year), abs=1e-9)
        assert official["year"] == year and official["status"] == "ok"
        fan = summary.loc[(configuration, "fan")]
        assert fan["score"] == pytest.approx(100 * official_score(metrics[:1], year), abs=1e-9)
    assert summary.loc[("model=ae", "official score"), "jobs"] == "0 1"
    columns = {2020: "AUC", 2021: "pAUC (target)", 2024: "AUC (target)"}[year]
    assert not np.isnan(summary.loc[("model=ae", "fan"), columns])
    assert f"({year} official score" in (sweep / "summary.md").read_text()


def test_report_keeps_a_killed_job_on_record(tmp_path):
    sweep = tmp_path / "multirun"
    make_job(sweep, "0", ["machine=fan"], ["fan"], 2024, seed=1)
    make_job(sweep, "1", ["machine=valve"], ["valve"], 2024, seed=2)
    (sweep / "1" / "scores.csv").unlink()  # killed before it finished
    summary = write_report(sweep).set_index("machine")
    assert summary.loc["valve", "status"].startswith("failed: no scores.csv")
    assert summary.loc["official score", "status"] == "incomplete: 1 failed job(s)"
    assert summary.loc["official score", "configuration"] == "(defaults)"


def test_a_machine_type_tested_twice_in_one_configuration_counts_once(tmp_path):
    sweep = tmp_path / "multirun"
    first = make_job(sweep, "0", ["machine=fan"], ["fan"], 2024, seed=1)
    second = make_job(sweep, "1", ["machine.types=[fan,valve]"], ["fan", "valve"], 2024, seed=5)
    summary = write_report(sweep)
    skipped = summary[summary["status"].str.startswith("skipped")]
    assert skipped[["machine", "jobs", "status"]].values.tolist() == [["fan", "1", "skipped: also tested by job 0"]]
    official = summary.set_index("machine").loc["official score"]
    used = [first[0], second[1]]
    expected = official_score([year_section_metrics(s, 2024) for s in used], 2024)
    assert official["score"] == pytest.approx(100 * expected, abs=1e-9) and official["sections"] == 2


def test_report_on_a_folder_without_jobs_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="no job folders"):
        write_report(tmp_path)
    with pytest.raises(SystemExit, match="no such multirun folder"):
        main([str(tmp_path / "missing")])
    broken = tmp_path / "broken" / "0" / ".hydra"
    broken.mkdir(parents=True)
    (broken / "overrides.yaml").write_text("[machine=fan]")
    with pytest.raises(ReportError, match="cannot read the job's .hydra/ config"):
        write_report(tmp_path / "broken")


def test_jobs_that_differ_only_in_seed_are_pooled_into_mean_and_std(tmp_path):
    sweep = tmp_path / "multirun"
    runs = {}
    for job, seed in enumerate((1, 2, 3)):
        for offset, machine in enumerate(("fan", "valve")):
            name = str(2 * job + offset)
            runs[(seed, machine)] = make_job(
                sweep,
                name,
                [f"machine={machine}", "model=ae", f"seed={seed}"],
                [machine],
                2024,
                seed=10 * seed + offset,
            )
    make_job(sweep, "6", ["machine=fan", "model=knn_only_once"], ["fan"], 2024, seed=99)  # one seed: not pooled
    write_report(sweep)
    seeds = pd.read_csv(sweep / "seeds.csv").set_index("machine")
    assert set(seeds["configuration"]) == {"model=ae"} and (seeds["seeds"] == 3).all()
    fan = [100 * official_score([year_section_metrics(runs[(s, "fan")][0], 2024)]) for s in (1, 2, 3)]
    assert seeds.loc["fan", "score mean"] == pytest.approx(np.mean(fan), abs=1e-9)
    assert seeds.loc["fan", "score std"] == pytest.approx(np.std(fan, ddof=1), abs=1e-9)
    overall = [
        100 * official_score([year_section_metrics(runs[(s, m)][0], 2024) for m in ("fan", "valve")]) for s in (1, 2, 3)
    ]
    assert seeds.loc["official score", "score mean"] == pytest.approx(np.mean(overall), abs=1e-9)
    assert seeds.loc["official score", "score std"] == pytest.approx(np.std(overall, ddof=1), abs=1e-9)
    assert seeds.loc["official score", "ci95 mean"] > 0
    # the textbook jackknife: (n - 1) times the evaluator's, n = the 200 clips pooled per job
    assert seeds.loc["official score", "jackknife95 mean"] == pytest.approx(
        199 * seeds.loc["official score", "ci95 mean"], rel=1e-9
    )
    assert "## Over seeds" in (sweep / "summary.md").read_text()


@pytest.mark.parametrize("year", [2020, 2021, 2024])
def test_a_runs_official_score_is_its_years_everywhere(year, run_cli, synthetic_root, synthetic_2020_root, tmp_path):
    """The number printed at the end of a run, in summary.csv, in the logged metrics (TensorBoard's and
    the sweep objective's source), and in asd.report's summary is one number: the data year's. DCASE
    2020 data (no domains) scores too, by the 2020 definition and in the 2020 files."""
    sweep = tmp_path / "sweep"
    done = run_cli(
        "asd.train",
        "-m",
        f"data=dcase{year}",
        f"data.root={synthetic_2020_root if year == 2020 else synthetic_root}",
        "machine=ToyRotor",
        "trainer.max_epochs=1",
        "logger=csv",
        "callbacks.epoch_evaluation=null",
        "callbacks.progress_bar.refresh_rate=0",
        f"hydra.sweep.dir={sweep}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (job,) = [d for d in sweep.iterdir() if (d / "scores.csv").is_file()]
    (section,) = read_clip_scores(job / "scores.csv")
    expected = official_score([year_section_metrics(section, year)], year)
    if year == 2021:  # the definitions differ on these scores, so the test tells them apart
        assert abs(expected - official_score([section.metrics()])) > 1e-4
    summary = pd.read_csv(job / "summary.csv").set_index("machine")
    assert summary.loc["official score", "score"] == pytest.approx(100 * expected, abs=1e-9)
    logged = pd.concat(pd.read_csv(f) for f in job.rglob("metrics.csv"))
    assert logged["test/official_score"].dropna().iloc[-1] == pytest.approx(expected, abs=1e-6)
    printed = re.search(r"official score\s+([0-9.]+)", done.stderr + done.stdout)
    assert float(printed.group(1)) == pytest.approx(100 * expected, abs=0.01)
    report = pd.read_csv(sweep / "summary.csv")
    reported = report[(report["machine"] == "official score") & (report["status"] == "ok")]["score"]
    assert float(reported.iloc[0]) == pytest.approx(100 * expected, abs=1e-6)
    if year == 2020:
        # 2020: AUC and pAUC per machine ID over all its clips (no domains), their arithmetic mean
        auc, pauc = (
            roc_auc_score(section.labels, section.scores),
            roc_auc_score(section.labels, section.scores, max_fpr=0.1),
        )
        assert (section.domains == -1).all() and expected == pytest.approx((auc + pauc) / 2, abs=1e-12)
        assert list(summary.columns) == ["section", "AUC", "pAUC", "score"]
        rows = [line.split(",") for line in (job / "result.csv").read_text().splitlines()]
        assert rows[:3] == [["ToyRotor"], ["id", "AUC", "pAUC"], ["00", repr(auc), repr(pauc)]]
        assert sorted(p.name for p in (job / "submission").iterdir()) == [
            "anomaly_score_ToyRotor_id_00.csv",
            "decision_result_ToyRotor_id_00.csv",
        ]
        rescored = run_cli("asd.score", str(job), "backend=mahalanobis", f"hydra.run.dir={tmp_path / 'rescored'}")
        assert rescored.returncode == 0, rescored.stderr[-3000:]
        assert (tmp_path / "rescored" / "result.csv").read_text().startswith("ToyRotor\nid,AUC,pAUC\n00,")
