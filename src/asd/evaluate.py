"""Evaluate a folder of official-format submission CSVs against the official ground truth.

    python -m asd.evaluate <submission_dir> --ground-truth <dir> --out <dir>

``<dir>`` holds the evaluator's ``ground_truth_data/``, ``ground_truth_domain/`` and
``ground_truth_attributes/`` folders. Writes ``<out>/result.csv`` with the rows, columns and
order of the official DCASE 2024 evaluator's ``<system>_result.csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from asd.data.ground_truth import GroundTruthError
from asd.evaluation.metrics import MetricError, write_result_csv
from asd.evaluation.submission import SubmissionError, load_submission
from asd.run_directory import result_file


def evaluate(submission_dir: str | Path, ground_truth_dir: str | Path, out_dir: str | Path) -> Path:
    return write_result_csv(Path(out_dir) / result_file(), load_submission(submission_dir, ground_truth_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("submission_dir", type=Path)
    parser.add_argument("--ground-truth", type=Path, required=True, help="folder holding ground_truth_data/ etc.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        path = evaluate(args.submission_dir, args.ground_truth, args.out)
    except (SubmissionError, GroundTruthError, MetricError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with open(path) as file:
        official = [row for row in csv.reader(file) if row and row[0] == "official score"][0][2]
    print(f"official score {float(official):.6f} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
