import shutil

import numpy as np
import soundfile as sf

from asd.data.attributes import main as attributes_cli
from asd.data.attributes import read_attributes_csv, rebuild_attributes_csv


def _machine_dir(tmp_path):
    machine = tmp_path / "fan"
    for split, names in {
        "train": [
            "section_00_source_train_normal_0000_m-n_W_vel_1.wav",
            "section_00_target_train_normal_0000_m-n_X_vel_2.wav",
        ],
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
    out = capsys.readouterr().out
    assert "3 rows readable, 3 problems" in out  # two malformed rows, one test file without a row
    assert "section_00_source_test_anomaly_0000_m-n_W_vel_1.wav: audio file without a row" in out
    assert attributes_cli(["rebuild", str(machine), "--dry-run"]) == 0
    assert (machine / "attributes_00.csv").read_text() == MALFORMED
    assert attributes_cli(["rebuild", str(machine)]) == 0
    assert attributes_cli(["check", str(machine)]) == 0
    shutil.rmtree(machine / "train")
    shutil.rmtree(machine / "test")
    assert attributes_cli(["rebuild", str(machine)]) == 2
    assert "no audio files (.wav, .flac)" in capsys.readouterr().err


CLEAN = (
    "file_name,d1p,d1v,d2p,d2v\n"
    "fan/train/section_00_source_train_normal_0000_m-n_W_vel_1.wav,m-n,W,vel,1\n"
    "fan/train/section_00_target_train_normal_0000_m-n_X_vel_2.wav,m-n,X,vel,2\n"
    "fan/test/section_00_source_test_anomaly_0000_m-n_W_vel_1.wav,m-n,W,vel,1\n"
)


def test_a_byte_order_mark_does_not_hide_the_header(tmp_path, capsys):
    machine = _machine_dir(tmp_path)
    (machine / "attributes_00.csv").write_bytes(b"\xef\xbb\xbf" + CLEAN.encode())
    assert attributes_cli(["check", str(machine)]) == 0
    assert "3 rows readable, 0 problems" in capsys.readouterr().out


def test_a_semicolon_delimited_file_is_read_and_reported(tmp_path, capsys):
    machine = _machine_dir(tmp_path)
    (machine / "attributes_00.csv").write_text(CLEAN.replace(",", ";"))
    assert attributes_cli(["check", str(machine)]) == 1
    out = capsys.readouterr().out
    assert "3 rows readable, 1 problems" in out and "separated by ';' (the official files use ',')" in out
    table = read_attributes_csv(machine / "attributes_00.csv")
    assert table.rows["section_00_target_train_normal_0000_m-n_X_vel_2.wav"] == (("m-n", "X"), ("vel", "2"))


def test_name_only_rows_and_audio_files_without_a_row_are_reported(tmp_path, capsys):
    machine = _machine_dir(tmp_path)
    lines = CLEAN.splitlines()
    # the test file has a name only; the target training file has no row at all
    (machine / "attributes_00.csv").write_text("\n".join([lines[0], lines[1], lines[3].split(",")[0]]) + "\n")
    assert attributes_cli(["check", str(machine)]) == 1
    out = capsys.readouterr().out
    assert "section_00_source_test_anomaly_0000_m-n_W_vel_1.wav has a file name only, no attribute cells" in out
    assert "section_00_target_train_normal_0000_m-n_X_vel_2.wav: audio file without a row in attributes_00.csv" in out


def test_flac_files_are_listed_and_rebuilt(tmp_path, capsys):
    machine = _machine_dir(tmp_path)
    sf.write(
        machine / "train" / "section_00_source_train_normal_0001_m-n_W_vel_1.flac",
        np.zeros(1600, dtype=np.float32),
        16000,
    )
    (machine / "attributes_00.csv").write_text(
        CLEAN + "fan/train/section_00_source_train_normal_0001_m-n_W_vel_1.flac,m-n,W,vel,1\n"
    )
    assert attributes_cli(["check", str(machine)]) == 0
    assert "4 rows readable, 0 problems" in capsys.readouterr().out
    (machine / "attributes_00.csv").unlink()
    rebuild_attributes_csv(machine)
    assert (
        "section_00_source_train_normal_0001_m-n_W_vel_1.flac"
        in read_attributes_csv(machine / "attributes_00.csv").rows
    )
