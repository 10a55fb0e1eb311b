"""The margin classification heads of the trained embedding models (MobileFaceNet, multi-resolution,
fine-tuned encoders), one definition for all: which losses exist, how the head is built, and how
its class names are learnt from the data and kept in the checkpoint."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from asd.models.mobilefacenet import ArcMarginHead

#: model.loss: ArcFace (fixed scale, additive angular margin), AdaCos (adaptive scale, no margin),
#: sub-cluster AdaCos (AdaCos over ``sub_centers`` centres per class, Wilkinghoff), AdaProj (AdaCos
#: on the cosine with the projection onto a ``sub_centers``-dimensional subspace per class)
MARGIN_LOSSES = ("arcface", "adacos", "sc_adacos", "adaproj")


def check_margin_loss(loss: str) -> None:
    if loss not in MARGIN_LOSSES:
        raise ValueError(f"model.loss must be one of {', '.join(MARGIN_LOSSES)}, got {loss!r}")


def margin_head(hparams, embedding_dim: int, n_classes: int) -> ArcMarginHead:
    """The classification head of ``hparams.loss`` (``scale``, ``margin``, ``sub_centers``), one
    definition for every trained embedding model."""
    adaptive = hparams.loss in ("adacos", "sc_adacos", "adaproj")
    return ArcMarginHead(
        embedding_dim,
        n_classes,
        scale=hparams.scale,
        margin=0.0 if adaptive else hparams.margin,
        adaptive_scale=adaptive,
        adapt_scale=hparams.get("adapt_scale", True),
        sub_centers=hparams.sub_centers if hparams.loss in ("sc_adacos", "adaproj") else 1,
        trainable_centers=hparams.get("trainable_centers", True),
        projection=hparams.loss == "adaproj",
    )


class MarginClassifierMixin:
    """For a LightningModule with ``hparams`` (loss, scale, margin, sub_centers, embedding_dim): the
    number of classes is only known from the data, so the head is built in ``setup`` and the class
    names travel in the checkpoint, which then reloads without the data."""

    head: ArcMarginHead | None
    class_names: list[str]

    def head_classes(self, n_classes: int) -> int:
        """Outputs of the head for the data's classes (subclasses may add classes of their own)."""
        return n_classes

    def head_inputs(self) -> int:
        """The width of the embedding the head reads."""
        return self.hparams.embedding_dim

    def mixup_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, lam: float | torch.Tensor
    ) -> torch.Tensor:
        """The loss of embeddings of mixed clips (a share ``lam`` of each clip, the rest of clip
        ``order[i]``; one share for the batch or one per clip): each class's margin loss, weighted by its share."""
        first = F.cross_entropy(self.head(embeddings, labels), labels, reduction="none")
        second = F.cross_entropy(self.head(embeddings, labels[order]), labels[order], reduction="none")
        return (lam * first + (1 - lam) * second).mean()

    def _build_head(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)
        self.head = margin_head(self.hparams, self.head_inputs(), self.head_classes(len(class_names)))

    def setup(self, stage: str) -> None:
        if self.head is None:
            names = self.trainer.datamodule.class_names
            if len(names) < 2:
                raise ValueError(f"a margin classifier needs at least two classes, the data gives {names}")
            self._build_head(names)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["class_names"] = self.class_names

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.head is None:
            self._build_head(checkpoint["class_names"])
