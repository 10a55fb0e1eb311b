"""TensorBoard views of a test run, apart from the evaluation that computes what they show."""

from __future__ import annotations

from collections import defaultdict

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger

from asd.data.filenames import format_attributes
from asd.evaluation.callback import OfficialEvaluationCallback
from asd.vocabulary import DOMAIN_CODES, LABEL_CODES, section_key


class TensorBoardViews(L.Callback):
    """After :class:`OfficialEvaluationCallback` (which must come first among the callbacks), draws
    into every TensorBoard logger: score histograms (normal/anomalous x source/target), ROC curves
    as images with the pAUC limit, log-mel images of ``log_mel_examples`` normal and anomalous test
    clips per section and domain, the clips' embeddings in the projector (label, domain, section,
    attributes as metadata) and the hparams tab with the official score. ``callbacks.tensorboard_views=null``
    switches them off; scoring and metrics do not depend on them.
    """

    def __init__(self, log_mel_examples: int = 2):
        self.log_mel_examples = log_mel_examples

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        evaluation = next((c for c in trainer.callbacks if isinstance(c, OfficialEvaluationCallback)), None)
        if evaluation is None or not evaluation.metrics or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                self._draw(logger, trainer, pl_module, evaluation)

    def _draw(self, logger: TensorBoardLogger, trainer, pl_module, evaluation: OfficialEvaluationCallback) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import roc_curve

        writer = logger.experiment
        for section in evaluation.sections:
            name = section_key(section.machine, section.section_id)
            for domain, domain_code in DOMAIN_CODES.items():
                for label, label_code in LABEL_CODES.items():
                    chosen = (section.domains == domain_code) & (section.labels == label_code)
                    if chosen.any():
                        writer.add_histogram(f"scores/{name}/{domain}_{label}", section.scores[chosen], global_step=0)
            figure, axis = plt.subplots(figsize=(4.5, 4.5))
            curves = {
                f"{d} normals + all anomalies": (section.domains == c, f"AUC ({d})") for d, c in DOMAIN_CODES.items()
            }
            if (section.domains == -1).all():  # DCASE 2020: no domains, one curve over the section
                curves = {"all clips": (np.ones(len(section.labels), bool), "AUC (all)")}
            for label, (in_domain, column) in curves.items():
                subset = in_domain | (section.labels == 1)
                false_positive, true_positive, _ = roc_curve(section.labels[subset], section.scores[subset])
                axis.plot(false_positive, true_positive, label=f"{label} (AUC {section.metrics()[column]:.3f})")
            axis.plot([0, 1], [0, 1], "k:", linewidth=0.8)
            axis.axvline(0.1, color="grey", linewidth=0.8, linestyle="--")  # pAUC's max FPR
            axis.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC {name}")
            axis.legend(fontsize=7, loc="lower right")
            writer.add_figure(f"roc/{name}", figure, global_step=0)
        self._log_mel_images(writer, trainer.datamodule, plt, evaluation)
        self._projector(writer, trainer.datamodule, evaluation)
        hparams = {key: value for key, value in pl_module.hparams.items() if isinstance(value, (int, float, str, bool))}
        hparams["backend"] = type(pl_module.backend).__name__
        logger.log_hyperparams(hparams, metrics={"hp/official_score": evaluation.metrics["test/official_score"]})

    def _log_mel_images(self, writer, datamodule, plt, evaluation) -> None:
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
                    title=f"{datamodule.test_clips[i].info.file_name[:40]}\nscore {evaluation.scores[i][0]:.4g}",
                    xlabel="frame",
                    ylabel="mel bin",
                )
                axis.title.set_fontsize(7)
            figure.tight_layout()
            writer.add_figure(f"log_mel/{section_key(machine, section_id)}/{domain}_{label}", figure, global_step=0)

    def _projector(self, writer, datamodule, evaluation) -> None:
        clips = datamodule.test_clips
        metadata = [
            [
                c.info.label,
                c.info.domain,
                section_key(c.info.machine, c.info.section_id),
                format_attributes(c.info.attributes) or "none",
                c.info.file_name,
            ]
            for c in clips
        ]
        embeddings = np.stack([evaluation.embeddings[i] for i in range(len(clips))])
        writer.add_embedding(
            embeddings,
            metadata=metadata,
            metadata_header=["label", "domain", "section", "attributes", "file"],
            tag="test_embeddings",
            global_step=0,
        )
