"""Refit a back-end on a finished run's saved representations and score its test clips again:
seconds, not a retraining.

    python -m asd.score <run_dir> backend=<name> [backend.<key>=...]
    python -m asd.score -m <run_dir> backend=knn,lof,fusion

Writes a complete run directory, as ``asd.train`` does (submission CSVs, ``result.csv``,
``scores.csv``, ``training_scores.csv``, ``summary.csv``, and saved systems with the run's frontend
and the new back-end, which ``asd.predict`` uses). The run must have saved its representations
(``save_representations``, on by default).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from asd.backends import build_backend
from asd.data.index import labelled_machines
from asd.evaluation.results import RunResults, section_results
from asd.jobs import config_dir, run_job
from asd.representations import load_representations
from asd.run_directory import (
    REPRESENTATIONS,
    SYSTEMS,
    RunDirectoryError,
    RunRecord,
    read_run_record,
    run_config,
)
from asd.system import load_system, save_system
from asd.vocabulary import DOMAIN_CODES


def backend_config(cfg: DictConfig, run_cfg: DictConfig) -> dict:
    """The chosen back-end's config, its interpolations (${seed}, ${data.features.n_mels}) resolved in
    the run's config. It replaces the run's back-end node: merged into it, a kNN run's k_source would
    reach another back-end's constructor."""
    merged = OmegaConf.merge(run_cfg, {})
    OmegaConf.update(merged, "backend", OmegaConf.to_container(cfg.backend, resolve=False), merge=False)
    return OmegaConf.to_container(merged.backend, resolve=True)


def score_run(cfg: DictConfig) -> dict[str, float]:
    run_dir, output_dir = Path(cfg.run_dir), Path(cfg.paths.output_dir)
    run_cfg = run_config(run_dir)
    chosen = backend_config(cfg, run_cfg)
    build_backend(chosen)  # its parameters checked before any system is loaded
    systems = sorted((run_dir / SYSTEMS).glob("*.pt"))
    if not systems:
        raise RunDirectoryError(f"{run_dir / SYSTEMS}: no saved systems; only finished runs can be scored again")
    scored = read_run_record(run_dir)
    splits, year = scored.machine_splits, scored.year
    RunRecord("asd.score", year, splits, members=[str(run_dir.resolve())]).write(output_dir)
    sections, training = [], []
    for file in systems:
        saved_path = run_dir / REPRESENTATIONS / f"{file.stem}.npz"
        if not saved_path.is_file():
            raise RunDirectoryError(
                f"{saved_path}: missing; the run did not save its representations (save_representations=false?)"
            )
        system, saved = load_system(file), load_representations(saved_path)
        module = system.module
        module.backend = build_backend(chosen)
        module.check_backend()
        train, test = saved["train"], saved["test"]
        module.fit_backend_on(
            train.representations, train.domains, train.sections, list(range(len(train.representations)))
        )
        scores, decisions, judged = module.score_representations(test.representations, test.sections)
        labelled = labelled_machines(test.infos, splits, year)
        sections += section_results(test.infos, dict(enumerate(zip(scores, decisions, judged))), labelled).values()
        if all(d in DOMAIN_CODES for d in train.domains):
            training += list(section_results(train.infos, module.training_scores, labelled=True).values())
        model_cfg = OmegaConf.to_container(run_cfg.model, resolve=True)
        save_system(
            output_dir / SYSTEMS / file.name,
            module,
            system,
            OmegaConf.create({"model": model_cfg, "backend": chosen}),
        )
    return RunResults(year, sections, training, splits).write(output_dir)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="score")
def main(cfg: DictConfig) -> float | None:
    return run_job(cfg, score_run)


def _run_dir_argument(argv: list[str]) -> list[str]:
    """``python -m asd.score <run_dir> ...``: the first argument that is no override (no ``=``) becomes
    ``run_dir=<it>``, whether or not the folder exists (run_config says so, not Hydra's grammar)."""
    arguments = list(argv)
    for i, argument in enumerate(arguments):
        if argument.startswith("-"):
            continue
        if "=" not in argument:
            arguments[i] = f"run_dir={Path(argument).resolve()}"
        break
    return arguments


if __name__ == "__main__":
    sys.argv[1:] = _run_dir_argument(sys.argv[1:])
    main()
