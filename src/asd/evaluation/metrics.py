"""The official DCASE Task 2 metrics (the 2022 on definition, 2020 and 2021 too), reproducing the official evaluator.

Per machine type and section:

* AUC (source): source-domain normal clips plus ALL anomalous clips; AUC (target) likewise.
* pAUC: every clip of the section, scikit-learn ``roc_auc_score(max_fpr=0.1)`` (McClish-standardised).
* precision / recall / F1 per domain: that domain's clips only, from 0/1 decisions.

The official score is the harmonic mean of every section's AUC (source), AUC (target) and
pAUC together, each clipped below at machine epsilon. ``result_rows`` writes the official
evaluator's ``<system>_result.csv`` row for row, including its jackknife 95 % interval.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
from sklearn.metrics import confusion_matrix, roc_auc_score

from asd.files import write_csv
from asd.vocabulary import DOMAINS

MAX_FPR = 0.1
EPS = sys.float_info.epsilon
SECTION_COLUMNS = [
    "AUC (all)",
    "AUC (source)",
    "AUC (target)",
    "pAUC",
    "precision (source)",
    "precision (target)",
    "recall (source)",
    "recall (target)",
    "F1 score (source)",
    "F1 score (target)",
]


class MetricError(ValueError):
    """Scores that cannot be evaluated (a class missing, non-finite values); names the section."""


@dataclass
class SectionResult:
    """Scores of one machine type's section with their ground truth; arrays aligned by clip."""

    machine: str
    section_id: str  # "00"
    file_names: np.ndarray
    labels: np.ndarray  # 0 normal, 1 anomaly
    domains: np.ndarray  # 0 source, 1 target
    scores: np.ndarray
    decisions: np.ndarray  # 0/1
    #: the domain whose threshold each decision met (0 source, 1 target; asd.models.base.decide)
    judged_domains: np.ndarray | None = None
    _metrics: dict[str, float] | None = field(default=None, init=False, repr=False, compare=False)

    def metrics(self) -> dict[str, float]:
        """The section's official metrics (computed once; the arrays are not changed afterwards)."""
        if self._metrics is None:
            where = f"{self.machine} section {self.section_id}"
            self._metrics = section_metrics(self.labels, self.scores, self.domains, self.decisions, where)
        return self._metrics


def section_metrics(labels, scores, domains, decisions, where: str = "section") -> dict[str, float]:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    domains, decisions = np.asarray(domains), np.asarray(decisions)
    if not np.isfinite(scores).all():
        raise MetricError(f"{where}: anomaly scores hold NaN or infinite values")
    if set(np.unique(labels)) != {0, 1}:
        raise MetricError(f"{where}: AUC needs both normal and anomalous clips")
    result = {
        "AUC (all)": roc_auc_score(labels, scores),
        "pAUC": roc_auc_score(labels, scores, max_fpr=MAX_FPR),
    }
    if (domains == -1).all():  # DCASE 2020: no domains, so no per-domain metrics (NaN)
        return {column: float(result.get(column, np.nan)) for column in SECTION_COLUMNS}
    if (domains == -1).any():
        raise MetricError(f"{where}: some clips have a domain and some do not")
    for domain_index, domain in enumerate(DOMAINS):
        in_domain = domains == domain_index
        auc_subset = in_domain | (labels != 0)
        if not (in_domain & (labels == 0)).any():
            raise MetricError(f"{where}: no {domain}-domain normal clips for AUC ({domain})")
        result[f"AUC ({domain})"] = roc_auc_score(labels[auc_subset], scores[auc_subset])
        tn, fp, fn, tp = confusion_matrix(labels[in_domain], decisions[in_domain], labels=[0, 1]).ravel()
        precision = tp / np.maximum(tp + fp, EPS)
        recall = tp / np.maximum(tp + fn, EPS)
        result[f"precision ({domain})"] = precision
        result[f"recall ({domain})"] = recall
        result[f"F1 score ({domain})"] = 2.0 * precision * recall / np.maximum(precision + recall, EPS)
    return {column: float(result[column]) for column in SECTION_COLUMNS}


def harmonic_mean(values) -> float:
    """The evaluator's harmonic mean: every value clipped below at machine epsilon."""
    return float(scipy.stats.hmean(np.maximum(np.asarray(values, dtype=float), EPS), axis=None))


def official_score(section_metrics_list: list[dict[str, float]], year: int = 2024) -> float:
    """The official score of ``year`` over these sections' metrics (:func:`year_section_metrics`,
    or :meth:`SectionResult.metrics` from 2022 on): 2022 on the harmonic mean of every AUC
    (source), AUC (target) and pAUC; 2021 of every per-domain AUC and pAUC; 2020 the arithmetic
    mean of every AUC and pAUC."""
    definition = score_definition_year(year)
    values = [m[name] for name in YEAR_METRICS[definition] for m in section_metrics_list]
    if definition == 2020:
        return float(np.mean(values))
    return harmonic_mean(values)


def jackknife_ci95(metric, labels: np.ndarray, scores: np.ndarray) -> float:
    """Half-width of the jackknife 95 % interval of ``metric(labels, scores)`` (Mesaros et al. 2019)."""
    n = len(labels)
    keep = np.ones(n, dtype=bool)
    leave_one_out = np.empty(n)
    for i in range(n):
        keep[i] = False
        leave_one_out[i] = metric(labels[keep], scores[keep])
        keep[i] = True
    sigma = np.sqrt(np.sum((leave_one_out - np.mean(leave_one_out)) ** 2) / (n * (n - 1)))
    return float(np.abs(scipy.stats.t.ppf(0.025, n - 1)) * sigma)


def roc_area(labels: np.ndarray, scores: np.ndarray, max_fpr: float | None = None) -> float:
    """scikit-learn's ``roc_auc_score`` of binary labels (with ``max_fpr``: its McClish-standardised
    partial AUC), computed as it does — the trapezoid under the ROC points at every distinct score,
    the partial curve ended by linear interpolation at ``max_fpr`` — without its input validation,
    which costs 8 ms a call: the jackknife calls it twice per clip (a 300-clip run: 5 s). Equal to
    roc_auc_score to rounding (tested); the official metrics themselves use roc_auc_score."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    ranked_scores, ranked_labels = scores[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(ranked_scores)), ranked_labels.size - 1]
    true_positives = np.cumsum(ranked_labels, dtype=np.float64)[last_of_each_score]
    false_positives = 1 + last_of_each_score - true_positives
    tpr = np.r_[0.0, true_positives] / true_positives[-1]
    fpr = np.r_[0.0, false_positives] / false_positives[-1]
    if max_fpr is None:
        return float(np.trapezoid(tpr, fpr))
    stop = np.searchsorted(fpr, max_fpr, "right")
    end = np.interp(max_fpr, fpr[stop - 1 : stop + 1], tpr[stop - 1 : stop + 1])
    partial = np.trapezoid(np.r_[tpr[:stop], end], np.r_[fpr[:stop], max_fpr])
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return float(0.5 * (1 + (partial - min_area) / (max_area - min_area)))


def official_score_ci95(sections: list[SectionResult]) -> float:
    """The evaluator's 'official score ci95': mean of the AUC and pAUC jackknife half-widths over all clips pooled."""
    labels = np.concatenate([s.labels for s in sections])
    scores = np.concatenate([s.scores for s in sections]).astype(float)
    auc_ci = jackknife_ci95(roc_area, labels, scores)
    pauc_ci = jackknife_ci95(lambda y, s: roc_area(y, s, max_fpr=MAX_FPR), labels, scores)
    return float(np.mean([auc_ci, pauc_ci]))


def jackknife_half_width(evaluator_ci95: float, n_clips: int) -> float:
    """The textbook jackknife 95 % half-width of the pooled AUC and pAUC (mean of the two), for
    judging a difference, from the evaluator's :func:`official_score_ci95` of the same ``n_clips``
    pooled clips (no second pass over them). The evaluator takes the spread of the leave-one-out
    values over n(n-1) where the jackknife takes (n-1)/n of it: its half-width is the textbook one
    divided by n-1, about 1e-5 for a few hundred clips, too small to tell any two systems apart.
    Kept exact for conformance; this one is for reading results."""
    return evaluator_ci95 * (n_clips - 1)


def _summary_rows(names: tuple[str, ...], rows: list[dict[str, float]]) -> list[list]:
    """The evaluator's block of arithmetic / harmonic / source / target means over ``rows``."""
    performance = np.array(
        [
            [r["AUC (source)"] for r in rows] + [r["AUC (target)"] for r in rows],
            [r["pAUC"] for r in rows] * 2,
            [r["precision (source)"] for r in rows] + [r["precision (target)"] for r in rows],
            [r["recall (source)"] for r in rows] + [r["recall (target)"] for r in rows],
            [r["F1 score (source)"] for r in rows] + [r["F1 score (target)"] for r in rows],
        ],
        dtype=float,
    )
    half = performance.shape[1] // 2
    clipped = np.maximum(performance, EPS)
    return [
        [names[0], ""] + list(np.mean(performance, axis=1)),
        [names[1], ""] + list(scipy.stats.hmean(clipped, axis=1)),
        [names[2], ""] + list(scipy.stats.hmean(clipped[:, :half], axis=1)),
        [names[3], ""] + list(scipy.stats.hmean(clipped[:, half:], axis=1)),
    ]


MEAN_HEADER = ["", "", "AUC", "pAUC", "precision", "recall", "F1 score"]
MACHINE_MEAN_NAMES = ("arithmetic mean", "harmonic mean", "source harmonic mean", "target harmonic mean")
OVERALL_SUFFIX = " over all machine types, sections, and domains"


def result_rows_2020(sections: list[SectionResult]) -> list[list]:
    """Rows of the DCASE 2020 baseline's ``result.csv``: per machine type its name, an ``id, AUC,
    pAUC`` row per machine ID and their ``Average``; then the 2020 official score (the arithmetic
    mean of every ID's AUC and pAUC), which the 2020 baseline did not write."""
    rows: list[list] = []
    everything = []
    for machine in sorted({s.machine for s in sections}):
        machine_sections = sorted((s for s in sections if s.machine == machine), key=lambda s: s.section_id)
        metrics = [year_section_metrics(s, 2020) for s in machine_sections]
        rows += [[machine], ["id", "AUC", "pAUC"]]
        rows += [[s.section_id, m["AUC"], m["pAUC"]] for s, m in zip(machine_sections, metrics)]
        rows += [
            ["Average", float(np.mean([m["AUC"] for m in metrics])), float(np.mean([m["pAUC"] for m in metrics]))],
            [],
        ]
        everything += metrics
    rows += [["official score", "", official_score(everything, 2020)], []]
    return rows


def result_rows(sections: list[SectionResult], with_ci95: bool = True) -> list[list]:
    """Rows of the official evaluator's ``<system>_result.csv`` for these sections.

    Machine types come in sorted order, each with its sections in sorted order, as the
    evaluator lists them.
    """
    by_machine: dict[str, list[SectionResult]] = {}
    for section in sorted(sections, key=lambda s: (s.machine, s.section_id)):
        by_machine.setdefault(section.machine, []).append(section)
    rows: list[list] = []
    everything: list[dict[str, float]] = []
    for machine, machine_sections in by_machine.items():
        metrics = [s.metrics() for s in machine_sections]
        rows.append([machine])
        rows.append(["section"] + SECTION_COLUMNS)
        rows += [[s.section_id] + [m[c] for c in SECTION_COLUMNS] for s, m in zip(machine_sections, metrics)]
        rows.append(MEAN_HEADER)
        rows += _summary_rows(MACHINE_MEAN_NAMES, metrics)
        rows.append([])
        everything += metrics
    rows.append(MEAN_HEADER)
    rows += _summary_rows(tuple(name + OVERALL_SUFFIX for name in MACHINE_MEAN_NAMES), everything)
    rows.append([])
    rows.append(["official score", "", official_score(everything)])
    if with_ci95:
        rows.append(["official score ci95", "", official_score_ci95(sections)])
    rows.append([])
    return rows


def format_cell(cell) -> str:
    """Cells as the evaluator writes them: floats in shortest round-trip form."""
    if isinstance(cell, (float, np.floating)):
        return repr(float(cell))
    return str(cell)


CLIP_SCORE_COLUMNS = ["machine", "section", "file_name", "label", "domain", "score", "decision", "judged_domain"]


def write_clip_scores(path: Path, sections: list[SectionResult]) -> Path:
    """Every clip's score and decision with its ground truth (label/domain 0/1) and the domain whose
    threshold judged it (-1 where not recorded), one row each: what ``asd.report`` aggregates across
    jobs (the metrics and their jackknife need the clips) and ``asd.ensemble`` combines."""
    rows = []
    for s in sorted(sections, key=lambda s: (s.machine, s.section_id)):
        judged = s.judged_domains if s.judged_domains is not None else np.full(len(s.scores), -1)
        for name, label, domain, score, decision, judged_domain in zip(
            s.file_names, s.labels, s.domains, s.scores, s.decisions, judged
        ):
            rows.append(
                [
                    s.machine,
                    s.section_id,
                    name,
                    int(label),
                    int(domain),
                    repr(float(score)),
                    int(decision),
                    int(judged_domain),
                ]
            )
    return write_csv(path, [CLIP_SCORE_COLUMNS] + rows)


def read_clip_scores(path: Path) -> list[SectionResult]:
    """The sections of a :func:`write_clip_scores` file (one of an earlier version, without
    ``judged_domain``, gives sections whose ``judged_domains`` is None)."""
    table = pd.read_csv(path, dtype={"section": str, "file_name": str})
    if list(table.columns) not in (CLIP_SCORE_COLUMNS, CLIP_SCORE_COLUMNS[:-1]):
        raise ValueError(f"{path}: expected the columns {CLIP_SCORE_COLUMNS}, found {list(table.columns)}")
    recorded = "judged_domain" in table.columns
    return [
        SectionResult(
            machine=str(machine),
            section_id=section_id,
            file_names=group["file_name"].to_numpy(),
            labels=group["label"].to_numpy(dtype=int),
            domains=group["domain"].to_numpy(dtype=int),
            scores=group["score"].to_numpy(dtype=float),
            decisions=group["decision"].to_numpy(dtype=int),
            judged_domains=group["judged_domain"].to_numpy(dtype=int) if recorded else None,
        )
        for (machine, section_id), group in table.groupby(["machine", "section"], sort=True)
    ]


def write_result_csv(path: Path, sections: list[SectionResult], with_ci95: bool = True, year: int = 2024) -> Path:
    """The official evaluator's ``<system>_result.csv`` for these sections (2020 data: the 2020
    baseline's, per machine ID)."""
    rows = result_rows_2020(sections) if score_definition_year(year) == 2020 else result_rows(sections, with_ci95)
    return write_csv(path, [[format_cell(c) for c in row] for row in rows])


# The official score of each challenge year (see the DCASE Task 2 task descriptions).
# 2020: no domains; AUC and pAUC over the whole section, averaged arithmetically.
# 2021: AUC and pAUC per section and domain, each on that domain's clips only, harmonic mean.
# 2022 on (2026 too): AUC (source), AUC (target) (each with all anomalies) and the section's pAUC, harmonic mean.
YEAR_METRICS = {
    2020: ("AUC", "pAUC"),
    2021: ("AUC (source)", "AUC (target)", "pAUC (source)", "pAUC (target)"),
    2022: ("AUC (source)", "AUC (target)", "pAUC"),
}


def score_definition_year(year: int) -> int:
    if year < 2020:
        raise ValueError(f"no DCASE Task 2 official score before 2020 (got {year})")
    return min(year, 2022)


def year_official_score(sections: list[SectionResult], year: int) -> float:
    """The official score of ``year`` over these sections: the one number every place shows (the
    end of a run, summary.csv, TensorBoard, the sweep objective, asd.report)."""
    return official_score([year_section_metrics(s, year) for s in sections], year)


def year_section_metrics(section: SectionResult, year: int) -> dict[str, float]:
    """The metrics that enter ``year``'s official score, for one section."""
    definition = score_definition_year(year)
    if definition == 2022:
        return {name: section.metrics()[name] for name in YEAR_METRICS[2022]}
    if definition == 2020:
        return {
            "AUC": float(roc_auc_score(section.labels, section.scores)),
            "pAUC": float(roc_auc_score(section.labels, section.scores, max_fpr=MAX_FPR)),
        }
    result = {}
    for domain_index, domain in enumerate(DOMAINS):
        in_domain = section.domains == domain_index
        labels, scores = section.labels[in_domain], section.scores[in_domain]
        if set(np.unique(labels)) != {0, 1}:
            raise MetricError(
                f"{section.machine} section {section.section_id}: the 2021 score needs normal and anomalous {domain} clips"
            )
        result[f"AUC ({domain})"] = float(roc_auc_score(labels, scores))
        result[f"pAUC ({domain})"] = float(roc_auc_score(labels, scores, max_fpr=MAX_FPR))
    return result
