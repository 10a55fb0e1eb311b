from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from asd.train import config_dir, machine_groups

CONF = Path(config_dir())
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
BACKENDS = sorted(p.stem for p in (CONF / "backend").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_every_dcase_machine_type_has_a_config():
    for machine in [
        "fan",
        "pump",
        "slider",
        "valve",
        "ToyCar",
        "ToyConveyor",
        "gearbox",
        "ToyTrain",
        "bearing",
        "ToyDrone",
        "ToyNscale",
        "ToyTank",
        "Vacuum",
        "bandsaw",
        "grinder",
        "shaker",
        "3DPrinter",
        "AirCompressor",
        "BrushlessMotor",
        "HairDryer",
        "HoveringDrone",
        "RoboticArm",
        "Scanner",
        "ToothBrush",
        "ToyCircuit",
        "AutoTrash",
        "BandSealer",
        "CoffeeGrinder",
        "HomeCamera",
        "Polisher",
        "ScrewFeeder",
        "ToyPet",
        "ToyRCCar",
        "ToyRotor",
        "ToyClicker",
        "ToyHum",
    ]:
        assert list(_compose(f"machine={machine}").machine.types) == [machine]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("machine", ["fan", "ToyRotor", "synthetic", "dcase2024_eval"])
def test_model_backend_machine_compose_and_instantiate(model, backend, machine, tmp_path):
    cfg = _compose(f"model={model}", f"backend={backend}", f"machine={machine}", f"paths.root_dir={tmp_path}")
    if model == "pretrained":  # weights are never downloaded: the default path is empty here
        with pytest.raises(Exception, match=f"{tmp_path}.*BEATs checkpoint not found.*set encoder.path="):
            hydra.utils.instantiate(cfg.model, backend=hydra.utils.instantiate(cfg.backend))
        return
    module = hydra.utils.instantiate(cfg.model, backend=hydra.utils.instantiate(cfg.backend))
    assert module.backend.__class__.__name__.lower().startswith(backend.replace("_", ""))
    datamodule = hydra.utils.instantiate(cfg.data, machines=machine_groups(cfg)[0], input=module.data_input)
    assert datamodule.machines == [list(cfg.machine.types)[0]]


@pytest.mark.parametrize(
    "model, backend",
    [("ae", "MSEBackend"), ("mfn_arcface", "KNNBackend"), ("mfn_adacos", "KNNBackend"), ("pretrained", "KNNBackend")],
)
def test_each_model_brings_its_default_backend_and_the_command_line_wins(model, backend):
    assert _compose(f"model={model}").backend._target_.endswith(backend)
    assert _compose(f"model={model}", "backend=mahalanobis").backend._target_.endswith("MahalanobisBackend")


@pytest.mark.parametrize("data", DATASETS)
def test_datasets_compose(data):
    cfg = _compose(f"data={data}")
    year = 2024 if data == "synthetic" else int(data[-4:])
    assert cfg.data.year == year
    assert (cfg.data.synthetic_seed is None) == (data != "synthetic")
    assert cfg.data.root.endswith("synthetic" if data == "synthetic" else f"dcase{year}t2")


@pytest.mark.parametrize(
    "overrides",
    [
        ["debug=default"],
        ["debug=fdr"],
        ["experiment=ae_mahalanobis"],
        ["experiment=ae_mse"],
        ["experiment=mfn_arcface_knn"],
        ["experiment=pretrained_knn"],
        ["model=pretrained", "encoder=hf"],
        ["trainer=cpu"],
        ["logger=many_loggers"],
        ["scope=joint"],
    ],
)
def test_other_groups_compose(overrides):
    cfg = _compose(*overrides)
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    if overrides == ["experiment=ae_mahalanobis"]:
        assert cfg.backend._target_.endswith("MahalanobisBackend")
    if overrides == ["scope=joint"]:
        assert machine_groups(cfg) == [["ToyRotor", "ToyClicker", "ToyHum"]]


@pytest.mark.parametrize(
    "search, model", [("ae_optuna", "AutoEncoderModule"), ("mfn_arcface_optuna", "MobileFaceNetModule")]
)
def test_optuna_searches_compose_with_their_model_and_a_sqlite_study(search, model):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    assert cfg.model._target_.endswith(model)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.storage.startswith("sqlite:///") and sweeper.storage.endswith(f"{sweeper.study_name}.db")
    assert cfg.failed_job_score == 0.0 and cfg.optimized_metric == "official_score"
    for param in sweeper.params:
        # every searched key exists in the composed config, so no trial dies of a typo
        assert OmegaConf.select(cfg, param, throw_on_missing=False) is not None, param


@pytest.mark.parametrize("launcher, target", [("slurm", "SlurmLauncher"), ("parallel", "JoblibLauncher")])
def test_launchers_compose(launcher, target):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
