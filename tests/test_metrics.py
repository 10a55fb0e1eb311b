import csv
import math

import numpy as np
import pytest
import scipy.stats
from conftest import SHARED
from scipy.stats import hmean
from sklearn.metrics import roc_auc_score

from asd.evaluate import evaluate
from asd.evaluate import main as evaluate_cli
from asd.evaluation.metrics import (
    SectionResult,
    jackknife_half_width,
    official_score,
    official_score_ci95,
    result_rows,
    roc_area,
    section_metrics,
)
from asd.evaluation.submission import SubmissionError, load_submission, write_section

CONFORMANCE = SHARED / "conformance" / "dcase2024_eval"
SYSTEMS = sorted(p.name for p in (CONFORMANCE / "submissions").glob("*") if p.is_dir()) if CONFORMANCE.is_dir() else []


def _read_rows(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def _same_cell(ours: str, theirs: str) -> bool:
    try:
        return math.isclose(float(ours), float(theirs), rel_tol=0, abs_tol=1e-9)
    except ValueError:
        return ours == theirs


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance is not beside this checkout")
@pytest.mark.parametrize("system", SYSTEMS)
def test_conformance_with_the_official_evaluator(system, tmp_path):
    expected_path = CONFORMANCE / "expected_result" / f"{system}_result.csv"
    if not expected_path.is_file():
        pytest.skip(f"{expected_path} is not distributed in this checkout's shared folder")
    ours = _read_rows(evaluate(CONFORMANCE / "submissions" / system, CONFORMANCE, tmp_path))
    theirs = _read_rows(expected_path)
    assert len(ours) == len(theirs)
    for line_no, (row, expected) in enumerate(zip(ours, theirs), start=1):
        assert len(row) == len(expected), f"line {line_no}: {row} vs {expected}"
        for cell, expected_cell in zip(row, expected):
            assert _same_cell(cell, expected_cell), f"line {line_no}: {cell} != {expected_cell}"


def _random_section(rng, n=120, machine="fan", section_id="00"):
    labels = rng.integers(0, 2, n)
    domains = rng.integers(0, 2, n)
    scores = labels * rng.uniform(0, 1.5) + rng.normal(size=n)
    scores[:10] = np.round(scores[:10])  # ties
    decisions = (scores > 0.5).astype(int)
    names = np.array([f"section_{section_id}_{i:04d}.wav" for i in range(n)])
    return SectionResult(machine, section_id, names, labels, domains, scores, decisions)


def test_section_metrics_follow_the_official_definitions():
    rng = np.random.default_rng(0)
    s = _random_section(rng)
    m = s.metrics()
    for domain, code in (("source", 0), ("target", 1)):
        subset = (s.domains == code) | (s.labels == 1)  # this domain's normals + ALL anomalies
        assert m[f"AUC ({domain})"] == roc_auc_score(s.labels[subset], s.scores[subset])
        in_domain = s.domains == code
        tp = np.sum((s.decisions == 1) & (s.labels == 1) & in_domain)
        precision = tp / np.sum((s.decisions == 1) & in_domain)
        recall = tp / np.sum((s.labels == 1) & in_domain)
        assert m[f"precision ({domain})"] == pytest.approx(precision, abs=1e-12)
        assert m[f"recall ({domain})"] == pytest.approx(recall, abs=1e-12)
        assert m[f"F1 score ({domain})"] == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-12)
    # pAUC is McClish-standardised over the whole section, not area/0.1
    assert m["pAUC"] == roc_auc_score(s.labels, s.scores, max_fpr=0.1)
    assert m["AUC (all)"] == roc_auc_score(s.labels, s.scores)


def test_official_score_is_the_harmonic_mean_of_all_values():
    rng = np.random.default_rng(1)
    sections = [_random_section(rng, machine=m) for m in ("fan", "valve", "ToyCar")]
    metrics = [s.metrics() for s in sections]
    values = [m[k] for k in ("AUC (source)", "AUC (target)", "pAUC") for m in metrics]
    assert official_score(metrics) == pytest.approx(hmean(values), abs=1e-15)
    rows = result_rows(sections, with_ci95=False)
    assert [r[0] for r in rows if r and r[0] in ("fan", "valve", "ToyCar")] == [
        "ToyCar",
        "fan",
        "valve",
    ]  # sorted as the evaluator
    assert rows[-2][:2] == ["official score", ""] and rows[-2][2] == pytest.approx(official_score(metrics), abs=1e-15)


def test_zero_values_are_clipped_not_fatal():
    labels = np.array([0, 0, 1, 1])
    m = section_metrics(labels, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]), np.zeros(4, dtype=int))
    assert m["precision (source)"] == 0.0 and m["F1 score (source)"] == 0.0
    assert official_score([m]) == pytest.approx(1.0)


def _write_submission(directory, sections, names_for=lambda s, n: n):
    for s in sections:
        write_section(
            directory, s.machine, s.section_id, [names_for(s, n) for n in s.file_names], s.scores, s.decisions
        )


def _write_truth(directory, sections):
    for kind in ("data", "domain", "attributes"):
        (directory / f"ground_truth_{kind}").mkdir(parents=True, exist_ok=True)
    for s in sections:
        stem = f"ground_truth_{s.machine}_section_{s.section_id}_test.csv"
        (directory / "ground_truth_data" / stem).write_text(
            "".join(f"{n},{label}\n" for n, label in zip(s.file_names, s.labels))
        )
        (directory / "ground_truth_domain" / stem).write_text(
            "".join(f"{n},{d}\n" for n, d in zip(s.file_names, s.domains))
        )
        (directory / "ground_truth_attributes" / stem).write_text("".join(f"{n},orig_{n[:-4]}\n" for n in s.file_names))


def test_evaluate_cli_on_generated_data(tmp_path):
    rng = np.random.default_rng(2)
    sections = [_random_section(rng, machine=m) for m in ("fan", "valve")]
    _write_truth(tmp_path / "gt", sections)
    _write_submission(tmp_path / "sub", sections)
    # a second submission names its files with their original (attribute) names, shuffled
    _write_submission(tmp_path / "sub_original", sections, lambda s, n: f"orig_{n}")
    assert (
        evaluate_cli([str(tmp_path / "sub"), "--ground-truth", str(tmp_path / "gt"), "--out", str(tmp_path / "out")])
        == 0
    )
    rows = _read_rows(tmp_path / "out" / "result.csv")
    official = float([r for r in rows if r and r[0] == "official score"][0][2])
    assert official == pytest.approx(official_score([s.metrics() for s in sections]), abs=1e-15)
    loaded = load_submission(tmp_path / "sub_original", tmp_path / "gt")
    assert [s.metrics() for s in loaded] == [s.metrics() for s in sections]


def test_submission_errors_name_the_file(tmp_path, capsys):
    rng = np.random.default_rng(3)
    sections = [_random_section(rng)]
    _write_truth(tmp_path / "gt", sections)
    _write_submission(tmp_path / "sub", sections)
    score_file = tmp_path / "sub" / "anomaly_score_fan_section_00_test.csv"
    lines = score_file.read_text().splitlines()
    score_file.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(SubmissionError, match="1 files missing"):
        load_submission(tmp_path / "sub", tmp_path / "gt")
    score_file.write_text("\n".join(lines + lines[:1]) + "\n")
    with pytest.raises(SubmissionError, match="listed twice"):
        load_submission(tmp_path / "sub", tmp_path / "gt")
    score_file.write_text("\n".join(lines[1:] + ["section_00_0000.wav,abc"]) + "\n")
    with pytest.raises(SubmissionError, match="'abc' is not a number"):
        load_submission(tmp_path / "sub", tmp_path / "gt")
    score_file.unlink()
    assert (
        evaluate_cli([str(tmp_path / "sub"), "--ground-truth", str(tmp_path / "gt"), "--out", str(tmp_path / "o")]) == 2
    )
    assert f"{score_file}: submission file not found" in capsys.readouterr().err
    assert (
        evaluate_cli([str(tmp_path / "sub"), "--ground-truth", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "no ground_truth_<machine>_section_<XX>_test.csv files" in capsys.readouterr().err


def _one_section_submission(tmp_path, seed):
    """A ground truth and a matching submission for one random section in tmp_path/gt and tmp_path/sub."""
    sections = [_random_section(np.random.default_rng(seed))]
    _write_truth(tmp_path / "gt", sections)
    _write_submission(tmp_path / "sub", sections)


def test_decisions_other_than_0_or_1_are_errors(tmp_path):
    _one_section_submission(tmp_path, seed=4)
    decisions = tmp_path / "sub" / "decision_result_fan_section_00_test.csv"
    lines = decisions.read_text().splitlines()
    for bad in ("2", "0.5", "-1"):
        name = lines[0].split(",")[0]
        decisions.write_text("\n".join([f"{name},{bad}", *lines[1:]]) + "\n")
        with pytest.raises(SubmissionError, match=f"{decisions}:1: decision '{bad}' for {name}; decisions are 0"):
            load_submission(tmp_path / "sub", tmp_path / "gt")


def test_a_submission_for_a_section_the_ground_truth_lacks_is_reported(tmp_path, capsys):
    rng = np.random.default_rng(5)
    sections = [_random_section(rng, machine=m) for m in ("fan", "valve")]
    _write_truth(tmp_path / "gt", sections[:1])
    _write_submission(tmp_path / "sub", sections)
    assert (
        evaluate_cli([str(tmp_path / "sub"), "--ground-truth", str(tmp_path / "gt"), "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err
    assert "2 submission files for sections the ground truth" in err
    assert "anomaly_score_valve_section_00_test.csv" in err and "would silently not count" in err


def test_mismatch_messages_print_plain_file_names(tmp_path):
    _one_section_submission(tmp_path, seed=6)
    score_file = tmp_path / "sub" / "anomaly_score_fan_section_00_test.csv"
    lines = score_file.read_text().splitlines()
    score_file.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(SubmissionError) as raised:
        load_submission(tmp_path / "sub", tmp_path / "gt")
    missing = lines[0].split(",")[0]
    assert f"1 files missing, e.g. {missing};" in str(raised.value) and "np.str_" not in str(raised.value)


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance is not beside this checkout")
def test_conformance_submissions_against_an_independent_computation():
    """Rows in any order, ties, names only matched by file: recomputed here from the raw CSVs."""
    for system in SYSTEMS:
        for section in load_submission(CONFORMANCE / "submissions" / system, CONFORMANCE):
            stem = f"{section.machine}_section_00_test.csv"
            labels = dict(_read_rows(CONFORMANCE / "ground_truth_data" / f"ground_truth_{stem}"))
            domains = dict(_read_rows(CONFORMANCE / "ground_truth_domain" / f"ground_truth_{stem}"))
            scores = {
                r[0]: float(r[1]) for r in _read_rows(CONFORMANCE / "submissions" / system / f"anomaly_score_{stem}")
            }
            names = sorted(labels)
            y = np.array([int(labels[n]) for n in names])
            d = np.array([int(domains[n]) for n in names])
            s = np.array([scores[n] for n in names])
            m = section.metrics()
            assert m["pAUC"] == roc_auc_score(y, s, max_fpr=0.1)
            assert m["AUC (source)"] == roc_auc_score(y[(d == 0) | (y == 1)], s[(d == 0) | (y == 1)])
            assert m["AUC (target)"] == roc_auc_score(y[(d == 1) | (y == 1)], s[(d == 1) | (y == 1)])


def test_textbook_jackknife_half_width_beside_the_evaluators():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 0, 1], [40, 10, 40, 10])
    domains = np.repeat([0, 0, 1, 1], [40, 10, 40, 10])
    scores = rng.normal(size=100) + labels
    names = np.array([f"clip_{i:04d}.wav" for i in range(100)])
    section = SectionResult("fan", "00", names, labels, domains, scores, (scores > 0.5).astype(int))

    def textbook(metric):  # leave-one-out estimates, variance (n-1)/n times their sum of squares
        n = len(labels)
        estimates = np.array([metric(np.delete(labels, i), np.delete(scores, i)) for i in range(n)])
        standard_error = np.sqrt((n - 1) / n * np.sum((estimates - estimates.mean()) ** 2))
        return scipy.stats.t.ppf(0.975, n - 1) * standard_error

    expected = np.mean([textbook(roc_auc_score), textbook(lambda y, s: roc_auc_score(y, s, max_fpr=0.1))])
    evaluator = official_score_ci95([section])
    assert jackknife_half_width(evaluator, n_clips=100) == pytest.approx(expected, rel=1e-9)
    assert 0.02 < expected < 0.3  # a few AUC points for 100 clips, where the evaluator's is 1/99 of it
    assert evaluator == pytest.approx(expected / 99, rel=1e-9)


def test_the_jackknifes_roc_area_is_scikit_learns_roc_auc_score():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(4, 300))
        labels = rng.integers(0, 2, n)
        labels[:2] = (0, 1)
        # rounded scores: ties within and across the labels; an fpr landing exactly on max_fpr
        scores = np.round(rng.normal(size=n) + labels * rng.uniform(0, 2), int(rng.integers(0, 3)))
        for max_fpr in (None, 0.1, 0.5):
            assert roc_area(labels, scores, max_fpr) == pytest.approx(
                roc_auc_score(labels, scores, max_fpr=max_fpr), abs=1e-12
            )
    assert roc_area(np.array([0] * 10 + [1]), np.arange(11.0), 0.1) == 1.0
