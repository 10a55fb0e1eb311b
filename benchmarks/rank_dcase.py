"""Every trainable recipe of ours ranked on the dcase profile beside the two peers' own code (issue 26).

    ASDKIT_MIRROR=<git copy of TakuyaFujimura/dcase-asd-toolkit> OMP_NUM_THREADS=2 \\
    python benchmarks/rank_dcase.py --calibration runs/calibrate_dcase --data-seed 2 --seeds 0,1,2

Ranks on one generator seed of a calibration (``benchmarks/calibrate_dcase.py`` wrote its copy of the
profile to ``<calibration>/s<seed>/data`` and ran the official baseline there, ``baseline/<machine>/``, at
its own seed): runs ASDKit's ``dis_spec_scac_trainable`` at each training seed where the calibration has
not (``asdkit/s<seed>/``), each of ASDKit's recipes named by ``--asdkit-recipes`` at each seed
(``asdkit_<recipe>/s<seed>/``) and each of our recipes at each seed (``ours/<experiment>/s<seed>/``:
``python -m asd.train experiment=<name> data=dcase2024 data.root=<the copy> machine=synthetic_dcase
seed=<seed>``, the copy read as it is; a recipe that differs from an earlier one of the list by its back-end
alone is not trained again but scored on that recipe's runs, ``python -m asd.score <run> backend=<its back-end>``:
the same network at the same seed, as a user's ``asd.score -m`` does, its seconds the training's plus its
scoring's; ``--ensembles a+b`` combines recipes a and b of the list at each seed with ``python -m asd.ensemble``,
its seconds the members' plus its own), then prints one table ordered by mean official score — each
seed's score, mean ± standard deviation, the difference from ASDKit and from the baseline, the seconds
of a run — and the score per machine type. Finished runs are read back, not run again. Recipes whose
encoder needs pretrained weights are refused: no weights reach these machines, and a randomly
initialised encoder ranks nothing.

``--record CSV`` keeps the ranking's runs once their folders are gone (``versus_baseline.py``'s record, the
data named by the copy's generator marker: profile, its version, generator seed, size): a run the record
holds on this copy is read from it, not run again nor read from its folder; the others are run (or read
back) and added. ``--recorded CSV`` prints the ranking of every run the record holds on the copy, each
system at the seeds it has, and runs nothing (with no copy on disk, as in a fresh clone: on the one size the
record holds for that generator seed); experiments/rank_dcase.csv is the record of the table in
experiments/README.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from calibrate_dcase import asdkit_runs, baseline_sections
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from versus_asdkit import ASDKIT, ASDKIT_RECIPE, asdkit_system
from versus_asdkit import SHARED_TOOL as ASDKIT_TOOL
from versus_baseline import (
    describe_data,
    our_scores,
    read_record,
    record_key,
    record_results,
    recorded_runs,
    run_once,
    run_ours,
)

from asd.data.synthetic import MARKER, PROFILES
from asd.data.synthetic.machines import DEVELOPMENT_TYPES
from asd.evaluation.metrics import harmonic_mean
from asd.jobs import config_dir

EXPERIMENTS = Path(__file__).resolve().parents[1] / "conf" / "experiment"
DCASE_COPY = ("dcase2024", "synthetic_dcase")  # data and machine configs that read a copy as it is
DCASE_OVERRIDES = (f"data={DCASE_COPY[0]}", f"machine={DCASE_COPY[1]}")
BASELINE = "official baseline (MSE, its seed 13711)"


def copy_data(root: Path) -> dict:
    """The copy of the profile at ``root`` as a record names its data (``versus_baseline.record_key``),
    read from the generator's marker: a generated copy is the same data wherever it lies."""
    marker = json.loads((root / MARKER).read_text())
    spec, profile = marker["spec"], marker["profile"]
    size = (
        f"{spec['source_train']} source and {spec['target_train']} target training clips, "
        f"{spec['test_per_domain_and_label']} test clips a domain and label, {spec['duration_s']:g} s"
    )
    own_size = spec == asdict(PROFILES[profile].spec)
    return record_key(profile, marker["profile_version"], marker["seed"], "" if own_size else size, "", "recipe")


def recorded_copy(record: Path, data_seed: int, root: Path) -> dict:
    """The copy of the profile at generator seed ``data_seed`` as ``record`` names it, for printing a recorded
    ranking with no copy on disk (a fresh clone): found only where the record holds one size of that seed
    at the profile's present version, since the size is what the copy's marker would have said."""
    version = PROFILES["dcase"].version
    table = read_record(record)
    key = record_key("dcase", version, data_seed, "", "", "recipe")
    same = np.logical_and.reduce([table[column] == value for column, value in key.items() if column != "size"])
    sizes = sorted(table[same]["size"].unique())
    if len(sizes) != 1:
        held = "; ".join(repr(size or "the profile's own size") for size in sizes) or "none"
        sys.exit(
            f"{root}: no copy of the dcase profile, and {record} holds {held} for generator seed {data_seed}"
            f" (profile version {version}); write the copy there to say which data to print"
        )
    return key | {"size": sizes[0]}


def needs_pretrained_weights(experiment: str) -> bool:
    """Whether the recipe overrides the ``encoder`` group: a pretrained encoder whose weights it loads."""
    defaults = OmegaConf.to_container(OmegaConf.load(EXPERIMENTS / f"{experiment}.yaml")).get("defaults", [])
    return any(isinstance(entry, dict) and "override /encoder" in entry for entry in defaults)


def trainable_experiments() -> list[str]:
    """Every recipe that trains (or fits) from the data alone."""
    return [path.stem for path in sorted(EXPERIMENTS.glob("*.yaml")) if not needs_pretrained_weights(path.stem)]


def recipe_config(experiment: str | None, config: str = "train", overrides: tuple[str, ...] = ()) -> DictConfig:
    """A config composed as a user's command composes it (unresolved), with Hydra's group choices; no
    ``experiment`` composes ``config`` with ``overrides`` alone."""
    with initialize_config_dir(config_dir(), version_base=None):
        return compose(
            config,
            overrides=[*overrides, *([f"experiment={experiment}"] if experiment else [])],
            return_hydra_config=True,
        )


def shared_trainings(experiments: list[str]) -> dict[str, str]:
    """{recipe: the earlier recipe of ``experiments`` it differs from by its back-end alone} — its network,
    data and training are that recipe's, so its score is that recipe's runs scored again."""
    trained: dict[str, str] = {}
    shared: dict[str, str] = {}
    for experiment in experiments:
        config = OmegaConf.to_container(recipe_config(experiment, overrides=DCASE_OVERRIDES), resolve=False)
        for key in ("backend", "hydra"):
            config.pop(key)
        training = json.dumps(config, sort_keys=True, default=str)
        if training in trained:
            shared[experiment] = trained[training]
        else:
            trained[training] = experiment
    return shared


def backend_overrides(experiment: str) -> list[str]:
    """``asd.score`` overrides that give the recipe's back-end: its group, then each value the recipe sets
    apart from the group's own."""
    recipe = recipe_config(experiment, overrides=DCASE_OVERRIDES)
    group = recipe.hydra.runtime.choices["backend"]
    default = OmegaConf.to_container(recipe_config(None, "score", (f"backend={group}",)).backend, resolve=False)
    chosen = OmegaConf.to_container(recipe.backend, resolve=False)
    values = [f"backend.{key}={json.dumps(value)}" for key, value in chosen.items() if default.get(key) != value]
    return [f"backend={group}", *values]


def score_ours(experiment: str, backend: list[str], trained_run: Path, seed: int, work: Path) -> Path:
    """The recipe's back-end (``backend_overrides``) refitted on ``trained_run``'s saved representations."""
    run_dir = work / "ours" / experiment / f"s{seed}"
    return run_once(
        [sys.executable, "-m", "asd.score", str(trained_run), *backend, f"hydra.run.dir={run_dir}"], run_dir
    )


def ensemble_ours(members: list[str], seed: int, work: Path) -> Path:
    """``python -m asd.ensemble`` of the members' runs at ``seed``: each run's scores z-normalised per section
    on its own training scores, then averaged clip by clip."""
    run_dir = work / "ours" / "+".join(members) / f"s{seed}"
    runs = [str(work / "ours" / member / f"s{seed}") for member in members]
    return run_once([sys.executable, "-m", "asd.ensemble", *runs, "--out", str(run_dir)], run_dir)


def ensemble_seconds(members: list[str], own: float, seconds: dict[str, float], shared: dict[str, str]) -> float:
    """An ensemble's seconds: its own, each distinct training of its members once (``seconds`` holds each
    recipe's run, training included), and the scoring of each member scored on another recipe's trainings."""
    trainings = {shared.get(member, member) for member in members}
    scorings = sum(seconds[member] - seconds[shared[member]] for member in members if member in shared)
    return own + sum(seconds[training] for training in trainings) + scorings


def baseline_result(seed_work: Path, machines: list[str]) -> dict:
    """The baseline's runs of a calibration seed as one run in % (its seed is fixed: one run a type)."""
    missing = [m for m in machines if not (seed_work / "baseline" / f"{m}.time").is_file()]
    if missing:
        sys.exit(
            f"{seed_work / 'baseline'}: no finished baseline run of {', '.join(missing)}; "
            "run benchmarks/calibrate_dcase.py for this generator seed first"
        )
    sections = {m: baseline_sections(seed_work / "baseline" / m) for m in machines}
    triples = {m: [s["AUC (source)"], s["AUC (target)"], s["pAUC"]] for m, s in sections.items()}
    return {
        "official": 100 * harmonic_mean(list(triples.values())),
        "machines": {m: 100 * harmonic_mean([triple]) for m, triple in triples.items()},
        "seconds": sum(s["s"] for s in sections.values()),
    }


def ranking(results: dict[str, dict[int, dict]], machines: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row a system, best mean official score first; the mean score per machine type, NaN where a run
    has no per-type score recorded), in %."""
    asdkit = np.mean([run["official"] for run in results[ASDKIT].values()])
    (baseline,) = (run["official"] for run in results[BASELINE].values())
    rows, per_machine = [], []
    for system, runs in results.items():
        scores = np.array([run["official"] for run in runs.values()])
        rows.append(
            {
                "system": system,
                "seeds": ",".join(str(seed) for seed in runs),
                "per seed": " ".join(f"{score:.2f}" for score in scores),
                "mean": scores.mean(),
                "sd": scores.std(ddof=1) if len(scores) > 1 else float("nan"),
                "vs ASDKit": scores.mean() - asdkit,
                "vs baseline": scores.mean() - baseline,
                "s a run": np.mean([run["seconds"] for run in runs.values()]),
            }
        )
        per_machine.append(
            {"system": system, **{m: np.mean([r["machines"].get(m, np.nan) for r in runs.values()]) for m in machines}}
        )
    table = pd.DataFrame(rows).sort_values("mean", ascending=False, kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    order = table["system"].tolist()
    per_type = pd.DataFrame(per_machine).set_index("system").loc[order].reset_index()
    return table, per_type


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibration", type=Path, required=True, help="calibrate_dcase.py's --work")
    parser.add_argument("--data-seed", type=int, required=True, help="the generator seed to rank on")
    parser.add_argument("--seeds", help="training seeds of ASDKit and of each recipe (default 0,1,2)")
    parser.add_argument("--experiments", help="comma-separated recipes (default: every one that needs no weights)")
    parser.add_argument(
        "--ensembles",
        default="",
        help="comma-separated '+'-joined recipes of --experiments, each combined at every seed with asd.ensemble",
    )
    parser.add_argument(
        "--asdkit-recipes",
        default="",
        help=f"comma-separated further ASDKit recipes ranked beside {ASDKIT_RECIPE} (always ranked: the"
        " 'vs ASDKit' column's reference), e.g. dis_multispec_scac_trainable; each run at every seed in"
        " asdkit_<recipe>/",
    )
    parser.add_argument("--asdkit-tool", type=Path, default=ASDKIT_TOOL)
    parser.add_argument(
        "--record",
        type=Path,
        metavar="CSV",
        help="read the runs CSV holds on this copy from it, run the others and add them (a record of the ranking)",
    )
    parser.add_argument(
        "--recorded",
        type=Path,
        metavar="CSV",
        help="print the ranking of every run CSV holds on this copy, each system at its recorded seeds; run nothing",
    )
    args = parser.parse_args(argv)
    if args.record and args.recorded:
        parser.error("--record with --recorded: nothing is run, so nothing is recorded")
    chosen = [option for option in ("seeds", "experiments", "ensembles", "asdkit_recipes") if getattr(args, option)]
    if args.recorded and chosen:
        options = ", ".join("--" + option.replace("_", "-") for option in chosen)
        parser.error(f"--recorded prints every run the record holds on the copy; {options} choose runs to run")
    args.seeds = args.seeds or "0,1,2"
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: {args.seeds!r} is not comma-separated whole numbers")
    experiments = args.experiments.split(",") if args.experiments else trainable_experiments()
    unknown = [e for e in experiments if not (EXPERIMENTS / f"{e}.yaml").is_file()]
    if unknown:
        parser.error(f"--experiments: no recipe {', '.join(unknown)} in {EXPERIMENTS}")
    pretrained = [e for e in experiments if needs_pretrained_weights(e)]
    if pretrained:
        parser.error(f"--experiments: {', '.join(pretrained)} need pretrained weights; a random encoder ranks nothing")
    ensembles = [group.split("+") for group in args.ensembles.split(",") if group]
    for members in ensembles:
        if len(set(members)) < 2 or not set(members) <= set(experiments):
            parser.error(f"--ensembles: {'+'.join(members)} is not two or more different recipes of --experiments")
    seed_work = args.calibration.resolve() / f"s{args.data_seed}"
    root = seed_work / "data"
    copied, machines = (root / "dev_data" / "raw").is_dir(), list(DEVELOPMENT_TYPES)
    if args.recorded:
        if not args.recorded.is_file():
            sys.exit(f"{args.recorded}: no such recorded-results file (--recorded)")
        data = copy_data(root) if copied else recorded_copy(args.recorded, args.data_seed, root)
        results = recorded_runs(args.recorded, data)
        missing = [system for system in (BASELINE, ASDKIT) if system not in results]
        if missing:
            sys.exit(f"{args.recorded}: no recorded run of {' or '.join(missing)} on {describe_data(data)}")
        source = args.recorded if copied else f"{args.recorded}; no copy on disk, {describe_data(data)}"
        print_ranking(results, machines, args.data_seed, source)
        return
    if not copied:
        sys.exit(f"{root}: no copy of the dcase profile; run benchmarks/calibrate_dcase.py --work {args.calibration}")
    data = copy_data(root)
    recorded = recorded_runs(args.record, data) if args.record and args.record.is_file() else {}

    def read(system: str, seed: int) -> dict | None:
        return recorded.get(system, {}).get(seed)

    def finished_run(experiment: str, seed: int) -> Path:
        """``experiment``'s run folder at ``seed``, which asd.score or asd.ensemble reads again."""
        run = seed_work / "ours" / experiment / f"s{seed}"
        if not (run.parent / f"s{seed}.time").is_file():
            sys.exit(
                f"{run}: gone, and {experiment} seed {seed} was read from {args.record}: scoring it again needs"
                " its run; remove its rows from the record to run it again"
            )
        return run

    results: dict[str, dict[int, dict]] = {
        BASELINE: {13711: read(BASELINE, 13711) or baseline_result(seed_work, machines)}
    }
    for recipe in dict.fromkeys([ASDKIT_RECIPE, *filter(None, args.asdkit_recipes.split(","))]):
        system = asdkit_system(recipe)
        unrecorded = [seed for seed in seeds if read(system, seed) is None]
        _, ran = asdkit_runs(args.asdkit_tool, root, machines, unrecorded, seed_work, None, recipe)
        results[system] = {seed: read(system, seed) or ran[seed] for seed in seeds}
    shared = shared_trainings(experiments)
    system_of: dict[str, str] = {}
    for experiment in experiments:
        if experiment in shared:
            trained, backend = shared[experiment], backend_overrides(experiment)
            system_of[experiment] = f"ours: {experiment} ({trained}'s trainings)"
            runs = {}
            for seed in seeds:
                runs[seed] = read(system_of[experiment], seed)
                if runs[seed] is None:
                    run = our_scores(score_ours(experiment, backend, finished_run(trained, seed), seed, seed_work))
                    run["seconds"] += results[system_of[trained]][seed]["seconds"]
                    runs[seed] = run
            results[system_of[experiment]] = runs
        else:
            system_of[experiment] = f"ours: {experiment}"
            results[system_of[experiment]] = {
                seed: read(system_of[experiment], seed)
                or our_scores(run_ours(experiment, DCASE_COPY, root, None, seed, seed_work))
                for seed in seeds
            }
        print(f"{experiment} done", flush=True)
    for members in ensembles:
        system = f"ours: asd.ensemble of {' + '.join(members)}"
        runs = {}
        for seed in seeds:
            runs[seed] = read(system, seed)
            if runs[seed] is None:
                for member in members:
                    finished_run(member, seed)
                run = our_scores(ensemble_ours(members, seed, seed_work))
                seconds = {experiment: results[name][seed]["seconds"] for experiment, name in system_of.items()}
                run["seconds"] = ensemble_seconds(members, run["seconds"], seconds, shared)
                runs[seed] = run
        results[system] = runs
    if args.record:
        added = {
            system: {seed: run for seed, run in runs.items() if read(system, seed) is None}
            for system, runs in results.items()
        }
        record_results(args.record, data, added, f"runs under {seed_work}")
    print_ranking(results, machines, args.data_seed, root)


def print_ranking(results: dict[str, dict[int, dict]], machines: list[str], data_seed: int, source: Path | str) -> None:
    table, per_type = ranking(results, machines)
    print(f"\n## Official score (%), dcase profile, generator seed {data_seed} ({source})\n")
    print(table.to_string(index=False, float_format="{:.2f}".format, na_rep="-"))
    print("\n## Score per machine type (%), mean over the seeds\n")
    print(per_type.to_string(index=False, float_format="{:.2f}".format, na_rep="-"))
    if per_type.isna().any(axis=None):
        print("\n-: no per-type score recorded for a run of the system (a row transcribed from a table of means)")


if __name__ == "__main__":
    main()
