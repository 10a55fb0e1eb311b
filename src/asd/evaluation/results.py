"""A run's results, in one place: the scored test sections (labelled or not), the training clips'
out-of-sample scores, each machine type's data split and the data's year. ``asd.train``,
``asd.score`` and ``asd.ensemble`` build a :class:`RunResults`; it computes the official score of
the data's year for each split and is the one writer of every result file (submission CSVs,
result.csv, scores.csv, training_scores.csv, summary.csv). The evaluation callback only collects
and logs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from asd.evaluation.metrics import (
    SECTION_COLUMNS,
    SectionResult,
    write_clip_scores,
    write_result_csv,
    year_official_score,
    year_section_metrics,
)
from asd.evaluation.submission import write_section
from asd.files import write_text
from asd.run_directory import SCORES, SUBMISSION, SUMMARY, TRAINING_SCORES, result_file
from asd.vocabulary import DOMAIN_CODES, LABEL_CODES, section_key

log = logging.getLogger(__name__)


def metric_key(column: str) -> str:
    """'AUC (source)' -> 'auc_source', for logger-friendly names."""
    return column.lower().replace(" score", "").replace(" (", "_").replace(")", "").replace(" ", "_")


def section_results(
    infos, collected: dict[int, tuple[float, int, int]], labelled: bool | Collection[str]
) -> dict[tuple[str, str], SectionResult]:
    """Clips' (score, decision, domain judged as) by clip index, grouped per machine type and section.
    ``infos`` describe the clips (``ClipInfo``, or ``asd.representations.SavedClip``: machine,
    section_id, file_name, label, domain). ``labelled``: whether the clips carry labels, or the machine
    types whose clips do.

    Without test labels (evaluation data without ground truth), labels and domains are -1; a labelled
    clip without a domain (DCASE 2020 names) has domain -1.
    """
    missing = [infos[i].file_name for i in range(len(infos)) if i not in collected]
    if missing:
        raise RuntimeError(f"no score was produced for {len(missing)} clips, e.g. {missing[0]}")
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, info in enumerate(infos):
        groups[(info.machine, info.section_id)].append(i)
    results = {}
    for (machine, section_id), indices in sorted(groups.items()):
        known = labelled if isinstance(labelled, bool) else machine in labelled
        results[(machine, section_id)] = SectionResult(
            machine=machine,
            section_id=section_id,
            file_names=np.array([infos[i].file_name for i in indices]),
            labels=np.array([LABEL_CODES[infos[i].label] if known else -1 for i in indices]),
            domains=np.array([DOMAIN_CODES.get(infos[i].domain, -1) if known else -1 for i in indices]),
            scores=np.array([collected[i][0] for i in indices]),
            decisions=np.array([collected[i][1] for i in indices]),
            judged_domains=np.array([collected[i][2] for i in indices]),
        )
    return results


def sections_by_split(sections: list[SectionResult], splits: dict[str, str] | None) -> dict[str, list[SectionResult]]:
    """The sections of each data split (``splits``: machine type -> split; None: one split, ``""``).
    A job on ``data.data_split=dev+eval`` is scored per split: an official score is defined over one
    split's machine types."""
    grouped: dict[str, list[SectionResult]] = {}
    for section in sections:
        grouped.setdefault(splits[section.machine] if splits else "", []).append(section)
    return grouped if len(grouped) > 1 else {"": sections}


def section_metric_logs(
    sections: list[SectionResult], year: int, prefix: str = "", splits: dict[str, str] | None = None
) -> dict[str, float]:
    """``<prefix><machine>/section_XX/<metric>`` for every section (the metrics it has: a 2020 section
    no per-domain ones), and ``<prefix>official_score`` by the definition of the data's ``year``; for
    sections of several splits, ``<prefix>official_score/<split>`` each and ``<prefix>official_score``
    the development split's (what a sweep tunes on)."""
    metrics = {}
    for section in sections:
        values = section.metrics()
        metrics.update(
            {
                f"{prefix}{section_key(section.machine, section.section_id)}/{metric_key(c)}": values[c]
                for c in SECTION_COLUMNS
                if not np.isnan(values[c])
            }
        )
    by_split = sections_by_split(sections, splits)
    for split, members in by_split.items():
        metrics[f"{prefix}official_score" + (f"/{split}" if split else "")] = year_official_score(members, year)
    if "" not in by_split:
        metrics[f"{prefix}official_score"] = metrics[f"{prefix}official_score/{'dev' if 'dev' in by_split else 'eval'}"]
    return metrics


def summary_table(sections: list[SectionResult], year: int, splits: dict[str, str] | None = None) -> pd.DataFrame:
    """Per machine type and section: the metrics of ``year``'s official score and the section's score,
    in % (2022 on: AUC (source), AUC (target), pAUC; 2021: each per domain; 2020: AUC and pAUC); then
    the official score, one per data split where ``splits`` (machine type -> split) has several."""
    rows, names = [], None
    for section in sorted(sections, key=lambda s: (s.machine, s.section_id)):
        values = year_section_metrics(section, year)
        names = list(values)
        rows.append([section.machine, section.section_id, *values.values(), year_official_score([section], year)])
    names = names or []
    table = pd.DataFrame(rows, columns=["machine", "section", *names, "score"])
    for split, members in sections_by_split(sections, splits).items():
        label = f"official score ({split})" if split else "official score"
        table.loc[len(table)] = [label, "", *[None] * len(names), year_official_score(members, year)]
    numeric = [*names, "score"]
    table[numeric] = table[numeric].astype(float) * 100
    return table


@dataclass
class RunResults:
    """What a run (or a rescoring, or an ensemble) produced. ``tested``: every scored test section,
    labels -1 where unknown; ``training``: the training clips' out-of-sample scores per section
    (none where the data has no domains, DCASE 2020); ``splits``: machine type -> data split."""

    year: int
    tested: list[SectionResult]
    training: list[SectionResult] = field(default_factory=list)
    splits: dict[str, str] | None = None

    @property
    def labelled(self) -> list[SectionResult]:
        """The sections whose clips carry their labels: the ones an official score covers."""
        return [s for s in self.tested if len(s.labels) and (s.labels >= 0).all()]

    def metrics(self, prefix: str = "") -> dict[str, float]:
        labelled = self.labelled
        return section_metric_logs(labelled, self.year, prefix, self.splits) if labelled else {}

    def write(self, output_dir: Path) -> dict[str, float]:
        """Every result file of the run into ``output_dir``; returns its metrics (fractions)."""
        for s in self.tested:
            write_section(
                output_dir / SUBMISSION, s.machine, s.section_id, s.file_names, s.scores, s.decisions, self.year
            )
        if self.training:  # what asd.ensemble normalises by
            write_clip_scores(output_dir / TRAINING_SCORES, self.training)
        labelled = self.labelled
        unlabelled = sorted({s.machine for s in self.tested} - {s.machine for s in labelled})
        if unlabelled:
            log.warning(
                "test labels unknown for %s (evaluation data without ground truth): their scores are in %s only",
                ", ".join(unlabelled),
                output_dir / SUBMISSION,
            )
        if not labelled:
            return {}
        for split, members in sections_by_split(labelled, self.splits).items():
            # the official evaluator's result file scores one split's machine types
            write_result_csv(output_dir / result_file(split), members, with_ci95=False, year=self.year)
        write_clip_scores(output_dir / SCORES, labelled)
        table = summary_table(labelled, self.year, self.splits)
        write_text(output_dir / SUMMARY, table.to_csv(index=False))
        log.info("results (%%) for %s:\n%s", output_dir, table.to_string(index=False, float_format="%.2f", na_rep=""))
        return self.metrics()
