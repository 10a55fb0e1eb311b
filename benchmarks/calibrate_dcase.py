"""Calibration of the generator's dcase profile against two programs no one here wrote, each run with
its own code: the official DCASE baseline (MSE mode, its default seed 13711) and ASDKit's
``dis_spec_scac_trainable`` (its seed 0, or the mean over ``--asdkit-seeds``), on the same files, per
generator seed.

    NTT_MIRROR=<git copy of nttcslab/dcase2023_task2_baseline_ae> \\
    ASDKIT_MIRROR=<git copy of TakuyaFujimura/dcase-asd-toolkit> OMP_NUM_THREADS=1 \\
    python benchmarks/calibrate_dcase.py --data-seeds 0,1 --asdkit-seeds 0,1,2,3 --source-train 60 \\
        --work runs/calibrate_dcase

Prints, per generator seed, each program's official score, the baseline's AUCs per machine type, how
many types' target AUC lie below 0.55, ASDKit's lead over the baseline and each run's time, each
program's AUC per fault (read from its per-clip scores: which faults each one hears), and checks
them against what real DCASE 2024 development data shows (issue 26): the baseline between 0.52 and
0.62 with some target AUCs below 0.55, ASDKit at least 0.04 above it. The data is written to
``<work>/s<seed>/data`` (the profile's size unless the size options say otherwise); finished runs
are read back, not run again (``<work>/s<seed>/baseline/<machine>/`` with ``<machine>.time``,
``<work>/s<seed>/asdkit/s<training seed>/`` with ``s<training seed>.time``; with ``--asdkit-epochs N``,
``<work>/s<seed>/asdkit_epochs<N>/asdkit/s<training seed>/``).

``--asdkit-seeds``: one ASDKit training moves its score on a type by as much as a change of the data
does (calibration step 10: ±0.03 on the official score), so the lead is judged on the mean over several
of its training seeds (its own README averages four trials). The baseline's seed is its default, one
run per type.

``--asdkit-epochs`` is a diagnostic, not a calibration setting: a smaller copy of the profile gives
ASDKit's classifier as many fewer optimizer steps as it has fewer clips (3 types of 70 clips: 4 steps an
epoch at its batch of 64, 64 in its 16 epochs; the real 2024 development set's seven types: about 110 an
epoch), while the baseline's small autoencoder sees thousands of frame batches either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score
from versus_asdkit import ASDKIT_KNN_SMOTE, ASDKIT_RECIPE, ASDKIT_TEST_SCORES, asdkit_scores, run_asdkit
from versus_asdkit import SHARED_TOOL as ASDKIT_TOOL
from versus_baseline import SHARED_TOOL as BASELINE_TOOL
from versus_baseline import run_once

from asd.data.filenames import parse_file_name
from asd.data.synthetic import PROFILES, ensure_dataset
from asd.data.synthetic.__main__ import add_size_options, chosen_spec
from asd.data.synthetic.layout import fault_of_test_clip
from asd.data.synthetic.machines import DEVELOPMENT_TYPES
from asd.data.synthetic.profiles import Profile, anomalies
from asd.evaluation.metrics import harmonic_mean
from asd.evaluation.submission import read_values, score_file_name

BASELINE_SEED = 13711  # the baseline's own default
#: what the real DCASE 2024 development set shows (ASDKit's README Fig. 2: AE 55.02, dis_spec_scac_trainable
#: 61.58; the baseline's target AUCs below 0.55 for several types in the task description)
BASELINE_RANGE = (0.52, 0.62)
LOW_TARGET_AUC = 0.55
ASDKIT_LEAD = 0.04


def run_baseline(tool: Path, root: Path, machine: str, work: Path) -> Path:
    out = work / "baseline" / machine
    env = {"SCORE": "MSE", "SEED": str(BASELINE_SEED)}
    return run_once(["bash", str(tool), str(root), machine, str(out)], out, env)


def baseline_sections(out: Path) -> dict:
    """The baseline's own AUC (source), AUC (target) and pAUC of its one section, and the run's seconds."""
    (section,) = json.loads((out / "MSE" / "scores.json").read_text())["sections"].values()
    seconds = float((out.parent / f"{out.name}.time").read_text())
    return {
        "AUC (source)": section["AUC_source"],
        "AUC (target)": section["AUC_target"],
        "pAUC": section["pAUC"],
        "s": seconds,
    }


def asdkit_runs(
    tool: Path,
    root: Path,
    machines: list[str],
    seeds: list[int],
    work: Path,
    epochs: int | None,
    recipe: str = ASDKIT_RECIPE,
):
    """({seed: run folder}, {seed: its scores}) of ASDKit's ``recipe`` at each training seed, run where not
    finished; a finished run of other machine types in ``work`` is an error, not read as theirs."""
    outs = {seed: run_asdkit(tool, root, machines, seed, work, epochs, recipe) for seed in seeds}
    runs = {seed: asdkit_scores(out) for seed, out in outs.items()}
    for out, run in zip(outs.values(), runs.values()):
        if sorted(run["machines"]) != sorted(machines):
            sys.exit(f"{out}: ASDKit ran on {', '.join(sorted(run['machines']))}; use another --work")
    return outs, runs


def calibration_rows(per_machine: dict[str, dict], asdkit_runs: dict[int, dict]) -> dict:
    """One generator seed's row: the baseline's official score, ASDKit's mean over its training seeds
    (each seed's score listed, and their standard deviation) and its lead, and the seconds of a run."""
    triples = [[m["AUC (source)"], m["AUC (target)"], m["pAUC"]] for m in per_machine.values()]
    baseline = harmonic_mean(triples)
    asdkit = pd.Series({seed: run["official"] / 100 for seed, run in asdkit_runs.items()})
    return {
        "baseline official": baseline,
        "types with target AUC < 0.55": sum(m["AUC (target)"] < LOW_TARGET_AUC for m in per_machine.values()),
        "ASDKit official": asdkit.mean(),
        "ASDKit per training seed": " ".join(f"{value:.3f}" for value in asdkit),
        "ASDKit sd": asdkit.std(),
        "ASDKit lead": asdkit.mean() - baseline,
        "baseline s": sum(m["s"] for m in per_machine.values()),
        "ASDKit s (a run)": sum(run["seconds"] for run in asdkit_runs.values()) / len(asdkit_runs),
    }


def asdkit_clip_scores(machine: str, asdkit_out: Path) -> dict[str, float]:
    """One ASDKit run's kNN + SMOTE score of each test clip of ``machine``, by path."""
    pattern = ASDKIT_TEST_SCORES.format(machine=machine)
    asdkit_files = sorted(asdkit_out.glob(pattern))
    if len(asdkit_files) != 1:
        sys.exit(f"{asdkit_out}: {len(asdkit_files)} ASDKit per-clip score files ({pattern}); expected one")
    asdkit = pd.read_csv(asdkit_files[0])
    return dict(zip(asdkit["path"], asdkit[ASDKIT_KNN_SMOTE]))


def fault_aucs(profile: Profile, machine: str, by_path: dict[str, float]) -> dict[tuple[str, str], float]:
    """{(fault, domain): AUC of the fault's anomalous test clips against the domain's normal clips} of one
    program's per-clip scores (NaN where a domain has none of the fault)."""
    infos = ((parse_file_name(path), score) for path, score in by_path.items())
    clips = [(i.domain, fault_of_test_clip(profile, machine, i.index), score) for i, score in infos]
    aucs = {}
    for fault in anomalies(profile, machine):
        for domain in ("source", "target"):
            normal = [s for d, f, s in clips if d == domain and f is None]
            faulty = [s for d, f, s in clips if d == domain and f == fault]
            labels = [0] * len(normal) + [1] * len(faulty)
            aucs[fault, domain] = roc_auc_score(labels, normal + faulty) if faulty else float("nan")
    return aucs


def fault_rows(profile: Profile, machine: str, baseline_out: Path, asdkit_outs: list[Path]) -> list[dict]:
    """Which faults each program hears: each fault's AUC (``fault_aucs``) from each program's own
    per-clip scores, ASDKit's the mean over its training seeds."""
    baseline_scores = read_values(baseline_out / "MSE" / score_file_name("anomaly_score", machine, "00"), {}, False)
    baseline = fault_aucs(profile, machine, baseline_scores)
    asdkit = pd.DataFrame([fault_aucs(profile, machine, asdkit_clip_scores(machine, out)) for out in asdkit_outs])
    rows = []
    for fault in anomalies(profile, machine):
        row = {"machine": machine, "fault": fault}
        row |= {f"baseline AUC ({domain})": baseline[fault, domain] for domain in ("source", "target")}
        row |= {f"ASDKit AUC ({domain})": asdkit[fault, domain].mean() for domain in ("source", "target")}
        rows.append(row)
    return rows


def verdict(row: dict) -> list[str]:
    """What of the real data's picture this seed shows, and what not."""
    low, high = BASELINE_RANGE
    return [
        f"baseline {row['baseline official']:.3f} in [{low}, {high}]: {low <= row['baseline official'] <= high}",
        f"some target AUC < {LOW_TARGET_AUC}: {row['types with target AUC < 0.55'] > 0}",
        f"ASDKit ahead by >= {ASDKIT_LEAD}: {row['ASDKit lead'] >= ASDKIT_LEAD} ({row['ASDKit lead']:+.3f})",
        f"ASDKit per training seed {row['ASDKit per training seed']}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-seeds", default="0,1", help="generator seeds (calibrate on 0 and 1; check once on 2)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument(
        "--machines",
        default=",".join(DEVELOPMENT_TYPES),
        help="comma-separated development types to run both programs on (default: all seven)",
    )
    add_size_options(parser)
    parser.add_argument(
        "--asdkit-epochs",
        type=int,
        help="ASDKit's training epochs (default its own 16); a diagnostic of the copy's size, see above",
    )
    parser.add_argument(
        "--asdkit-seeds",
        default="0",
        help="ASDKit's training seeds, comma-separated (default its own 0); the lead is judged on their mean",
    )
    parser.add_argument("--baseline-tool", type=Path, default=BASELINE_TOOL)
    parser.add_argument("--asdkit-tool", type=Path, default=ASDKIT_TOOL)
    args = parser.parse_args(argv)
    spec = chosen_spec(parser, args, "dcase")
    for tool in (args.baseline_tool, args.asdkit_tool):
        if not tool.is_file():
            sys.exit(f"{tool}: a peer's runner is missing")
    machines = args.machines.split(",")
    unknown = sorted(set(machines) - set(DEVELOPMENT_TYPES))
    if unknown:
        parser.error(f"--machines: {', '.join(unknown)} not among the development types {', '.join(DEVELOPMENT_TYPES)}")
    try:
        asdkit_seeds = [int(seed) for seed in args.asdkit_seeds.split(",")]
    except ValueError:
        parser.error(f"--asdkit-seeds: {args.asdkit_seeds!r} is not comma-separated whole numbers")
    summary, per_type, per_fault = [], [], []
    profile = replace(PROFILES["dcase"], spec=spec)
    for data_seed in (int(s) for s in args.data_seeds.split(",")):
        work = args.work.resolve() / f"s{data_seed}"
        root = ensure_dataset(work / "data", seed=data_seed, spec=spec, profile="dcase")
        baseline_outs = {m: run_baseline(args.baseline_tool, root, m, work) for m in machines}
        per_machine = {m: baseline_sections(out) for m, out in baseline_outs.items()}
        asdkit_work = work / f"asdkit_epochs{args.asdkit_epochs}" if args.asdkit_epochs else work
        asdkit_outs, asdkit = asdkit_runs(
            args.asdkit_tool, root, machines, asdkit_seeds, asdkit_work, args.asdkit_epochs
        )
        row = calibration_rows(per_machine, asdkit)
        summary.append({"generator seed": data_seed, **row})
        for machine, metrics in per_machine.items():
            per_type.append(
                {
                    "generator seed": data_seed,
                    "machine": machine,
                    **{k: v for k, v in metrics.items() if k != "s"},
                    "ASDKit score": sum(run["machines"][machine] for run in asdkit.values()) / (100 * len(asdkit)),
                }
            )
            per_fault += [
                {"generator seed": data_seed, **fault_row}
                for fault_row in fault_rows(profile, machine, baseline_outs[machine], list(asdkit_outs.values()))
            ]
        print(f"generator seed {data_seed}: " + "; ".join(verdict(row)), flush=True)
    print(f"\n## The dcase profile against the two peers ({spec})\n")
    print(pd.DataFrame(summary).round(3).to_string(index=False))
    print("\n## Per machine type: the baseline's own metrics and ASDKit's score (mean over its training seeds)\n")
    print(pd.DataFrame(per_type).round(3).to_string(index=False))
    print(
        "\n## Per fault: each program's AUC of one fault's clips against the same domain's normal clips"
        " (ASDKit's: mean over its training seeds)\n"
    )
    print(pd.DataFrame(per_fault).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
