"""What every anomaly-detection LightningModule shares: a frontend that maps clips to
representations, a scoring back-end fitted on the training clips, and a decision threshold."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch

from asd.backends import ScoringBackend, cross_fitted_scores
from asd.data.datamodule import ClipBatch
from asd.evaluation.threshold import NearestDomain, decision_threshold
from asd.vocabulary import DOMAIN_CODES, DOMAINS

log = logging.getLogger(__name__)


#: Fewer target training clips than this give the target model no threshold of its own.
MIN_THRESHOLD_CLIPS = 5


def decision_thresholds(
    scores: np.ndarray, domains: list[str], sections: list[str], percentile: float
) -> dict[str, list[float]]:
    """Per section, ``[source threshold, target threshold]``: the
    :func:`asd.evaluation.threshold.decision_threshold` (the gamma-fitted ``percentile`` quantile, never
    below the conformal order statistic) of the out-of-sample training scores of its source clips,
    and of its target clips (all its clips where the domain is unknown, as in DCASE 2020; no target
    threshold where a section has fewer than :data:`MIN_THRESHOLD_CLIPS` target clips).

    A test clip is judged against the threshold of the model that scored it (:func:`decide`): a
    domain-wise back-end scores each clip under one model per domain, source first, and keeps the
    smallest (:meth:`asd.backends.ScoringBackend.score_with_models`). The domains' scores lie on
    different scales (ten target clips make a sparser bank, a rougher covariance): one threshold
    flags nearly every normal target clip, or no source clip. Which model scored a clip is known
    without its domain label, so the same rule decides evaluation data, where the domain is hidden.
    A domain-blind back-end (MSE, the classifier's score) has one model: a clip is judged as the domain
    of its nearest training clip (:class:`asd.evaluation.threshold.NearestDomain`), whose threshold it
    meets. The DCASE baselines judge every clip by one source threshold, which flagged every normal
    target clip of a type whose target clips score above its anomalous source clips.

    ``scores`` must be out-of-sample (:func:`asd.backends.cross_fitted_scores`): a memory bank
    scoring its own members finds each at distance zero.
    """
    sections_array, domains_array = np.asarray(sections), np.asarray(domains)
    thresholds = {}
    for section in np.unique(sections_array):
        chosen = sections_array == section
        source, target = chosen & (domains_array == DOMAINS[0]), chosen & (domains_array == DOMAINS[1])
        per_domain = [decision_threshold(scores[source if source.any() else chosen], percentile)]
        if target.sum() >= MIN_THRESHOLD_CLIPS:
            per_domain.append(decision_threshold(scores[target], percentile))
        thresholds[str(section)] = per_domain
    return thresholds


def decide(
    scores: np.ndarray, models: np.ndarray, sections: list[str], thresholds: dict[str, list[float]]
) -> list[int]:
    """1 where a clip's score exceeds the threshold of its section and of the model that scored it
    (:func:`decision_thresholds`; a model without a threshold of its own: the source one)."""
    return [
        int(score > thresholds[str(s)][int(m) if int(m) < len(thresholds[str(s)]) else 0])
        for score, m, s in zip(scores, models, sections)
    ]


class AnomalyDetectionModule(L.LightningModule):
    """Subclasses implement :meth:`representations`; testing fits the back-end first.

    ``data_input`` tells the datamodule what the frontend reads ("frames", "clips" or
    "waveforms"); ``trainable`` False marks memory-bank models, which skip ``fit``.

    Before the first test batch, one pass over the datamodule's normal training clips gives
    their representations; the back-end is fitted on them, and each section's decision
    threshold is fitted on the training clips' out-of-sample scores (:func:`decision_thresholds`).
    """

    data_input = "clips"
    trainable = True
    #: the share of the training frame vectors the datamodule holds out for val/loss (model=ae)
    validation_split = 0.0
    #: Weights (state-dict prefix) that come from a pretrained file rather than training: a saved
    #: system keeps their fingerprint, not their values (asd.system); see base_weight_names.
    base_weights_prefix: str | None = None
    #: The fewest log-mel frames a clip needs to be scored (asd.predict refuses shorter audio).
    min_frames: int = 1
    #: Whether the representations are class logits (what backend=classifier scores).
    gives_logits: bool = False

    def __init__(self, backend: ScoringBackend, decision_percentile: float = 0.9):
        super().__init__()
        self.backend = backend
        self.decision_percentile = decision_percentile
        self.decision_thresholds: dict[str, list[float]] = {}
        #: the domain a domain-blind back-end's score is judged as (fitted with the back-end)
        self.nearest_domain = NearestDomain()
        #: each training clip's (out-of-sample score, decision, domain judged as) by its index
        self.training_scores: dict[int, tuple[float, int, int]] = {}
        #: Whether fitting and testing keep every clip's representation (by its index in the
        #: datamodule's train_clips / test_clips), for the run's representations/ (asd.score).
        self.keep_representations = False
        self.kept_representations: dict[str, dict[int, np.ndarray]] = {"train": {}, "test": {}}

    def base_weight_names(self) -> set[str]:
        """State-dict keys of the weights that come from a pretrained file, not from training."""
        prefix = self.base_weights_prefix
        return {key for key in self.state_dict() if key.startswith(prefix)} if prefix else set()

    def representations(self, batch: ClipBatch) -> list[torch.Tensor]:
        """One (rows x dims) tensor per clip of the batch."""
        raise NotImplementedError

    def check_backend(self) -> None:
        """Before any training: a back-end that cannot read this frontend's rows is a config error."""
        if self.backend.needs_logits and not self.gives_logits:
            raise ValueError(
                f"backend={type(self.backend).__name__} scores class logits, which {type(self).__name__} does not give "
                "with these settings: use model=mfn_arcface|mfn_adacos with model.representation=logits, or another back-end"
            )

    def on_fit_start(self) -> None:
        self.check_backend()

    def on_test_start(self) -> None:
        self.check_backend()
        self.fit_backend(self.trainer.datamodule.train_clip_dataloader())

    @torch.no_grad()
    def fit_backend(self, train_clip_loader) -> None:
        was_training = self.training
        self.eval()
        reps, domains, sections, indices = [], [], [], []
        for batch in train_clip_loader:
            batch = self.transfer_batch_to_device(batch, self.device, 0)
            reps += self.batch_representations(batch)
            domains += list(batch["domain"])
            sections += batch["section"]
            indices += batch["index"].tolist()
        if self.keep_representations:
            self.kept_representations["train"] = dict(zip(indices, reps))
        self.fit_backend_on(reps, domains, sections, indices)
        self.train(was_training)

    def fit_backend_on(
        self, reps: list[np.ndarray], domains: list[str], sections: list[str], indices: list[int]
    ) -> None:
        """Fit the back-end and the decision thresholds on the training clips' representations
        (also what ``asd.score`` calls, on a run's saved representations)."""
        self.backend.fit(reps, domains, sections)
        train_scores, train_models = cross_fitted_scores(self.backend, reps, domains, sections)
        # only a domain-blind back-end needs the estimate (a domain-wise one knows which model scored a
        # clip); a training clip's domain is known: it is judged as that one
        self.nearest_domain = NearestDomain()
        if not self.backend.domain_wise:
            self.nearest_domain = NearestDomain.fit(reps, domains, sections)
            train_models = np.array([DOMAIN_CODES.get(d, 0) for d in domains])
        self.decision_thresholds = decision_thresholds(train_scores, domains, sections, self.decision_percentile)
        # each training clip's (out-of-sample score, decision, domain judged as) by its index in the
        # datamodule's train_clips: the run keeps them (training_scores.csv) for ensembles and score fusion
        decisions = decide(train_scores, train_models, sections, self.decision_thresholds)
        self.training_scores = {
            i: (float(score), d, int(m)) for i, score, d, m in zip(indices, train_scores, decisions, train_models)
        }
        log.info("back-end %s fitted on %d training clips", type(self.backend).__name__, len(reps))

    @torch.no_grad()
    def score_batch(self, batch: ClipBatch) -> tuple[np.ndarray, list[int], np.ndarray]:
        """A batch's clips' anomaly scores, 0/1 decisions and the domains they were judged as
        (:meth:`score_representations`)."""
        return self.score_representations(self.batch_representations(batch), batch["section"])

    @torch.no_grad()
    def batch_representations(self, batch: ClipBatch) -> list[np.ndarray]:
        return [r.detach().cpu().numpy() for r in self.representations(batch)]

    def score_representations(
        self, reps: list[np.ndarray], sections: list[str]
    ) -> tuple[np.ndarray, list[int], np.ndarray]:
        """Scores, 0/1 decisions against the thresholds of their sections and of the domains they were
        judged as (0 source, 1 target: the model of a domain-wise back-end that scored the clip, else the
        nearest training clip's domain; :func:`decision_thresholds`), and those domains."""
        scores, models = self.backend.score_with_models(reps, sections)
        if not self.backend.domain_wise:
            models = self.nearest_domain.estimate(reps, sections)
        return scores, decide(scores, models, sections, self.decision_thresholds), models

    def test_step(self, batch: ClipBatch, batch_idx: int) -> dict:
        reps = self.batch_representations(batch)
        if self.keep_representations:
            self.kept_representations["test"].update(zip(batch["index"].tolist(), reps))
        scores, decisions, judged = self.score_representations(reps, batch["section"])
        return {
            "index": batch["index"].cpu(),
            "scores": torch.from_numpy(scores),
            "decisions": torch.tensor(decisions),
            "judged_domains": torch.from_numpy(judged),
            # what the back-end sees, averaged over each clip's rows: for TensorBoard's projector
            "embeddings": torch.from_numpy(np.stack([r.mean(axis=0) for r in reps])),
        }
