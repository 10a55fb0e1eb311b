"""A trained system saved with its run: everything needed to score new audio without the data.

``<run_dir>/systems/<machines>.pt`` is plain data that ``torch.load(weights_only=True)`` reads —
tensors, numbers, strings, lists and dicts, never pickled code: loading a system file from
someone else cannot run anything, and a system keeps loading when a class changes. It holds

* ``format`` (:data:`SYSTEM_FORMAT`), ``model_config`` and ``backend_config`` (the resolved Hydra
  configs, as YAML), from which the module is rebuilt;
* ``state_dict``: the module's weights, less the frozen pretrained encoder's, which are rebuilt
  from ``encoder.path`` and checked against ``base_fingerprint`` (a SHA-256 of their values): a
  fine-tuned encoder's system holds its adapters, pooling and head only;
* ``class_names``, ``backend_states`` (kNN banks, covariances, … as tensors), ``decision_thresholds``
  (per section: source, then target where fitted; a system of an earlier version holds one number),
  ``nearest_domain`` (per section, the source and target training clips' unit mean rows, by which a
  domain-blind score is judged as a domain; absent in an earlier version's system: judged as source);
* ``feature_config`` and ``audio_config``.

A system file is something users pass to each other, so loading one builds only the classes this
package ships for each place (:data:`BUILDABLE`: a model, its encoder, a back-end, a fusion's members),
with plain keyword arguments: any other target, any Hydra call key (``_args_``, ``_partial_`` …) and
any interpolation (``${…}``, which resolvers would evaluate) is refused before anything is built.
The file decides which of our classes is built, never which code runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
import yaml
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from asd.backends import build_backend
from asd.data.audio import AudioConfig
from asd.data.features import FeatureConfig
from asd.evaluation.threshold import NearestDomain
from asd.files import write_atomically
from asd.models.base import AnomalyDetectionModule
from asd.run_directory import SYSTEMS, RunDirectoryError, recorded_members

SYSTEM_FORMAT = 2


@dataclass
class System:
    module: AnomalyDetectionModule
    feature_config: FeatureConfig
    audio_config: AudioConfig

    @property
    def sections(self) -> list[str]:
        return sorted(self.module.decision_thresholds)


def to_plain(value, where: str = "backend state"):
    """numpy arrays -> tensors (dtype kept), numpy scalars -> Python numbers, containers recursively."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: to_plain(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(item, f"{where}[{i}]") for i, item in enumerate(value))
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    raise TypeError(f"{where}: a {type(value).__name__} cannot be saved as plain data")


def from_plain(value):
    """The inverse of :func:`to_plain`: tensors back to numpy arrays."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {key: from_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(from_plain(item) for item in value)
    return value


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _split_base_weights(module: AnomalyDetectionModule) -> tuple[dict, dict]:
    """(saved weights, frozen base weights rebuilt from the encoder's own file)."""
    base = module.base_weight_names()
    state = module.state_dict()
    return {k: v for k, v in state.items() if k not in base}, {k: v for k, v in state.items() if k in base}


def save_system(path: Path, module: AnomalyDetectionModule, datamodule, cfg: DictConfig) -> None:
    saved_weights, base_weights = _split_base_weights(module)
    payload = {
        "format": SYSTEM_FORMAT,
        "model_config": OmegaConf.to_yaml(cfg.model, resolve=True),
        "backend_config": OmegaConf.to_yaml(cfg.backend, resolve=True),
        "state_dict": saved_weights,
        "base_fingerprint": weights_fingerprint(base_weights) if base_weights else None,
        "class_names": list(getattr(module, "class_names", [])),
        "backend_states": to_plain(module.backend.get_state()),
        "decision_thresholds": {section: [float(t) for t in ts] for section, ts in module.decision_thresholds.items()},
        "nearest_domain": to_plain(module.nearest_domain.state, "nearest_domain"),
        "feature_config": asdict(datamodule.feature_config),
        "audio_config": asdict(datamodule.audio_config),
    }
    write_atomically(path, lambda file: torch.save(payload, file))


#: The classes a system file may build, by place in its configs; conf/model, conf/encoder and
#: conf/backend name no others (tests/test_predict.py checks both ways).
BACKEND_CLASSES = frozenset(
    f"asd.backends.{name}"
    for name in (
        "ClassifierScoreBackend",
        "FusionBackend",
        "KNNBackend",
        "LOFBackend",
        "MahalanobisBackend",
        "MSEBackend",
        "SelectiveMahalanobisBackend",
        "StandardisedErrorBackend",
    )
)
BUILDABLE = {
    "model": frozenset(
        {
            "asd.models.ae.AutoEncoderModule",
            "asd.models.mfn.MobileFaceNetModule",
            "asd.models.multibranch.MultiBranchModule",
            "asd.models.pretrained.PretrainedEmbeddingModule",
            "asd.models.finetune.FineTunedEncoderModule",
        }
    ),
    "model.encoder": frozenset({"asd.models.encoders.BEATsEncoder", "asd.models.encoders.HuggingFaceEncoder"}),
    "backend": BACKEND_CLASSES,
    "backend.members[]": BACKEND_CLASSES,
}
#: Hydra keys that call, bind or reshape: a saved config has no use for them.
CALL_KEYS = ("_args_", "_partial_", "_recursive_", "_convert_")


def _check_buildable(config, file: Path, where: str, place: str) -> None:
    """Refuse a config that would build anything but :data:`BUILDABLE`'s classes at their places."""

    def refuse(why: str):
        raise RunDirectoryError(f"{file}: refused: {why} at {where}; a system file may only build asd's own classes")

    if isinstance(config, dict):
        for key in CALL_KEYS:
            if key in config:
                refuse(f"its config holds the Hydra key {key!r}")
        target = config.get("_target_")
        if target is not None and target not in BUILDABLE.get(place, ()):
            refuse(f"its config names {target!r}")
        for key, item in config.items():
            child = f"{place}.{key}" if target is not None else f"{place}.?"
            if place == "backend.members[]" and key == "members":  # a fusion among a fusion's members
                child = "backend.members"
            _check_buildable(item, file, f"{where}.{key}", child)
    elif isinstance(config, list):
        for i, item in enumerate(config):
            _check_buildable(item, file, f"{where}[{i}]", f"{place}[]")
    elif isinstance(config, str) and "${" in config:
        refuse(f"its config holds the interpolation {config!r}")


def load_system(file: Path) -> System:
    try:
        saved = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # a foreign, damaged or code-carrying file raises many types
        raise RunDirectoryError(
            f"{file}: cannot be loaded by this version of asd: not a plain-data system file "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    if not isinstance(saved, dict) or saved.get("format") != SYSTEM_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise RunDirectoryError(f"{file}: system format {found!r}, this version of asd reads format {SYSTEM_FORMAT}")
    model_config, backend_config = yaml.safe_load(saved["model_config"]), yaml.safe_load(saved["backend_config"])
    for config, place in ((model_config, "model"), (backend_config, "backend")):
        if not isinstance(config, dict) or "_target_" not in config:
            raise RunDirectoryError(f"{file}: its {place} config names no class to build; not a system file of asd")
        _check_buildable(config, file, place, place)
    try:
        backend = build_backend(backend_config)
        extra = {"class_names": saved["class_names"]} if saved["class_names"] else {}
        module: AnomalyDetectionModule = hydra.utils.instantiate(model_config, backend=backend, **extra)
    except InstantiationException as err:
        raise RunDirectoryError(f"{file}: its configs do not build this version's classes ({err})") from err
    _, base_weights = _split_base_weights(module)
    if base_weights and weights_fingerprint(base_weights) != saved["base_fingerprint"]:
        raise RunDirectoryError(
            f"{file}: the pretrained encoder at {model_config.get('encoder', {}).get('path')} is not the one "
            "this system was trained with (its weights differ); point encoder.path at the original file"
        )
    # torch's own key check, without its message of every key: the module is dropped on a mismatch
    mismatch = module.load_state_dict({**base_weights, **saved["state_dict"]}, strict=False)
    missing, unexpected = mismatch.missing_keys, mismatch.unexpected_keys
    if missing or unexpected:
        raise RunDirectoryError(
            f"{file}: its weights do not fit this version's {type(module).__name__} (saved by another version "
            f"of asd?): missing: {', '.join(missing[:3]) or 'none'}; unexpected: {', '.join(unexpected[:3]) or 'none'}"
            + (
                f" ({len(missing)} missing, {len(unexpected)} unexpected in all)"
                if max(len(missing), len(unexpected)) > 3
                else ""
            )
        )
    backend.set_state(from_plain(saved["backend_states"]))
    # systems saved before thresholds were fitted per domain model hold one number per section
    module.decision_thresholds = {
        section: [float(t)] if isinstance(t, (int, float)) else [float(x) for x in t]
        for section, t in saved["decision_thresholds"].items()
    }
    module.nearest_domain = NearestDomain(from_plain(saved.get("nearest_domain", {})))
    return System(module.eval(), FeatureConfig(**saved["feature_config"]), AudioConfig(**saved["audio_config"]))


def load_systems(run_dir: str | Path) -> dict[str, System]:
    """Every system of a run directory, by name (the machine types it was trained on)."""
    folder = Path(run_dir) / SYSTEMS
    files = sorted(folder.glob("*.pt"))
    if not files:
        members = recorded_members(Path(run_dir)) if Path(run_dir).is_dir() else []
        if members:  # an asd.ensemble result: its record names the runs whose systems made its scores
            raise RunDirectoryError(
                f"{run_dir}: an ensemble of {', '.join(members)}, which keeps no systems of its own; "
                "asd.predict scores with one run's systems: give one of its members"
            )
        raise RunDirectoryError(
            f"{folder}: no saved systems; a run saves them when it finishes testing "
            "(an unfinished run can be resumed, see README 'Resume a killed run')"
        )
    return {file.stem: load_system(file) for file in files}
