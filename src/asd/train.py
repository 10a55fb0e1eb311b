"""Train and test a model on one or more machine types.

python -m asd.train                                   # AE on the embedded synthetic data
python -m asd.train data=dcase2024 data.root=/path machine=fan model=ae backend=mahalanobis
python -m asd.train -m machine=ToyRotor,ToyHum        # one job per machine type
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from asd.backends import build_backend
from asd.config_types import check_config_types
from asd.data.index import run_data_splits
from asd.data.synthetic import ensure_dataset
from asd.evaluation.callback import OfficialEvaluationCallback
from asd.evaluation.metrics import SectionResult
from asd.evaluation.results import RunResults, section_results
from asd.jobs import config_dir, run_job
from asd.representations import save_representations
from asd.run_directory import REPRESENTATIONS, SYSTEMS, RunRecord
from asd.system import save_system
from asd.vocabulary import DOMAIN_CODES

log = logging.getLogger(__name__)


def machine_groups(cfg: DictConfig) -> list[list[str]]:
    types = list(cfg.machine.types)
    if cfg.scope == "per_machine":
        return [[m] for m in types]
    if cfg.scope == "joint":
        return [types]
    raise ValueError(f"scope must be 'per_machine' or 'joint', got {cfg.scope!r}")


def fit_and_test(
    cfg: DictConfig, machines: list[str], output_dir: Path
) -> tuple[list[SectionResult], list[SectionResult]]:
    """Fit the configured model on ``machines`` and test it; return every test section's results
    (labels -1 where unknown) and the training clips' out-of-sample scores per section."""
    name = "+".join(machines)
    model = hydra.utils.instantiate(cfg.model, backend=build_backend(cfg.backend))
    datamodule = hydra.utils.instantiate(
        datamodule_settings(cfg.data),
        machines=machines,
        input=model.data_input,
        validation_split=model.validation_split,
    )
    evaluation = OfficialEvaluationCallback()
    # the evaluation first: callbacks that show its results (TensorBoard views) run after it
    callbacks = [evaluation] + [hydra.utils.instantiate(c) for c in cfg.callbacks.values() if c is not None]
    loggers = [hydra.utils.instantiate(c, version=name) for c in cfg.logger.values()]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    model.keep_representations = bool(cfg.get("save_representations", False))
    log.info("fitting %s on %s", cfg.model._target_.rsplit(".", 1)[-1], name)
    if model.trainable:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_checkpoint(cfg, loggers, output_dir))
    trainer.test(model, datamodule=datamodule, verbose=False)
    if trainer.is_global_zero:
        save_system(output_dir / SYSTEMS / f"{name}.pt", model, datamodule, cfg)
        if model.keep_representations and trainer.world_size > 1:
            # each rank scored a share of the test clips; gathering their rows is not implemented
            log.warning("representations are not saved under DDP (asd.score needs a one-process run)")
        elif model.keep_representations:
            clips = {"train": datamodule.train_clips, "test": datamodule.test_clips}
            save_representations(output_dir / REPRESENTATIONS / f"{name}.npz", clips, model.kept_representations)
    if not all(c.info.domain in DOMAIN_CODES for c in datamodule.train_clips):
        return evaluation.tested, []  # DCASE 2020: no domains, nothing to normalise an ensemble by
    training = section_results([c.info for c in datamodule.train_clips], model.training_scores, labelled=True)
    return evaluation.tested, list(training.values())


def resume_checkpoint(cfg: DictConfig, loggers: list, output_dir: Path) -> str | None:
    """``last.ckpt`` of the same machine group in ``cfg.resume_from`` (an earlier run directory)."""
    if not cfg.get("resume_from"):
        return None
    if not loggers:
        raise ValueError("resume_from needs a logger: checkpoints are kept in the logger's folder")
    relative = Path(loggers[0].log_dir).resolve().relative_to(output_dir.resolve())
    checkpoint = Path(cfg.resume_from) / relative / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"{checkpoint}: no checkpoint to resume from (the run stopped before its first epoch ended?)"
        )
    log.info("resuming from %s", checkpoint)
    return str(checkpoint)


def datamodule_settings(data: DictConfig) -> dict:
    """The data config without the generator's settings (``data.synthetic``), which the datamodule,
    a reader of datasets, does not take."""
    settings = OmegaConf.to_container(data, resolve=True)
    settings.pop("synthetic")
    return settings


def provide_synthetic_dataset(data: DictConfig) -> None:
    """Write the synthetic dataset to ``data.root`` unless it holds this seed's copy (``data.synthetic.seed``
    null: real data, nothing written; its root must exist)."""
    generator = data.synthetic
    if generator.seed is not None:
        ensure_dataset(
            data.root, generator.seed, channels=generator.channels, profile=generator.profile, year=data.year
        )


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Fit and test per the config; return (metrics, objects). Metrics are fractions in [0, 1]."""
    check_config_types(cfg)
    provide_synthetic_dataset(cfg.data)
    output_dir = Path(cfg.paths.output_dir)
    record = RunRecord("asd.train", int(cfg.data.year), run_data_splits(cfg))
    if rank_zero_only.rank == 0:
        record.write(output_dir)
    sections: list[SectionResult] = []
    training: list[SectionResult] = []
    for machines in machine_groups(cfg):
        L.seed_everything(cfg.seed, workers=True)  # each group trains as if run alone
        tested, trained = fit_and_test(cfg, machines, output_dir)
        sections += tested
        training += trained
    results = RunResults(record.year, sections, training, record.machine_splits)
    if rank_zero_only.rank != 0:  # under DDP, other ranks computed the same sections; rank 0 writes
        return {}, {"sections": results.labelled}
    return results.write(output_dir), {"sections": results.labelled}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    return run_job(cfg, lambda job_cfg: train(job_cfg)[0])


if __name__ == "__main__":
    main()
