import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import TINY_MFN_OVERRIDES

from asd.predict import main as predict_cli
from asd.run_directory import RunDirectoryError
from asd.system import load_systems
from asd.train import train


@pytest.fixture
def own_dataset(tmp_path, synthetic_root):
    """A private copy of the synthetic data, so a test can move it away."""
    root = tmp_path / "dataset"
    shutil.copytree(synthetic_root, root)
    return root


FAMILIES = {
    "ae": ["model=ae", "backend=mahalanobis", "trainer.max_epochs=1"],
    "mfn": ["model=mfn_arcface", "trainer.max_epochs=4", *TINY_MFN_OVERRIDES],
    "pretrained": ["model=pretrained", "encoder=hf"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_predict_reproduces_the_runs_scores_without_the_dataset(family, make_cfg, own_dataset, tmp_path, tiny_wav2vec2):
    overrides = list(FAMILIES[family])
    if family == "pretrained":
        overrides.append(f"encoder.path={tiny_wav2vec2}")
    cfg = make_cfg("machine=ToyRotor", f"data.root={own_dataset}", *overrides)
    train(cfg)
    run = Path(cfg.paths.output_dir)
    moved = tmp_path / "moved"
    own_dataset.rename(moved)  # the system must not need the training data
    test_dir = moved / "dev_data" / "raw" / "ToyRotor" / "test"
    out = tmp_path / "scores.csv"
    assert predict_cli([str(run), str(test_dir), "--out", str(out)]) == 0
    predicted = pd.read_csv(out)
    predicted["name"] = predicted["file"].map(lambda f: Path(f).name)
    expected = pd.read_csv(
        run / "submission" / "anomaly_score_ToyRotor_section_00_test.csv", header=None, names=["name", "score"]
    )
    merged = expected.merge(predicted, on="name")
    assert len(merged) == 100
    np.testing.assert_allclose(merged["anomaly_score"], merged["score"], rtol=1e-6, atol=1e-9)
    decisions = pd.read_csv(
        run / "submission" / "decision_result_ToyRotor_section_00_test.csv", header=None, names=["name", "d"]
    )
    assert (decisions.merge(predicted, on="name").eval("d == decision")).all()
    # each clip judged as the domain the run judged it as (its model, or its nearest training clip's)
    judged = pd.read_csv(run / "scores.csv").assign(judged=lambda t: t["judged_domain"].map({0: "source", 1: "target"}))
    both = judged.merge(predicted, left_on="file_name", right_on="name")
    assert len(both) == 100 and (both["judged"] == both["judged_domain_y"]).all()


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory, synthetic_root, feature_cache):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from asd.train import config_dir

    tmp = tmp_path_factory.mktemp("ae_run")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "train", overrides=["machine=ToyRotor", "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "run")
        cfg.paths.cache_dir = str(feature_cache)
        cfg.data.root = str(synthetic_root)
    Path(cfg.paths.output_dir).mkdir(parents=True)
    train(cfg)
    return Path(cfg.paths.output_dir)


def test_bad_files_get_error_rows_and_the_rest_is_scored(ae_run, synthetic_root, tmp_path):
    folder = tmp_path / "shop_floor"
    folder.mkdir()
    good = next((synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test").glob("*.wav"))
    shutil.copy(good, folder / "good.wav")
    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEnonsense")
    stereo, rate = sf.read(good)
    sf.write(folder / "stereo.wav", np.stack([stereo, stereo], axis=1), rate)
    out = tmp_path / "scores.csv"
    assert predict_cli([str(ae_run), str(folder), "--out", str(out)]) == 1
    rows = {Path(r["file"]).name: r for r in csv.DictReader(open(out))}
    assert rows["good.wav"]["error"] == "" and float(rows["good.wav"]["anomaly_score"]) > 0
    assert "cannot be read as audio" in rows["corrupt.wav"]["error"]
    assert "2 channels" in rows["stereo.wav"]["error"]


def test_windowed_scoring_of_a_long_recording(ae_run, synthetic_root, tmp_path):
    clips = sorted((synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test").glob("*normal*.wav"))[:5]
    long = np.concatenate([sf.read(c)[0] for c in clips])  # 10 s
    sf.write(tmp_path / "monitor.wav", long, 16000)
    # a recording at another rate is resampled
    sf.write(tmp_path / "monitor_8k.wav", long[::2], 8000)
    out = tmp_path / "scores.csv"
    assert (
        predict_cli(
            [
                str(ae_run),
                str(tmp_path / "monitor.wav"),
                str(tmp_path / "monitor_8k.wav"),
                "--out",
                str(out),
                "--window",
                "2",
                "--hop",
                "1",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(out)))
    first = [r for r in rows if r["file"].endswith("monitor.wav")]
    assert [(float(r["start_s"]), float(r["end_s"])) for r in first] == [(s, s + 2.0) for s in range(9)]
    assert len(rows) == 18


def test_incomplete_or_foreign_run_directories_are_clear_errors(ae_run, tmp_path, capsys):
    assert predict_cli([str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o.csv")]) == 2
    assert "no saved systems" in capsys.readouterr().err
    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "fan.pt").write_bytes(b"not a system")
    with pytest.raises(RunDirectoryError, match="fan.pt: cannot be loaded"):
        load_systems(tmp_path)
    import torch

    torch.save({"format": 99}, tmp_path / "systems" / "fan.pt")
    with pytest.raises(RunDirectoryError, match="format 99"):
        load_systems(tmp_path)
    assert (
        predict_cli([str(ae_run), str(tmp_path), "--section", "fan/section_00", "--out", str(tmp_path / "o.csv")]) == 2
    )
    assert "no section 'fan/section_00' in this run; it has: ToyRotor/section_00" in capsys.readouterr().err


def test_a_system_whose_weights_another_version_named_is_a_clear_error(ae_run, synthetic_root, tmp_path, capsys):
    """A system saved by a version whose layers had other names (a renamed branch, say) fails to load
    with the file and the first mismatched names, not torch's wall of every key."""
    import shutil

    import torch

    run = tmp_path / "old_run"
    shutil.copytree(ae_run, run)
    (file,) = (run / "systems").glob("*.pt")
    saved = torch.load(file, weights_only=True)
    renamed = next(iter(saved["state_dict"]))
    saved["state_dict"] = {("old_" + k if k == renamed else k): v for k, v in saved["state_dict"].items()}
    torch.save(saved, file)
    with pytest.raises(RunDirectoryError, match=f"{file.name}: its weights do not fit this version's"):
        load_systems(run)
    clip = next((synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test").glob("*.wav"))
    assert predict_cli([str(run), str(clip), "--out", str(tmp_path / "o.csv")]) == 2
    error = capsys.readouterr().err
    assert str(file) in error and f"missing: {renamed}" in error and f"unexpected: old_{renamed}" in error


def test_a_stopped_run_resumes_to_the_same_metrics(make_cfg, tmp_path):
    from omegaconf import open_dict

    uninterrupted, _ = train(make_cfg("machine=ToyHum", "trainer.max_epochs=3"))
    stopped_cfg = make_cfg("machine=ToyHum", "trainer.max_epochs=1")  # killed after its first epoch
    with open_dict(stopped_cfg):
        stopped_cfg.paths.output_dir = str(tmp_path / "stopped")
    train(stopped_cfg)
    resumed_cfg = make_cfg("machine=ToyHum", "trainer.max_epochs=3", f"resume_from={tmp_path / 'stopped'}")
    with open_dict(resumed_cfg):
        resumed_cfg.paths.output_dir = str(tmp_path / "resumed")
    resumed, _ = train(resumed_cfg)
    assert resumed == uninterrupted
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        train(make_cfg("machine=ToyRotor", f"resume_from={tmp_path / 'nowhere'}"))


def test_ddp_on_two_cpu_processes_gathers_every_test_score(tmp_path, synthetic_root, run_cli):
    """trainer=ddp as on a multi-GPU node, with gloo on CPU: each rank scores half the test clips;
    the gathered submission must hold every clip's own score (checked against a one-process asd.predict)."""
    done = run_cli(
        "asd.train",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.sync_batchnorm=false",
        "machine=ToyRotor",
        "debug=fdr",
        "callbacks.progress_bar.refresh_rate=0",
        process=True,  # Lightning starts the second rank by running the command again
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = next((tmp_path / "logs" / "debug" / "runs").iterdir())
    assert (run / "train_ddp_process_1.log").is_file()  # a second process did take part
    submitted = pd.read_csv(
        run / "submission" / "anomaly_score_ToyRotor_section_00_test.csv", header=None, names=["name", "score"]
    )
    assert len(submitted) == 100 and submitted["name"].is_unique
    out = tmp_path / "scores.csv"
    assert (
        predict_cli([str(run), str(synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test"), "--out", str(out)]) == 0
    )
    predicted = pd.read_csv(out)
    predicted["name"] = predicted["file"].map(lambda f: Path(f).name)
    merged = submitted.merge(predicted, on="name")
    assert len(merged) == 100
    np.testing.assert_allclose(merged["anomaly_score"], merged["score"], rtol=1e-6, atol=1e-9)


def test_a_too_short_file_is_an_error_row_and_the_batch_is_kept(ae_run, synthetic_root, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    good = next((synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test").glob("*.wav"))
    shutil.copy(good, folder / "good.wav")
    sf.write(folder / "blip.wav", np.zeros(1600, dtype=np.float32), 16000)  # 0.1 s: 4 frames, the AE needs 5
    out = tmp_path / "scores.csv"
    assert predict_cli([str(ae_run), str(folder), "--out", str(out)]) == 1
    rows = {Path(r["file"]).name: r for r in csv.DictReader(open(out))}
    assert rows["good.wav"]["error"] == "" and float(rows["good.wav"]["anomaly_score"]) > 0
    assert "blip.wav: 0.100 s of audio, shorter than the 0.128 s this system needs" in rows["blip.wav"]["error"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--hop", "-1", "--window", "2"], "--hop must be a positive number of seconds, got -1.0"),
        (["--window", "-1"], "--window must be a positive number of seconds, got -1.0"),
        (["--window", "0"], "--window must be a positive number of seconds, got 0.0"),
        (["--window", "nan"], "--window must be a positive number of seconds, got nan"),
        (["--window", "0.05"], "--window 0.05 s is shorter than the 0.128 s this system needs"),
        (["--hop", "1"], "--hop needs --window"),
    ],
)
def test_bad_arguments_are_refused_before_any_scoring(arguments, message, ae_run, synthetic_root, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    test_dir = synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test"
    assert predict_cli([str(ae_run), str(test_dir), "--out", str(out), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_output_directory_is_refused_before_any_scoring(ae_run, synthetic_root, tmp_path, capsys, monkeypatch):
    import asd.predict

    scored = []
    monkeypatch.setattr(asd.predict, "score_files", lambda *a, **k: scored.append(a) or [])
    test_dir = synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test"
    assert predict_cli([str(ae_run), str(test_dir), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a directory" in capsys.readouterr().err
    assert scored == []


class _Planted:
    """Unpickling this object would create a folder: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def test_a_system_file_carrying_code_is_refused_without_running_it(tmp_path):
    import torch

    marker = tmp_path / "ran"
    (tmp_path / "systems").mkdir()
    torch.save({"format": 2, "module": _Planted(marker)}, tmp_path / "systems" / "fan.pt")
    with pytest.raises(RunDirectoryError, match="not a plain-data system file"):
        load_systems(tmp_path)
    assert not marker.exists()


def _planted_system(ae_run, folder: Path, **configs: str) -> Path:
    """A copy of ae_run's plain-data system file with some of its configs replaced, in folder/systems."""
    import torch

    saved = torch.load(next((ae_run / "systems").glob("*.pt")), weights_only=True)
    saved.update(configs)
    (folder / "systems").mkdir(parents=True)
    torch.save(saved, folder / "systems" / "ToyRotor.pt")
    return folder


@pytest.mark.parametrize(
    "configs, refusal",
    [
        # an asd function that writes files: the old check let any target starting with "asd." through
        (
            {"backend_config": "_target_: asd.files.write_text\npath: {marker}\ntext: pwned\n"},
            "names 'asd.files.write_text' at backend",
        ),
        ({"backend_config": "_target_: asd.files.os.system\n_args_: ['touch {marker}']\n"}, "Hydra key '_args_'"),
        ({"backend_config": "_target_: os.system\ncommand: touch {marker}\n"}, "names 'os.system' at backend"),
        # our own classes, but at a place where none is built
        (
            {
                "backend_config": "_target_: asd.backends.KNNBackend\nseed: {{_target_: asd.files.write_text, path: {marker}, text: x}}\n"
            },
            "names 'asd.files.write_text' at backend.seed",
        ),
        (
            {
                "backend_config": "_target_: asd.backends.FusionBackend\nmembers:\n- _target_: asd.files.write_text\n  path: {marker}\n  text: x\n- _target_: asd.backends.MSEBackend\n"
            },
            "names 'asd.files.write_text' at backend.members[0]",
        ),
        (
            {"backend_config": "_target_: asd.models.ae.AutoEncoderModule\n"},
            "names 'asd.models.ae.AutoEncoderModule' at backend",
        ),
        ({"backend_config": "_target_: asd.backends.MSEBackend\n_partial_: true\n"}, "Hydra key '_partial_'"),
        # an interpolation would be resolved on building (oc.env reads the environment)
        (
            {"backend_config": "_target_: asd.backends.KNNBackend\nseed: ${{oc.env:HOME}}\n"},
            "interpolation '${{oc.env:HOME}}' at backend.seed",
        ),
        ({"model_config": "just a string\n"}, "its model config names no class to build"),
    ],
)
def test_a_system_file_builds_only_our_classes_at_their_places(
    configs, refusal, ae_run, synthetic_root, tmp_path, capsys
):
    marker = tmp_path / "written_by_the_system_file"
    planted = {key: text.format(marker=marker) for key, text in configs.items()}
    run = _planted_system(ae_run, tmp_path / "downloaded_run", **planted)
    test_dir = synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test"
    assert predict_cli([str(run), str(test_dir), "--out", str(tmp_path / "scores.csv")]) == 2
    message = capsys.readouterr().err
    assert "refused" in message or "no class to build" in message
    assert refusal.format(marker=marker) in message
    assert not marker.exists()
    assert not (tmp_path / "scores.csv").exists()


def test_the_buildable_classes_are_exactly_those_the_configs_name():
    """BUILDABLE and conf/ agree: every target a shipped config can put in a system file is
    buildable at its place, and every buildable class is named by some shipped config."""
    import yaml

    from asd.system import BUILDABLE
    from asd.train import config_dir

    conf = Path(config_dir())
    named = {place: set() for place in BUILDABLE}
    for file in (conf / "model").glob("*.yaml"):
        model = (yaml.safe_load(file.read_text()) or {}).get("model", {})
        if "_target_" in model:
            named["model"].add(model["_target_"])
    for file in (conf / "encoder").glob("*.yaml"):
        named["model.encoder"].add(yaml.safe_load(file.read_text())["_target_"])
    for file in (conf / "backend").glob("*.yaml"):
        backend = yaml.safe_load(file.read_text())
        named["backend"].add(backend["_target_"])
        named["backend.members[]"] |= {member["_target_"] for member in backend.get("members", [])}
    assert named["model"] == BUILDABLE["model"]
    assert named["model.encoder"] == BUILDABLE["model.encoder"]
    assert named["backend"] == BUILDABLE["backend"]
    assert named["backend.members[]"] <= BUILDABLE["backend.members[]"]


FIXTURE = Path(__file__).parent / "fixtures" / "system_format2"


def test_a_system_saved_by_an_earlier_version_still_loads_and_scores_the_same(synthetic_root):
    # tests/fixtures/system_format2: a small AE + selective Mahalanobis system written by the code of
    # 2026-11-26 (format 2) with the scores it gave; it must keep loading and scoring alike.
    (system,) = load_systems(FIXTURE).values()
    from asd.predict import score_files

    expected = pd.read_csv(FIXTURE / "expected_scores.csv")
    files = [synthetic_root / "dev_data" / "raw" / "ToyRotor" / "test" / name for name in expected["name"]]
    rows = score_files(system, "ToyRotor/section_00", files)
    # rtol 1e-5: the float32 STFT of another torch build rounds differently (1.4e-6 seen with torch 2.15)
    np.testing.assert_allclose([r["anomaly_score"] for r in rows], expected["anomaly_score"], rtol=1e-5)
    assert [r["decision"] for r in rows] == list(expected["decision"])
