"""Combine finished runs that scored the same test clips into one result, as a run writes it.

    python -m asd.ensemble <run_dir> <run_dir> [...] --out <dir> [--combine mean|max|min]

Seeds, epochs or model families: each run's scores are z-normalised per section by the mean and
standard deviation of its training clips' out-of-sample scores (``training_scores.csv``, which every
run writes), as ``backend=fusion`` normalises its members, then combined clip by clip. The decision
thresholds of each section are fitted on the combined training scores as a run fits its own, one per
domain (:func:`asd.models.base.decision_thresholds`); a clip is judged as the domain most members
judged it as (ties: source), as ``backend=fusion`` judges by its members' votes. Writes ``submission/``,
``result.csv``, ``scores.csv``, ``training_scores.csv`` and ``summary.csv`` into ``--out``; there is no
saved system (the members are different models), so ``asd.predict`` scores with each member run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from asd.backends.fusion import COMBINE, z_normaliser
from asd.evaluation.metrics import SectionResult, read_clip_scores
from asd.evaluation.results import RunResults
from asd.models.base import decide, decision_thresholds
from asd.run_directory import SCORES, TRAINING_SCORES, RunDirectoryError, RunRecord, read_run_record
from asd.vocabulary import DOMAINS, section_key


class EnsembleError(ValueError):
    """Runs that cannot be combined; the message names the run and what differs."""


def _sections(path: Path) -> dict[tuple[str, str], SectionResult]:
    only_this_version = "only finished runs of this asd version (which write it) can be combined"
    if not path.is_file():
        raise EnsembleError(f"{path}: missing; {only_this_version}")
    sections = {(s.machine, s.section_id): s for s in read_clip_scores(path)}
    if any(s.judged_domains is None for s in sections.values()):
        raise EnsembleError(f"{path}: records no domain each clip was judged as; {only_this_version}")
    return sections


def _aligned(reference: SectionResult, other: SectionResult, run: Path) -> np.ndarray:
    """The positions of ``reference``'s clips in ``other``; the clips must be the same."""
    order = {name: i for i, name in enumerate(other.file_names)}
    missing = [n for n in reference.file_names if n not in order]
    if missing or len(order) != len(reference.file_names):
        raise EnsembleError(
            f"{run}: {reference.machine} section {reference.section_id} scored other clips than the first run "
            f"({len(missing)} of its clips missing, e.g. {', '.join(map(str, missing[:3])) or '-'})"
        )
    return np.array([order[n] for n in reference.file_names], dtype=int)


def combine_runs(run_dirs: list[Path], combine: str = "mean", percentile: float = 0.9):
    """(test sections, training sections) of the combined runs."""
    if len(run_dirs) < 2:
        raise EnsembleError(f"an ensemble needs at least two runs, got {len(run_dirs)}")
    tests = [_sections(run / SCORES) for run in run_dirs]
    trainings = [_sections(run / TRAINING_SCORES) for run in run_dirs]
    for run, test in zip(run_dirs[1:], tests[1:]):
        if set(test) != set(tests[0]):
            raise EnsembleError(f"{run}: scored the sections {sorted(test)}, the first run {sorted(tests[0])}")
    fused_tests, fused_trainings = [], []
    for key in sorted(tests[0]):
        reference_test, reference_training = tests[0][key], trainings[0][key]
        test_scores, training_scores, test_votes = [], [], np.zeros((len(reference_test.scores), 2), dtype=int)
        for run, test, training in zip(run_dirs, tests, trainings):
            own_training = training[key].scores[_aligned(reference_training, training[key], run)]
            mean, std = z_normaliser(own_training)
            training_scores.append((own_training - mean) / std)
            in_order = _aligned(reference_test, test[key], run)
            test_scores.append((test[key].scores[in_order] - mean) / std)
            np.add.at(test_votes, (np.arange(len(in_order)), np.clip(test[key].judged_domains[in_order], 0, 1)), 1)
        fused_test = COMBINE[combine](np.stack(test_scores), axis=0)
        fused_training = COMBINE[combine](np.stack(training_scores), axis=0)
        section = section_key(*key)
        domains = [DOMAINS[d] for d in reference_training.domains]
        thresholds = decision_thresholds(fused_training, domains, [section] * len(domains), percentile)
        # a training clip is judged as its own domain, a test clip as most members judged it
        training_judged = np.clip(reference_training.domains, 0, 1)
        for reference, scores, judged, out in (
            (reference_test, fused_test, test_votes.argmax(axis=1), fused_tests),
            (reference_training, fused_training, training_judged, fused_trainings),
        ):
            out.append(
                SectionResult(
                    reference.machine,
                    reference.section_id,
                    reference.file_names,
                    reference.labels,
                    reference.domains,
                    scores,
                    np.array(decide(scores, judged, [section] * len(scores), thresholds)),
                    judged,
                )
            )
    return fused_tests, fused_trainings


def write_ensemble(run_dirs: list[Path], out_dir: Path, combine: str = "mean") -> dict[str, float]:
    """Write the ensemble's files as a run writes them; return its metrics."""
    sections, training = combine_runs(run_dirs, combine)
    # each machine type's split as the first run read it (dev+eval runs are scored per split), and the
    # data's year; a folder of scores alone: one split, the current definition
    try:
        first = read_run_record(run_dirs[0], required=False)
    except RunDirectoryError as err:
        raise EnsembleError(str(err)) from err
    splits, year = (first.machine_splits, first.year) if first is not None else (None, 2024)
    RunRecord("asd.ensemble", year, splits or {}, members=[str(run.resolve()) for run in run_dirs]).write(out_dir)
    return RunResults(year, sections, training, splits).write(out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd.ensemble", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished asd.train (or asd.ensemble) run directories")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--combine", choices=sorted(COMBINE), default="mean")
    args = parser.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        # another run's folder would end up with this ensemble's scores beside its own systems
        print(
            f"error: --out {args.out} exists and is not an empty folder; asd.ensemble writes a new one", file=sys.stderr
        )
        return 2
    try:
        metrics = write_ensemble(args.runs, args.out, args.combine)
    except EnsembleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    scores = ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items() if k.startswith("official_score"))
    print(f"{len(args.runs)} runs combined ({args.combine}): {scores} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
