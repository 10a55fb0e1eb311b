"""Our recipes beside the official DCASE baseline's own code, on the same synthetic data, in one table.

    python benchmarks/versus_baseline.py --profile benchmark --experiments ae_fusion,ae_standardised_fusion \
        --seeds 13711,1,2 --work runs/versus_benchmark

For each training seed, runs the official baseline (``../shared/tools/run_official_baseline.sh``: its
own code, both score modes from one training, one machine type at a time) and each of our recipes
(``python -m asd.train experiment=<name>``) on the synthetic profile, then prints per seed the
official score of every system, its mean ± standard deviation, the difference from the baseline's
MSE mode (and at how many seeds we are above it), the wall time of each run, the score per machine
type, and each machine type's difference from the reference with a permutation test over the runs
(``machine_gaps``). Finished runs under ``--work`` are read, not run again (``<work>/baseline/s<seed>/<machine>/``
with ``<machine>.time``, ``<work>/ours/<experiment>/s<seed>/`` with ``s<seed>.time``, seconds), so a
long comparison can be resumed or assembled from runs made elsewhere. Runs use the threads the
environment gives (``OMP_NUM_THREADS``; ``taskset`` to pin a core), the same for both sides.

``--record CSV`` adds the compared runs (one row a system and seed: its data, official and per-type scores,
times, and where it came from) to a CSV, replacing a row of the same run; ``--recorded CSV`` prints the same
tables from that file alone, running and reading nothing else, so a comparison outlives its run folders
(``experiments/versus_asdkit.csv``, this script's twin's record).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from asd.data.index import list_machines
from asd.data.synthetic import ensure_dataset
from asd.data.synthetic.profiles import PROFILES as GENERATOR_PROFILES
from asd.evaluation.metrics import harmonic_mean
from asd.run_directory import SUMMARY

SHARED_TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "run_official_baseline.sh"
PROFILES = {  # profile: (data config, machine config)
    "default": ("synthetic", "synthetic"),
    "benchmark": ("synthetic_benchmark", "synthetic_benchmark"),
}
BASELINE_MODES = {"MSE": "baseline MSE", "MAHALA": "baseline selective Mahalanobis"}


def timed(command: list[str], time_file: Path, log: Path, env: dict[str, str] | None = None) -> None:
    """Run ``command``, its output to ``log``; the wall seconds go to ``time_file`` only if it succeeded."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    time_file.write_text(f"{time.perf_counter() - start:.1f}\n")


def run_once(command: list[str], run_dir: Path, env: dict[str, str] | None = None) -> Path:
    """``command``, which writes ``run_dir``, timed into ``<run_dir>.time`` — unless an earlier one finished."""
    time_file = run_dir.parent / f"{run_dir.name}.time"
    if not time_file.is_file():
        timed(command, time_file, run_dir.parent / f"{run_dir.name}.log", env)
    return run_dir


def run_baseline(tool: Path, root: Path, machine: str, seed: int, work: Path) -> None:
    out = work / "baseline" / f"s{seed}" / machine
    run_once(["bash", str(tool), str(root), machine, str(out)], out, {"SCORE": "BOTH", "SEED": str(seed)})


def baseline_scores(work: Path, seed: int, machines: list[str]) -> dict[str, dict]:
    """{system: {"official": %, "machines": {machine: %}, "seconds": s}} of the baseline's two modes."""
    folder = work / "baseline" / f"s{seed}"
    seconds = sum(float((folder / f"{m}.time").read_text()) for m in machines)
    result = {}
    for mode, system in BASELINE_MODES.items():
        values, per_machine = [], {}
        for machine in machines:
            sections = json.loads((folder / machine / mode / "scores.json").read_text())["sections"]
            triples = [[s["AUC_source"], s["AUC_target"], s["pAUC"]] for s in sections.values()]
            values += [v for triple in triples for v in triple]
            per_machine[machine] = 100 * harmonic_mean(triples)
        result[system] = {"official": 100 * harmonic_mean(values), "machines": per_machine, "seconds": seconds}
    return result


def run_ours(
    experiment: str,
    configs: tuple[str, str],
    root: Path,
    data_seed: int | None,
    seed: int,
    work: Path,
    overrides: tuple[str, ...] = (),
) -> Path:
    """One of our recipes trained and tested on ``root`` with the (data, machine) ``configs``; the generator
    seed ``data_seed`` (re)generates the data where it is missing, None reads ``root`` as it is."""
    run_dir = work / "ours" / experiment / f"s{seed}"
    data, machine = configs
    command = [sys.executable, "-m", "asd.train", f"experiment={experiment}", f"data={data}"]
    command += [f"machine={machine}", f"data.root={root}", f"seed={seed}"]
    command += [f"data.synthetic.seed={data_seed}"] if data_seed is not None else []
    command += list(overrides)
    # tested once at the end, as the baseline is: no test AUC every few epochs in TensorBoard
    command += ["callbacks.epoch_evaluation=null", "callbacks.progress_bar.refresh_rate=0"]
    return run_once([*command, f"hydra.run.dir={run_dir}"], run_dir)


def our_scores(run_dir: Path) -> dict:
    summary = pd.read_csv(run_dir / SUMMARY, dtype={"section": str})
    official = summary[summary["machine"] == "official score"]["score"]
    machines = summary[summary["machine"] != "official score"].groupby("machine")["score"].mean()
    seconds = float((run_dir.parent / f"{run_dir.name}.time").read_text())
    return {"official": float(official.iloc[0]), "machines": machines.to_dict(), "seconds": seconds}


def tables(
    results: dict[str, dict[int, dict]],
    seeds: list[int],
    machines: list[str],
    reference_system: str = BASELINE_MODES["MSE"],
) -> tuple[str, str]:
    """(official score per system and seed with mean ± std, the difference from ``reference_system``
    and the seconds per seed; the score per machine type), as printable tables."""
    reference = results[reference_system]
    rows, per_machine = [], []
    for system, by_seed in results.items():
        scores = np.array([by_seed[s]["official"] for s in seeds])
        diffs = scores - np.array([reference[s]["official"] for s in seeds])
        rows.append(
            {
                "system": system,
                **{f"seed {s}": f"{v:.2f}" for s, v in zip(seeds, scores)},
                "mean ± std": f"{scores.mean():.2f} ± {scores.std(ddof=1) if len(seeds) > 1 else 0:.2f}",
                f"vs {reference_system}": f"{diffs.mean():+.2f} ({int((diffs > 0).sum())}/{len(seeds)} seeds above)",
                "s per seed": f"{np.mean([by_seed[s]['seconds'] for s in seeds]):.0f}",
            }
        )
        if all("epoch_seconds" in by_seed[s] for s in seeds):
            rows[-1]["s per epoch"] = f"{np.mean([by_seed[s]['epoch_seconds'] for s in seeds]):.1f}"
        per_machine.append(
            {"system": system, **{m: f"{np.mean([by_seed[s]['machines'][m] for s in seeds]):.2f}" for m in machines}}
        )
    return pd.DataFrame(rows).to_string(index=False), pd.DataFrame(per_machine).to_string(index=False)


def dealt_gaps(runs: np.ndarray, count: int) -> np.ndarray:
    """The largest per-type gap between the mean of ``count`` runs (rows of per-type scores) and the
    mean of the rest, for every way of dealing the rows out (scipy's exact permutation distribution)."""

    def largest_gap(first: np.ndarray, second: np.ndarray) -> float:
        return float(np.abs(runs[first].mean(axis=0) - runs[second].mean(axis=0)).max())

    dealt = (np.arange(count), np.arange(count, len(runs)))
    return scipy.stats.permutation_test(
        dealt, largest_gap, permutation_type="independent", vectorized=False, n_resamples=np.inf
    ).null_distribution


def machine_gaps(
    results: dict[str, dict[int, dict]], seeds: list[int], machines: list[str], reference_system: str
) -> str:
    """Per machine type, each system's mean difference from ``reference_system``, as a printable table,
    with a family-wise exact permutation p: every way of dealing the 2 × len(seeds) runs out to the two
    systems, the largest per-type gap (points) as the statistic, so the types are corrected for together
    (Westfall and Young's single-step max-T); and the largest per-type gap that 95 % of the dealings stay
    within — how far apart two programs whose runs are exchangeable land at this many seeds. A run is one
    training seed's scores on every type, dealt whole, so the types' dependence within a run is kept."""
    reference = np.array([[results[reference_system][s]["machines"][m] for m in machines] for s in seeds])
    count = len(seeds)
    rows = []
    for system, by_seed in results.items():
        if system == reference_system:
            continue
        scores = np.array([[by_seed[s]["machines"][m] for m in machines] for s in seeds])
        null = dealt_gaps(np.vstack([scores, reference]), count)
        gaps = scores.mean(axis=0) - reference.mean(axis=0)
        # the relative tolerance keeps a dealing's gap that equals the observed one in float rounding
        p_values = [np.mean(null >= abs(gap) * (1 - 1e-12)) for gap in gaps]
        rows.append(
            {
                "system": system,
                **{m: f"{gap:+.2f} (p {p:.2f})" for m, gap, p in zip(machines, gaps, p_values)},
                "95 % of dealings within": f"{np.quantile(null, 0.95, method='higher'):.2f}",
            }
        )
    return pd.DataFrame(rows).to_string(index=False)


def comparison_parser(description: str, experiments: str, seeds: str) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark shares (this one and versus_asdkit.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--experiments", default=experiments)
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument(
        "--data-seed", type=int, default=0, help="the synthetic generator's seed (0: the embedded data)"
    )
    parser.add_argument("--data-root", type=Path, help="default: data/synthetic[_benchmark][_<data seed>]")
    parser.add_argument("--work", type=Path, help="where the runs go (and are read back from)")
    parser.add_argument(
        "--record",
        type=Path,
        metavar="CSV",
        help="also add the compared runs' scores and times to CSV (a row of the same system, seed and data replaced)",
    )
    parser.add_argument(
        "--recorded",
        type=Path,
        metavar="CSV",
        help="print the comparison from CSV, written by --record, instead of running or reading any run folder",
    )
    return parser


# what makes a recorded row one run: the data (a generated copy, named by its profile, the profile's version, its
# generator seed and its size — "" the profile's own — wherever it lies; or a folder given by --data-root), the
# epochs, the system and its training seed
RECORD_KEYS = ["profile", "profile_version", "data_seed", "size", "data_root", "epochs", "system", "seed"]
RECORD_COLUMNS = [*RECORD_KEYS, "official", "seconds", "epoch_seconds", "source"]  # and then one column a type


def record_key(profile: str, profile_version: int, data_seed: int, size: str, data_root: str, epochs: str) -> dict:
    """The data and epochs a recorded row is on, one value for each of ``RECORD_KEYS`` but the system and seed
    (every producer builds it here, so that none filters a record on fewer columns than a row has)."""
    return {
        "profile": profile,
        "profile_version": profile_version,
        "data_seed": data_seed,
        "size": size,
        "data_root": data_root,
        "epochs": epochs,
    }


def recorded_data(args) -> dict:
    """The data and epochs of ``args``' comparison, as a record names them (``data_root`` empty for a
    profile's generated copy, which these comparisons write at the profile's own size)."""
    return record_key(
        args.profile,
        GENERATOR_PROFILES[args.profile].version,
        args.data_seed,
        size="",
        data_root=str(args.data_root.resolve()) if args.data_root else "",
        epochs=str(getattr(args, "epochs", None) or "recipe"),
    )


def describe_data(data: dict) -> str:
    """``data`` (a record's key, as ``record_key`` gives it) in words, for a message."""
    words = f"the {data['profile']} profile (version {data['profile_version']}), generator seed {data['data_seed']}"
    words += f", size {data['size']}" if data["size"] else ""
    words += f", epochs {data['epochs']}"
    return words + (f", data root {data['data_root']}" if data["data_root"] else "")


def read_record(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"epochs": str, "data_root": str, "size": str}).fillna({"data_root": "", "size": ""})


def record_results(path: Path, data: dict, results: dict[str, dict[int, dict]], source: str) -> None:
    """Add the runs of ``results`` on ``data`` (``recorded_data``) to the CSV ``path`` (one row a run: its
    data, its system and seed, its official and per-type scores, its times, and ``source``, where it came
    from), replacing a row of the same run, so that a table can be printed again once its run folders are
    gone."""
    rows = [
        {
            **data,
            "system": system,
            "seed": seed,
            "official": run["official"],
            "seconds": run["seconds"],
            "epoch_seconds": run.get("epoch_seconds"),
            **run["machines"],
            "source": source,
        }
        for system, by_seed in results.items()
        for seed, run in by_seed.items()
    ]
    added = pd.DataFrame(rows)
    if path.is_file():
        earlier = read_record(path)
        kept = earlier.merge(added[RECORD_KEYS], on=RECORD_KEYS, how="left", indicator=True)["_merge"] == "left_only"
        added = pd.concat([earlier[kept.to_numpy()], added], ignore_index=True)
    added = added.sort_values(RECORD_KEYS, kind="stable")
    machines = sorted(set(added.columns) - set(RECORD_COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    added[[*RECORD_COLUMNS[:-1], *machines, "source"]].to_csv(path, index=False)


def recorded_runs(path: Path, data: dict) -> dict[str, dict[int, dict]]:
    """{system: {seed: run}} of every run on ``data`` recorded in the CSV ``path`` (a run's per-type scores
    are those its row has: a row transcribed from a table of means has none)."""
    table = read_record(path)
    for column, value in data.items():
        table = table[table[column] == value]
    machines = [c for c in table.columns if c not in RECORD_COLUMNS]
    results: dict[str, dict[int, dict]] = {}
    for row in table.to_dict("records"):
        results.setdefault(row["system"], {})[row["seed"]] = {
            "official": row["official"],
            "seconds": row["seconds"],
            "machines": {m: row[m] for m in machines if pd.notna(row[m])},
        } | ({"epoch_seconds": row["epoch_seconds"]} if pd.notna(row["epoch_seconds"]) else {})
    return results


def print_recorded(parser: argparse.ArgumentParser, args, systems: list[str]) -> None:
    """The comparison of ``systems`` (the first the reference) printed from ``args.recorded``."""
    if args.record:
        parser.error("--record with --recorded: nothing is run, so nothing is recorded")
    seeds = planned_runs(args)[0]
    results, machines = recorded_results(args, systems, seeds)
    print_comparison(results, seeds, machines, systems[0], args, args.recorded)


def recorded_results(args, systems: list[str], seeds: list[int]) -> tuple[dict[str, dict[int, dict]], list[str]]:
    """(results, machine types) of ``systems`` at ``seeds`` on ``args``' data (its profile and generator seed;
    and its folder where ``--data-root`` names one), read from ``args.recorded``; exits naming the file and
    every run it lacks."""
    path = args.recorded
    if not path.is_file():
        sys.exit(f"{path}: no such recorded-results file (--recorded)")
    data = recorded_data(args)
    recorded = recorded_runs(path, data)
    missing = [f"{system} seed {seed}" for system in systems for seed in seeds if seed not in recorded.get(system, {})]
    if missing:
        sys.exit(f"{path}: no recorded run of {'; '.join(missing)} on {describe_data(data)}")
    results = {system: {seed: recorded[system][seed] for seed in seeds} for system in systems}
    machines = sorted({m for runs in results.values() for run in runs.values() for m in run["machines"]})
    for system, runs in results.items():
        for seed, run in runs.items():
            lacking = [m for m in machines if m not in run["machines"]]
            if lacking:
                sys.exit(f"{path}: {system} seed {seed} on {describe_data(data)} has no score for {', '.join(lacking)}")
    return results, machines


def planned_runs(args) -> tuple[list[int], list[str]]:
    """(seeds, experiments) a side-by-side benchmark compares."""
    return [int(s) for s in args.seeds.split(",")], [e for e in args.experiments.split(",") if e]


def comparison_plan(args) -> tuple[list[int], list[str], Path, list[str]]:
    """(seeds, experiments, the data root, its machine types) of a side-by-side benchmark; the data is
    generated where missing."""
    seeds, experiments = planned_runs(args)
    data, _ = PROFILES[args.profile]
    root = args.data_root or Path("data") / (data + (f"_{args.data_seed}" if args.data_seed else ""))
    root = ensure_dataset(root.resolve(), seed=args.data_seed, profile=args.profile)
    machines = list_machines(root, "dev")
    return seeds, experiments, root, machines


def main(argv: list[str] | None = None) -> None:
    parser = comparison_parser(__doc__.split("\n\n")[0], "ae_fusion,ae_standardised_fusion", "13711,1,2")
    parser.add_argument("--baseline-tool", type=Path, default=SHARED_TOOL)
    args = parser.parse_args(argv)
    if args.recorded:
        experiments = planned_runs(args)[1]
        print_recorded(parser, args, [*BASELINE_MODES.values(), *(f"ours: {e}" for e in experiments)])
        return
    if args.work is None:
        parser.error("--work is required")
    seeds, experiments, root, machines = comparison_plan(args)
    if not args.baseline_tool.is_file():
        sys.exit(f"{args.baseline_tool}: the official baseline's runner is missing (--baseline-tool)")
    results: dict[str, dict[int, dict]] = {system: {} for system in BASELINE_MODES.values()}
    results.update({f"ours: {e}": {} for e in experiments})
    for seed in seeds:
        for machine in machines:
            run_baseline(args.baseline_tool, root, machine, seed, args.work)
        for system, scores in baseline_scores(args.work, seed, machines).items():
            results[system][seed] = scores
        for experiment in experiments:
            run_dir = run_ours(experiment, PROFILES[args.profile], root, args.data_seed, seed, args.work)
            results[f"ours: {experiment}"][seed] = our_scores(run_dir)
        print(f"seed {seed} done", flush=True)
    if args.record:
        record_results(args.record, recorded_data(args), results, f"runs under {args.work.resolve()}")
    print_comparison(results, seeds, machines, BASELINE_MODES["MSE"], args, root)


def print_comparison(
    results: dict[str, dict[int, dict]], seeds: list[int], machines: list[str], reference_system: str, args, root: Path
) -> None:
    overall, per_machine = tables(results, seeds, machines, reference_system)
    print(f"\n## Official score (%), {args.profile} profile (generator seed {args.data_seed}, {root})\n")
    print(overall)
    print("\n## Score per machine type (%), mean over the seeds\n")
    print(per_machine)
    if len(seeds) > 1:
        print(
            f"\n## Per machine type, each system − {reference_system} (mean over the seeds), family-wise permutation p\n"
        )
        print(machine_gaps(results, seeds, machines, reference_system))


if __name__ == "__main__":
    main()
