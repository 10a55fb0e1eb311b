import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from asd.data.datamodule import DCASEDataModule
from asd.eda import main as eda


@pytest.fixture
def dataset(tmp_path, synthetic_root):
    root = tmp_path / "dataset"
    shutil.copytree(synthetic_root, root)
    return root


def test_summary_counts_attributes_and_problems(dataset, tmp_path, capsys):
    (dataset / "dev_data" / "raw" / "ToyHum" / "train" / "recording_07.wav").write_bytes(b"")
    csv = dataset / "dev_data" / "raw" / "ToyHum" / "attributes_00.csv"
    csv.write_text(csv.read_text() + "ToyHum/train/section_00_source_train_normal_0000_am_2_load_lo.wav,am\n")
    assert eda(["summary", "--root", str(dataset), "--out", str(tmp_path / "eda")]) == 0
    table = pd.read_csv(tmp_path / "eda" / "summary.csv", dtype=str)
    rotor = table[(table.machine == "ToyRotor")]
    assert rotor.set_index(["split", "domain", "label"]).loc[("train", "source", "normal"), "clips"] == "90"
    assert rotor[rotor.split == "all"].iloc[0][["clips", "sample_rates", "duration_s"]].tolist() == [
        "200",
        "16000",
        "2.00-2.00",
    ]
    attributes = pd.read_csv(tmp_path / "eda" / "attributes.csv")
    assert set(attributes[attributes.machine == "ToyClicker"].key) == {"rate", "mic"}
    assert attributes[(attributes.machine == "ToyRotor") & (attributes.key == "spd")].clips.sum() == 200
    problems = (tmp_path / "eda" / "problems.txt").read_text()
    assert "recording_07.wav: file name fits no DCASE" in problems and "1 attribute cells" in problems
    assert "## Problems (2)" in (tmp_path / "eda" / "summary.md").read_text()


def test_rebuild_attributes_repairs_and_reports(dataset, capsys):
    csv = dataset / "dev_data" / "raw" / "ToyRotor" / "attributes_00.csv"
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",Z"  # a wrong value
    csv.write_text("\n".join(lines[:10]) + "\n")  # and most rows missing
    assert eda(["rebuild-attributes", "--root", str(dataset), "--machines", "ToyRotor"]) == 0
    out = capsys.readouterr().out
    assert "ToyRotor: 192 changes" in out and "changed" in out and "loc_Z" in out
    assert len(csv.read_text().splitlines()) == 201


def test_extract_fills_the_cache_that_training_reads(synthetic_root, tmp_path):
    cache = tmp_path / "cache"
    assert eda(["extract", "--root", str(synthetic_root), "--cache-dir", str(cache), "--machines", "ToyRotor"]) == 0
    datamodule = DCASEDataModule(str(synthetic_root), ["ToyRotor"], cache_dir=str(cache))
    datamodule.setup()
    assert (datamodule.cache.hits, datamodule.cache.misses) == (200, 0)


def test_pairs_keep_notes_across_regeneration(synthetic_root, tmp_path):
    dataset = synthetic_root
    out = tmp_path / "eda"
    assert eda(["pairs", "--root", str(dataset), "--out", str(out), "--machines", "ToyRotor", "--per-kind", "1"]) == 0
    notes_path = out / "audio_pair_notes.json"
    entries = json.loads(notes_path.read_text())
    assert {e["kind"] for e in entries} == {"normal_vs_anomaly", "source_vs_target", "different_attributes"}
    assert len(entries) == 3
    for entry in entries:
        assert Path(entry["figure"]).is_file()
        if entry["kind"] == "normal_vs_anomaly":
            assert entry["different"]["label"] == ["normal", "anomaly"]
            assert entry["same"]["domain"] == entry["metadata_a"]["domain"]
        if entry["kind"] == "source_vs_target":
            assert entry["different"]["domain"] == ["source", "target"]
    entries[0]["same_note"] = "both hum at 120 Hz"
    entries[1]["difference_note"] = "B rattles"
    notes_path.write_text(json.dumps(entries))
    assert eda(["pairs", "--root", str(dataset), "--out", str(out), "--machines", "ToyRotor", "--per-kind", "1"]) == 0
    again = {e["id"]: e for e in json.loads(notes_path.read_text())}
    assert again[entries[0]["id"]]["same_note"] == "both hum at 120 Hz"
    assert again[entries[1]["id"]]["difference_note"] == "B rattles"
    # notes on pairs that a new selection no longer draws are kept too
    assert (
        eda(
            [
                "pairs",
                "--root",
                str(dataset),
                "--out",
                str(out),
                "--machines",
                "ToyRotor",
                "--per-kind",
                "1",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    kept = {e["id"]: e for e in json.loads(notes_path.read_text())}
    assert kept[entries[0]["id"]]["same_note"] == "both hum at 120 Hz"


def test_plots_per_machine(synthetic_root, tmp_path):
    assert eda(["plots", "--root", str(synthetic_root), "--out", str(tmp_path), "--machines", "ToyHum"]) == 0
    figure = tmp_path / "plots" / "ToyHum_mean_spectra.png"
    assert figure.is_file() and figure.stat().st_size > 20_000


def test_unknown_machine_is_a_clear_error(synthetic_root):
    with pytest.raises(SystemExit, match="no machine folder for fan"):
        eda(["summary", "--root", str(synthetic_root), "--machines", "fan"])
