"""Lightning callback that turns test-step scores into the official files and metrics."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from asd.data.datamodule import section_key
from asd.data.filenames import format_attributes
from asd.evaluation.metrics import SECTION_COLUMNS, SectionResult, official_score
from asd.evaluation.submission import write_section

log = logging.getLogger(__name__)

LABEL_CODES = {"normal": 0, "anomaly": 1}
DOMAIN_CODES = {"source": 0, "target": 1}


def metric_key(column: str) -> str:
    """'AUC (source)' -> 'auc_source', for logger-friendly names."""
    return column.lower().replace(" score", "").replace(" (", "_").replace(")", "").replace(" ", "_")


def section_results(
    clips, collected: dict[int, tuple[float, int]], labelled: bool
) -> dict[tuple[str, str], SectionResult]:
    """Test clips' (score, decision) by clip index, grouped per machine type and section.

    Without test labels (evaluation data without ground truth), labels and domains are -1.
    """
    missing = [clips[i].path for i in range(len(clips)) if i not in collected]
    if missing:
        raise RuntimeError(f"no score was produced for {len(missing)} test clips, e.g. {missing[0]}")
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        groups[(clip.info.machine, clip.info.section_id)].append(i)
    results = {}
    for (machine, section_id), indices in sorted(groups.items()):
        results[(machine, section_id)] = SectionResult(
            machine=machine,
            section_id=section_id,
            file_names=np.array([clips[i].info.file_name for i in indices]),
            labels=np.array([LABEL_CODES[clips[i].info.label] if labelled else -1 for i in indices]),
            domains=np.array([DOMAIN_CODES[clips[i].info.domain] if labelled else -1 for i in indices]),
            scores=np.array([collected[i][0] for i in indices]),
            decisions=np.array([collected[i][1] for i in indices]),
        )
    return results


def section_metric_logs(sections: list[SectionResult], prefix: str = "") -> dict[str, float]:
    """``<prefix><machine>/section_XX/<metric>`` for every section, and ``<prefix>official_score``."""
    metrics = {}
    for section in sections:
        values = section.metrics()
        metrics.update(
            {
                f"{prefix}{section.machine}/section_{section.section_id}/{metric_key(c)}": values[c]
                for c in SECTION_COLUMNS
            }
        )
    metrics[f"{prefix}official_score"] = official_score([s.metrics() for s in sections])
    return metrics


class OfficialEvaluationCallback(L.Callback):
    """Collects each test clip's score and decision, then per machine type and section writes
    ``anomaly_score_*`` / ``decision_result_*`` CSVs to ``submission_dir`` and, where the test
    labels are known, computes the official metrics and logs them (``test/<machine>/section_XX/<metric>``
    and ``test/official_score``) to every attached logger. TensorBoard also gets score histograms
    (normal/anomalous x source/target), ROC curves as images, log-mel images of a few normal and
    anomalous test clips, the clips' embeddings in the projector (label, domain, attributes as
    metadata) and the hparams tab with the official score. ``sections`` keeps the results for
    aggregation across runs.
    """

    def __init__(self, submission_dir: str | Path, log_mel_examples: int = 2):
        self.submission_dir = Path(submission_dir)
        self.log_mel_examples = log_mel_examples
        self.sections: list[SectionResult] = []
        self._collected: dict[int, tuple[float, int]] = {}
        self._embeddings: dict[int, np.ndarray] = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._collected, self._embeddings = {}, {}
        self.sections = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for row, index in enumerate(outputs["index"].tolist()):
            self._collected[index] = (float(outputs["scores"][row]), int(outputs["decisions"][row]))
            self._embeddings[index] = outputs["embeddings"][row].numpy()

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:
            self._gather_from_all_ranks(pl_module)
        labelled = trainer.datamodule.has_test_labels
        results = section_results(trainer.datamodule.test_clips, self._collected, labelled)
        self.sections = list(results.values()) if labelled else []
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
        if not labelled:
            log.warning(
                "test labels unknown (evaluation data without ground truth): wrote scores to %s only",
                self.submission_dir,
            )
            return
        metrics = section_metric_logs(self.sections, prefix="test/")
        pl_module.log_dict(metrics, rank_zero_only=True)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                self._tensorboard_views(logger, trainer, pl_module, metrics)

    def _gather_from_all_ranks(self, pl_module) -> None:
        """Under DDP each rank scored a share of the test clips (equal shares: the distributed
        sampler pads with repeats, which score the same); every rank gets them all."""
        indices = sorted(self._collected)
        rows = torch.tensor([[i, *self._collected[i]] for i in indices], dtype=torch.float64, device=pl_module.device)
        embeddings = torch.from_numpy(np.stack([self._embeddings[i] for i in indices])).to(pl_module.device)
        all_rows = pl_module.all_gather(rows).reshape(-1, 3).cpu()
        all_embeddings = pl_module.all_gather(embeddings).reshape(len(all_rows), -1).cpu()
        for (index, score, decision), embedding in zip(all_rows.tolist(), all_embeddings):
            self._collected[int(index)] = (score, int(decision))
            self._embeddings[int(index)] = embedding.numpy()

    def _tensorboard_views(self, logger: TensorBoardLogger, trainer, pl_module, metrics: dict[str, float]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import roc_curve

        writer = logger.experiment
        for section in self.sections:
            name = f"{section.machine}/section_{section.section_id}"
            for domain, domain_code in DOMAIN_CODES.items():
                for label, label_code in LABEL_CODES.items():
                    chosen = (section.domains == domain_code) & (section.labels == label_code)
                    if chosen.any():
                        writer.add_histogram(f"scores/{name}/{domain}_{label}", section.scores[chosen], global_step=0)
            figure, axis = plt.subplots(figsize=(4.5, 4.5))
            for domain, domain_code in DOMAIN_CODES.items():
                subset = (section.domains == domain_code) | (section.labels == 1)
                false_positive, true_positive, _ = roc_curve(section.labels[subset], section.scores[subset])
                auc = section.metrics()[f"AUC ({domain})"]
                axis.plot(false_positive, true_positive, label=f"{domain} normals + all anomalies (AUC {auc:.3f})")
            axis.plot([0, 1], [0, 1], "k:", linewidth=0.8)
            axis.axvline(0.1, color="grey", linewidth=0.8, linestyle="--")  # pAUC's max FPR
            axis.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC {name}")
            axis.legend(fontsize=7, loc="lower right")
            writer.add_figure(f"roc/{name}", figure, global_step=0)
        self._log_mel_images(writer, trainer.datamodule, plt)
        self._projector(writer, trainer.datamodule)
        hparams = {key: value for key, value in pl_module.hparams.items() if isinstance(value, (int, float, str, bool))}
        hparams["backend"] = type(pl_module.backend).__name__
        logger.log_hyperparams(hparams, metrics={"hp/official_score": metrics["test/official_score"]})

    def _log_mel_images(self, writer, datamodule, plt) -> None:
        """The first few normal and anomalous test clips of each section and domain, with their scores."""
        chosen: dict[tuple, list[int]] = defaultdict(list)
        for i, clip in enumerate(datamodule.test_clips):
            key = (clip.info.machine, clip.info.section_id, clip.info.domain, clip.info.label)
            if len(chosen[key]) < self.log_mel_examples:
                chosen[key].append(i)
        for (machine, section_id, domain, label), indices in sorted(chosen.items()):
            figure, axes = plt.subplots(1, len(indices), figsize=(4 * len(indices), 3), squeeze=False)
            for axis, i in zip(axes[0], indices):
                axis.imshow(datamodule.test_log_mel(i).numpy(), origin="lower", aspect="auto", cmap="magma")
                axis.set(
                    title=f"{datamodule.test_clips[i].info.file_name[:40]}\nscore {self._collected[i][0]:.4g}",
                    xlabel="frame",
                    ylabel="mel bin",
                )
                axis.title.set_fontsize(7)
            figure.tight_layout()
            writer.add_figure(f"log_mel/{machine}/section_{section_id}/{domain}_{label}", figure, global_step=0)

    def _projector(self, writer, datamodule) -> None:
        clips = datamodule.test_clips
        metadata = [
            [
                c.info.label,
                c.info.domain,
                section_key(c.info),
                format_attributes(c.info.attributes) or "none",
                c.info.file_name,
            ]
            for c in clips
        ]
        embeddings = np.stack([self._embeddings[i] for i in range(len(clips))])
        writer.add_embedding(
            embeddings,
            metadata=metadata,
            metadata_header=["label", "domain", "section", "attributes", "file"],
            tag="test_embeddings",
            global_step=0,
        )


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
        sections = list(section_results(datamodule.test_clips, collected, labelled=True).values())
        pl_module.log_dict(section_metric_logs(sections, prefix="epoch/"))
