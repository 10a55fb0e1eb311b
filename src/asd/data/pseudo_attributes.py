"""Pseudo-attributes for machine types whose file names conceal their attributes (``noAttribute``).

python -m asd.data.pseudo_attributes --root data/dcase2024t2 --out data/pseudo2024 [--machines a,b]
    [--clusters 4] [--method kmeans|gmm|agglomerative] [--run <asd.train run_dir>]
python -m asd.train data=dcase2024 data.root=data/dcase2024t2 data.correspondence_dir=data/pseudo2024 ...

A first pass embeds the normal training clips of each concealed machine type, clusters them per
domain (scikit-learn's k-means, Gaussian mixture or agglomerative clustering; at most ``--clusters``
per domain, never more than a domain has clips), and writes each clip's cluster in the format of
the official correspondence files (``<out>/<dev_data|eval_data>/<machine>/attributes_00_train_correspondence.csv``:
``section_00_source_train_normal_0000_pseudo_s2.wav`` for the concealed name), which the loader
reads through ``data.correspondence_dir`` like the official ones. The classifiers then learn one
class per cluster (``pseudo_s<k>`` / ``pseudo_t<k>``, so source and target clusters never merge)
instead of one per domain. No ground truth is read.

The embedding: by default per-band mean and standard deviation of each clip's log-mel (no model
needed); ``--run`` uses the embeddings an earlier ``asd.train`` run saved (``representations/``),
e.g. a MobileFaceNet trained with the domain-as-class fallback, averaged over each clip's rows.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from asd.data.audio import AudioConfig
from asd.data.features import FeatureCache, FeatureConfig, extract_log_mels
from asd.data.index import DATA_SPLIT_DIRS, Clip, DatasetError, index_machine, list_machines
from asd.files import write_csv
from asd.representations import load_representations
from asd.run_directory import REPRESENTATIONS
from asd.vocabulary import DOMAINS

log = logging.getLogger(__name__)

METHODS = ("kmeans", "gmm", "agglomerative")


def cluster(rows: np.ndarray, n_clusters: int, method: str, seed: int = 0) -> np.ndarray:
    """Cluster labels 0..n-1 of ``rows`` (standardised first), with n at most the number of rows."""
    n = min(n_clusters, len(rows))
    if n <= 1:
        return np.zeros(len(rows), dtype=int)
    rows = StandardScaler().fit_transform(rows)
    if method == "kmeans":
        return KMeans(n, n_init=10, random_state=seed).fit_predict(rows)
    if method == "gmm":
        return GaussianMixture(n, covariance_type="diag", random_state=seed).fit_predict(rows)
    if method == "agglomerative":
        return AgglomerativeClustering(n).fit_predict(rows)
    raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")


def log_mel_statistics(clips: list[Clip], cache_dir: str | Path | None = None) -> np.ndarray:
    """Per clip: each mel band's mean and standard deviation over time."""
    audio, features = AudioConfig(), FeatureConfig()
    cache = FeatureCache(cache_dir, features, audio) if cache_dir else None
    log_mels = extract_log_mels([c.path for c in clips], features, audio, cache)
    return np.stack([np.concatenate([m.mean(-1), m.std(-1)]) for m in log_mels])


def saved_embeddings(run_dir: str | Path, machine: str, clips: list[Clip]) -> np.ndarray:
    """The clips' embeddings (mean over their rows) from a finished run's saved representations."""
    by_name: dict[str, np.ndarray] = {}
    for path in sorted(Path(run_dir, REPRESENTATIONS).glob("*.npz")):
        train = load_representations(path)["train"]
        for info, rows in zip(train.infos, train.representations):
            if info.machine == machine:
                by_name[info.file_name] = rows.mean(axis=0)
    missing = [c.path for c in clips if c.path.name not in by_name]
    if missing:
        raise DatasetError(f"{missing[0]}: not among the training clips {run_dir}/representations/ holds")
    return np.stack([by_name[c.path.name] for c in clips])


def write_pseudo_attributes(
    root: str | Path,
    out: str | Path,
    data_split: str = "dev",
    machines: list[str] | None = None,
    n_clusters: int = 4,
    method: str = "kmeans",
    run_dir: str | Path | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Write the correspondence file of every selected machine type with concealed training clips;
    return {machine: file}."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    written = {}
    for machine in machines or list_machines(root, data_split):
        clips = [c for c in index_machine(root, data_split, machine) if c.info.split == "train"]
        concealed = [c for c in clips if c.info.attributes_hidden]
        if not concealed:
            log.info("%s: its file names carry attributes; nothing to do", machine)
            continue
        rows = saved_embeddings(run_dir, machine, concealed) if run_dir else log_mel_statistics(concealed, cache_dir)
        pairs = []
        for domain in DOMAINS:
            chosen = [i for i, c in enumerate(concealed) if c.info.domain == domain]
            if not chosen:
                continue
            labels = cluster(rows[chosen], n_clusters, method, seed)
            for i, label in zip(chosen, labels):
                name = concealed[i].path.name
                pairs.append((name.replace("noAttribute", f"pseudo_{domain[0]}{label}"), name))
        file = Path(out) / DATA_SPLIT_DIRS[data_split] / machine / "attributes_00_train_correspondence.csv"
        write_csv(file, [("source_file_name", "target_file_name"), *sorted(pairs, key=lambda p: p[1])])
        written[machine] = file
        log.info("%s: %d clips in %d pseudo-attribute classes -> %s", machine, len(pairs), len({p[0].rsplit("_", 1)[-1] for p in pairs}), file)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asd.data.pseudo_attributes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the dataset folder (data.root)")
    parser.add_argument("--out", type=Path, required=True, help="where to write (then data.correspondence_dir=<out>)")
    parser.add_argument("--split", default="dev", choices=tuple(DATA_SPLIT_DIRS))
    parser.add_argument("--machines", help="comma-separated machine types (default: every one with concealed names)")
    parser.add_argument("--clusters", type=int, default=4, help="clusters per domain (at most)")
    parser.add_argument("--method", default="kmeans", choices=METHODS)
    parser.add_argument("--run", type=Path, help="cluster this asd.train run's saved embeddings instead of log-mel statistics")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    machines = [m.strip() for m in args.machines.split(",")] if args.machines else None
    try:
        written = write_pseudo_attributes(
            args.root, args.out, args.split, machines, args.clusters, args.method, args.run, args.seed
        )
    except (DatasetError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"pseudo-attributes of {len(written)} machine type(s) written under {args.out}")


if __name__ == "__main__":
    main()
