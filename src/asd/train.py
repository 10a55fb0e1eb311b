"""Train and test a model on one or more machine types.

python -m asd.train                                   # AE on the embedded synthetic data
python -m asd.train data=dcase2024 data.root=/path machine=fan model=ae backend=mahalanobis
python -m asd.train -m machine=ToyRotor,ToyHum        # one job per machine type
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from asd.backends import build_backend
from asd.config_types import check_config_types
from asd.data.index import run_data_splits
from asd.evaluation.callback import (
    OfficialEvaluationCallback,
    section_metric_logs,
    section_results,
    sections_by_split,
)
from asd.evaluation.metrics import SectionResult, write_clip_scores, write_result_csv, year_official_score
from asd.files import write_text
from asd.representations import save_representations
from asd.system import save_system
from asd.vocabulary import DOMAIN_CODES

log = logging.getLogger(__name__)


def config_dir() -> str:
    """The packaged configs in an installed wheel, else ``conf/`` of the source checkout."""
    packaged = Path(__file__).resolve().parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")


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
    """Fit the configured model on ``machines`` and test it; return the test sections' results and
    the training clips' out-of-sample scores per section."""
    name = "+".join(machines)
    model = hydra.utils.instantiate(cfg.model, backend=build_backend(cfg.backend))
    datamodule = hydra.utils.instantiate(cfg.data, machines=machines, input=model.data_input)
    evaluation = OfficialEvaluationCallback(output_dir / "submission")
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
        save_system(output_dir / "systems" / f"{name}.pt", model, datamodule, cfg)
        if model.keep_representations and trainer.world_size > 1:
            # each rank scored a share of the test clips; gathering their rows is not implemented
            log.warning("representations are not saved under DDP (asd.score needs a one-process run)")
        elif model.keep_representations:
            clips = {"train": datamodule.train_clips, "test": datamodule.test_clips}
            save_representations(output_dir / "representations" / f"{name}.npz", clips, model.kept_representations)
    if not all(c.info.domain in DOMAIN_CODES for c in datamodule.train_clips):
        return evaluation.sections, []  # DCASE 2020: no domains, nothing to normalise an ensemble by
    training = section_results([c.info for c in datamodule.train_clips], model.training_scores, labelled=True)
    return evaluation.sections, list(training.values())


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


def summary_table(sections: list[SectionResult], year: int, splits: dict[str, str] | None = None) -> pd.DataFrame:
    """Per machine type and section: AUC (source), AUC (target), pAUC and the section's score, in %;
    then the official score, one per data split where ``splits`` (machine type -> split) has several.
    Scores follow the definition of the data's ``year`` (a 2021 section: the harmonic mean of its
    per-domain AUC and pAUC)."""
    rows = []
    for section in sorted(sections, key=lambda s: (s.machine, s.section_id)):
        m = section.metrics()
        values = [m["AUC (source)"], m["AUC (target)"], m["pAUC"]]
        rows.append([section.machine, section.section_id, *values, year_official_score([section], year)])
    table = pd.DataFrame(rows, columns=["machine", "section", "AUC (source)", "AUC (target)", "pAUC", "score"])
    for split, members in sections_by_split(sections, splits).items():
        label = f"official score ({split})" if split else "official score"
        table.loc[len(table)] = [label, "", None, None, None, year_official_score(members, year)]
    numeric = ["AUC (source)", "AUC (target)", "pAUC", "score"]
    table[numeric] = table[numeric].astype(float) * 100
    return table


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Fit and test per the config; return (metrics, objects). Metrics are fractions in [0, 1]."""
    check_config_types(cfg)
    output_dir = Path(cfg.paths.output_dir)
    sections: list[SectionResult] = []
    training: list[SectionResult] = []
    for machines in machine_groups(cfg):
        L.seed_everything(cfg.seed, workers=True)  # each group trains as if run alone
        tested, trained = fit_and_test(cfg, machines, output_dir)
        sections += tested
        training += trained
    if rank_zero_only.rank != 0:  # under DDP, other ranks computed the same sections; rank 0 writes
        return {}, {"sections": sections}
    splits = run_data_splits(cfg)
    return write_results(output_dir, sections, training, splits, int(cfg.data.year)), {"sections": sections}


def write_results(
    output_dir: Path,
    sections: list[SectionResult],
    training: list[SectionResult],
    splits: dict[str, str] | None,
    year: int,
) -> dict[str, float]:
    """A run's result files (training_scores.csv, result.csv, scores.csv, summary.csv) and its metrics
    (``splits``: each machine type's data split, to score each split on its own; ``year``: the data's,
    whose official score definition counts); the submission CSVs are written by the evaluation
    (asd.train), asd.score or asd.ensemble."""
    if training:  # the training clips' out-of-sample scores: what asd.ensemble normalises by
        write_clip_scores(output_dir / "training_scores.csv", training)
    if not sections:
        log.info("no test labels: submission CSVs written to %s", output_dir / "submission")
        return {}
    for split, members in sections_by_split(sections, splits).items():
        # the official evaluator's result file scores one split's machine types
        write_result_csv(output_dir / (f"result_{split}.csv" if split else "result.csv"), members, with_ci95=False)
    write_clip_scores(output_dir / "scores.csv", sections)
    table = summary_table(sections, year, splits)
    write_text(output_dir / "summary.csv", table.to_csv(index=False))
    log.info("results (%%) for %s:\n%s", output_dir, table.to_string(index=False, float_format="%.2f", na_rep=""))
    return section_metric_logs(sections, year, splits=splits)


def run_job(cfg: DictConfig, job: Callable[[DictConfig], dict[str, float]]) -> float | None:
    """One Hydra job (asd.train, asd.score): its ``optimized_metric`` for sweeps. A failure writes its
    traceback to ``error.txt``; a single run then fails, a multirun goes on."""
    try:
        metrics = job(cfg)
    except Exception:
        write_text(Path(cfg.paths.output_dir) / "error.txt", traceback.format_exc())
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # In a multirun the other jobs go on: the failure stays on record in this job's folder and
        # in the multirun's summary, which then ends the multirun with an error (asd.report).
        log.exception("job failed; the multirun goes on")
        return cfg.get("failed_job_score")
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    return run_job(cfg, lambda job_cfg: train(job_cfg)[0])


if __name__ == "__main__":
    main()
