"""Exploratory data analysis of a DCASE-layout dataset (the embedded synthetic one by default).

    python -m asd.eda summary             [--root R] [--split dev|eval] [--machines M ...] [--out DIR]
    python -m asd.eda rebuild-attributes  [--root R] [--machines M ...] [--dry-run]
    python -m asd.eda extract             [--root R] [--cache-dir DIR]
    python -m asd.eda pairs               [--root R] [--per-kind N] [--out DIR]
    python -m asd.eda plots               [--root R] [--out DIR]

``summary`` counts clips by split × domain × label, attribute values, durations and sample
rates, and lists every problem found (names that fit no convention, unreadable audio,
malformed attribute CSV rows). ``extract`` fills the same feature cache that training reads.
``pairs`` writes ``audio_pair_notes.json`` (notes already written survive regeneration) and a
figure per pair; ``plots`` draws mean spectra per attribute value and per domain.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from asd.data.attributes import SPLITS, read_attributes_csv, rebuild_attributes_csv
from asd.data.audio import AudioConfig
from asd.data.features import FeatureCache, FeatureConfig, extract_log_mels, mel_filter_bank
from asd.data.filenames import FileNameError, parse_file_name
from asd.data.index import DATA_SPLIT_DIRS, audio_files, list_machines, machine_dir
from asd.data.synthetic import ensure_dataset

DEFAULT_ROOT = Path("data/synthetic")


def _machines(args) -> list[str]:
    found = list_machines(args.root, args.split)
    if not found:
        raise SystemExit(f"error: {Path(args.root) / DATA_SPLIT_DIRS[args.split] / 'raw'}: no machine folders")
    unknown = sorted(set(args.machines or []) - set(found))
    if unknown:
        raise SystemExit(f"error: no machine folder for {', '.join(unknown)} (found: {', '.join(found)})")
    return args.machines or found


def _clips(directory: Path, problems: list[str]):
    """(split, path, info) of every parsable audio file; unparsable names go to ``problems``."""
    for split in SPLITS:
        for path in audio_files(directory / split):
            try:
                yield split, path, parse_file_name(path, machine=directory.name)
            except FileNameError as err:
                problems.append(str(err))


def summary(args) -> int:
    count_rows, attribute_rows, problems = [], [], []
    for machine in _machines(args):
        directory = machine_dir(args.root, args.split, machine)
        counts, values, durations, rates = Counter(), Counter(), [], Counter()
        for split, path, info in _clips(directory, problems):
            counts[(split, info.domain, info.label)] += 1
            values.update(info.attributes)
            try:
                audio = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError) as err:
                problems.append(f"{path}: unreadable audio ({err})")
                continue
            durations.append(audio.duration)
            rates[audio.samplerate] += 1
        for csv_path in sorted(directory.glob("attributes_*.csv")):
            problems += read_attributes_csv(csv_path).problems
        for (split, domain, label), n in sorted(counts.items()):
            count_rows.append({"machine": machine, "split": split, "domain": domain, "label": label, "clips": n})
        attribute_rows += [
            {"machine": machine, "key": k, "value": v, "clips": n} for (k, v), n in sorted(values.items())
        ]
        count_rows.append(
            {
                "machine": machine,
                "split": "all",
                "domain": "",
                "label": "",
                "clips": sum(counts.values()),
                "duration_s": f"{min(durations, default=0):.2f}-{max(durations, default=0):.2f}",
                "sample_rates": " ".join(f"{r}" for r in sorted(rates)),
            }
        )
    table, attributes = pd.DataFrame(count_rows).fillna(""), pd.DataFrame(attribute_rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "summary.csv", index=False)
    attributes.to_csv(out / "attributes.csv", index=False)
    (out / "problems.txt").write_text("".join(f"{p}\n" for p in problems))
    with open(out / "summary.md", "w") as file:
        file.write(f"# Dataset summary: {args.root} ({args.split})\n\n{_markdown(table)}\n\n## Attributes\n\n")
        file.write(f"{_markdown(attributes)}\n\n## Problems ({len(problems)})\n\n")
        file.write("".join(f"- {p}\n" for p in problems) or "none\n")
    print(table.to_string(index=False))
    print(f"\n{len(problems)} problems" + "".join(f"\n  {p}" for p in problems[:20]))
    print(f"written: {out / 'summary.csv'}, {out / 'summary.md'}, {out / 'attributes.csv'}, {out / 'problems.txt'}")
    return 0


def _markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns)
    return "\n".join(
        [header] + ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    )


def rebuild(args) -> int:
    for machine in _machines(args):
        changes = rebuild_attributes_csv(machine_dir(args.root, args.split, machine), dry_run=args.dry_run)
        print(f"{machine}: {len(changes)} changes" + (" (dry run)" if args.dry_run else ""))
        for change in changes:
            print(f"  {change}")
    return 0


def extract(args) -> int:
    feature_config, audio_config = FeatureConfig(), AudioConfig()
    cache = FeatureCache(args.cache_dir, feature_config, audio_config)
    total = 0
    for machine in tqdm(_machines(args), unit="machine type", desc="log-mel"):
        directory = machine_dir(args.root, args.split, machine)
        # the same list, in the same order, as the DataModule reads: the cache entry it will look up
        paths = [path for split in ("train", "test") for path in audio_files(directory / split)]
        extract_log_mels(paths, feature_config, audio_config, cache)
        total += len(paths)
    print(f"{total} clips: {cache.hits} already cached, {cache.misses} extracted into {args.cache_dir}")
    return 0


def _log_mel(path: Path) -> np.ndarray:
    return extract_log_mels([path], FeatureConfig(), AudioConfig())[0]


def _pair_candidates(clips, per_kind: int, rng: np.random.Generator):
    """Pairs of each kind: normal vs anomaly with the same attributes (test); source vs target
    normals (train); two normals of one domain with different attribute values (train)."""
    by_kind = defaultdict(list)
    test_normals = [c for c in clips if c[0] == "test" and c[2].label == "normal"]
    for split, path, info in clips:
        if split == "test" and info.label == "anomaly":
            twins = [c for c in test_normals if c[2].attributes == info.attributes and c[2].domain == info.domain]
            if twins:
                by_kind["normal_vs_anomaly"].append((twins[0], (split, path, info)))
    train = [c for c in clips if c[0] == "train" and c[2].label == "normal"]
    sources = [c for c in train if c[2].domain == "source"]
    targets = [c for c in train if c[2].domain == "target"]
    by_kind["source_vs_target"] = list(zip(sources, targets))
    for a in sources:
        other = [b for b in sources if b[2].attributes != a[2].attributes]
        if other:
            by_kind["different_attributes"].append((a, other[0]))
    chosen = []
    for kind, pairs in sorted(by_kind.items()):
        picks = rng.choice(len(pairs), size=min(per_kind, len(pairs)), replace=False) if pairs else []
        chosen += [(kind, *pairs[i]) for i in sorted(picks)]
    return chosen


def _metadata(info) -> dict:
    return {
        "domain": info.domain,
        "split": info.split,
        "label": info.label,
        "section": info.section_id,
        **info.attribute_dict,
    }


def pairs(args) -> int:
    out = Path(args.out)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    notes_path = out / "audio_pair_notes.json"
    previous = {e["id"]: e for e in json.loads(notes_path.read_text())} if notes_path.is_file() else {}
    rng = np.random.default_rng(args.seed)
    entries = []
    for machine in _machines(args):
        problems: list[str] = []
        clips = list(_clips(machine_dir(args.root, args.split, machine), problems))
        for kind, (_, path_a, info_a), (_, path_b, info_b) in _pair_candidates(clips, args.per_kind, rng):
            meta_a, meta_b = _metadata(info_a), _metadata(info_b)
            pair_id = f"{machine}/{path_a.name}|{path_b.name}"
            old = previous.get(pair_id, {})
            figure = out / "pairs" / f"{machine}_{len(entries):03d}_{kind}.png"
            draw_pair(path_a, path_b, figure, f"{machine}: {kind.replace('_', ' ')}")
            entries.append(
                {
                    "id": pair_id,
                    "kind": kind,
                    "machine": machine,
                    "file_a": str(path_a),
                    "file_b": str(path_b),
                    "metadata_a": meta_a,
                    "metadata_b": meta_b,
                    "same": {k: v for k, v in meta_a.items() if meta_b.get(k) == v},
                    "different": {
                        k: [meta_a.get(k), meta_b.get(k)]
                        for k in sorted(set(meta_a) | set(meta_b))
                        if meta_a.get(k) != meta_b.get(k)
                    },
                    "figure": str(figure),
                    "same_note": old.get("same_note", ""),
                    "difference_note": old.get("difference_note", ""),
                }
            )
    kept = [
        e
        for pid, e in previous.items()
        if pid not in {x["id"] for x in entries} and (e.get("same_note") or e.get("difference_note"))
    ]
    notes_path.write_text(json.dumps(entries + kept, indent=1))
    print(
        f"{len(entries)} pairs -> {notes_path} (+{len(kept)} earlier pairs kept for their notes), figures in {out / 'pairs'}"
    )
    return 0


def _axes_values(log_mel: np.ndarray, config: FeatureConfig | None = None) -> tuple[float, np.ndarray]:
    """Duration in seconds and each mel band's centre frequency in Hz, for labelled axes."""
    config = config or FeatureConfig()
    filters = mel_filter_bank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
    fft_hz = np.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1)
    seconds = log_mel.shape[1] * config.hop_length / config.sample_rate
    return seconds, fft_hz[filters.argmax(axis=1)]


def draw_pair(path_a: Path, path_b: Path, figure_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = _log_mel(path_a), _log_mel(path_b)
    frames = min(a.shape[1], b.shape[1])
    a, b = a[:, :frames], b[:, :frames]
    seconds, centre_hz = _axes_values(a)
    extent = [0, seconds, 0, len(centre_hz)]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), constrained_layout=True)
    vmin, vmax = min(a.min(), b.min()), max(a.max(), b.max())
    ticks = np.linspace(0, len(centre_hz) - 1, 6).astype(int)
    for ax, data, name, cmap, limits in (
        (axes[0, 0], a, f"A: {path_a.name}", "magma", (vmin, vmax)),
        (axes[0, 1], b, f"B: {path_b.name}", "magma", (vmin, vmax)),
        (axes[1, 0], b - a, "B − A", "coolwarm", (-np.abs(b - a).max(), np.abs(b - a).max())),
    ):
        image = ax.imshow(data, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=limits[0], vmax=limits[1])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz, mel scale)")
        ax.set_yticks(ticks + 0.5, [f"{centre_hz[t]:.0f}" for t in ticks])
        fig.colorbar(image, ax=ax, label="dB" if cmap == "magma" else "dB difference")
    ax = axes[1, 1]
    ax.plot(centre_hz, a.mean(axis=1), label="A")
    ax.plot(centre_hz, b.mean(axis=1), label="B")
    ax.set_xscale("symlog", linthresh=500)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("mean level (dB)")
    ax.set_title("mean spectra")
    ax.legend()
    fig.suptitle(title)
    fig.savefig(figure_path, dpi=80)
    plt.close(fig)


def plots(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    for machine in _machines(args):
        problems: list[str] = []
        clips = [c for c in _clips(machine_dir(args.root, args.split, machine), problems) if c[0] == "train"]
        spectra = {path: _log_mel(path).mean(axis=1) for _, path, _ in clips}
        groups = {"domain": defaultdict(list)}
        for _, path, info in clips:
            groups["domain"][info.domain].append(spectra[path])
            for key, value in info.attributes:
                groups.setdefault(key, defaultdict(list))[value].append(spectra[path])
        _, centre_hz = _axes_values(next(iter(spectra.values()))[:, None])
        fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), constrained_layout=True, squeeze=False)
        for ax, (key, by_value) in zip(axes[0], groups.items()):
            for value, rows in sorted(by_value.items()):
                ax.plot(centre_hz, np.mean(rows, axis=0), label=f"{key}={value} ({len(rows)} clips)")
            ax.set_xscale("symlog", linthresh=500)
            ax.set_xlabel("frequency (Hz)")
            ax.set_ylabel("mean log-mel level (dB)")
            ax.set_title(f"by {key}")
            ax.legend(fontsize=8)
        fig.suptitle(f"{machine}: mean spectrum of normal training clips")
        fig.savefig(out / f"{machine}_mean_spectra.png", dpi=80)
        plt.close(fig)
        print(f"{machine}: {out / f'{machine}_mean_spectra.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd.eda", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, function in (
        ("summary", summary),
        ("rebuild-attributes", rebuild),
        ("extract", extract),
        ("pairs", pairs),
        ("plots", plots),
    ):
        command = commands.add_parser(name)
        command.set_defaults(function=function)
        command.add_argument(
            "--root", type=Path, default=DEFAULT_ROOT, help="dataset root (default: the synthetic set)"
        )
        command.add_argument("--split", choices=sorted(DATA_SPLIT_DIRS), default="dev")
        command.add_argument("--machines", nargs="*", help="machine types (default: all)")
        command.add_argument("--out", type=Path, default=Path("logs/eda"))
        command.add_argument("--cache-dir", type=Path, default=Path("data/cache/features"))
        command.add_argument("--per-kind", type=int, default=2, help="pairs: pairs of each kind per machine")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--dry-run", action="store_true", help="rebuild-attributes: report only")
    args = parser.parse_args(argv)
    if args.root == DEFAULT_ROOT:
        ensure_dataset(DEFAULT_ROOT)
    return args.function(args)


if __name__ == "__main__":
    sys.exit(main())
