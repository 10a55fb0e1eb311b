"""One LightningDataModule for every DCASE Task 2 machine type (and the synthetic ones).

It indexes the machine folders, extracts (or reads cached) log-mel features, and serves:

* ``train_dataloader``: what the frontend trains on: stacked-frame vectors (``input="frames"``,
  the AE), whole log-mel clips (``input="clips"``), or log-mels with their waveforms
  (``input="waveforms"``, for frontends that read raw audio);
* ``train_clip_dataloader``: every normal training clip, to fit a scoring back-end;
* ``test_dataloader``: every test clip, with label, domain and section carried by index
  into ``test_clips`` for the evaluation.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Sequence, TypedDict

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from asd.data.audio import AudioConfig, load_audio
from asd.data.features import FeatureCache, FeatureConfig, extract_log_mels, stack_frames
from asd.data.filenames import ClipInfo, format_attributes
from asd.data.index import Clip, DatasetError, index_machine, labelled_machines, machine_data_splits
from asd.vocabulary import LABELS, section_key

log = logging.getLogger(__name__)


def class_name(info: ClipInfo, with_domain: bool = False) -> str:
    """The classification target of a clip: machine, section and attribute combination, and its
    domain where ``with_domain`` (ASDKit's classes: machine x section x attributes x domain).

    Where a name conceals its attributes (``noAttribute``) and no correspondence file gave
    them back, the domain stands in, so source and target still form separate classes.
    """
    attributes = format_attributes(info.attributes) or info.domain
    domain = f"/{info.domain}" if with_domain and attributes != info.domain else ""
    return f"{section_key(info.machine, info.section_id)}/{attributes}{domain}"


class ClipDataset(Dataset):
    """Log-mels (and optionally waveforms) of clips, each item carrying its position so
    results map back to metadata, and its class index (``labels``; -1: none)."""

    def __init__(
        self,
        clips: Sequence[Clip],
        log_mels: Sequence[np.ndarray],
        labels: Sequence[int],
        audio_config: AudioConfig | None = None,
    ):
        self.clips = list(clips)
        self.log_mels = [torch.from_numpy(np.asarray(m, dtype=np.float32)) for m in log_mels]
        self.labels = list(labels)
        self.audio_config = audio_config

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        info = self.clips[i].info
        item = {
            "features": self.log_mels[i],
            "index": i,
            "section": section_key(info.machine, info.section_id),
            "domain": info.domain,
            "label": self.labels[i],
        }
        if self.audio_config is not None:
            item["waveform"] = load_audio(self.clips[i].path, self.audio_config)
        return item


class ClipBatch(TypedDict, total=False):
    """What every frontend, back-end fit, test step and ``asd.predict`` receives: one batch type,
    made only by :func:`clip_batch`. Clips may differ in length, so per-clip tensors stay lists."""

    features: list[torch.Tensor]  # (n_mels, frames) log-mels
    waveform: list[torch.Tensor]  # mono waveforms, only for frontends that read audio
    index: torch.Tensor  # each clip's position in the datamodule's train_clips / test_clips
    section: list[str]  # asd.vocabulary.section_key
    domain: list[str]  # "source" | "target" | "unknown"
    label: torch.Tensor  # class index (datamodule.class_names), -1 where the clip has none


def clip_batch(
    features: list[torch.Tensor],
    sections: list[str] | None = None,
    domains: list[str] | None = None,
    *,
    waveforms: list[torch.Tensor] | None = None,
    index: list[int] | None = None,
    labels: list[int] | torch.Tensor | None = None,
) -> ClipBatch:
    """The one constructor of :class:`ClipBatch`: unknown domains are ``"unknown"``, unknown class
    labels -1; sections, index and waveforms are included where given. Labels lie on the features'
    device: a batch a model builds from its input (on a GPU) stays on that device."""
    device = features[0].device if len(features) else None
    batch: ClipBatch = {
        "features": list(features),
        "domain": list(domains) if domains is not None else ["unknown"] * len(features),
        "label": torch.as_tensor(labels if labels is not None else [-1] * len(features), device=device),
    }
    if sections is not None:
        batch["section"] = list(sections)
    if index is not None:
        batch["index"] = torch.tensor(index)
    if waveforms is not None:
        batch["waveform"] = list(waveforms)
    return batch


def collate_clips(items: list[dict]) -> ClipBatch:
    return clip_batch(
        [item["features"] for item in items],
        [item["section"] for item in items],
        [item["domain"] for item in items],
        waveforms=[item["waveform"] for item in items] if "waveform" in items[0] else None,
        index=[item["index"] for item in items],
        labels=[item["label"] for item in items],
    )


class EpochSeededSampler(Sampler):
    """A random order that depends only on the seed and the epoch (Lightning calls ``set_epoch``),
    so a run resumed from a checkpoint sees the same batches as one that never stopped."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class BalancedEpochSampler(EpochSeededSampler):
    """As many draws per epoch as there are clips, with replacement, each (class, domain) group
    drawn equally often in expectation: the ten target clips of a section do not vanish among its
    990 source clips, nor a rare attribute among common ones."""

    def __init__(self, groups: Sequence[str], seed: int):
        super().__init__(len(groups), seed)
        counts = Counter(groups)
        self.weights = torch.tensor([1.0 / counts[group] for group in groups], dtype=torch.float64)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.multinomial(self.weights, self.size, replacement=True, generator=generator).tolist())


class DCASEDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str,
        machines: Sequence[str],
        data_split: str = "dev",
        year: int = 2024,
        ground_truth_dir: str | None = None,
        eval_data_list: str | None = None,
        correspondence_dir: str | None = None,
        audio: dict | None = None,
        features: dict | None = None,
        input: str = "frames",
        n_frames: int = 5,
        cache_dir: str | None = None,
        batch_size: int = 256,
        clip_batch_size: int = 16,
        num_workers: int = 0,
        shuffle_seed: int = 0,
        validation_split: float = 0.0,
        balanced_sampling: bool = False,
        domain_in_class: bool = False,
    ):
        super().__init__()
        if input not in ("frames", "clips", "waveforms"):
            raise ValueError(f"data.input must be 'frames', 'clips' or 'waveforms', got {input!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"model.validation_split must be in [0, 1), got {validation_split!r}")
        if balanced_sampling and input == "frames":
            raise ValueError("data.balanced_sampling draws clips by class and domain: it applies to clip models, not model=ae")
        if validation_split and input != "frames":
            raise ValueError("model.validation_split holds out frame vectors: it applies to frame models (model=ae) only")
        if not machines:
            raise ValueError("no machine types selected (machine.types is empty)")
        self.root = Path(root)
        self.machines = list(machines)
        self.data_split = data_split
        self.year = year
        self.ground_truth_dir = ground_truth_dir
        self.eval_data_list = eval_data_list
        self.correspondence_dir = correspondence_dir
        self.audio_config = AudioConfig(**(audio or {}))
        self.feature_config = FeatureConfig(**(features or {}))
        if self.feature_config.sample_rate != self.audio_config.sample_rate:
            raise ValueError("data.features.sample_rate and data.audio.sample_rate differ")
        self.input = input
        self.n_frames = n_frames
        self.cache = FeatureCache(cache_dir, self.feature_config, self.audio_config) if cache_dir else None
        self.batch_size = batch_size
        self.clip_batch_size = clip_batch_size
        self.num_workers = num_workers
        self.shuffle_seed = shuffle_seed
        self.validation_split = validation_split
        self.balanced_sampling = balanced_sampling
        self.domain_in_class = domain_in_class
        if validation_split:
            # Only then a validation loop: Lightning runs one (or warns of its absence) whenever a
            # datamodule has val_dataloader.
            self.val_dataloader = self._validation_dataloader
        self.machine_splits: dict[str, str] = {}
        self.train_clips: list[Clip] = []
        self.test_clips: list[Clip] = []
        self.class_names: list[str] = []
        self._train_set: ClipDataset | None = None
        self._test_set: ClipDataset | None = None

    def prepare_data(self) -> None:
        if not self.root.is_dir():
            raise DatasetError(
                f"{self.root}: dataset root not found; download the DCASE {self.year} Task 2 data "
                "and set data.root, or use data=synthetic"
            )

    def setup(self, stage: str | None = None) -> None:
        if self._train_set is not None:
            return
        self.machine_splits = machine_data_splits(self.root, self.machines, self.data_split)
        per_machine: list[list[Clip]] = [
            index_machine(
                self.root,
                self.machine_splits[machine],
                machine,
                # Development names carry their labels; only evaluation data needs the ground truth.
                ground_truth_dir=self.ground_truth_dir if self.machine_splits[machine] == "eval" else None,
                eval_data_list=self.eval_data_list,
                correspondence_dir=self.correspondence_dir,
            )
            for machine in self.machines
        ]
        clips = [clip for machine_clips in per_machine for clip in machine_clips]
        self.train_clips = [c for c in clips if c.info.split == "train"]
        abnormal = [c.path for c in self.train_clips if c.info.label == "anomaly"]
        if abnormal:
            raise DatasetError(f"{abnormal[0]}: an anomalous clip in a training folder")
        self.test_clips = [c for c in clips if c.info.split == "test"]
        # one cache entry per machine type, so any selection of machine types reuses it
        log_mels = [
            log_mel
            for machine_clips in per_machine
            for log_mel in extract_log_mels([c.path for c in machine_clips], self.feature_config, self.audio_config, self.cache)
        ]
        by_path = {c.path: m for c, m in zip(clips, log_mels)}
        if self.input == "frames":
            short = [c.path for c in clips if by_path[c.path].shape[-1] < self.n_frames]
            if short:
                raise DatasetError(
                    f"{short[0]}: {by_path[short[0]].shape[-1]} log-mel frames, too short to stack data.n_frames="
                    f"{self.n_frames} of them ({len(short)} such clips)"
                )
        self._check_test_labels()
        self.class_names = sorted({self.class_of(c) for c in self.train_clips})
        class_index = {name: i for i, name in enumerate(self.class_names)}
        waveforms = self.audio_config if self.input == "waveforms" else None
        self._train_set, self._test_set = (
            ClipDataset(
                clips, [by_path[c.path] for c in clips], [class_index.get(self.class_of(c), -1) for c in clips], waveforms
            )
            for clips in (self.train_clips, self.test_clips)
        )
        if self.cache is not None:
            log.info("feature cache: %d hits, %d misses", self.cache.hits, self.cache.misses)

    def _check_test_labels(self) -> None:
        """Labelled test sections need normal and anomalous clips, or their AUC is undefined: say so
        before training, not after it."""
        labelled = self.labelled_machines
        labels: dict[str, set[str]] = {}
        for clip in (c for c in self.test_clips if c.info.machine in labelled):
            labels.setdefault(section_key(clip.info.machine, clip.info.section_id), set()).add(clip.info.label)
        for section, found in sorted(labels.items()):
            if found != set(LABELS):
                missing = (set(LABELS) - found).pop()
                raise DatasetError(
                    f"{self.root}: the test clips of {section} hold no {missing} clip, so its AUC is undefined; "
                    "check the test folder (or its ground truth)"
                )

    @property
    def labelled_machines(self) -> set[str]:
        """:func:`asd.data.index.labelled_machines` of this run's test clips."""
        return labelled_machines([c.info for c in self.test_clips], self.machine_splits, self.year)

    @property
    def has_test_labels(self) -> bool:
        return self.labelled_machines == set(self.machines)

    def test_log_mel(self, index: int) -> torch.Tensor:
        """The (mels x frames) log-mel of ``test_clips[index]``."""
        return self._test_set.log_mels[index]

    def _frame_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(training, validation) frame vectors: ``validation_split`` of all the training clips'
        stacked frames, drawn at random with the shuffle seed, as the baseline's frame-level split."""
        vectors = torch.cat([stack_frames(m, self.n_frames) for m in self._train_set.log_mels])
        held_out = math.ceil(self.validation_split * len(vectors))
        order = torch.randperm(len(vectors), generator=torch.Generator().manual_seed(self.shuffle_seed))
        return vectors[order[held_out:].sort().values], vectors[order[:held_out].sort().values]

    def train_dataloader(self) -> DataLoader:
        if self.input == "frames":
            vectors, _ = self._frame_vectors()
            sampler = EpochSeededSampler(len(vectors), self.shuffle_seed)
            return DataLoader(TensorDataset(vectors), batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers)
        if self.balanced_sampling:
            groups = [f"{self.class_of(c)}|{c.info.domain}" for c in self.train_clips]
            return self._clip_loader(self._train_set, sampler=BalancedEpochSampler(groups, self.shuffle_seed))
        return self._clip_loader(self._train_set, sampler=EpochSeededSampler(len(self._train_set), self.shuffle_seed))

    def _validation_dataloader(self) -> DataLoader:
        _, vectors = self._frame_vectors()
        return DataLoader(TensorDataset(vectors), batch_size=self.batch_size, num_workers=self.num_workers)

    def class_of(self, clip: Clip) -> str:
        """The classification target of a clip (:func:`class_name`, with the domain where ``domain_in_class``)."""
        return class_name(clip.info, self.domain_in_class)

    def train_clip_dataloader(self) -> DataLoader:
        return self._clip_loader(self._train_set)

    def test_dataloader(self) -> DataLoader:
        return self._clip_loader(self._test_set)

    def _clip_loader(self, dataset: ClipDataset, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.clip_batch_size,
            sampler=sampler,
            collate_fn=collate_clips,
            num_workers=self.num_workers,
        )
