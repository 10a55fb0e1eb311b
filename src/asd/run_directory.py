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
    <run>/run.json               the run record (:class:`RunRecord`), written when the run starts; it
                                 names an ensemble's member runs and the run asd.score rescored
    <run>/error.txt              a failed job's traceback
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from asd.files import write_text

CONFIG = Path(".hydra") / "config.yaml"
OVERRIDES = Path(".hydra") / "overrides.yaml"
SYSTEMS = "systems"
REPRESENTATIONS = "representations"
SUBMISSION = "submission"
SCORES = "scores.csv"
TRAINING_SCORES = "training_scores.csv"
SUMMARY = "summary.csv"
#: an ensemble's member runs, one per line, as asd versions before run.json wrote them
LEGACY_MEMBERS = "members.txt"
ERROR = "error.txt"
RUN_RECORD = "run.json"


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
    members = recorded_members(run_dir)
    if members:
        return run_config(Path(members[0]), required)
    if required:
        raise RunDirectoryError(f"{run_dir / CONFIG}: missing; give an asd.train run directory")
    return None


def asd_version() -> str:
    try:
        return version("asd")
    except PackageNotFoundError:  # a source tree on the path, not installed
        return "unknown"


@dataclass(frozen=True)
class RunRecord:
    """What a run is, written once when it starts (``run.json``) and read by every later command
    (asd.score, asd.ensemble, asd.report), so none of them recomputes it from the config and a data
    folder that may have moved since: the data's year (whose official score counts), each machine
    type's data split, the members of an ensemble, the command and the asd version that wrote it."""

    entry_point: str  # asd.train | asd.score | asd.ensemble
    year: int
    machine_splits: dict[str, str]
    members: list[str] = field(default_factory=list)  # an ensemble's member runs; asd.score: the scored run
    asd_version: str = field(default_factory=asd_version)

    def write(self, run_dir: Path) -> Path:
        return write_text(Path(run_dir) / RUN_RECORD, json.dumps(asdict(self), indent=1) + "\n")


def _stored_record(run_dir: Path) -> RunRecord | None:
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        return None
    try:
        return RunRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise RunDirectoryError(f"{path}: not a run record of asd ({err})") from err


def recorded_members(run_dir: Path) -> list[str]:
    """An ensemble's member runs (an asd.score run's: the run it rescored), from its record or, for an
    ensemble of an earlier version, its members.txt."""
    record = _stored_record(run_dir)
    if record is not None:
        return record.members
    legacy = run_dir / LEGACY_MEMBERS
    return [line for line in legacy.read_text().splitlines() if line] if legacy.is_file() else []


def read_run_record(run_dir: Path, required: bool = True) -> RunRecord | None:
    """The record of a run; a run of an asd version before run.json: rebuilt from its config and its
    data folder (which must then still be where the run read it). Where there is neither (a folder of
    score files alone): an error, or None where not ``required``."""
    record = _stored_record(run_dir)
    if record is not None:
        return record
    from asd.data.index import run_data_splits

    cfg = run_config(Path(run_dir), required)
    if cfg is None:
        return None
    if "data" not in cfg and "run_dir" in cfg:  # an asd.score job stopped before its record: the scored run's
        return read_run_record(Path(cfg.run_dir))
    return RunRecord("asd.train", int(cfg.data.year), run_data_splits(cfg), asd_version="before run.json")
