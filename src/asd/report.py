"""Aggregate the jobs of a multirun (or Optuna search) into one table per model configuration.

    python -m asd.report logs/train/multiruns/2026-11-25_10-00-00

writes ``summary.csv`` and ``summary.md`` into that folder; a multirun calls it at its end
(``hydra.callbacks.report`` in ``conf/hydra/default.yaml``). Jobs are grouped by their command-line
overrides other than ``machine=…`` (the "configuration") and by the dataset split they tested on.
For each group: per machine type the mean of its sections' metrics and its score, and the
official score over all its machine types with the evaluator's jackknife 95 % half-width (exact, and
about 1e-5: see ``asd.evaluation.metrics.jackknife_half_width``) and the textbook jackknife half-width —
by the official definition of the data's year (``data.year``):

* 2020: arithmetic mean of every section's AUC and pAUC (no domains);
* 2021: harmonic mean of every section's AUC and pAUC per domain, each on that domain's clips;
* 2022 on: harmonic mean of every section's AUC (source), AUC (target) and pAUC.

The per-clip scores come from each job's ``scores.csv``; a failed job (``error.txt``) is listed
with the last line of its error, and its group's official score is marked incomplete.

Configurations that differ only in ``seed=…`` are pooled into ``seeds.csv`` and a section of
``summary.md``: per machine type and for the official score, the mean and standard deviation over
the seeds (as published ASD results report them), beside the mean half-widths.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from asd.evaluation.metrics import (
    YEAR_METRICS,
    SectionResult,
    jackknife_half_width,
    official_score,
    official_score_ci95,
    read_clip_scores,
    score_definition_year,
    year_section_metrics,
)
from asd.files import write_text
from asd.run_directory import CONFIG, ERROR, OVERRIDES, SCORES, SUMMARY, read_run_record, run_config

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["AUC", "AUC (source)", "AUC (target)", "pAUC", "pAUC (source)", "pAUC (target)"]
SUMMARY_COLUMNS = [
    "configuration",
    "dataset",
    "year",
    "machine",
    "sections",
    *METRIC_COLUMNS,
    "score",
    "ci95",
    "jackknife95",
    "jobs",
    "status",
]
OFFICIAL = "official score"


class ReportError(ValueError):
    """A folder that is not a multirun, or a job folder that cannot be read; names the path."""


@dataclass
class Job:
    name: str  # the job's folder name inside the multirun
    configuration: str
    dataset: str
    year: int
    machines: list[str]
    sections: list[SectionResult] = field(default_factory=list)
    error: str | None = None


def configuration_label(overrides: list[str]) -> str:
    """The overrides that say what was run, without the machine selection (``machine=…``, ``machine.types=…``)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    kept = [o for o, key in zip(overrides, keys) if key != "machine" and not key.startswith("machine.")]
    return " ".join(kept) or "(defaults)"


def read_job(job_dir: Path) -> list[Job]:
    """The job of a job folder; a job on ``data.data_split=dev+eval`` counts as one job per split,
    each grouped with the jobs of that split's dataset."""
    try:
        overrides = list(OmegaConf.load(job_dir / OVERRIDES))
        cfg = OmegaConf.load(job_dir / CONFIG)
        if "data" not in cfg and "run_dir" in cfg:  # an asd.score job: it tested the scored run's data
            cfg = run_config(Path(cfg.run_dir))
        data = cfg.data
        record = read_run_record(job_dir)
        splits = record.machine_splits
    except Exception as error:
        raise ReportError(f"{job_dir}: cannot read the job's .hydra/ config ({error})") from error
    jobs = [
        Job(
            name=job_dir.name,
            configuration=configuration_label(overrides),
            dataset=f"{Path(str(data.root)).name} {split}",
            year=record.year,
            machines=[m for m, m_split in splits.items() if m_split == split],
        )
        for split in dict.fromkeys(splits.values())
    ]
    error, sections = None, []
    if (job_dir / ERROR).is_file():
        lines = [line for line in (job_dir / ERROR).read_text().splitlines() if line.strip()]
        error = lines[-1] if lines else f"failed (empty {ERROR})"
    elif (job_dir / SCORES).is_file():
        sections = read_clip_scores(job_dir / SCORES)
    else:
        error = f"no {SCORES} (still running, killed, or tested without labels)"
    for job in jobs:
        job.error = error
        job.sections = [s for s in sections if s.machine in job.machines]
    return jobs


def find_jobs(sweep_dir: Path) -> list[Job]:
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir}: no such multirun folder")
    job_dirs = [p.parent.parent for p in sweep_dir.glob(f"*/{OVERRIDES}")]
    if not job_dirs:
        raise ReportError(f"{sweep_dir}: no job folders (<job>/.hydra/overrides.yaml) in this folder")
    # numbered job folders in numeric order
    job_dirs.sort(key=lambda p: (0, int(p.name)) if p.name.isdigit() else (1, p.name))
    return [job for p in job_dirs for job in read_job(p)]


def _percent(value: float) -> float:
    return 100.0 * value


def group_rows(configuration: str, dataset: str, jobs: list[Job]) -> list[dict]:
    """Per machine type rows, failed jobs' rows, and the official score row of one group."""
    year = jobs[0].year
    definition = score_definition_year(year)
    rows: list[dict] = []
    base = {"configuration": configuration, "dataset": dataset, "year": year}
    sections_by_machine: dict[str, list[SectionResult]] = {}
    jobs_by_machine: dict[str, str] = {}
    for job in jobs:
        if job.error is not None:
            rows.append({**base, "machine": "+".join(job.machines), "jobs": job.name, "status": f"failed: {job.error}"})
            continue
        # a machine type tested by an earlier job of the same configuration counts once
        repeated = sorted({s.machine for s in job.sections if jobs_by_machine.get(s.machine, job.name) != job.name})
        for machine in repeated:
            rows.append(
                {
                    **base,
                    "machine": machine,
                    "jobs": job.name,
                    "status": f"skipped: also tested by job {jobs_by_machine[machine]}",
                }
            )
        for section in job.sections:
            if section.machine not in repeated:
                jobs_by_machine[section.machine] = job.name
                sections_by_machine.setdefault(section.machine, []).append(section)
    everything: list[SectionResult] = []
    all_metrics: list[dict[str, float]] = []
    machine_rows = []
    for machine, sections in sorted(sections_by_machine.items()):
        metrics = [year_section_metrics(s, year) for s in sections]
        means = {name: _percent(np.mean([m[name] for m in metrics])) for name in YEAR_METRICS[definition]}
        machine_rows.append(
            {
                **base,
                "machine": machine,
                "sections": len(sections),
                **means,
                "score": _percent(official_score(metrics, year)),
                "jobs": jobs_by_machine[machine],
                "status": "ok",
            }
        )
        everything += sections
        all_metrics += metrics
    rows = machine_rows + rows
    failed = sum(job.error is not None for job in jobs)
    if everything:
        evaluator_ci95 = official_score_ci95(everything)
        rows.append(
            {
                **base,
                "machine": OFFICIAL,
                "sections": len(everything),
                "score": _percent(official_score(all_metrics, year)),
                "ci95": _percent(evaluator_ci95),
                "jackknife95": _percent(jackknife_half_width(evaluator_ci95, sum(len(s.labels) for s in everything))),
                "jobs": " ".join(job.name for job in jobs),
                "status": f"incomplete: {failed} failed job(s)" if failed else "ok",
            }
        )
    return rows


def summarise(sweep_dir: Path) -> pd.DataFrame:
    jobs = find_jobs(sweep_dir)
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.configuration, job.dataset), []).append(job)
    rows: list[dict] = []
    for (configuration, dataset), group in groups.items():
        years = {job.year for job in group}
        if len(years) > 1:
            raise ReportError(
                f"{sweep_dir}: jobs {[j.name for j in group]} test {dataset} under different years {sorted(years)}"
            )
        rows += group_rows(configuration, dataset, group)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).astype({"sections": "Int64"})


SEED_COLUMNS = [
    "configuration",
    "dataset",
    "machine",
    "seeds",
    "score mean",
    "score std",
    "ci95 mean",
    "jackknife95 mean",
]


def without_seed(configuration: str) -> str | None:
    """The configuration label less its ``seed=…`` override; None where it has none."""
    parts = configuration.split(" ")
    kept = [p for p in parts if not p.lstrip("+~").startswith("seed=")]
    return None if len(kept) == len(parts) else " ".join(kept) or "(defaults)"


def seed_statistics(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every machine type's score and the official score,
    for configurations run with two or more seeds and complete in each."""
    table = summary.assign(pooled=summary["configuration"].map(without_seed))
    table = table[table["pooled"].notna() & (table["status"] == "ok")]
    rows = []
    for (pooled, dataset, machine), group in table.groupby(["pooled", "dataset", "machine"], sort=False):
        if group["configuration"].nunique() < 2:
            continue
        rows.append(
            [
                pooled,
                dataset,
                machine,
                group["configuration"].nunique(),
                group["score"].mean(),
                group["score"].std(ddof=1),
                group["ci95"].mean() if machine == OFFICIAL else np.nan,
                group["jackknife95"].mean() if machine == OFFICIAL else np.nan,
            ]
        )
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def markdown(summary: pd.DataFrame) -> str:
    """Per dataset: one row per configuration, a cell per machine type (the year's metrics, %)."""
    lines = ["# Summary", ""]
    for dataset, table in summary.groupby("dataset", sort=False):
        year = int(table["year"].iloc[0])
        names = YEAR_METRICS[score_definition_year(year)]
        ok = table[table["status"] == "ok"]
        machines = sorted(set(ok["machine"]) - {OFFICIAL})
        lines += [f"## {dataset} ({year} official score; cells: {' / '.join(names)}, %)", ""]
        lines.append(
            "| configuration | " + " | ".join(machines) + " | official score | ± ci95 (evaluator) | ± jackknife 95 % |"
        )
        lines.append("|---" * (len(machines) + 4) + "|")
        for configuration, rows in table.groupby("configuration", sort=False):
            by_machine = {
                r["machine"]: r for _, r in rows.iterrows() if r["status"] == "ok" or r["machine"] == OFFICIAL
            }
            cells = [" / ".join(f"{by_machine[m][n]:.2f}" for n in names) if m in by_machine else "—" for m in machines]
            official = by_machine.get(OFFICIAL)
            score = f"{official['score']:.2f}" if official is not None else "—"
            if official is not None and official["status"] != "ok":
                score += f" ({official['status']})"
            ci = f"{official['ci95']:.4f} | {official['jackknife95']:.2f}" if official is not None else "— | —"
            lines.append(f"| `{configuration}` | " + " | ".join(cells) + f" | {score} | {ci} |")
        lines.append("")
    seeds = seed_statistics(summary)
    if len(seeds):
        lines += ["## Over seeds (mean ± standard deviation of the score, %)", ""]
        lines += [
            "| configuration | dataset | machine | seeds | score | mean ci95 (evaluator) | mean jackknife 95 % |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in seeds.iterrows():
            ci = f"{r['ci95 mean']:.4f} | {r['jackknife95 mean']:.2f}" if pd.notna(r["ci95 mean"]) else " | "
            lines.append(
                f"| `{r['configuration']}` | {r['dataset']} | {r['machine']} | {r['seeds']} | "
                f"{r['score mean']:.2f} ± {r['score std']:.2f} | {ci} |"
            )
        lines.append("")
    problems = summary[~summary["status"].isin(["ok"]) & (summary["machine"] != OFFICIAL)]
    if len(problems):
        lines += ["## Jobs without results", ""]
        lines += [
            f"- job {r['jobs']} (`{r['configuration']}`, {r['machine']}): {r['status']}" for _, r in problems.iterrows()
        ]
        lines.append("")
    return "\n".join(lines)


def write_report(sweep_dir: Path) -> pd.DataFrame:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; return the summary."""
    sweep_dir = Path(sweep_dir)
    summary = summarise(sweep_dir)
    write_text(sweep_dir / SUMMARY, summary.to_csv(index=False))
    write_text(sweep_dir / "summary.md", markdown(summary))
    seeds = seed_statistics(summary)
    if len(seeds):
        write_text(sweep_dir / "seeds.csv", seeds.to_csv(index=False))
    log.info("multirun summary: %s", sweep_dir / "summary.md")
    return summary


class MultirunReport(Callback):
    """Hydra callback: the report of a multirun, written when its last job has ended.

    Jobs that failed were let through so the others could run (``asd.train.main``); once the
    summary is written, they make the multirun exit with an error.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = write_report(sweep_dir)
        failed = summary[summary["status"].str.startswith("failed")]
        if len(failed):
            # Hydra turns a callback's exception into a warning; the exit status must say it.
            raise SystemExit(
                f"{len(failed)} job(s) failed ({', '.join(failed['jobs'])}): tracebacks in <job>/error.txt; "
                f"the others' results are in {sweep_dir / 'summary.md'}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asd.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("multirun_dir", type=Path, help="a Hydra multirun folder (logs/<task>/multiruns/<date>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = write_report(args.multirun_dir)
    except ReportError as error:
        raise SystemExit(f"error: {error}") from None
    print(markdown(summary))


if __name__ == "__main__":
    main()
