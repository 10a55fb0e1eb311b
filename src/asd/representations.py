"""Every clip's representation, saved with its run, so a back-end experiment needs no frontend.

``<run_dir>/representations/<machines>.npz`` holds, for the training and the test clips, their rows
side by side (``<split>_rows``, float32 as the frontend gave them: refitting reproduces the run's
scores exactly) with each clip's row count (``<split>_counts``), and a JSON table of each clip's
machine type, section, file name, domain and label (``<split>_clips``). An AE run on the synthetic
data writes 30 MB per machine type; ``save_representations=false`` switches it off.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from asd.files import write_atomically
from asd.vocabulary import section_key


class SavedClip(NamedTuple):
    """What the evaluation needs of a clip; read like a ``ClipInfo`` (asd.evaluation.callback.section_results)."""

    machine: str
    section_id: str
    file_name: str
    domain: str
    label: str


@dataclass
class SavedClips:
    """One split's clips: representations (rows x dims each) and what the evaluation needs of them."""

    representations: list[np.ndarray]
    infos: list[SavedClip]

    @property
    def sections(self) -> list[str]:
        return [section_key(c.machine, c.section_id) for c in self.infos]

    @property
    def domains(self) -> list[str]:
        return [c.domain for c in self.infos]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.infos]


def save_representations(path: Path, clips_by_split: dict, kept: dict[str, dict[int, np.ndarray]]) -> Path:
    """``clips_by_split``: {"train": datamodule.train_clips, "test": datamodule.test_clips}."""
    arrays = {}
    for split, clips in clips_by_split.items():
        reps = [kept[split][i] for i in range(len(clips))]
        arrays[f"{split}_rows"] = np.concatenate(reps).astype(np.float32, copy=False)
        arrays[f"{split}_counts"] = np.array([len(r) for r in reps])
        table = [[c.info.machine, c.info.section_id, c.info.file_name, c.info.domain, c.info.label] for c in clips]
        arrays[f"{split}_clips"] = np.array(json.dumps(table))

    def write(file):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        file.write(buffer.getvalue())

    return write_atomically(path, write)


def load_representations(path: Path) -> dict[str, SavedClips]:
    with np.load(path) as saved:
        result = {}
        for split in ("train", "test"):
            rows, counts = saved[f"{split}_rows"], saved[f"{split}_counts"]
            table = json.loads(str(saved[f"{split}_clips"]))
            reps = np.split(rows, np.cumsum(counts)[:-1]) if len(counts) else []
            result[split] = SavedClips(list(reps), [SavedClip(*row) for row in table])
    return result
