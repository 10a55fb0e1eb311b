"""The embedded synthetic dataset: small, deterministic, in the exact DCASE 2024 Task 2 layout.

Three machine types with different sound character, each with one section, a source domain
with many training clips and a target domain (another operating speed/rate, which shifts
the spectrum) with few, and labelled anomalies of graded difficulty:

* ``ToyRotor``: rotating harmonics over broadband noise; anomalies add an inharmonic partial
  or bearing-like ticks. The easiest type.
* ``ToyClicker``: periodic impulsive clicks exciting a resonance, heard by a near or a far
  microphone; anomalies jitter the click timing or shift the resonance.
* ``ToyHum``: amplitude-modulated mains hum with a load-dependent tilt; anomalies add a
  broadband rattle or frequency wobble.

``eval_data/`` holds an evaluation-style copy of ``ToyRotor`` (own recordings, test files
renamed ``section_00_0000.wav``) with the evaluator's ground-truth CSVs under
``ground_truth/``. Everything is a pure function of the seed, so the same seed gives
byte-identical files.

With ``channels=2`` the files are stereo as in DCASE 2026: the left channel is the near
microphone (the mono clip), the right one a far microphone that hears the machine weaker and
later, over more room noise.

CLI: ``python -m asd.data.synthetic <root> [--seed N] [--channels 2]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asd.data.attributes import rebuild_attributes_csv
from asd.data.filenames import format_attributes
from asd.data.index import DatasetError

GENERATOR_VERSION = 2
SAMPLE_RATE = 16000
MARKER = "synthetic_dataset.json"


@dataclass(frozen=True)
class SyntheticSpec:
    duration_s: float = 2.0
    source_train: int = 90
    target_train: int = 10
    test_per_domain_and_label: int = 25


def _noise(rng: np.random.Generator, n: int, tilt: float) -> np.ndarray:
    """Gaussian noise with a spectral tilt (0 white, 1 pink-like)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum /= np.maximum(freqs, 20.0) ** (tilt / 2)
    out = np.fft.irfft(spectrum, n)
    return out / (np.std(out) + 1e-12)


def _rotor(rng, t, attributes, anomaly, strength):
    f0 = {"1": 120.0, "2": 155.0}[attributes["spd"]] * rng.uniform(0.98, 1.02)
    tilt = {"A": 0.8, "B": 1.1}[attributes["loc"]]
    sound = sum(
        rng.uniform(0.7, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 9)
    )
    sound = sound + 0.15 * _noise(rng, t.size, tilt)
    if anomaly == "partial":
        sound = sound + strength * 0.5 * np.sin(2 * np.pi * 3.5 * f0 * t)
    elif anomaly == "ticks":
        ticks = (np.sin(2 * np.pi * 23.0 * t) > 0.995).astype(float)
        sound = sound + strength * 3.0 * np.convolve(ticks * rng.standard_normal(t.size), np.hanning(32), "same")
    return sound


def _clicker(rng, t, attributes, anomaly, strength):
    rate = {"8": 8.0, "11": 11.0}[attributes["rate"]]
    resonance = 2000.0 * rng.uniform(0.98, 1.02)
    if anomaly == "resonance":
        resonance *= 1.0 + 0.35 * strength
    impulse_response_t = np.arange(int(0.03 * SAMPLE_RATE)) / SAMPLE_RATE
    impulse_response = np.exp(-impulse_response_t * 150.0) * np.sin(2 * np.pi * resonance * impulse_response_t)
    clicks = np.zeros(t.size)
    jitter = 0.25 * strength / rate if anomaly == "jitter" else 0.004
    for onset in np.arange(rng.uniform(0, 1 / rate), t[-1], 1 / rate):
        position = int((onset + rng.uniform(-jitter, jitter)) * SAMPLE_RATE)
        if 0 <= position < t.size:
            clicks[position] = rng.uniform(0.8, 1.2)
    # the far microphone (mic 2) hears the clicks weaker against the room noise
    gain, noise = {"1": (2.0, 0.1), "2": (1.2, 0.2)}[attributes["mic"]]
    return gain * np.convolve(clicks, impulse_response)[: t.size] + noise * _noise(rng, t.size, 0.5)


def _hum(rng, t, attributes, anomaly, strength):
    am_rate = {"2": 2.0, "5": 5.0}[attributes["am"]]
    load = {"lo": 0.6, "hi": 1.0}[attributes["load"]]
    wobble = 0.0
    if anomaly == "wobble":
        wobble = 4.0 * strength * np.sin(2 * np.pi * 3.0 * t)
    phase = 2 * np.pi * (50.0 * t + np.cumsum(wobble) / SAMPLE_RATE)
    hum = sum(load ** (k - 1) / k * np.sin(k * phase) for k in range(1, 12))
    envelope = 1.0 + 0.5 * np.sin(2 * np.pi * am_rate * t + rng.uniform(0, 2 * np.pi))
    sound = envelope * hum + 0.1 * _noise(rng, t.size, 1.0)
    if anomaly == "rattle":
        bursts = (np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 2 * np.pi)) > 0.6).astype(float)
        sound = sound + strength * 0.6 * bursts * _noise(rng, t.size, 0.0)
    return sound


# machine type -> (sound function, source attributes, target attributes, secondary attribute values, anomalies)
MACHINES = {
    "ToyRotor": (_rotor, {"spd": "1"}, {"spd": "2"}, ("loc", ("A", "B")), ("partial", "ticks")),
    "ToyClicker": (_clicker, {"rate": "8"}, {"rate": "11"}, ("mic", ("1", "2")), ("jitter", "resonance")),
    "ToyHum": (_hum, {"am": "2"}, {"am": "5"}, ("load", ("lo", "hi")), ("rattle", "wobble")),
}
EVAL_MACHINE = "ToyRotor"


def _render(machine: str, seed_parts: tuple[int, ...], domain: str, anomaly: str | None, spec: SyntheticSpec):
    """One clip and its attributes, determined entirely by ``seed_parts``."""
    function, source_attributes, target_attributes, (key, values), _ = MACHINES[machine]
    rng = np.random.default_rng(seed_parts)
    attributes = dict(source_attributes if domain == "source" else target_attributes)
    attributes[key] = values[int(rng.integers(len(values)))]
    strength = rng.uniform(0.15, 1.0)  # graded difficulty: weak anomalies are hard to hear
    t = np.arange(int(spec.duration_s * SAMPLE_RATE)) / SAMPLE_RATE
    waveform = 0.1 * function(rng, t, attributes, anomaly, strength)
    return np.clip(waveform, -1.0, 1.0).astype(np.float32), attributes


def _far_microphone(near: np.ndarray, seed_parts: tuple[int, ...]) -> np.ndarray:
    """The far microphone's recording of a clip: a third of the level, 3 ms later, with room noise
    as loud as the machine there (its own draw, so the near channel stays the mono clip)."""
    rng = np.random.default_rng((*seed_parts, 2))
    delayed = np.concatenate([np.zeros(48), near[:-48]]) / 3.0
    noise = _noise(rng, near.size, 1.0) * np.std(delayed)
    return np.clip(delayed + noise, -1.0, 1.0).astype(np.float32)


def _write(path: Path, waveform: np.ndarray, seed_parts: tuple[int, ...], channels: int) -> None:
    if channels == 2:
        waveform = np.stack([waveform, _far_microphone(waveform, seed_parts)], axis=1)
    sf.write(path, waveform, SAMPLE_RATE, subtype="PCM_16")


def _name(domain: str, split: str, label: str, index: int, attributes: dict) -> str:
    return f"section_00_{domain}_{split}_{label}_{index:04d}_{format_attributes(attributes.items())}.wav"


def _write_machine(
    machine_dir: Path, machine_no: int, seed: int, spec: SyntheticSpec, part: int, channels: int
) -> list[tuple[str, str]]:
    """Write train and test clips; return (file name, label) pairs of the test clips in index order."""
    anomalies = MACHINES[machine_dir.name][4]
    (machine_dir / "train").mkdir(parents=True)
    (machine_dir / "test").mkdir()
    counts = {"source": spec.source_train, "target": spec.target_train}
    for domain, count in counts.items():
        for index in range(count):
            seed_parts = (seed, part, machine_no, 0, index + (0 if domain == "source" else 10000))
            waveform, attributes = _render(machine_dir.name, seed_parts, domain, None, spec)
            _write(machine_dir / "train" / _name(domain, "train", "normal", index, attributes), waveform, seed_parts, channels)
    tests = []
    index = 0
    for domain in ("source", "target"):
        for label in ("normal", "anomaly"):
            for k in range(spec.test_per_domain_and_label):
                anomaly = anomalies[k % len(anomalies)] if label == "anomaly" else None
                seed_parts = (seed, part, machine_no, 1, index)
                waveform, attributes = _render(machine_dir.name, seed_parts, domain, anomaly, spec)
                name = _name(domain, "test", label, index, attributes)
                _write(machine_dir / "test" / name, waveform, seed_parts, channels)
                tests.append(name)
                index += 1
    rebuild_attributes_csv(machine_dir)
    return tests


def _make_eval_copy(root: Path, dev_test_names: list[str], seed: int) -> None:
    """Rename the eval machine's test files to ``section_00_XXXX.wav`` in shuffled order and
    write the evaluator's ground-truth folders."""
    test_dir = root / "eval_data" / "raw" / EVAL_MACHINE / "test"
    order = np.random.default_rng((seed, 99)).permutation(len(dev_test_names))
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
        with open(folder / f"ground_truth_{EVAL_MACHINE}_section_00_test.csv", "w") as file:
            file.writelines(f"{name},{value}\n" for name, value in kind_rows)
    # As in the official evaluation data, the renamed test files carry no attributes in the CSV.
    rebuild_attributes_csv(test_dir.parent)


class NotSyntheticError(DatasetError):
    """The folder to (re)write holds something the generator did not write."""


def _check_replaceable(root: Path) -> None:
    """Only an empty folder or one this generator wrote (its marker file present) may be replaced."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        marker = None
    if not (isinstance(marker, dict) and "generator_version" in marker):
        raise NotSyntheticError(
            f"{root}: not written by the synthetic generator (no {MARKER}); refusing to replace it. "
            "If it holds real DCASE data, select its year (data=dcase2024 data.root=..., likewise "
            "dcase2020...dcase2025); for the synthetic data choose an empty or new folder"
        )


def _marker(seed: int, spec: SyntheticSpec, channels: int) -> dict:
    return {"generator_version": GENERATOR_VERSION, "seed": seed, "spec": spec.__dict__, "channels": channels}


def generate(root: str | Path, seed: int = 0, spec: SyntheticSpec = SyntheticSpec(), channels: int = 1) -> Path:
    """Write the dataset under ``root`` and return ``root``; ``channels`` 1 (mono, DCASE 2020-2025)
    or 2 (near and far microphone, DCASE 2026).

    ``root`` may be missing, empty, or a synthetic dataset written before (marker file present),
    which is replaced; anything else is a :class:`NotSyntheticError` and nothing is touched.
    """
    root = Path(root)
    if channels not in (1, 2):
        raise ValueError(f"the synthetic data has 1 or 2 channels, not {channels}")
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    try:
        for machine_no, machine in enumerate(MACHINES):
            _write_machine(staging / "dev_data" / "raw" / machine, machine_no, seed, spec, 0, channels)
        eval_machine_no = list(MACHINES).index(EVAL_MACHINE)
        tests = _write_machine(staging / "eval_data" / "raw" / EVAL_MACHINE, eval_machine_no, seed, spec, 1, channels)
        _make_eval_copy(staging, tests, seed)
        (staging / MARKER).write_text(json.dumps(_marker(seed, spec, channels), indent=1))
        if root.exists():
            _check_replaceable(root)  # again: another process may have written into it meanwhile
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def ensure_dataset(root: str | Path, seed: int = 0, spec: SyntheticSpec = SyntheticSpec(), channels: int = 1) -> Path:
    """Generate the dataset unless ``root`` already holds this seed's complete copy."""
    root = Path(root)
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        marker = None
    if marker != _marker(seed, spec, channels):
        generate(root, seed, spec, channels)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asd.data.synthetic", description="Write the synthetic DCASE-layout dataset.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--channels", type=int, choices=(1, 2), default=1, help="2: stereo near/far microphone files (DCASE 2026)"
    )
    args = parser.parse_args(argv)
    try:
        generate(args.root, args.seed, channels=args.channels)
    except NotSyntheticError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"synthetic dataset written to {args.root}")


if __name__ == "__main__":
    main()
