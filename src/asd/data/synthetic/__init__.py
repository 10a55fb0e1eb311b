"""The synthetic datasets, deterministic, in the exact DCASE Task 2 layout; the default profile is the
embedded dataset, small and quick.

The default profile: three machine types with different sound character, each with one section, a source domain
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

With ``profile="dcase"`` it writes a dataset modelled on the DCASE 2024 recordings, to rank methods as
real data ranks them: seven development and three evaluation types of rotating machines whose operating
attributes set their harmonic structure (:mod:`.machines`), physical faults at -27 to -15 dB relative to
the machine (:mod:`.faults`), factory noise recorded apart and mixed in at -12 to 0 dB, another factory
in the target domain (:mod:`.background`), 990 source against 10 target training clips, and
concealed attributes where DCASE 2024 concealed them (gearbox, slider). Each mechanism is a module of this
package, with its sources.

CLI: ``python -m asd.data.synthetic <root> [--seed N] [--profile default|benchmark|dcase] [--channels 2]
[--year 2020]``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from asd.data.index import DatasetError
from asd.data.synthetic.layout import make_eval_copy, write_machine
from asd.data.synthetic.profiles import PROFILES, Profile, SyntheticSpec

__all__ = ["PROFILES", "MARKER", "NotSyntheticError", "Profile", "SyntheticSpec", "ensure_dataset", "generate"]

GENERATOR_VERSION = 2
MARKER = "synthetic_dataset.json"
#: the marker's record of how long the generation took (seconds), which says nothing about the data
GENERATION_TIME = "generation_s"


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


def _marker(seed: int, profile: str, chosen: Profile, channels: int, year: int) -> dict:
    marker = {"generator_version": GENERATOR_VERSION, "seed": seed, "spec": chosen.spec.__dict__, "channels": channels}
    if profile != "default":  # the default's marker predates profiles: its datasets stay valid
        marker["profile"] = profile
        marker["profile_version"] = chosen.version
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
    started = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    try:
        correspondence = staging / "ground_truth_attributes"
        for machine in chosen.machines:
            write_machine(
                staging / "dev_data" / "raw" / machine, seed, chosen, 0, channels, correspondence / "dev_data", year
            )
        if year != 2020:
            for number, machine in enumerate(chosen.eval_machines):
                tests = write_machine(
                    staging / "eval_data" / "raw" / machine, seed, chosen, 1, channels, correspondence / "eval_data"
                )
                make_eval_copy(staging, machine, tests, (seed, 99, *([number] if number else [])))
        marker = _marker(seed, profile, chosen, channels, year)
        marker[GENERATION_TIME] = round(time.perf_counter() - started, 1)
        (staging / MARKER).write_text(json.dumps(marker, indent=1))
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
    if isinstance(marker, dict):
        marker.pop(GENERATION_TIME, None)
    if marker != _marker(seed, profile, _profile(profile, spec), channels, year):
        generate(root, seed, spec, channels, profile, year)
    return root
