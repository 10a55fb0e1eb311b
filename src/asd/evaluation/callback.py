"""Lightning callback that turns test-step scores into the official files and metrics."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path

import lightning as L
import numpy as np
import torch

from asd.evaluation.metrics import SECTION_COLUMNS, SectionResult, year_official_score
from asd.evaluation.submission import write_section
from asd.vocabulary import DOMAIN_CODES, LABEL_CODES, section_key

log = logging.getLogger(__name__)


def metric_key(column: str) -> str:
    """'AUC (source)' -> 'auc_source', for logger-friendly names."""
    return column.lower().replace(" score", "").replace(" (", "_").replace(")", "").replace(" ", "_")


def section_results(
    infos, collected: dict[int, tuple[float, int]], labelled: bool | Collection[str]
) -> dict[tuple[str, str], SectionResult]:
    """Clips' (score, decision) by clip index, grouped per machine type and section. ``infos`` describe
    the clips (``ClipInfo``, or ``asd.representations.SavedClip``: machine, section_id, file_name,
    label, domain). ``labelled``: whether the clips carry labels, or the machine types whose clips do.

    Without test labels (evaluation data without ground truth), labels and domains are -1.
    """
    missing = [infos[i].file_name for i in range(len(infos)) if i not in collected]
    if missing:
        raise RuntimeError(f"no score was produced for {len(missing)} clips, e.g. {missing[0]}")
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, info in enumerate(infos):
        groups[(info.machine, info.section_id)].append(i)
    results = {}
    for (machine, section_id), indices in sorted(groups.items()):
        known = labelled if isinstance(labelled, bool) else machine in labelled
        results[(machine, section_id)] = SectionResult(
            machine=machine,
            section_id=section_id,
            file_names=np.array([infos[i].file_name for i in indices]),
            labels=np.array([LABEL_CODES[infos[i].label] if known else -1 for i in indices]),
            domains=np.array([DOMAIN_CODES[infos[i].domain] if known else -1 for i in indices]),
            scores=np.array([collected[i][0] for i in indices]),
            decisions=np.array([collected[i][1] for i in indices]),
        )
    return results


def sections_by_split(sections: list[SectionResult], splits: dict[str, str] | None) -> dict[str, list[SectionResult]]:
    """The sections of each data split (``splits``: machine type -> split; None: one split, ``""``).
    A job on ``data.data_split=dev+eval`` is scored per split: an official score is defined over one
    split's machine types."""
    grouped: dict[str, list[SectionResult]] = {}
    for section in sections:
        grouped.setdefault(splits[section.machine] if splits else "", []).append(section)
    return grouped if len(grouped) > 1 else {"": sections}


def section_metric_logs(
    sections: list[SectionResult], year: int, prefix: str = "", splits: dict[str, str] | None = None
) -> dict[str, float]:
    """``<prefix><machine>/section_XX/<metric>`` for every section, and ``<prefix>official_score`` by
    the definition of the data's ``year``; for sections of several splits, ``<prefix>official_score/<split>``
    each and ``<prefix>official_score`` the development split's (what a sweep tunes on)."""
    metrics = {}
    for section in sections:
        values = section.metrics()
        metrics.update(
            {
                f"{prefix}{section_key(section.machine, section.section_id)}/{metric_key(c)}": values[c]
                for c in SECTION_COLUMNS
            }
        )
    by_split = sections_by_split(sections, splits)
    for split, members in by_split.items():
        metrics[f"{prefix}official_score" + (f"/{split}" if split else "")] = year_official_score(members, year)
    if "" not in by_split:
        metrics[f"{prefix}official_score"] = metrics[f"{prefix}official_score/{'dev' if 'dev' in by_split else 'eval'}"]
    return metrics


class OfficialEvaluationCallback(L.Callback):
    """Collects each test clip's score and decision, then per machine type and section writes
    ``anomaly_score_*`` / ``decision_result_*`` CSVs to ``submission_dir`` and, where the test
    labels are known, computes the official metrics and logs them (``test/<machine>/section_XX/<metric>``
    and ``test/official_score``) to every attached logger. ``sections`` keeps the results for
    aggregation across runs, ``metrics`` the logged values, ``scores`` and ``embeddings`` each test
    clip's (score, decision) and mean representation by its index in the datamodule's ``test_clips``:
    what :class:`asd.evaluation.views.TensorBoardViews` draws, after this callback.
    """

    def __init__(self, submission_dir: str | Path):
        self.submission_dir = Path(submission_dir)
        self.sections: list[SectionResult] = []
        self.metrics: dict[str, float] = {}
        self.scores: dict[int, tuple[float, int]] = {}
        self.embeddings: dict[int, np.ndarray] = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.scores, self.embeddings, self.sections, self.metrics = {}, {}, [], {}

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for row, index in enumerate(outputs["index"].tolist()):
            self.scores[index] = (float(outputs["scores"][row]), int(outputs["decisions"][row]))
            self.embeddings[index] = outputs["embeddings"][row].numpy()

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:
            self._gather_from_all_ranks(pl_module)
        labelled = trainer.datamodule.labelled_machines
        results = section_results([c.info for c in trainer.datamodule.test_clips], self.scores, labelled)
        self.sections = [s for s in results.values() if s.machine in labelled]
        if not trainer.is_global_zero:
            return
        for section in results.values():
            write_section(
                self.submission_dir,
                section.machine,
                section.section_id,
                section.file_names,
                section.scores,
                section.decisions,
            )
        unlabelled = sorted({s.machine for s in results.values()} - labelled)
        if unlabelled:
            log.warning(
                "test labels unknown for %s (evaluation data without ground truth): wrote their scores to %s only",
                ", ".join(unlabelled),
                self.submission_dir,
            )
        if not self.sections:
            return
        datamodule = trainer.datamodule
        self.metrics = section_metric_logs(self.sections, datamodule.year, "test/", datamodule.machine_splits)
        pl_module.log_dict(self.metrics, rank_zero_only=True)

    def _gather_from_all_ranks(self, pl_module) -> None:
        """Under DDP each rank scored a share of the test clips (equal shares: the distributed
        sampler pads with repeats, which score the same); every rank gets them all."""
        indices = sorted(self.scores)
        rows = torch.tensor([[i, *self.scores[i]] for i in indices], dtype=torch.float64, device=pl_module.device)
        embeddings = torch.from_numpy(np.stack([self.embeddings[i] for i in indices])).to(pl_module.device)
        all_rows = pl_module.all_gather(rows).reshape(-1, 3).cpu()
        all_embeddings = pl_module.all_gather(embeddings).reshape(len(all_rows), -1).cpu()
        for (index, score, decision), embedding in zip(all_rows.tolist(), all_embeddings):
            self.scores[int(index)] = (score, int(decision))
            self.embeddings[int(index)] = embedding.numpy()


class EpochEvaluationCallback(L.Callback):
    """Every ``every_n_epochs`` training epochs: fit the back-end on the training clips, score the
    labelled test clips and log each section's metrics as ``epoch/<machine>/section_XX/<metric>``,
    so TensorBoard draws AUC and pAUC curves over training. For analysis only: choosing the
    epoch by these curves would tune on the test data."""

    def __init__(self, every_n_epochs: int = 5):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        datamodule = trainer.datamodule
        if (trainer.current_epoch + 1) % self.every_n_epochs or not datamodule.has_test_labels:
            return
        pl_module.fit_backend(datamodule.train_clip_dataloader())
        collected = {}
        was_training = pl_module.training
        pl_module.eval()
        for batch in datamodule.test_dataloader():
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            scores, decisions = pl_module.score_batch(batch)
            collected.update(zip(batch["index"].tolist(), zip(scores.tolist(), decisions)))
        pl_module.train(was_training)
        sections = list(section_results([c.info for c in datamodule.test_clips], collected, labelled=True).values())
        pl_module.log_dict(section_metric_logs(sections, datamodule.year, prefix="epoch/"))
