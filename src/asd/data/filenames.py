"""Parse DCASE Task 2 (2020-2025) file names into typed records.

One parser serves every year's convention:

* 2020 development: ``normal_id_00_00000000.wav`` / ``anomaly_id_00_00000000.wav``
* 2020 evaluation (renamed): ``id_01_00000000.wav``
* 2021 evaluation (renamed, domain kept): ``section_03_source_test_0000.wav``
* 2021-2025: ``section_00_source_train_normal_0000_<k>_<v>_....wav``,
  ``section_00_target_test_anomaly_0012_noAttribute.wav``
* originals listed without a split (2024 evaluation mapping): ``section_00_source_normal_0035_weight15_BckgF.wav``
* 2022-2025 evaluation (renamed): ``section_00_0000.wav``

What a name does not tell (the label of a renamed evaluation file, the split of a name without
one) is ``"unknown"``; the dataset index fills it from the folder or the ground truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

UNKNOWN = "unknown"
HIDDEN_ATTRIBUTES = "noAttribute"
#: The audio files every tool reads (the index, asd.predict, the attribute and EDA tools).
AUDIO_SUFFIXES = (".wav", ".flac")


class FileNameError(ValueError):
    """A file name that fits no DCASE naming convention."""


@dataclass(frozen=True)
class ClipInfo:
    """What a DCASE file name says about its clip."""

    file_name: str
    section: int
    section_prefix: str  # "section" (2021-) or "id" (2020)
    domain: str = UNKNOWN  # source | target | unknown
    split: str = UNKNOWN  # train | test | supplemental | unknown
    label: str = UNKNOWN  # normal | anomaly | unknown
    index: int = 0
    attributes: tuple[tuple[str, str], ...] = ()
    attributes_hidden: bool = False  # "noAttribute" names (DCASE 2024/2025)
    attribute_string: str = ""  # the raw attribute part of the name, for round trips
    machine: str = UNKNOWN  # taken from the folder, never from the name
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def section_id(self) -> str:
        """The two-digit section as the official CSV names write it (``"00"``)."""
        return f"{self.section:02d}"

    @property
    def attribute_dict(self) -> dict[str, str]:
        return dict(self.attributes)

    def with_(self, **changes) -> "ClipInfo":
        return replace(self, **changes)


_EXT = r"\.(?:wav|WAV|flac)"
_PATTERNS: list[tuple[str, re.Pattern]] = [
    (
        "section_full",
        re.compile(
            rf"^section_(?P<section>\d+)_(?P<domain>source|target)_(?P<split>train|test|supplemental)_"
            rf"(?P<label>normal|anomaly)_(?P<index>\d+)(?:_(?P<attrs>.*?))?{_EXT}$"
        ),
    ),
    (
        "section_no_split",
        re.compile(
            rf"^section_(?P<section>\d+)_(?P<domain>source|target)_(?P<label>normal|anomaly)_"
            rf"(?P<index>\d+)(?:_(?P<attrs>.*?))?{_EXT}$"
        ),
    ),
    (
        "section_no_label",
        re.compile(
            rf"^section_(?P<section>\d+)_(?P<domain>source|target)_(?P<split>train|test|supplemental)_"
            rf"(?P<index>\d+)(?:_(?P<attrs>.*?))?{_EXT}$"
        ),
    ),
    ("section_renamed", re.compile(rf"^section_(?P<section>\d+)_(?P<index>\d+){_EXT}$")),
    ("id_labelled", re.compile(rf"^(?P<label>normal|anomaly)_id_(?P<section>\d+)_(?P<index>\d+){_EXT}$")),
    ("id_renamed", re.compile(rf"^id_(?P<section>\d+)_(?P<index>\d+){_EXT}$")),
]

# A token such as "weight15" or "BckgF": a key glued to a value that starts with a capital or digit.
_GLUED_TOKEN = re.compile(r"^(?P<key>[A-Za-z]+?)(?P<value>[A-Z0-9].*)$")


def format_attributes(pairs) -> str:
    """(key, value) pairs as a file name writes them: ``spd_12_loc_A``; empty for none."""
    return "_".join(f"{k}_{v}" for k, v in pairs)


def parse_attributes(attribute_string: str) -> tuple[tuple[str, str], ...]:
    """Decode the attribute part of a name into ordered (key, value) pairs.

    The common form alternates keys and values (``car_A1_spd_28V_mic_1``). The real data also has
    names where every token glues key and value (``weight15_BckgF``), keys that repeat as a prefix
    of a compound key (``mic_imp1absu_mic_pos_A`` → ``mic``, ``mic_pos``), trailing underscores
    (``ac_0.01_``) and a final unpaired glued token (``pro_A_wt_1_damage1``).
    """
    tokens = [t for t in attribute_string.split("_") if t != ""]
    if not tokens or tokens == [HIDDEN_ATTRIBUTES]:
        return ()
    if all(_GLUED_TOKEN.match(t) for t in tokens):
        return tuple((m["key"], m["value"]) for m in map(_GLUED_TOKEN.match, tokens))
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    i = 0
    while i < len(tokens):
        key = tokens[i]
        if key in seen and i + 2 < len(tokens):
            key = f"{key}_{tokens[i + 1]}"
            i += 1
        if i + 1 < len(tokens):
            pairs.append((key, tokens[i + 1]))
            i += 2
        else:
            glued = _GLUED_TOKEN.match(key)
            pairs.append((glued["key"], glued["value"]) if glued else (key, ""))
            i += 1
        seen.add(pairs[-1][0])
    return tuple(pairs)


def parse_file_name(name: str | Path, machine: str = UNKNOWN) -> ClipInfo:
    """Parse one DCASE file name (a bare name or a path; only the last part is read).

    Raises :class:`FileNameError` naming the file when no convention fits.
    """
    file_name = Path(name).name
    for kind, pattern in _PATTERNS:
        match = pattern.match(file_name)
        if match is None:
            continue
        groups = match.groupdict()
        attribute_string = groups.get("attrs") or ""
        return ClipInfo(
            file_name=file_name,
            section=int(groups["section"]),
            section_prefix="id" if kind.startswith("id_") else "section",
            domain=groups.get("domain") or UNKNOWN,
            split=groups.get("split") or UNKNOWN,
            label=groups.get("label") or UNKNOWN,
            index=int(groups["index"]),
            attributes=parse_attributes(attribute_string),
            attributes_hidden=attribute_string.strip("_").startswith(HIDDEN_ATTRIBUTES),
            attribute_string=attribute_string,
            machine=machine,
        )
    raise FileNameError(
        f"{name}: file name fits no DCASE Task 2 naming convention "
        "(expected e.g. section_00_source_train_normal_0000_<key>_<value>.wav, "
        "section_00_0000.wav, normal_id_00_00000000.wav or id_00_00000000.wav)"
    )
