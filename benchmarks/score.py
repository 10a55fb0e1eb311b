"""The time of ``asd.score`` (refit a back-end on saved representations) against the training run it reuses.

    python benchmarks/score.py [--experiment ae_mse] [--backends mse,selective_mahalanobis,knn,lof,fusion]

Trains the experiment once on the synthetic data (``python -m asd.train``, wall time measured), then
scores it again with each back-end (``python -m asd.score``, wall time measured, process start-up
included) and prints both with their ratio and each back-end's official score.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from asd.run_directory import SUMMARY


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def official(run: Path) -> float:
    table = pd.read_csv(run / SUMMARY)
    return float(table.loc[table["machine"] == "official score", "score"].iloc[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="ae_mse")
    parser.add_argument("--backends", default="mse,selective_mahalanobis,knn,lof,fusion")
    args = parser.parse_args(argv)
    python, root = sys.executable, Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        quiet = "callbacks.progress_bar.refresh_rate=0"
        train_s = timed(
            [python, "-m", "asd.train", f"experiment={args.experiment}", quiet, f"hydra.run.dir={run}"], root
        )
        print(f"asd.train experiment={args.experiment}: {train_s:.1f} s, official score {official(run):.2f}")
        for backend in args.backends.split(","):
            out = Path(tmp) / backend
            score_s = timed([python, "-m", "asd.score", str(run), f"backend={backend}", f"hydra.run.dir={out}"], root)
            print(
                f"asd.score backend={backend}: {score_s:.1f} s ({train_s / score_s:.0f}x faster than training), official score {official(out):.2f}"
            )


if __name__ == "__main__":
    main()
