"""The core install (no extras) trains the AE and MobileFaceNet; a pretrained encoder without its extra
is an error naming the extra. Run as a user would, in a process where the extras cannot be imported."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import provide_synthetic_data

#: what the core install leaves out, and torchaudio, which nothing may need any more
NOT_INSTALLED = ("transformers", "peft", "openbeats", "torchaudio")

#: runs each ``asd.train`` command of a JSON list ``[[folder, [override, ...]], ...]`` (argv[1]) as if
#: NOT_INSTALLED were not installed: not importable (None in sys.modules) and without distribution
#: metadata (libraries such as torchmetrics look there first); writes each command's exit status and
#: stderr to argv[2]. One process for every command: most of a short one is importing torch.
WITHOUT_EXTRAS = f"""
import importlib.metadata as metadata, json, sys
from pathlib import Path
hidden = {NOT_INSTALLED!r}
def hiding(lookup):
    def hidden_lookup(name):
        if name.lower() in hidden:
            raise metadata.PackageNotFoundError(name)
        return lookup(name)
    return hidden_lookup
metadata.version, metadata.distribution = hiding(metadata.version), hiding(metadata.distribution)
sys.modules.update(dict.fromkeys(hidden))
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import run_module_in_process
results = []
for folder, overrides in json.loads(sys.argv[1]):
    done = run_module_in_process("asd.train", overrides, Path(folder), {{"ASD_ROOT": folder}})
    results.append({{"returncode": done.returncode, "stderr": done.stderr}})
Path(sys.argv[2]).write_text(json.dumps(results))
"""

CORE_MODELS = {
    "ae": ["trainer.max_epochs=1"],
    "mobilefacenet": ["model=mfn_arcface", "trainer.max_epochs=1", "model.width=8", "model.channels=16"],
}
PRETRAINED = {
    "hf": (["model=pretrained"], "pip install 'asd[pretrained]'"),  # the default encoder: a transformers model
    "finetune": (["model=finetune", "encoder=hf"], "pip install 'asd[pretrained]'"),
    "beats": (["model=pretrained", "encoder=beats"], "pip install 'asd[beats]'"),
}


@pytest.fixture(scope="module")
def runs_without_extras(tmp_path_factory, synthetic_root, feature_cache) -> dict[str, tuple[Path, dict]]:
    """Every command of this module, run in one process without the extras: name -> (folder, result)."""
    commands = {name: overrides for name, overrides in CORE_MODELS.items()}
    commands.update({name: overrides for name, (overrides, _) in PRETRAINED.items()})
    folders = {}
    for name in commands:
        folder = folders[name] = tmp_path_factory.mktemp(f"without_extras_{name}")
        provide_synthetic_data(folder, synthetic_root, feature_cache)
    # a checkpoint in the official layout: what is missing is the package
    torch.save({"cfg": {}, "model": {}}, folders["beats"] / "BEATs.pt")
    commands["beats"] = [*commands["beats"], f"encoder.path={folders['beats'] / 'BEATs.pt'}"]
    listed = [
        [
            str(folders[name]),
            [
                "machine=ToyRotor",
                "callbacks.progress_bar.refresh_rate=0",
                *overrides,
                f"hydra.run.dir={folders[name] / 'run'}",
            ],
        ]
        for name, overrides in commands.items()
    ]
    results_file = tmp_path_factory.mktemp("without_extras") / "results.json"
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, json.dumps(listed), str(results_file)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(zip(commands, zip(folders.values(), json.loads(results_file.read_text()))))


@pytest.mark.parametrize("model", list(CORE_MODELS))
def test_the_core_install_trains_and_scores_the_ae_and_mobilefacenet(model, runs_without_extras):
    folder, done = runs_without_extras[model]
    assert done["returncode"] == 0, done["stderr"][-3000:]
    assert (folder / "run" / "scores.csv").is_file()


@pytest.mark.parametrize("encoder", list(PRETRAINED))
def test_a_pretrained_encoder_without_its_extra_names_it_before_any_data_is_read(encoder, runs_without_extras):
    folder, done = runs_without_extras[encoder]
    assert done["returncode"] == 1
    assert PRETRAINED[encoder][1] in done["stderr"]
    assert "ModuleNotFoundError" not in done["stderr"]
    assert not (folder / "run" / "scores.csv").exists()
