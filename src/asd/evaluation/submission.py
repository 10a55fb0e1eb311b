"""Official submission files: ``anomaly_score_<machine>_section_<XX>_test.csv`` and
``decision_result_<machine>_section_<XX>_test.csv`` (``file,value`` rows, no header); for DCASE
2020 data, that year's ``anomaly_score_<machine>_id_<XX>.csv`` (and decisions named alike, which
2020 did not ask for)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from asd.data.ground_truth import GroundTruthError, read_file_value_rows, read_ground_truth
from asd.evaluation.metrics import SectionResult
from asd.files import write_csv

_GROUND_TRUTH_NAME = re.compile(r"^ground_truth_(?P<machine>.+)_section_(?P<section>\d+)_test\.csv$")
_SUBMISSION_NAME = re.compile(r"^(?:anomaly_score|decision_result)_(?P<machine>.+)_section_(?P<section>\d+)_test\.csv$")


class SubmissionError(ValueError):
    """A submission file that is missing or does not match the ground truth; names the file."""


def score_file_name(kind: str, machine: str, section_id: str, year: int = 2024) -> str:
    if year == 2020:
        return f"{kind}_{machine}_id_{section_id}.csv"
    return f"{kind}_{machine}_section_{section_id}_test.csv"


def write_section(
    directory: str | Path, machine: str, section_id: str, file_names, scores, decisions, year: int = 2024
) -> None:
    """Write one section's anomaly scores and decisions in the official format of the data's ``year``."""
    for kind, values in (
        ("anomaly_score", [repr(float(s)) for s in scores]),
        ("decision_result", [str(int(d)) for d in decisions]),
    ):
        write_csv(Path(directory) / score_file_name(kind, machine, section_id, year), zip(file_names, values))


def read_values(path: Path, original_to_renamed: dict[str, str], as_int: bool) -> dict[str, float]:
    """``file -> value``; names written with attributes are mapped to the renamed evaluation names."""
    values: dict[str, float] = {}
    for line_no, written_name, cell in read_file_value_rows(path, SubmissionError, "submission file"):
        name = original_to_renamed.get(written_name, written_name)
        try:
            value = float(cell)
        except ValueError as err:
            raise SubmissionError(f"{path}:{line_no}: {cell!r} is not a number") from err
        if as_int:
            if value not in (0.0, 1.0):
                raise SubmissionError(
                    f"{path}:{line_no}: decision {cell!r} for {written_name}; decisions are 0 (normal) or 1 (anomalous)"
                )
            value = int(value)
        if name in values:
            raise SubmissionError(f"{path}:{line_no}: {written_name} is listed twice")
        values[name] = value
    return values


def ground_truth_sections(ground_truth_dir: str | Path) -> list[tuple[str, str]]:
    """(machine, section id) pairs that the ground truth covers, sorted as the evaluator sorts them."""
    folder = Path(ground_truth_dir) / "ground_truth_data"
    found = sorted(
        (m["machine"], m["section"]) for m in (_GROUND_TRUTH_NAME.match(p.name) for p in folder.glob("*.csv")) if m
    )
    if not found:
        raise GroundTruthError(f"{folder}: no ground_truth_<machine>_section_<XX>_test.csv files")
    return found


def load_submission(submission_dir: str | Path, ground_truth_dir: str | Path) -> list[SectionResult]:
    """Every section of the ground truth with its submitted scores and decisions, aligned by file."""
    submission_dir = Path(submission_dir)
    covered = ground_truth_sections(ground_truth_dir)
    uncovered = sorted(
        p.name
        for p in submission_dir.glob("*.csv")
        if (m := _SUBMISSION_NAME.match(p.name)) and (m["machine"], m["section"]) not in covered
    )
    if uncovered:
        raise SubmissionError(
            f"{submission_dir}: {len(uncovered)} submission files for sections the ground truth in {ground_truth_dir} "
            f"does not have ({', '.join(uncovered[:4])}); they would silently not count: add their ground truth or move them away"
        )
    sections = []
    for machine, section_id in covered:
        truth = read_ground_truth(ground_truth_dir, machine, section_id)
        original_to_renamed = {row.original_name: name for name, row in truth.items() if row.original_name}
        names = np.array(sorted(truth))
        arrays = {}
        for kind, as_int in (("anomaly_score", False), ("decision_result", True)):
            path = submission_dir / score_file_name(kind, machine, section_id)
            values = read_values(path, original_to_renamed, as_int)
            missing = [n for n in names if n not in values]
            extra = sorted(set(values) - set(truth))
            if missing or extra:
                raise SubmissionError(
                    f"{path}: does not match the ground truth ({len(missing)} files missing, e.g. "
                    f"{', '.join(map(str, missing[:3])) or '-'}; {len(extra)} unknown, e.g. {', '.join(map(str, extra[:3])) or '-'})"
                )
            arrays[kind] = np.array([values[n] for n in names])
        sections.append(
            SectionResult(
                machine=machine,
                section_id=section_id,
                file_names=names,
                labels=np.array([truth[n].label for n in names]),
                domains=np.array([truth[n].domain for n in names]),
                scores=arrays["anomaly_score"].astype(float),
                decisions=arrays["decision_result"].astype(int),
            )
        )
    return sections
