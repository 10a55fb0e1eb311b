"""The layout of a run directory, defined here only: what ``asd.train``, ``asd.score`` and
``asd.ensemble`` write, and ``asd.score``, ``asd.ensemble``, ``asd.report``, ``asd.predict`` read.

    <run>/.hydra/config.yaml     the run's config, and overrides.yaml its command line (Hydra writes them)
    <run>/systems/<group>.pt     saved systems (asd.predict)
    <run>/representations/<group>.npz   every clip's representation (asd.score refits back-ends on them)
    <run>/submission/            the official anomaly_score_* / decision_result_* CSVs
    <run>/result.csv             the official evaluator's result file (result_<split>.csv per split)
    <run>/scores.csv             every labelled test clip's score, decision and ground truth
    <run>/training_scores.csv    the training clips' out-of-sample scores (ensembles normalise by them)
    <run>/summary.csv            per section and the official score, %
    <run>/members.txt            an ensemble's member runs; scored_run.txt: the run asd.score rescored
    <run>/error.txt              a failed job's traceback
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG = Path(".hydra") / "config.yaml"
OVERRIDES = Path(".hydra") / "overrides.yaml"
SYSTEMS = "systems"
REPRESENTATIONS = "representations"
SUBMISSION = "submission"
SCORES = "scores.csv"
TRAINING_SCORES = "training_scores.csv"
SUMMARY = "summary.csv"
MEMBERS = "members.txt"
SCORED_RUN = "scored_run.txt"
ERROR = "error.txt"


class RunDirectoryError(ValueError):
    """A run directory that cannot give what is asked of it; the message names what is missing."""


def result_file(split: str = "") -> str:
    """The evaluator's result file of one data split (``""``: a run of one split)."""
    return f"result_{split}.csv" if split else "result.csv"


def run_config(run_dir: Path, required: bool = True) -> DictConfig | None:
    """The config a run was trained with; an ensemble's: its first member's. Where there is none (a
    folder of score files alone): an error, or None where not ``required``."""
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir}: run directory not found")
    if (run_dir / CONFIG).is_file():
        return OmegaConf.load(run_dir / CONFIG)
    if (run_dir / MEMBERS).is_file():
        return run_config(Path((run_dir / MEMBERS).read_text().split("\n")[0]), required)
    if required:
        raise RunDirectoryError(f"{run_dir / CONFIG}: missing; give an asd.train run directory")
    return None
