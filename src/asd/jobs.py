"""What every Hydra entry point shares (asd.train, asd.score): where the configs are, and how one
job runs and fails."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from asd.files import write_text
from asd.run_directory import ERROR

log = logging.getLogger(__name__)


def config_dir() -> str:
    """The packaged configs in an installed wheel, else ``conf/`` of the source checkout."""
    packaged = Path(__file__).resolve().parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")


def run_job(cfg: DictConfig, job: Callable[[DictConfig], dict[str, float]]) -> float | None:
    """One Hydra job (asd.train, asd.score): its ``optimized_metric`` for sweeps. A failure writes its
    traceback to ``error.txt``; a single run then fails, a multirun goes on."""
    try:
        metrics = job(cfg)
    except Exception:
        write_text(Path(cfg.paths.output_dir) / ERROR, traceback.format_exc())
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # In a multirun the other jobs go on: the failure stays on record in this job's folder and
        # in the multirun's summary, which then ends the multirun with an error (asd.report).
        log.exception("job failed; the multirun goes on")
        return cfg.get("failed_job_score")
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None
