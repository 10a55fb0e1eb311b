"""The files a profile's clips go to: the DCASE names (2020's or 2021-2026's), concealed attributes
with their correspondence files, and the evaluation copy with the evaluator's ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asd.data.attributes import rebuild_attributes_csv
from asd.data.filenames import format_attributes
from asd.data.synthetic.microphones import far_microphone
from asd.data.synthetic.profiles import Profile, anomalies, machine_number, render
from asd.data.synthetic.signals import SAMPLE_RATE
from asd.files import write_csv


def clip_name(domain: str, split: str, label: str, index: int, attributes: dict, year: int = 2024) -> str:
    if year == 2020:
        return f"{label}_id_00_{index:08d}.wav"
    described = "noAttribute" if "noAttribute" in attributes else format_attributes(attributes.items())
    return f"section_00_{domain}_{split}_{label}_{index:04d}_{described}.wav"


def fault_of_test_clip(profile: Profile, machine: str, index: int) -> str | None:
    """The fault of the development test clip numbered ``index`` (the number in its name); None for a normal
    clip. Each domain's test clips are its normal clips, then as many anomalous ones, which draw the machine's
    faults in turn."""
    per_label = profile.spec.test_per_domain_and_label
    if (index // per_label) % 2 == 0:
        return None
    kinds = anomalies(profile, machine)
    return kinds[index % per_label % len(kinds)]


def _write(path: Path, waveform: np.ndarray, seed_parts: tuple[int, ...], channels: int) -> None:
    if channels == 2:
        waveform = np.stack([waveform, far_microphone(waveform, seed_parts)], axis=1)
    sf.write(path, waveform, SAMPLE_RATE, subtype="PCM_16")


def write_machine(
    machine_dir: Path, seed: int, profile: Profile, part: int, channels: int, correspondence_dir: Path, year: int = 2024
) -> list[str]:
    """Write train and test clips; return the test clips' file names in index order. A concealed
    machine type's names say ``noAttribute``; its attributes go to the official correspondence files
    (``<correspondence_dir>/<machine>/attributes_00_<split>_correspondence.csv``)."""
    machine = machine_dir.name
    machine_no = machine_number(profile, machine)
    concealed = machine in profile.concealed
    correspondence: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}

    def write(split: str, domain: str, label: str, index: int, seed_parts, anomaly) -> str:
        waveform, attributes = render(machine, seed_parts, domain, anomaly, profile)
        name = clip_name(domain, split, label, index, attributes, year)
        if concealed:
            hidden = clip_name(domain, split, label, index, {"noAttribute": None})
            correspondence[split].append((name, hidden))
            name = hidden
        _write(machine_dir / split / name, waveform, seed_parts, channels)
        return name

    (machine_dir / "train").mkdir(parents=True)
    (machine_dir / "test").mkdir()
    counts = {"source": profile.spec.source_train, "target": profile.spec.target_train}
    domains = ("source",) if year == 2020 else ("source", "target")
    for domain in domains:
        for index in range(counts[domain]):
            seed_parts = (seed, part, machine_no, 0, index + (0 if domain == "source" else 10000))
            write("train", domain, "normal", index, seed_parts, None)
    tests = []
    index = 0
    for domain in domains:
        for label in ("normal", "anomaly"):
            for _ in range(profile.spec.test_per_domain_and_label):
                anomaly = fault_of_test_clip(profile, machine, index)
                tests.append(write("test", domain, label, index, (seed, part, machine_no, 1, index), anomaly))
                index += 1
    if year != 2020:  # 2020 names carry no attributes, and that year had no attributes file
        rebuild_attributes_csv(machine_dir)
    if concealed:
        folder = correspondence_dir / machine
        folder.mkdir(parents=True)
        for split, rows in correspondence.items():
            write_csv(
                folder / f"attributes_00_{split}_correspondence.csv", [("source_file_name", "target_file_name"), *rows]
            )
    return tests


def make_eval_copy(root: Path, machine: str, dev_test_names: list[str], order_seed: tuple[int, ...]) -> None:
    """Rename an evaluation machine type's test files to ``section_00_XXXX.wav`` in shuffled order and
    write the evaluator's ground-truth files for it."""
    test_dir = root / "eval_data" / "raw" / machine / "test"
    order = np.random.default_rng(order_seed).permutation(len(dev_test_names))
    truth_dir = root / "ground_truth"
    rows = {"data": [], "domain": [], "attributes": []}
    for new_index, old_position in enumerate(order):
        original = dev_test_names[old_position]
        renamed = f"section_00_{new_index:04d}.wav"
        (test_dir / original).rename(test_dir / renamed)
        rows["data"].append((renamed, int("_anomaly_" in original)))
        rows["domain"].append((renamed, int("_target_" in original)))
        rows["attributes"].append((renamed, original.removesuffix(".wav")))
    for kind, kind_rows in rows.items():
        folder = truth_dir / f"ground_truth_{kind}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"ground_truth_{machine}_section_00_test.csv", "w") as file:
            file.writelines(f"{name},{value}\n" for name, value in kind_rows)
    # As in the official evaluation data, the renamed test files carry no attributes in the CSV.
    rebuild_attributes_csv(test_dir.parent)
