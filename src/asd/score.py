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
from asd.data.index import labelled_machines, run_data_splits
from asd.evaluation.callback import section_results
from asd.evaluation.submission import write_section
from asd.files import write_text
from asd.representations import load_representations
from asd.system import RunDirectoryError, load_system, save_system
from asd.train import config_dir, run_job, write_results
from asd.vocabulary import DOMAIN_CODES


def run_config(run_dir: Path) -> DictConfig:
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir}: run directory not found")
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise RunDirectoryError(f"{path}: missing; give an asd.train run directory")
    return OmegaConf.load(path)


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
    systems = sorted((run_dir / "systems").glob("*.pt"))
    if not systems:
        raise RunDirectoryError(f"{run_dir / 'systems'}: no saved systems; only finished runs can be scored again")
    splits = run_data_splits(run_cfg)
    sections, training = [], []
    for file in systems:
        saved_path = run_dir / "representations" / f"{file.stem}.npz"
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
        scores, decisions = module.score_representations(test.representations, test.sections)
        labelled = labelled_machines(test.infos, splits)
        tested = list(section_results(test.infos, dict(enumerate(zip(scores, decisions))), labelled).values())
        for s in tested:
            write_section(output_dir / "submission", s.machine, s.section_id, s.file_names, s.scores, s.decisions)
        sections += [s for s in tested if s.machine in labelled]
        if all(d in DOMAIN_CODES for d in train.domains):
            training += list(section_results(train.infos, module.training_scores, labelled=True).values())
        model_cfg = OmegaConf.to_container(run_cfg.model, resolve=True)
        save_system(
            output_dir / "systems" / file.name,
            module,
            system,
            OmegaConf.create({"model": model_cfg, "backend": chosen}),
        )
    write_text(output_dir / "scored_run.txt", f"{run_dir.resolve()}\n")
    return write_results(output_dir, sections, training, splits, int(run_cfg.data.year))


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
