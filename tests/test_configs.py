from pathlib import Path

import hydra
import lightning.pytorch as pl
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from asd.models.encoders import EncoderWeightsError
from asd.system import BUILDABLE
from asd.train import config_dir, datamodule_settings, machine_groups

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
        "ToyFan",
        "ToyPump",
        "ToyGear",
        "ToyCarEmu",
        "bearingEmu",
        "gearboxEmu",
        "sliderEmu",
        "valveEmu",
        "SewingMachine",
        "BlowerDustCollector",
        "Sander",
    ]:
        assert list(_compose(f"machine={machine}").machine.types) == [machine]


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026])
def test_a_years_all_machine_types_are_its_dev_and_eval_types(year):
    every = list(_compose(f"machine=dcase{year}_all").machine.types)
    dev = list(_compose(f"machine=dcase{year}_dev").machine.types)
    evaluation = list(_compose(f"machine=dcase{year}_eval").machine.types)
    assert every == dev + evaluation and not set(dev) & set(evaluation)


MACHINE_CHOICES = ["fan", "ToyRotor", "synthetic", "dcase2024_eval"]
#: every model with every back-end, and the machine choice turning with both, so that each pair of the
#: three (model-backend, model-machine, backend-machine) meets at least once: a quarter of the full product
MODEL_BACKEND_MACHINE = [
    (model, backend, MACHINE_CHOICES[(i + j) % len(MACHINE_CHOICES)])
    for i, model in enumerate(MODELS)
    for j, backend in enumerate(BACKENDS)
]


def test_the_combinations_cover_every_pair_of_model_backend_and_machine():
    pairs = [{(m, b) for m, b, _ in MODEL_BACKEND_MACHINE}, {(m, c) for m, _, c in MODEL_BACKEND_MACHINE}]
    pairs.append({(b, c) for _, b, c in MODEL_BACKEND_MACHINE})
    assert [len(p) for p in pairs] == [
        len(MODELS) * len(BACKENDS),
        len(MODELS) * len(MACHINE_CHOICES),
        len(BACKENDS) * len(MACHINE_CHOICES),
    ]


@pytest.mark.parametrize("model, backend, machine", MODEL_BACKEND_MACHINE)
def test_model_backend_machine_compose_and_instantiate(model, backend, machine, tmp_path):
    cfg = _compose(f"model={model}", f"backend={backend}", f"machine={machine}", f"paths.root_dir={tmp_path}")
    if model in ("pretrained", "finetune"):  # weights are never downloaded: the default path is empty here
        with pytest.raises(
            InstantiationException, match=f"{tmp_path}.*Hugging Face model directory not found.*set encoder.path="
        ) as raised:
            hydra.utils.instantiate(cfg.model, backend=hydra.utils.instantiate(cfg.backend))
        assert isinstance(raised.value.__cause__, EncoderWeightsError)  # Hydra wraps the encoder's own error
        return
    module = hydra.utils.instantiate(cfg.model, backend=hydra.utils.instantiate(cfg.backend))
    assert type(module.backend).__name__ == cfg.backend._target_.rsplit(".", 1)[-1]
    # what a run of it saves, asd.predict and asd.score may load (the system loader's allowlist)
    assert cfg.model._target_ in BUILDABLE["model"] and cfg.backend._target_ in BUILDABLE["backend"]
    datamodule = hydra.utils.instantiate(
        datamodule_settings(cfg.data), machines=machine_groups(cfg)[0], input=module.data_input
    )
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
    synthetic = data.startswith("synthetic")
    year = int(data[-4:]) if data[-4:].isdigit() else 2024
    assert cfg.data.year == year
    assert (cfg.data.synthetic.seed is None) == (not synthetic)
    assert cfg.data.root.endswith(data if synthetic else f"dcase{year}t2")


GROUP_EFFECTS = {
    "debug=default": {"task_name": "debug", "trainer.max_epochs": 1, "trainer.accelerator": "cpu"},
    "debug=fdr": {"trainer.max_epochs": 1, "trainer.limit_train_batches": 1},
    "experiment=ae_mse": {
        "backend._target_": "asd.backends.MSEBackend",
        "trainer.max_epochs": 100,
        "model.validation_split": 0.1,
    },
    "experiment=ae_mahalanobis": {
        "backend._target_": "asd.backends.SelectiveMahalanobisBackend",
        "backend.block_size": 128,
        "trainer.max_epochs": 100,
    },
    "experiment=ae_fusion": {
        "backend._target_": "asd.backends.FusionBackend",
        "backend.members.1.block_size": 128,
        "backend.combine": "mean",
    },
    "experiment=ae_standardised_fusion": {
        "backend.members.0._target_": "asd.backends.MSEBackend",
        "backend.members.1._target_": "asd.backends.StandardisedErrorBackend",
        "backend.members.2.block_size": 128,
        "trainer.max_epochs": 100,
        "model.validation_split": 0.1,
    },
    "experiment=mfn_arcface_knn": {
        "scope": "joint",
        "model.use_tgram": True,
        "model.shift_classes": [-6, 6],
        "trainer.max_epochs": 30,
    },
    "experiment=mfn_adaproj_knn": {
        "scope": "joint",
        "model.use_tgram": True,
        "model.loss": "adaproj",
        "model.sub_centers": 16,
        "trainer.max_epochs": 30,
        "backend._target_": "asd.backends.KNNBackend",
    },
    "experiment=mfn_sc_adacos_knn": {
        "scope": "joint",
        "model.use_tgram": True,
        "model.shift_classes": [-6, 6],
        "model.loss": "sc_adacos",
        "model.sub_centers": 16,
        "trainer.max_epochs": 30,
        "backend._target_": "asd.backends.KNNBackend",
    },
    # ASDKit's clip length per DCASE year (its dcase2sec), its kNN over a machine type's sections
    "experiment=multibranch_sc_adacos_knn": {"model.clip_seconds": 12.0, "backend.pool_sections": True},
    "experiment=multibranch_sc_adacos_knn data=dcase2020": {"model.clip_seconds": 11.0},
    "experiment=multibranch_sc_adacos_knn data=dcase2022": {"model.clip_seconds": 10.0},
    "experiment=multibranch_multispec_sc_adacos_knn data=dcase2023": {"model.clip_seconds": 18.0},
    "experiment=multibranch_sc_adacos_knn data=dcase2025": {"model.clip_seconds": 12.0},
    "experiment=pretrained_knn": {
        "model._target_": "asd.models.pretrained.PretrainedEmbeddingModule",
        "model.encoder._target_": "asd.models.encoders.BEATsEncoder",
        "backend.density_normalise": "bank",
    },
    "experiment=beats_lora": {
        "model._target_": "asd.models.finetune.FineTunedEncoderModule",
        "model.encoder._target_": "asd.models.encoders.BEATsEncoder",
        "model.loss": "sc_adacos",
        "model.lora_rank": 64,
        "scope": "joint",
        "trainer.gradient_clip_val": 1.0,
    },
    "model=finetune encoder=hf": {
        "model.encoder._target_": "asd.models.encoders.HuggingFaceEncoder",
        "model.target_modules": ["q_proj", "v_proj"],
        "backend._target_": "asd.backends.KNNBackend",
    },
    "data=synthetic_benchmark": {"data.synthetic.profile": "benchmark", "data.synthetic.seed": 0},
    "data=dcase2026": {"data.audio.channel": 0, "data.synthetic.channels": 2, "data.year": 2026},
    "model=pretrained encoder=hf": {
        "model.encoder._target_": "asd.models.encoders.HuggingFaceEncoder",
        "backend._target_": "asd.backends.KNNBackend",
    },
    "trainer=cpu": {"trainer.accelerator": "cpu"},
    "scope=joint": {"scope": "joint"},
}


@pytest.mark.parametrize("overrides", GROUP_EFFECTS)
def test_each_group_option_sets_what_it_says(overrides):
    cfg = _compose(*overrides.split())
    for key, expected in GROUP_EFFECTS[overrides].items():
        value = OmegaConf.select(cfg, key)
        assert (OmegaConf.to_container(value) if OmegaConf.is_config(value) else value) == expected, key
    if overrides == "scope=joint":
        assert machine_groups(cfg) == [["ToyRotor", "ToyClicker", "ToyHum"]]
    assert machine_groups(_compose()) == [["ToyRotor"], ["ToyClicker"], ["ToyHum"]]  # per machine by default


def test_many_loggers_attaches_tensorboard_and_csv():
    cfg = _compose("logger=many_loggers")
    assert {c._target_ for c in cfg.logger.values()} == {
        "lightning.pytorch.loggers.TensorBoardLogger",
        "lightning.pytorch.loggers.CSVLogger",
    }


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


def test_a_model_config_sets_only_the_model_and_its_default_groups():
    # data and trainer settings are the experiments' (a recipe), never a model's
    import yaml

    for path in sorted((Path(config_dir()) / "model").glob("*.yaml")):
        keys = set(yaml.safe_load(path.read_text()))
        assert keys <= {"defaults", "model"}, f"{path.name} sets {sorted(keys - {'defaults', 'model'})}"


@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp"])
def test_the_trainer_keys_the_readme_names_are_overrides_as_written(trainer):
    # the GPU check met it: `trainer=gpu trainer.precision=bf16-mixed` (README, finetune.yaml) was refused,
    # "Key 'precision' is not in struct"
    readme = (CONF.parent / "README.md").read_text()
    named = ["precision=bf16-mixed", "accumulate_grad_batches=4", "gradient_clip_val=1.0"]
    assert all(f"trainer.{key.split('=')[0]}" in readme for key in named)
    cfg = _compose(f"trainer={trainer}", *(f"trainer.{key}" for key in named))
    chosen = {key.split("=")[0]: cfg.trainer[key.split("=")[0]] for key in named}
    assert chosen == {"precision": "bf16-mixed", "accumulate_grad_batches": 4, "gradient_clip_val": 1.0}
    trainer_object = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, **chosen)
    assert trainer_object.accumulate_grad_batches == 4 and trainer_object.gradient_clip_val == 1.0


def test_a_year_without_a_known_clip_length_is_an_error_naming_data_year():
    cfg = _compose("experiment=multibranch_sc_adacos_knn", "data.year=2019")
    with pytest.raises(Exception, match="data.year=2019: no clip length known"):
        OmegaConf.to_container(cfg.model, resolve=True)
