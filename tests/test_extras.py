"""The core install (no extras) trains the AE and MobileFaceNet; a pretrained encoder without its extra
is an error naming the extra. Run as a user would, in a process where the extras cannot be imported."""

import os
import subprocess
import sys

import pytest

#: what the core install leaves out, and torchaudio, which nothing may need any more
NOT_INSTALLED = ("transformers", "peft", "openbeats", "torchaudio")


#: runs asd.train as if NOT_INSTALLED were not installed: not importable (None in sys.modules) and
#: without distribution metadata (libraries such as torchmetrics look there first)
WITHOUT_EXTRAS = f"""
import importlib.metadata as metadata, runpy, sys
hidden = {NOT_INSTALLED!r}
def hiding(lookup):
    def hidden_lookup(name):
        if name.lower() in hidden:
            raise metadata.PackageNotFoundError(name)
        return lookup(name)
    return hidden_lookup
metadata.version, metadata.distribution = hiding(metadata.version), hiding(metadata.distribution)
sys.modules.update(dict.fromkeys(hidden))
sys.argv = ["asd.train", *sys.argv[1:]]
runpy.run_module("asd.train", run_name="__main__")
"""


def _train_without_extras(tmp_path, synthetic_root, *overrides):
    (tmp_path / "data").mkdir(exist_ok=True)
    if not (tmp_path / "data" / "synthetic").exists():
        (tmp_path / "data" / "synthetic").symlink_to(synthetic_root)
    command = [
        sys.executable,
        "-c",
        WITHOUT_EXTRAS,
        "machine=ToyRotor",
        "callbacks.progress_bar.refresh_rate=0",
        *overrides,
    ]
    env = {**os.environ, "ASD_ROOT": str(tmp_path)}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "model",
    [["trainer.max_epochs=1"], ["model=mfn_arcface", "trainer.max_epochs=1", "model.width=8", "model.channels=16"]],
)
def test_the_core_install_trains_and_scores_the_ae_and_mobilefacenet(model, tmp_path, synthetic_root):
    done = _train_without_extras(tmp_path, synthetic_root, *model, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "scores.csv").is_file()


@pytest.mark.parametrize(
    "overrides, extra",
    [
        (["model=pretrained"], "pip install 'asd[pretrained]'"),  # the default encoder: a transformers model
        (["model=finetune", "encoder=hf"], "pip install 'asd[pretrained]'"),
        (["model=pretrained", "encoder=beats"], "pip install 'asd[beats]'"),
    ],
)
def test_a_pretrained_encoder_without_its_extra_names_it_before_any_data_is_read(
    overrides, extra, tmp_path, synthetic_root
):
    if "encoder=beats" in overrides:  # a checkpoint in the official layout: what is missing is the package
        import torch

        torch.save({"cfg": {}, "model": {}}, tmp_path / "BEATs.pt")
        overrides = [*overrides, f"encoder.path={tmp_path / 'BEATs.pt'}"]
    done = _train_without_extras(tmp_path, synthetic_root, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 1
    assert extra in done.stderr
    assert "ModuleNotFoundError" not in done.stderr
    assert not (tmp_path / "run" / "scores.csv").exists()
