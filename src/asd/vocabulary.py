"""One vocabulary for what the parts say about a clip: its section key, its label and its domain,
as names (file names, configs, logs) and as the official evaluator's 0/1 codes (metrics, CSVs)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

LABELS = ("normal", "anomaly")  # the evaluator's code is the index
DOMAINS = ("source", "target")
LABEL_CODES = {name: code for code, name in enumerate(LABELS)}
DOMAIN_CODES = {name: code for code, name in enumerate(DOMAINS)}


def section_key(machine: str, section_id: str) -> str:
    """What a back-end is fitted per and thresholds are kept by: one machine type's section
    (``fan/section_00``), so a model trained on several machine types keeps them apart."""
    return f"{machine}/section_{section_id}"


def machine_of(key: str) -> str:
    """The machine type of a :func:`section_key`: what a back-end fitted per machine type is keyed by."""
    if not isinstance(key, str) or "/section_" not in key:
        raise ValueError(f"{key!r} is not a section key (<machine type>/section_<id>)")
    return key.rsplit("/section_", 1)[0]


def indices_by_section(sections: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """The positions of each section's clips in ``sections``, sections in order of first appearance:
    what back-ends and the nearest-domain estimate fit and score per section."""
    grouped: dict[Hashable, list[int]] = defaultdict(list)
    for i, section in enumerate(sections):
        grouped[section].append(i)
    return grouped
