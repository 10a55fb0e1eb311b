import shutil

import numpy as np
import soundfile as sf

from asd.data.attributes import main as attributes_cli
from asd.data.attributes import read_attributes_csv, rebuild_attributes_csv


def _machine_dir(tmp_path):
    machine = tmp_path / "fan"
    for split, names in {
        "train": ["section_00_source_train_normal_0000_m-n_W_vel_1.wav", "section_00_target_train_normal_0000_m-n_X_vel_2.wav"],
        "test": ["section_00_source_test_anomaly_0000_m-n_W_vel_1.wav"],
    }.items():
        (machine / split).mkdir(parents=True)
        for name in names:
            sf.write(machine / split / name, np.zeros(1600, dtype=np.float32), 16000)
    return machine


MALFORMED = (
    "file_name,d1p,d1v\n"
    "fan/train/section_00_source_train_normal_0000_m-n_W_vel_1.wav,m-n,W,vel,1\n"  # more pairs than the header
    "\n"
    "fan/train/section_00_target_train_normal_0000_m-n_X_vel_2.wav,m-n,Y,vel\n"  # odd cell count, wrong value
    "not_a_file,a,b\n"
    "fan/train/section_00_source_train_normal_0099_m-n_W_vel_1.wav,m-n,W,vel,1,,,\n"  # no such file, trailing cells
)


def test_malformed_csv_is_read_as_far_as_it_can_be(tmp_path):
    path = tmp_path / "attributes_00.csv"
    path.write_text(MALFORMED)
    table = read_attributes_csv(path)
    assert table.rows["section_00_source_train_normal_0000_m-n_W_vel_1.wav"] == (("m-n", "W"), ("vel", "1"))
    assert table.rows["section_00_target_train_normal_0000_m-n_X_vel_2.wav"] == (("m-n", "Y"),)
    assert table.rows["section_00_source_train_normal_0099_m-n_W_vel_1.wav"] == (("m-n", "W"), ("vel", "1"))
    assert len(table.rows) == 3
    assert len(table.problems) == 2
    assert any(":4:" in p and "3 attribute cells" in p for p in table.problems)
    assert any(":5:" in p and "not_a_file" in p for p in table.problems)


def test_rebuild_repairs_and_reports_every_change(tmp_path):
    machine = _machine_dir(tmp_path)
    (machine / "attributes_00.csv").write_text(MALFORMED)
    changes = rebuild_attributes_csv(machine)
    text = "\n".join(changes)
    assert "changed section_00_target_train_normal_0000_m-n_X_vel_2.wav: m-n_Y -> m-n_X_vel_2" in text
    assert "added section_00_source_test_anomaly_0000_m-n_W_vel_1.wav" in text
    assert "dropped section_00_source_train_normal_0099_m-n_W_vel_1.wav" in text
    assert not any("section_00_source_train_normal_0000" in c for c in changes)  # a right row is kept as it was
    rebuilt = read_attributes_csv(machine / "attributes_00.csv")
    assert rebuilt.problems == []
    assert len(rebuilt.rows) == 3
    assert (machine / "attributes_00.csv").read_text().splitlines()[0] == "file_name,d1p,d1v,d2p,d2v"
    assert rebuild_attributes_csv(machine) == []  # idempotent
    assert not list(machine.glob("*.tmp"))


def test_rebuild_keeps_concealed_attributes(tmp_path):
    machine = tmp_path / "ToyX"
    (machine / "train").mkdir(parents=True)
    name = "section_00_source_train_normal_0000_noAttribute.wav"
    sf.write(machine / "train" / name, np.zeros(1600, dtype=np.float32), 16000)
    (machine / "attributes_00.csv").write_text(f"file_name,d1p,d1v\nToyX/train/{name},car,A1\n")
    assert rebuild_attributes_csv(machine) == []
    assert read_attributes_csv(machine / "attributes_00.csv").rows[name] == (("car", "A1"),)


def test_cli_check_and_rebuild(tmp_path, capsys):
    machine = _machine_dir(tmp_path)
    (machine / "attributes_00.csv").write_text(MALFORMED)
    assert attributes_cli(["check", str(machine)]) == 1
    assert "2 problems" in capsys.readouterr().out
    assert attributes_cli(["rebuild", str(machine), "--dry-run"]) == 0
    assert (machine / "attributes_00.csv").read_text() == MALFORMED
    assert attributes_cli(["rebuild", str(machine)]) == 0
    assert attributes_cli(["check", str(machine)]) == 0
    shutil.rmtree(machine / "train")
    shutil.rmtree(machine / "test")
    assert attributes_cli(["rebuild", str(machine)]) == 2
    assert "no .wav files" in capsys.readouterr().err
