"""Index a DCASE Task 2 dataset tree: ``<root>/<dev_data|eval_data>/raw/<machine>/{train,test,supplemental}/``.

Every clip gets a complete :class:`ClipInfo`: the split from its folder, the machine type from
its folder, and what a renamed or concealed name hides (label, domain, attributes) from the
official ground truth, the ``eval_data_list_<year>.csv`` mapping, or the attribute
correspondence files. Nothing is guessed: a file the ground truth does not cover is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from asd.data.filenames import AUDIO_SUFFIXES, UNKNOWN, ClipInfo, FileNameError, parse_file_name
from asd.data.ground_truth import (
    GroundTruthError,
    ground_truth_path,
    read_correspondence,
    read_eval_data_list,
    read_ground_truth,
)
from asd.vocabulary import DOMAIN_CODES, LABEL_CODES

log = logging.getLogger(__name__)

DATA_SPLIT_DIRS = {"dev": "dev_data", "eval": "eval_data"}


class DatasetError(ValueError):
    """A dataset tree that does not have the DCASE layout or content; the message names the path."""


@dataclass(frozen=True)
class Clip:
    path: Path
    info: ClipInfo


def machine_dir(root: str | Path, data_split: str, machine: str) -> Path:
    if data_split not in DATA_SPLIT_DIRS:
        raise DatasetError(f"data split must be one of {sorted(DATA_SPLIT_DIRS)}, got {data_split!r}")
    return Path(root) / DATA_SPLIT_DIRS[data_split] / "raw" / machine


def machine_data_splits(root: str | Path, machines, data_split: str) -> dict[str, str]:
    """The split (``dev`` or ``eval``) each machine type is read from. ``data_split`` is one split,
    or ``dev+eval``: a job on every machine type of a year, development and additional-training
    (evaluation) types together, each type found in the one split that holds it (a year's two
    sets of machine types never share a name; a name in both, or in neither, is an error)."""
    splits = data_split.split("+")
    if not splits or any(split not in DATA_SPLIT_DIRS for split in splits) or len(set(splits)) != len(splits):
        raise DatasetError(f"data.data_split must be dev, eval or dev+eval, got {data_split!r}")
    if len(splits) == 1:
        return {machine: data_split for machine in machines}
    found = {}
    for machine in machines:
        holders = [split for split in splits if machine_dir(root, split, machine).is_dir()]
        if len(holders) != 1:
            folders = [str(machine_dir(root, split, machine)) for split in splits]
            where = f"both {folders[0]} and {folders[1]}" if holders else f"neither {folders[0]} nor {folders[1]}"
            raise DatasetError(
                f"machine type {machine!r} found in {where}: data.data_split={data_split} needs each "
                "machine type in exactly one split"
            )
        found[machine] = holders[0]
    return found


def run_data_splits(cfg) -> dict[str, str]:
    """:func:`machine_data_splits` of a run's config (``cfg.data`` and ``cfg.machine.types``): the one
    place that reads a run's machine type → split mapping, for training, rescoring, ensembles, reports."""
    return machine_data_splits(str(cfg.data.root), [str(m) for m in cfg.machine.types], str(cfg.data.data_split))


def labelled_machines(test_infos, machine_splits: dict[str, str], year: int) -> set[str]:
    """The machine types whose split's test clips (``ClipInfo``-like: machine, label, domain) all carry
    a label, and a domain from 2021 on (DCASE 2020 knew none): the development split's always, the
    evaluation split's with its ground truth. A split is labelled whole or not at all, so no official
    score covers part of its types."""
    unlabelled_splits = {
        machine_splits[info.machine]
        for info in test_infos
        if info.label not in LABEL_CODES or (year > 2020 and info.domain not in DOMAIN_CODES)
    }
    return {m for m, split in machine_splits.items() if split not in unlabelled_splits}


def list_machines(root: str | Path, data_split: str) -> list[str]:
    raw = Path(root) / DATA_SPLIT_DIRS[data_split] / "raw"
    return sorted(p.name for p in raw.iterdir() if p.is_dir()) if raw.is_dir() else []


def _resolve_hidden(info: ClipInfo, original: str, source: Path) -> ClipInfo:
    """Fill label, domain and attributes of ``info`` from its original name; conflicts are errors."""
    try:
        decoded = parse_file_name(original)
    except FileNameError as err:
        raise GroundTruthError(f"{source}: {err}") from err
    for field_name in ("label", "domain", "section"):
        known, given = getattr(info, field_name), getattr(decoded, field_name)
        if known != UNKNOWN and given != UNKNOWN and known != given:
            raise GroundTruthError(
                f"{source}: {info.file_name} is {field_name}={known} by name but {given} in the ground truth"
            )
    return info.with_(
        label=decoded.label if info.label == UNKNOWN else info.label,
        domain=decoded.domain if info.domain == UNKNOWN else info.domain,
        attributes=decoded.attributes,
        attributes_hidden=decoded.attributes_hidden,
        attribute_string=decoded.attribute_string,
        extra={**info.extra, "original_name": decoded.file_name},
    )


def audio_files(split_dir: Path) -> list[Path]:
    """The audio files of one split folder in the order the index lists them (by name); none where it is missing."""
    if not split_dir.is_dir():
        return []
    return sorted(p for p in split_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)


def index_machine(
    root: str | Path,
    data_split: str,
    machine: str,
    splits: tuple[str, ...] = ("train", "test"),
    ground_truth_dir: str | Path | None = None,
    eval_data_list: str | Path | None = None,
    correspondence_dir: str | Path | None = None,
) -> list[Clip]:
    """All clips of one machine type, sorted by split then file name.

    ``ground_truth_dir`` holds the evaluator's ``ground_truth_{data,domain,attributes}/`` folders;
    ``eval_data_list`` is an official ``eval_data_list_<year>.csv``; ``correspondence_dir`` holds
    ``<dev_data|eval_data>/<machine>/attributes_XX_<split>_correspondence.csv`` for machine types
    whose attributes were concealed.
    """
    directory = machine_dir(root, data_split, machine)
    if not directory.is_dir():
        available = list_machines(root, data_split)
        raise DatasetError(
            f"{directory}: machine type folder not found"
            + (f" (found: {', '.join(available)})" if available else " (no machine folders under it)")
        )
    data_list = read_eval_data_list(eval_data_list).get(machine, {}) if eval_data_list else {}
    clips: list[Clip] = []
    for split in splits:
        split_dir = directory / split
        if not split_dir.is_dir():
            if split == "supplemental":
                continue
            raise DatasetError(f"{split_dir}: folder not found")
        files = audio_files(split_dir)
        if not files:
            raise DatasetError(f"{split_dir}: folder holds no audio files")
        correspondence = _correspondence(correspondence_dir, data_split, machine, split)
        truth_by_section: dict[str, dict] = {}
        for path in files:
            info = parse_file_name(path, machine=machine)  # an unknown name raises, naming the path
            if info.split not in (UNKNOWN, split):
                raise DatasetError(f"{path}: name says split '{info.split}' but the file lies in '{split}/'")
            info = info.with_(split=split)
            if path.name in correspondence:
                info = _resolve_hidden(info, correspondence[path.name], directory)
            if info.label == UNKNOWN and path.name in data_list:
                original, label = data_list[path.name]
                info = _resolve_hidden(info, original, Path(eval_data_list))
                if label is not None:
                    info = info.with_(label="anomaly" if label else "normal")
            if split == "test" and ground_truth_dir is not None:
                info = _apply_ground_truth(info, path, machine, Path(ground_truth_dir), truth_by_section)
            clips.append(Clip(path, info))
    return clips


def _correspondence(directory, data_split: str, machine: str, split: str) -> dict[str, str]:
    if directory is None:
        return {}
    folder = Path(directory) / DATA_SPLIT_DIRS[data_split] / machine
    mapping: dict[str, str] = {}
    for path in sorted(folder.glob(f"attributes_*_{split}_correspondence.csv")):
        mapping.update(read_correspondence(path))
    return mapping


def _apply_ground_truth(info: ClipInfo, path: Path, machine: str, directory: Path, cache: dict) -> ClipInfo:
    section = info.section_id
    if section not in cache:
        if not ground_truth_path(directory, "data", machine, section).is_file():
            raise GroundTruthError(
                f"{path}: no ground truth for {machine} section {section} "
                f"(expected {ground_truth_path(directory, 'data', machine, section)})"
            )
        cache[section] = read_ground_truth(directory, machine, section)
    row = cache[section].get(info.file_name)
    if row is None:
        raise GroundTruthError(
            f"{path}: missing from the ground truth {ground_truth_path(directory, 'data', machine, section)}"
        )
    label, domain = ("normal", "anomaly")[row.label], ("source", "target")[row.domain]
    for field_name, given in (("label", label), ("domain", domain)):
        known = getattr(info, field_name)
        if known not in (UNKNOWN, given):
            raise GroundTruthError(f"{path}: {field_name}={known} by name but {given} in the ground truth")
    info = info.with_(label=label, domain=domain)
    if row.original_name is not None and not info.attributes:
        info = _resolve_hidden(info, row.original_name, directory)
    return info
