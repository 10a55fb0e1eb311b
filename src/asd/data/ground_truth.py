"""Official ground-truth files: the evaluator's CSV folders and the ``eval_data_list_<year>.csv`` mapping."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path



class GroundTruthError(ValueError):
    """Missing or malformed ground truth; the message names the file."""


@dataclass(frozen=True)
class TruthRow:
    label: int  # 0 normal, 1 anomaly
    domain: int  # 0 source, 1 target
    original_name: str | None = None  # name with domain, label and attributes, when known


def read_file_value_rows(path: Path, error: type[ValueError] = GroundTruthError, what: str = "ground-truth file"):
    """``(line number, file, value)`` of a headerless ``file,value`` CSV; blank lines skipped.

    A missing file or a row without two cells raises ``error`` naming the file (and line).
    """
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    rows = []
    with open(path, newline="") as file:
        for line_no, row in enumerate(csv.reader(file), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < 2:
                raise error(f"{path}:{line_no}: expected 'file,value', got {row!r}")
            rows.append((line_no, row[0].strip(), row[1].strip()))
    return rows


def _read_two_columns(path: Path) -> list[tuple[str, str]]:
    return [(name, value) for _, name, value in read_file_value_rows(path)]


def ground_truth_path(ground_truth_dir: str | Path, kind: str, machine: str, section_id: str) -> Path:
    """``<dir>/ground_truth_<kind>/ground_truth_<machine>_section_<XX>_test.csv`` (the evaluator's layout)."""
    return Path(ground_truth_dir) / f"ground_truth_{kind}" / f"ground_truth_{machine}_section_{section_id}_test.csv"


def read_ground_truth(ground_truth_dir: str | Path, machine: str, section_id: str) -> dict[str, TruthRow]:
    """Labels, domains and (where given) original names of one machine section's test files."""
    labels_path = ground_truth_path(ground_truth_dir, "data", machine, section_id)
    domains_path = ground_truth_path(ground_truth_dir, "domain", machine, section_id)
    attributes_path = ground_truth_path(ground_truth_dir, "attributes", machine, section_id)
    labels = _read_two_columns(labels_path)
    domains = dict(_read_two_columns(domains_path))
    originals = dict(_read_two_columns(attributes_path)) if attributes_path.is_file() else {}
    truth = {}
    for name, label in labels:
        if name not in domains:
            raise GroundTruthError(f"{domains_path}: no domain for {name}")
        try:
            label_value, domain_value = int(float(label)), int(float(domains[name]))
        except ValueError as err:
            raise GroundTruthError(f"{labels_path}: bad label or domain for {name}: {err}") from err
        if label_value not in (0, 1) or domain_value not in (0, 1):
            raise GroundTruthError(f"{labels_path}: label/domain of {name} must be 0 or 1")
        original = originals.get(name)
        if original is not None and not original.endswith(".wav"):
            original += ".wav"  # the evaluator's attribute files drop the extension
        truth[name] = TruthRow(label_value, domain_value, original)
    return truth


def read_eval_data_list(path: str | Path) -> dict[str, dict[str, tuple[str, int | None]]]:
    """``eval_data_list_<year>.csv``: machine -> renamed file -> (original name, label or None).

    A line holding one cell names the machine type of the lines that follow.
    """
    path = Path(path)
    if not path.is_file():
        raise GroundTruthError(f"{path}: evaluation data list not found")
    mapping: dict[str, dict[str, tuple[str, int | None]]] = {}
    machine = None
    with open(path, newline="") as file:
        for line_no, row in enumerate(csv.reader(file), start=1):
            cells = [c.strip() for c in row if c.strip()]
            if not cells:
                continue
            if len(cells) == 1:
                machine = cells[0]
                mapping.setdefault(machine, {})
                continue
            if machine is None:
                raise GroundTruthError(f"{path}:{line_no}: file rows before any machine-type line")
            label = int(float(cells[2])) if len(cells) > 2 else None
            mapping[machine][cells[0]] = (cells[1], label)
    return mapping


def read_correspondence(path: str | Path) -> dict[str, str]:
    """``attributes_XX_<split>_correspondence.csv``: distributed (concealed) name -> original name."""
    rows = _read_two_columns(Path(path))
    return {distributed: original for original, distributed in rows if original != "source_file_name"}
