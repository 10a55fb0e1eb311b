"""Score new recordings with a trained run — no training data needed.

    python -m asd.predict <run_dir> <wav files or folders> [--out scores.csv]
                          [--section fan/section_00] [--window S --hop S]

Writes one row per clip (or per window of a long recording): file, window start/end in
seconds, section, anomaly score, decision (1 = anomalous, from the threshold fitted on the
training scores), the domain whose threshold judged it (``source``/``target``: the back-end's model
that scored it, or the nearest training clip's domain) and error. A file that cannot be read gets a
row with its error and the others are still scored; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from asd.data.audio import AudioError, load_audio
from asd.data.datamodule import clip_batch
from asd.data.features import LogMel
from asd.data.filenames import AUDIO_SUFFIXES
from asd.files import write_csv
from asd.run_directory import RunDirectoryError
from asd.system import System, load_systems
from asd.vocabulary import DOMAINS

COLUMNS = ["file", "start_s", "end_s", "section", "anomaly_score", "decision", "judged_domain", "error"]


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(item)
    return files


def choose_system(systems: dict[str, System], section: str | None) -> tuple[System, str]:
    matches = [(s, key) for s in systems.values() for key in s.sections if section in (None, key)]
    if len(matches) == 1:
        return matches[0]
    available = sorted(key for s in systems.values() for key in s.sections)
    if not matches:
        raise RunDirectoryError(f"no section {section!r} in this run; it has: {', '.join(available)}")
    raise RunDirectoryError(f"this run scores several sections, choose one with --section: {', '.join(available)}")


def windows(waveform: torch.Tensor, rate: int, window_s: float | None, hop_s: float | None):
    """(start sample, end sample) of each window; the whole clip when no window is given."""
    length = waveform.shape[-1]  # samples per channel
    if not window_s:
        return [(0, length)]
    size, hop = int(window_s * rate), int((hop_s or window_s) * rate)
    if length <= size:
        return [(0, length)]
    starts = range(0, length - size + 1, hop)
    return [(start, start + size) for start in starts]


def minimum_duration_s(system: System) -> float:
    """The shortest audio the system can score: its frontend's ``min_frames`` log-mel frames."""
    features = system.feature_config
    return (system.module.min_frames - 1) * features.hop_length / features.sample_rate


def check_arguments(args: argparse.Namespace, system: System) -> None:
    """Every argument checked before any audio is read, so a mistake costs no scoring time."""
    for name in ("window", "hop"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{name} must be a positive number of seconds, got {value}")
    if args.hop is not None and args.window is None:
        raise ValueError("--hop needs --window")
    shortest = minimum_duration_s(system)
    if args.window is not None and args.window < shortest:
        raise ValueError(f"--window {args.window} s is shorter than the {shortest:.3f} s this system needs to score")
    if args.out.is_dir():
        raise ValueError(f"--out {args.out} is a directory; give a CSV file name")


@torch.no_grad()
def score_files(
    system: System, section: str, files: list[Path], window_s=None, hop_s=None, progress=False
) -> list[dict]:
    module, rate = system.module, system.feature_config.sample_rate
    audio_config = replace(system.audio_config, resample=True)  # new recordings come at any rate
    log_mel = LogMel(system.feature_config)
    shortest = minimum_duration_s(system)
    rows = []
    for path in tqdm(files, disable=not progress, unit="file"):
        try:
            waveform = load_audio(path, audio_config)
        except AudioError as err:
            rows.append({"file": str(path), "section": section, "error": str(err)})
            continue
        if waveform.shape[-1] / rate < shortest:
            error = f"{path}: {waveform.shape[-1] / rate:.3f} s of audio, shorter than the {shortest:.3f} s this system needs"
            rows.append({"file": str(path), "section": section, "error": error})
            continue
        try:
            file_rows = []
            for start, end in windows(waveform, rate, window_s, hop_s):
                piece = waveform[..., start:end]
                batch = clip_batch([log_mel.clip(piece)], [section], waveforms=[piece])
                scores, decisions, judged = module.score_batch(batch)
                file_rows.append(
                    {
                        "file": str(path),
                        "start_s": start / rate,
                        "end_s": end / rate,
                        "section": section,
                        "anomaly_score": float(scores[0]),
                        "decision": decisions[0],
                        "judged_domain": DOMAINS[judged[0]],
                        "error": "",
                    }
                )
        except Exception as err:  # one file the model cannot take must not cost the others' scores
            rows.append(
                {
                    "file": str(path),
                    "section": section,
                    "error": f"{path}: scoring failed ({type(err).__name__}: {err})",
                }
            )
            continue
        rows += file_rows
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished asd.train run directory")
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("scores.csv"))
    parser.add_argument("--section", help="which machine type/section to score as, e.g. fan/section_00")
    parser.add_argument("--window", type=float, help="score long recordings in windows of this many seconds")
    parser.add_argument("--hop", type=float, help="window hop in seconds (default: the window)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        system, section = choose_system(load_systems(args.run_dir), args.section)
    except RunDirectoryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        check_arguments(args, system)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    files = collect_inputs(args.inputs)
    if not files:
        print(f"error: no audio files in {' '.join(args.inputs)}", file=sys.stderr)
        return 2
    rows = score_files(system, section, files, args.window, args.hop, progress=len(files) > 20)
    write_csv(args.out, [COLUMNS] + [[row.get(column, "") for column in COLUMNS] for row in rows])
    failed = [r for r in rows if r["error"]]
    for row in rows[:20]:
        shown = row["error"] or f"{row['anomaly_score']:.4f}  {'ANOMALY' if row['decision'] else 'normal'}"
        print(f"{Path(row['file']).name}  {row.get('start_s', '')}  {shown}")
    if len(rows) > 20:
        print(f"... {len(rows) - 20} more rows")
    print(f"{len(rows) - len(failed)} scored, {len(failed)} failed -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
