"""Lightning callbacks that collect test-step scores into sections and log their official metrics
(the run's files are written by :class:`asd.evaluation.results.RunResults`)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from asd.evaluation.metrics import SectionResult
from asd.evaluation.results import RunResults, section_results


class OfficialEvaluationCallback(L.Callback):
    """Collects each test clip's score and decision and, where the test labels are known, logs the
    official metrics of the data's year (``test/<machine>/section_XX/<metric>`` and
    ``test/official_score``) to every attached logger. ``tested`` keeps every scored section (labels
    -1 where unknown) for the run's results, ``sections`` the labelled ones, ``metrics`` the logged
    values, ``scores`` and ``embeddings`` each test clip's (score, decision) and mean representation by
    its index in the datamodule's ``test_clips``: what :class:`asd.evaluation.views.TensorBoardViews`
    draws, after this callback.
    """

    def __init__(self):
        self.tested: list[SectionResult] = []
        self.sections: list[SectionResult] = []
        self.metrics: dict[str, float] = {}
        #: (score, decision, domain judged as) by test clip index
        self.scores: dict[int, tuple[float, int, int]] = {}
        self.embeddings: dict[int, np.ndarray] = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.scores, self.embeddings, self.tested, self.sections, self.metrics = {}, {}, [], [], {}

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for row, index in enumerate(outputs["index"].tolist()):
            self.scores[index] = (
                float(outputs["scores"][row]),
                int(outputs["decisions"][row]),
                int(outputs["judged_domains"][row]),
            )
            self.embeddings[index] = outputs["embeddings"][row].numpy()

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:
            self._gather_from_all_ranks(pl_module)
        datamodule = trainer.datamodule
        infos = [c.info for c in datamodule.test_clips]
        results = RunResults(
            datamodule.year,
            list(section_results(infos, self.scores, datamodule.labelled_machines).values()),
            splits=datamodule.machine_splits,
        )
        self.tested, self.sections = results.tested, results.labelled
        if self.sections and trainer.is_global_zero:
            self.metrics = results.metrics(prefix="test/")
            pl_module.log_dict(self.metrics, rank_zero_only=True)

    def _gather_from_all_ranks(self, pl_module) -> None:
        """Under DDP each rank scored a share of the test clips (equal shares: the distributed
        sampler pads with repeats, which score the same); every rank gets them all."""
        indices = sorted(self.scores)
        rows = torch.tensor([[i, *self.scores[i]] for i in indices], dtype=torch.float64, device=pl_module.device)
        embeddings = torch.from_numpy(np.stack([self.embeddings[i] for i in indices])).to(pl_module.device)
        all_rows = pl_module.all_gather(rows).reshape(-1, 4).cpu()
        all_embeddings = pl_module.all_gather(embeddings).reshape(len(all_rows), -1).cpu()
        for (index, score, decision, judged), embedding in zip(all_rows.tolist(), all_embeddings):
            self.scores[int(index)] = (score, int(decision), int(judged))
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
            scores, decisions, judged = pl_module.score_batch(batch)
            collected.update(zip(batch["index"].tolist(), zip(scores.tolist(), decisions, judged.tolist())))
        pl_module.train(was_training)
        tested = section_results([c.info for c in datamodule.test_clips], collected, labelled=True)
        pl_module.log_dict(RunResults(datamodule.year, list(tested.values())).metrics(prefix="epoch/"))
