"""Our AE recipes beside the official DCASE baseline's own results on the same synthetic data.

    python benchmarks/parity.py [--seeds 13711,1,2] [--modes mse,mahalanobis] [--baseline-logs DIR]

Trains ``experiment=ae_mse`` / ``experiment=ae_mahalanobis`` once per seed on the embedded synthetic
dataset (``data/synthetic``, generator seed 0) and prints, per mode and machine type, our AUC (source),
AUC (target), pAUC and score (mean over seeds) beside the official baseline's from
``../shared/parity/official_baseline_on_synthetic_seed0.csv`` (its own code, seeds 13711/1/2), the
difference, and whether it is within the targets (official score within 0.02, each machine type
within 0.04). Then the time: our training time per machine type beside the baseline's ``train_s``,
our step time and train-loop time per epoch, and — where ``--baseline-logs`` points at the output
folders of ``../shared/tools/run_official_baseline.sh`` (``<DIR>/<machine>/run.log``) — the baseline's
own step time from its progress bars, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from asd.evaluation.metrics import harmonic_mean
from asd.run_directory import SUMMARY
from asd.train import config_dir, train

BASELINE_CSV = Path(__file__).resolve().parents[2] / "shared" / "parity" / "official_baseline_on_synthetic_seed0.csv"
METRICS = ["AUC (source)", "AUC (target)", "pAUC", "score"]
MODES = {"mse": "ae_mse", "mahalanobis": "ae_mahalanobis"}
EPOCHS = 100  # both recipes' and the baseline's


class StepTimer(L.Callback):
    """Wall time of each training step (forward, backward, optimizer) and of each epoch's training
    loop (first batch start to last batch end: no validation, checkpointing or epoch-end analysis)."""

    def __init__(self):
        self.step_s: list[float] = []
        self.epoch_loop_s: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        self.step_s.append(now - self._step_start)
        if batch_idx == trainer.num_training_batches - 1:
            self.epoch_loop_s.append(now - self._epoch_start)


TIMERS: list[StepTimer] = []


def make_timer() -> StepTimer:
    TIMERS.append(StepTimer())
    return TIMERS[-1]


def run_recipe(experiment: str, seed: int, workdir: Path) -> tuple[pd.DataFrame, dict[str, float], StepTimer]:
    overrides = [
        f"experiment={experiment}",
        f"seed={seed}",
        "callbacks.progress_bar.refresh_rate=0",
        "+callbacks.step_timer._target_=__main__.make_timer",
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    run_dir = workdir / f"{experiment}_{seed}"
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.cache_dir = str(workdir / "cache")
    run_dir.mkdir(parents=True)
    fit_s: dict[str, float] = {}
    TIMERS.clear()
    original_fit = L.Trainer.fit

    def timed_fit(trainer, model, *args, **kwargs):
        start = time.perf_counter()
        original_fit(trainer, model, *args, **kwargs)
        fit_s[trainer.datamodule.machines[0]] = time.perf_counter() - start

    L.Trainer.fit = timed_fit
    try:
        train(cfg)
    finally:
        L.Trainer.fit = original_fit
    timer = StepTimer()
    for t in TIMERS:  # one per machine type
        timer.step_s += t.step_s
        timer.epoch_loop_s += t.epoch_loop_s
    table = pd.read_csv(run_dir / SUMMARY)
    table[METRICS] = table[METRICS] / 100
    return table, fit_s, timer


def baseline_train_s(folder: Path) -> float | None:
    """``train_s`` of a run_official_baseline.sh output folder (its summary.json), if there is one."""
    summary = folder / "summary.json"
    return float(json.loads(summary.read_text())["train_s"]) if summary.is_file() else None


def baseline_step_s(log: Path) -> float | None:
    """Median seconds per training step from the baseline's tqdm bars ('21/21 [00:00<00:00, 80.1it/s]')."""
    if not log.is_file():
        return None
    bars = re.findall(
        r"(\d+)/(\d+) \[[^\]]*?([\d.]+)(it/s|s/it)\]", log.read_text(errors="replace").replace("\r", "\n")
    )
    complete = [(int(n), float(rate), unit) for done, n, rate, unit in bars if done == n]
    if not complete:
        return None
    steps = max(n for n, _, _ in complete)  # training epochs have the most batches (validation fewer)
    rates = [rate if unit == "it/s" else 1 / rate for n, rate, unit in complete if n == steps]
    return 1 / statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="13711,1,2")
    parser.add_argument("--modes", default="mse,mahalanobis")
    parser.add_argument("--baseline-csv", type=Path, default=BASELINE_CSV)
    parser.add_argument(
        "--baseline-logs", type=Path, help="output folders of run_official_baseline.sh, one per machine type"
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    baseline = pd.read_csv(args.baseline_csv, dtype={"section": str})
    baseline = baseline.rename(columns={"score_mode": "mode"})
    timing_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            ours: dict[str, list[pd.Series]] = defaultdict(list)
            official = []
            fit_times: dict[str, list[float]] = defaultdict(list)
            steps, loops = [], []
            for seed in seeds:
                start = time.perf_counter()
                table, fit_s, timer = run_recipe(MODES[mode], seed, Path(tmp))
                print(
                    f"[{mode}] seed {seed}: official score {table.iloc[-1]['score']:.4f} in {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
                for _, row in table.iloc[:-1].iterrows():
                    ours[row["machine"]].append(row[METRICS])
                official.append(table.iloc[-1]["score"])
                for machine, seconds in fit_s.items():
                    fit_times[machine].append(seconds)
                steps += timer.step_s
                loops += timer.epoch_loop_s
            theirs = baseline[baseline["mode"] == mode]
            rows = []
            for machine in sorted(ours):
                mean = pd.concat(ours[machine], axis=1).mean(axis=1)
                reference = theirs[theirs["machine"] == machine][METRICS].mean()
                rows.append(
                    [
                        machine,
                        *[f"{mean[m]:.4f} / {reference[m]:.4f}" for m in METRICS],
                        f"{mean['score'] - reference['score']:+.4f}",
                        "yes" if abs(mean["score"] - reference["score"]) <= 0.04 else "NO",
                    ]
                )
            their_official = pd.Series(
                {seed: harmonic_mean(runs[METRICS[:3]].to_numpy().ravel()) for seed, runs in theirs.groupby("seed")}
            )
            our_mean, their_mean = float(np.mean(official)), float(their_official.mean())
            rows.append(
                [
                    "official score",
                    f"{our_mean:.4f} ± {np.std(official, ddof=1) if len(official) > 1 else 0:.4f}",
                    f"{their_mean:.4f} ± {their_official.std(ddof=1):.4f}",
                    "",
                    "",
                    f"{our_mean - their_mean:+.4f}",
                    "yes" if abs(our_mean - their_mean) <= 0.02 else "NO",
                ]
            )
            columns = ["machine", *[f"{m} ours / baseline" for m in METRICS], "score diff", "within target"]
            print(
                f"\n## {mode}: ours (experiment={MODES[mode]}, seeds {args.seeds}) / official baseline (seeds 13711,1,2), means\n"
            )
            print(pd.DataFrame(rows, columns=columns).to_string(index=False))
            for machine in sorted(fit_times):
                local = baseline_train_s(args.baseline_logs / machine) if args.baseline_logs else None
                recorded = theirs[theirs["machine"] == machine]["train_s (both modes)"].mean()
                timing_rows.append(
                    [
                        mode,
                        machine,
                        f"{np.mean(fit_times[machine]):.1f}",
                        f"{local:.0f}" if local else "-",
                        f"{recorded:.0f}",
                    ]
                )
            step_ms, loop_ms = 1000 * statistics.median(steps), 1000 * statistics.median(loops)
            print(
                f"\n[{mode}] our training step: median {step_ms:.2f} ms; train loop per epoch: median {loop_ms:.0f} ms"
            )
    print(
        "\n## Training time per machine type (s): ours = trainer.fit (100 epochs, incl. validation, checkpoints and the"
    )
    print(
        "## every-5-epochs AUC curves); baseline = its train.py --train_only (100 epochs + covariance pass, incl. feature"
    )
    print("## extraction and its per-epoch plots), on this machine where --baseline-logs has its summary.json\n")
    columns = ["mode", "machine", "ours", "baseline here (--baseline-logs)", "baseline recorded (../shared/parity)"]
    print(pd.DataFrame(timing_rows, columns=columns).to_string(index=False))
    if args.baseline_logs:
        their_steps = {
            d.name: baseline_step_s(d / "run.log") for d in sorted(args.baseline_logs.iterdir()) if d.is_dir()
        }
        their_steps = {m: s for m, s in their_steps.items() if s}
        if their_steps:
            their_ms = 1000 * statistics.median(their_steps.values())
            print(
                f"\nbaseline training step (its tqdm rate, median over epochs of {', '.join(their_steps)}): {their_ms:.2f} ms"
            )
            print(f"step-time ratio baseline / ours: {their_ms / step_ms:.2f} (> 1: ours is faster)")
        ours_epoch = {row[1]: float(row[2]) / EPOCHS for row in timing_rows if row[0] == "mse"}
        theirs_epoch = {
            m: baseline_train_s(args.baseline_logs / m) / (EPOCHS + 1)
            for m in ours_epoch
            if baseline_train_s(args.baseline_logs / m)
        }
        for machine, seconds in theirs_epoch.items():
            print(
                f"{machine}: epoch wall time baseline {1000 * seconds:.0f} ms / ours {1000 * ours_epoch[machine]:.0f} ms = {seconds / ours_epoch[machine]:.2f}"
            )


if __name__ == "__main__":
    main()
