"""Lightning callback that turns test-step scores into the official files and metrics."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger

from asd.evaluation.metrics import SECTION_COLUMNS, SectionResult, official_score
from asd.evaluation.submission import write_section

log = logging.getLogger(__name__)

LABEL_CODES = {"normal": 0, "anomaly": 1}
DOMAIN_CODES = {"source": 0, "target": 1}


def metric_key(column: str) -> str:
    """'AUC (source)' -> 'auc_source', for logger-friendly names."""
    return column.lower().replace(" score", "").replace(" (", "_").replace(")", "").replace(" ", "_")


class OfficialEvaluationCallback(L.Callback):
    """Collects each test clip's score and decision, then per machine type and section writes
    ``anomaly_score_*`` / ``decision_result_*`` CSVs to ``submission_dir`` and, where the test
    labels are known, computes the official metrics and logs them (``test/<machine>/section_XX/<metric>``
    and ``test/official_score``) to every attached logger; TensorBoard also gets score histograms
    (normal/anomalous x source/target), ROC curves as images and the hparams tab with the
    official score. ``sections`` keeps the results for aggregation across runs.
    """

    def __init__(self, submission_dir: str | Path):
        self.submission_dir = Path(submission_dir)
        self.sections: list[SectionResult] = []
        self._collected: dict[int, tuple[float, int]] = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._collected = {}
        self.sections = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for index, score, decision in zip(outputs["index"].tolist(), outputs["scores"].tolist(), outputs["decisions"].tolist()):
            self._collected[index] = (score, decision)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        clips = trainer.datamodule.test_clips
        missing = [clips[i].path for i in range(len(clips)) if i not in self._collected]
        if missing:
            raise RuntimeError(f"no score was produced for {len(missing)} test clips, e.g. {missing[0]}")
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, clip in enumerate(clips):
            groups[(clip.info.machine, clip.info.section_id)].append(i)
        labelled = trainer.datamodule.has_test_labels
        for (machine, section_id), indices in sorted(groups.items()):
            names = np.array([clips[i].info.file_name for i in indices])
            scores = np.array([self._collected[i][0] for i in indices])
            decisions = np.array([self._collected[i][1] for i in indices])
            write_section(self.submission_dir, machine, section_id, names, scores, decisions)
            if not labelled:
                continue
            self.sections.append(
                SectionResult(
                    machine=machine,
                    section_id=section_id,
                    file_names=names,
                    labels=np.array([LABEL_CODES[clips[i].info.label] for i in indices]),
                    domains=np.array([DOMAIN_CODES[clips[i].info.domain] for i in indices]),
                    scores=scores,
                    decisions=decisions,
                )
            )
        if not labelled:
            log.warning("test labels unknown (evaluation data without ground truth): wrote scores to %s only", self.submission_dir)
            return
        metrics = {}
        all_metrics = []
        for section in self.sections:
            values = section.metrics()
            all_metrics.append(values)
            prefix = f"test/{section.machine}/section_{section.section_id}"
            metrics.update({f"{prefix}/{metric_key(c)}": values[c] for c in SECTION_COLUMNS})
        metrics["test/official_score"] = official_score(all_metrics)
        pl_module.log_dict(metrics)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                self._tensorboard_views(logger, pl_module, metrics)

    def _tensorboard_views(self, logger: TensorBoardLogger, pl_module, metrics: dict[str, float]) -> None:
        """Score histograms per domain x label, ROC curves as images, and the hparams tab."""
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
        hparams = {key: value for key, value in pl_module.hparams.items() if isinstance(value, (int, float, str, bool))}
        hparams["backend"] = type(pl_module.backend).__name__
        logger.log_hyperparams(hparams, metrics={"hp/official_score": metrics["test/official_score"]})
