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

With ``year=2020`` the names follow DCASE 2020 (``normal_id_00_00000000.wav``,
``anomaly_id_00_00000012.wav``): that year knew no domains, so only the source domain's clips are
written, and no evaluation copy (the 2020 evaluation set is labelled by ``eval_data_list_2020.csv``).

CLI: ``python -m asd.data.synthetic <root> [--seed N] [--channels 2] [--year 2020]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

from asd.data.attributes import rebuild_attributes_csv
from asd.data.filenames import format_attributes
from asd.data.index import DatasetError
from asd.files import write_csv

GENERATOR_VERSION = 2
SAMPLE_RATE = 16000
MARKER = "synthetic_dataset.json"


@dataclass(frozen=True)
class SyntheticSpec:
    duration_s: float = 2.0
    source_train: int = 90
    target_train: int = 10
    test_per_domain_and_label: int = 25


@dataclass(frozen=True)
class Profile:
    """What a synthetic dataset holds, beyond its size (``spec``)."""

    machines: tuple[str, ...]
    spec: SyntheticSpec = SyntheticSpec()
    #: machine types whose file names conceal their attributes (``noAttribute``, as three of the seven
    #: DCASE 2024 development types); the attributes are written to correspondence files instead
    concealed: tuple[str, ...] = ()
    #: anomaly strength drawn uniformly from this range (graded difficulty: weak anomalies are subtle)
    anomaly_strength: tuple[float, float] = (0.15, 1.0)
    #: factory background noise at a signal-to-noise ratio (dB) drawn from this range; None: none
    noise_snr_db: tuple[float, float] | None = None
    #: the target domain is also heard through another channel (a first-order filter per machine
    #: type): a shift beyond the operating condition, as a moved microphone or another mounting
    target_channel: bool = False


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


def _fan(rng, t, attributes, anomaly, strength):
    blade_pass = {"1": 180.0, "2": 240.0}[attributes["spd"]] * rng.uniform(0.98, 1.02)
    flow = {"lo": 0.5, "hi": 0.9}[attributes["flow"]]
    sound = flow * _noise(rng, t.size, 0.6)
    sound = sound + 0.6 * np.sin(2 * np.pi * blade_pass * t + rng.uniform(0, 2 * np.pi))
    sound = sound + 0.3 * np.sin(2 * np.pi * 2 * blade_pass * t + rng.uniform(0, 2 * np.pi))
    if anomaly == "imbalance":  # once per revolution (six blades)
        sound = sound * (1.0 + 0.8 * strength * np.sin(2 * np.pi * blade_pass / 6 * t))
    elif anomaly == "rub":
        gate = (np.sin(2 * np.pi * blade_pass / 6 * t + rng.uniform(0, 2 * np.pi)) > 0.7).astype(float)
        sound = sound + 0.8 * strength * gate * _noise(rng, t.size, -0.5)
    return sound


def _pump(rng, t, attributes, anomaly, strength):
    strokes = {"4": 4.0, "6": 6.0}[attributes["strk"]]
    pressure = {"a": 1.0, "b": 1.4}[attributes["prs"]]
    envelope = np.maximum(0.0, np.sin(2 * np.pi * strokes * t + rng.uniform(0, 2 * np.pi))) ** 4
    f0 = 90.0 * rng.uniform(0.98, 1.02)
    carrier = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    sound = pressure * envelope * carrier + 0.1 * _noise(rng, t.size, 1.0)
    if anomaly == "cavitation":  # broadband crackle during the strokes
        sound = sound + 0.6 * strength * envelope * _noise(rng, t.size, 0.0)
    elif anomaly == "leak":  # a steady hiss
        sound = sound + 0.3 * strength * _noise(rng, t.size, -0.3)
    return sound


def _gear(rng, t, attributes, anomaly, strength):
    mesh = {"1": 400.0, "2": 520.0}[attributes["rpm"]] * rng.uniform(0.99, 1.01)
    shaft = mesh / 20.0
    load = {"l": 0.7, "h": 1.0}[attributes["load"]]
    depth = 0.2 + (0.8 * strength if anomaly == "wear" else 0.0)  # worn teeth: stronger sidebands
    modulation = 1.0 + depth * np.sin(2 * np.pi * shaft * t)
    sound = modulation * sum(load**k / k * np.sin(2 * np.pi * k * mesh * t) for k in range(1, 5))
    sound = sound + 0.1 * _noise(rng, t.size, 0.8)
    if anomaly == "crack":  # an impulse once per shaft revolution
        ticks = np.zeros(t.size)
        ticks[(np.arange(rng.uniform(0, 1 / shaft), t[-1], 1 / shaft) * SAMPLE_RATE).astype(int)] = 1.0
        sound = sound + 2.0 * strength * np.convolve(ticks, np.hanning(24) * rng.standard_normal(24), "same")
    return sound


# machine type -> (sound function, source attributes, target attributes, secondary attribute values, anomalies)
MACHINES = {
    "ToyRotor": (_rotor, {"spd": "1"}, {"spd": "2"}, ("loc", ("A", "B")), ("partial", "ticks")),
    "ToyClicker": (_clicker, {"rate": "8"}, {"rate": "11"}, ("mic", ("1", "2")), ("jitter", "resonance")),
    "ToyHum": (_hum, {"am": "2"}, {"am": "5"}, ("load", ("lo", "hi")), ("rattle", "wobble")),
    "ToyFan": (_fan, {"spd": "1"}, {"spd": "2"}, ("flow", ("lo", "hi")), ("imbalance", "rub")),
    "ToyPump": (_pump, {"strk": "4"}, {"strk": "6"}, ("prs", ("a", "b")), ("cavitation", "leak")),
    "ToyGear": (_gear, {"rpm": "1"}, {"rpm": "2"}, ("load", ("l", "h")), ("crack", "wear")),
}
EVAL_MACHINE = "ToyRotor"

PROFILES = {
    # small and quick: the embedded default, every test and the recorded recipe results
    "default": Profile(("ToyRotor", "ToyClicker", "ToyHum")),
    # harder and larger, to rank ingredients: six machine types, two with concealed attributes,
    # factory noise, subtle anomalies, a channel shift on top of the target's operating condition,
    # 300 source and 10 target training clips and 200 test clips per machine type
    "benchmark": Profile(
        tuple(MACHINES),
        SyntheticSpec(source_train=300, target_train=10, test_per_domain_and_label=50),
        concealed=("ToyHum", "ToyGear"),
        anomaly_strength=(0.05, 0.6),
        noise_snr_db=(3.0, 15.0),
        target_channel=True,
    ),
}


def _render(machine: str, seed_parts: tuple[int, ...], domain: str, anomaly: str | None, profile: Profile):
    """One clip and its attributes, determined entirely by ``seed_parts`` (and the profile)."""
    function, source_attributes, target_attributes, (key, values), _ = MACHINES[machine]
    rng = np.random.default_rng(seed_parts)
    attributes = dict(source_attributes if domain == "source" else target_attributes)
    attributes[key] = values[int(rng.integers(len(values)))]
    strength = rng.uniform(*profile.anomaly_strength)  # graded difficulty: weak anomalies are hard to hear
    t = np.arange(int(profile.spec.duration_s * SAMPLE_RATE)) / SAMPLE_RATE
    sound = function(rng, t, attributes, anomaly, strength)
    if profile.target_channel and domain == "target":
        pole = np.random.default_rng((list(MACHINES).index(machine), 77)).uniform(-0.6, 0.6)
        sound = scipy.signal.lfilter([1.0 - abs(pole)], [1.0, -pole], sound)
    if profile.noise_snr_db is not None:
        sound = sound + _factory_noise(np.random.default_rng((*seed_parts, 3)), sound, profile.noise_snr_db)
    waveform = 0.1 * sound
    return np.clip(waveform, -1.0, 1.0).astype(np.float32), attributes


def _factory_noise(rng: np.random.Generator, sound: np.ndarray, snr_db: tuple[float, float]) -> np.ndarray:
    """Pink noise, mains hum and a few impulsive events (tools, doors), at a random SNR; its own
    draws, so the machine sound is the same with or without it."""
    t = np.arange(sound.size) / SAMPLE_RATE
    noise = _noise(rng, sound.size, 1.0) + 0.5 * np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * t)
    for _ in range(rng.poisson(1.5)):
        start = int(rng.integers(0, sound.size))
        burst = rng.standard_normal(min(800, sound.size - start)) * np.hanning(min(800, sound.size - start))
        noise[start : start + burst.size] += 4.0 * burst
    snr = rng.uniform(*snr_db)
    return noise * np.sqrt(np.mean(sound**2) / np.mean(noise**2) / 10 ** (snr / 10))


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


def _name(domain: str, split: str, label: str, index: int, attributes: dict, year: int = 2024) -> str:
    if year == 2020:
        return f"{label}_id_00_{index:08d}.wav"
    described = "noAttribute" if "noAttribute" in attributes else format_attributes(attributes.items())
    return f"section_00_{domain}_{split}_{label}_{index:04d}_{described}.wav"


def _write_machine(
    machine_dir: Path, seed: int, profile: Profile, part: int, channels: int, correspondence_dir: Path, year: int = 2024
) -> list[tuple[str, str]]:
    """Write train and test clips; return the test clips' file names in index order. A concealed
    machine type's names say ``noAttribute``; its attributes go to the official correspondence files
    (``<correspondence_dir>/<machine>/attributes_00_<split>_correspondence.csv``)."""
    machine = machine_dir.name
    machine_no = list(MACHINES).index(machine)
    anomalies = MACHINES[machine][4]
    concealed = machine in profile.concealed
    correspondence: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}

    def write(split: str, domain: str, label: str, index: int, seed_parts, anomaly) -> str:
        waveform, attributes = _render(machine, seed_parts, domain, anomaly, profile)
        name = _name(domain, split, label, index, attributes, year)
        if concealed:
            hidden = _name(domain, split, label, index, {"noAttribute": None})
            correspondence[split].append((name, hidden))
            name = hidden
        _write(machine_dir / split / name, waveform, seed_parts, channels)
        return name

    (machine_dir / "train").mkdir(parents=True)
    (machine_dir / "test").mkdir()
    counts = {"source": profile.spec.source_train, "target": profile.spec.target_train}
    domains = ("source",) if year == 2020 else ("source", "target")
    for domain in domains:
        count = counts[domain]
        for index in range(count):
            seed_parts = (seed, part, machine_no, 0, index + (0 if domain == "source" else 10000))
            write("train", domain, "normal", index, seed_parts, None)
    tests = []
    index = 0
    for domain in domains:
        for label in ("normal", "anomaly"):
            for k in range(profile.spec.test_per_domain_and_label):
                anomaly = anomalies[k % len(anomalies)] if label == "anomaly" else None
                tests.append(write("test", domain, label, index, (seed, part, machine_no, 1, index), anomaly))
                index += 1
    if year != 2020:  # 2020 names carry no attributes, and that year had no attributes file
        rebuild_attributes_csv(machine_dir)
    if concealed:
        folder = correspondence_dir / machine
        folder.mkdir(parents=True)
        for split, rows in correspondence.items():
            write_csv(folder / f"attributes_00_{split}_correspondence.csv", [("source_file_name", "target_file_name"), *rows])
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


def _marker(seed: int, profile: str, spec: SyntheticSpec, channels: int, year: int) -> dict:
    marker = {"generator_version": GENERATOR_VERSION, "seed": seed, "spec": spec.__dict__, "channels": channels}
    if profile != "default":  # the default's marker predates profiles: its datasets stay valid
        marker["profile"] = profile
    if year == 2020:  # likewise the years: every other year's naming is 2024's
        marker["year"] = year
    return marker


def _profile(name: str, spec: SyntheticSpec | None) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"no synthetic profile {name!r}; profiles: {', '.join(PROFILES)}")
    return PROFILES[name] if spec is None else replace(PROFILES[name], spec=spec)


def generate(
    root: str | Path,
    seed: int = 0,
    spec: SyntheticSpec | None = None,
    channels: int = 1,
    profile: str = "default",
    year: int = 2024,
) -> Path:
    """Write the dataset under ``root`` and return ``root``; ``channels`` 1 (mono, DCASE 2020-2025)
    or 2 (near and far microphone, DCASE 2026); ``profile`` one of :data:`PROFILES` (``spec``, if
    given, replaces its size); ``year`` 2020 writes DCASE 2020's names (no domains, development set
    only), any other year the 2021-2026 names.

    ``root`` may be missing, empty, or a synthetic dataset written before (marker file present),
    which is replaced; anything else is a :class:`NotSyntheticError` and nothing is touched.
    """
    root = Path(root)
    if channels not in (1, 2):
        raise ValueError(f"the synthetic data has 1 or 2 channels, not {channels}")
    chosen = _profile(profile, spec)
    if year < 2020:
        raise ValueError(f"DCASE Task 2 names start in 2020, got year {year}")
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    try:
        correspondence = staging / "ground_truth_attributes"
        for machine in chosen.machines:
            _write_machine(
                staging / "dev_data" / "raw" / machine, seed, chosen, 0, channels, correspondence / "dev_data", year
            )
        if year != 2020:
            tests = _write_machine(
                staging / "eval_data" / "raw" / EVAL_MACHINE, seed, chosen, 1, channels, correspondence / "eval_data"
            )
            _make_eval_copy(staging, tests, seed)
        (staging / MARKER).write_text(json.dumps(_marker(seed, profile, chosen.spec, channels, year), indent=1))
        if root.exists():
            _check_replaceable(root)  # again: another process may have written into it meanwhile
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def ensure_dataset(
    root: str | Path,
    seed: int = 0,
    spec: SyntheticSpec | None = None,
    channels: int = 1,
    profile: str = "default",
    year: int = 2024,
) -> Path:
    """Generate the dataset unless ``root`` already holds this seed's complete copy."""
    root = Path(root)
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        marker = None
    if marker != _marker(seed, profile, _profile(profile, spec).spec, channels, year):
        generate(root, seed, spec, channels, profile, year)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asd.data.synthetic", description="Write the synthetic DCASE-layout dataset.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--channels", type=int, choices=(1, 2), default=1, help="2: stereo near/far microphone files (DCASE 2026)"
    )
    parser.add_argument(
        "--profile", choices=tuple(PROFILES), default="default", help="benchmark: harder and larger (see PROFILES)"
    )
    parser.add_argument(
        "--year", type=int, default=2024, help="2020: DCASE 2020 names (normal_id_00_...; no domains, no eval copy)"
    )
    args = parser.parse_args(argv)
    try:
        generate(args.root, args.seed, channels=args.channels, profile=args.profile, year=args.year)
    except NotSyntheticError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"synthetic dataset written to {args.root}")


if __name__ == "__main__":
    main()
