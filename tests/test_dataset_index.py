import hashlib
import re
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED

from asd.data.attributes import read_attributes_csv
from asd.data.datamodule import class_name
from asd.data.filenames import FileNameError
from asd.data.ground_truth import GroundTruthError, read_eval_data_list
from asd.data.index import DatasetError, index_machine, list_machines
from asd.data.synthetic import MARKER, PROFILES, SyntheticSpec, generate

DEFAULT_MACHINES = PROFILES["default"].machines


def test_synthetic_layout_and_counts(synthetic_root):
    assert list_machines(synthetic_root, "dev") == sorted(DEFAULT_MACHINES)
    for machine in DEFAULT_MACHINES:
        clips = index_machine(synthetic_root, "dev", machine)
        counts = Counter((c.info.split, c.info.domain, c.info.label) for c in clips)
        assert counts[("train", "source", "normal")] == 90
        assert 10 <= counts[("train", "target", "normal")] <= 20
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                assert counts[("test", domain, label)] == 25
        assert all(c.info.attributes for c in clips)
        # the target domain differs by an operating attribute
        source_keys = {c.info.attributes[0] for c in clips if c.info.domain == "source"}
        target_keys = {c.info.attributes[0] for c in clips if c.info.domain == "target"}
        assert source_keys.isdisjoint(target_keys)
        table = read_attributes_csv(synthetic_root / "dev_data" / "raw" / machine / "attributes_00.csv")
        assert table.problems == [] and len(table.rows) == len(clips)
        info = sf.info(str(clips[0].path))
        assert (info.samplerate, info.channels, info.duration) == (16000, 1, 2.0)


def _digest(root):
    """Every file's name and bytes but the marker's (which records how long the generation took)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_synthetic_generation_is_deterministic(tmp_path):
    small = SyntheticSpec(source_train=6, target_train=2, test_per_domain_and_label=2)
    first = generate(tmp_path / "first", seed=0, spec=small)
    assert _digest(generate(tmp_path / "again", seed=0, spec=small)) == _digest(first)
    assert _digest(generate(tmp_path / "other", seed=1, spec=small)) != _digest(first)


def test_benchmark_profile_conceals_attributes_adds_noise_and_shifts_the_target_channel(tmp_path, synthetic_root):
    small = SyntheticSpec(source_train=4, target_train=2, test_per_domain_and_label=2)
    root = generate(tmp_path / "bench", seed=0, spec=small, profile="benchmark")
    assert list_machines(root, "dev") == sorted(["ToyRotor", "ToyClicker", "ToyHum", "ToyFan", "ToyPump", "ToyGear"])
    correspondence = root / "ground_truth_attributes"
    for machine in ("ToyHum", "ToyGear"):  # concealed, as three DCASE 2024 development types
        hidden = index_machine(root, "dev", machine)
        assert all(c.path.stem.endswith("_noAttribute") and not c.info.attributes for c in hidden)
        assert {class_name(c.info).split("/")[-1] for c in hidden} == {"source", "target"}  # the fallback classes
        # the official correspondence files give them back through the loader
        revealed = index_machine(root, "dev", machine, correspondence_dir=correspondence)
        assert all(c.info.attributes for c in revealed)
        assert {c.info.attributes[0] for c in revealed if c.info.domain == "target"} == {
            ("am", "5") if machine == "ToyHum" else ("rpm", "2")
        }
    visible = index_machine(root, "dev", "ToyFan")
    assert all(c.info.attributes for c in visible) and not (correspondence / "dev_data" / "ToyFan").exists()

    # a normal source clip is the default profile's clip plus factory noise at 3-15 dB SNR
    name = "section_00_source_train_normal_0000_" + "spd_1_loc_{}.wav"
    path = next((root / "dev_data" / "raw" / "ToyRotor" / "train").glob(name.format("*")))
    noisy, _ = sf.read(path)
    clean, _ = sf.read(synthetic_root / "dev_data" / "raw" / "ToyRotor" / "train" / path.name)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert 3.0 - 0.5 < snr < 15.0 + 0.5
    # the default profile is untouched by the benchmark's machine types and options
    assert PROFILES["default"].noise_snr_db is None and PROFILES["default"].machines == DEFAULT_MACHINES


def test_the_2020_naming_has_no_domains_and_its_clips_count_as_labelled(tmp_path, synthetic_2020_root):
    from asd.data.filenames import parse_file_name
    from asd.data.index import labelled_machines

    raw = synthetic_2020_root / "dev_data" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["ToyClicker", "ToyHum", "ToyRotor"]
    assert not (synthetic_2020_root / "eval_data").exists()
    for machine in raw.iterdir():
        train = sorted(p.name for p in (machine / "train").iterdir())
        test = sorted(p.name for p in (machine / "test").iterdir())
        # the source domain only: 2020 had no domains
        assert len(train) == 90 and all(re.fullmatch(r"normal_id_00_\d{8}\.wav", n) for n in train)
        assert len(test) == 50 and {n.split("_id_")[0] for n in test} == {"normal", "anomaly"}
        assert all(re.fullmatch(r"(normal|anomaly)_id_00_\d{8}\.wav", n) for n in test)
    assert generate(tmp_path / "again", seed=0, year=2020) and all(
        (tmp_path / "again" / p.relative_to(synthetic_2020_root)).read_bytes() == p.read_bytes()
        for p in synthetic_2020_root.rglob("*.wav")
    )
    infos = [parse_file_name(n, machine="fan") for n in ("normal_id_00_00000000.wav", "anomaly_id_00_00000001.wav")]
    assert labelled_machines(infos, {"fan": "dev"}, 2020) == {"fan"}
    # from 2021 on a labelled clip must carry its domain too
    assert labelled_machines(infos, {"fan": "dev"}, 2021) == set()


def test_eval_copy_gets_labels_domains_and_attributes_from_ground_truth(synthetic_root):
    clips = index_machine(synthetic_root, "eval", "ToyRotor", ground_truth_dir=synthetic_root / "ground_truth")
    test = [c for c in clips if c.info.split == "test"]
    assert len(test) == 100
    assert all(c.path.name.startswith("section_00_") and len(c.path.stem) == len("section_00_0000") for c in test)
    assert Counter((c.info.domain, c.info.label) for c in test) == {
        (d, lab): 25 for d in ("source", "target") for lab in ("normal", "anomaly")
    }
    for clip in test:
        original = clip.info.extra["original_name"]
        assert f"_{clip.info.domain}_test_{clip.info.label}_" in original
        assert clip.info.attributes and original.endswith(clip.info.attribute_string + ".wav")
    # without ground truth the labels stay unknown rather than guessed
    bare = index_machine(synthetic_root, "eval", "ToyRotor")
    assert {c.info.label for c in bare if c.info.split == "test"} == {"unknown"}


def test_missing_ground_truth_is_an_error_naming_the_file(tmp_path, synthetic_root):
    truth = tmp_path / "gt"
    shutil.copytree(synthetic_root / "ground_truth", truth)
    with pytest.raises(GroundTruthError, match="no ground truth for ToyRotor section 00"):
        index_machine(synthetic_root, "eval", "ToyRotor", ground_truth_dir=tmp_path / "elsewhere")
    labels = truth / "ground_truth_data" / "ground_truth_ToyRotor_section_00_test.csv"
    lines = labels.read_text().splitlines()
    dropped = lines[7].split(",")[0]
    labels.write_text("\n".join(lines[:7] + lines[8:]) + "\n")
    with pytest.raises(GroundTruthError, match=f"{dropped}: missing from the ground truth"):
        index_machine(synthetic_root, "eval", "ToyRotor", ground_truth_dir=truth)


def test_eval_data_list_mapping(tmp_path, synthetic_root):
    truth = synthetic_root / "ground_truth"
    originals = dict(
        line.split(",")
        for line in (truth / "ground_truth_attributes" / "ground_truth_ToyRotor_section_00_test.csv")
        .read_text()
        .split()
    )
    listing = tmp_path / "eval_data_list_2024.csv"
    listing.write_text(
        "ToyRotor\n"
        + "".join(f"{k},{v}.wav\n" for k, v in originals.items())
        + "OtherMachine\nsection_00_0000.wav,x.wav\n"
    )
    assert set(read_eval_data_list(listing)) == {"ToyRotor", "OtherMachine"}
    clips = index_machine(synthetic_root, "eval", "ToyRotor", eval_data_list=listing)
    with_truth = index_machine(synthetic_root, "eval", "ToyRotor", ground_truth_dir=truth)
    assert [(c.info.label, c.info.domain, c.info.attributes) for c in clips] == [
        (c.info.label, c.info.domain, c.info.attributes) for c in with_truth
    ]


@pytest.mark.skipif(not (SHARED / "dcase_names").is_dir(), reason="../shared/dcase_names is not beside this checkout")
def test_real_eval_data_lists_and_correspondences(tmp_path):
    mapping = read_eval_data_list(SHARED / "dcase_names" / "eval_data_list_2024.csv")
    assert len(mapping["3DPrinter"]) == 200
    assert mapping["3DPrinter"]["section_00_0001.wav"] == ("section_00_target_test_anomaly_0001_mdl_B_spd_2.wav", None)
    labelled = read_eval_data_list(SHARED / "dcase_names" / "eval_data_list_2020.csv")
    assert labelled["fan"]["id_01_00000000.wav"] == ("normal_id_01_00000098.wav", 0)
    # concealed attributes come back from the correspondence files
    machine = tmp_path / "dcase2025t2" / "dev_data" / "raw" / "ToyTrain"
    for split in ("train", "test"):
        (machine / split).mkdir(parents=True)
    correspondence = SHARED / "dcase_names" / "ground_truth_attributes" / "dcase2025t2"
    rows = (
        (correspondence / "dev_data" / "ToyTrain" / "attributes_00_train_correspondence.csv").read_text().split()[1:3]
    )
    for row in rows:
        sf.write(machine / "train" / row.split(",")[1], np.zeros(1600, dtype=np.float32), 16000)
    sf.write(
        machine / "test" / "section_00_source_test_normal_0000_noAttribute.wav", np.zeros(1600, dtype=np.float32), 16000
    )
    clips = index_machine(tmp_path / "dcase2025t2", "dev", "ToyTrain", correspondence_dir=correspondence)
    train = [c for c in clips if c.info.split == "train"]
    assert [c.info.extra["original_name"] for c in train] == [r.split(",")[0] for r in rows]
    assert all(c.info.attributes and not c.info.attributes_hidden for c in train)


def test_layout_errors_name_the_path(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="machine type folder not found"):
        index_machine(root, "dev", "fan")
    (root / "dev_data" / "raw" / "fan" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match="train: folder holds no audio files"):
        index_machine(root, "dev", "fan")
    train = root / "dev_data" / "raw" / "fan" / "train"
    sf.write(train / "fan_recording_1.wav", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(FileNameError, match=str(train / "fan_recording_1.wav")):
        index_machine(root, "dev", "fan")
    (train / "fan_recording_1.wav").unlink()
    sf.write(train / "section_00_source_test_normal_0000_a_1.wav", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(DatasetError, match="name says split 'test' but the file lies in 'train/'"):
        index_machine(root, "dev", "fan")
    with pytest.raises(DatasetError, match="data split must be one of"):
        index_machine(root, "development", "fan")


def test_pseudo_attributes_give_concealed_machine_types_cluster_classes(tmp_path):
    from asd.data.pseudo_attributes import cluster, main

    small = SyntheticSpec(source_train=12, target_train=3, test_per_domain_and_label=2)
    root = generate(tmp_path / "bench", seed=0, spec=small, profile="benchmark")
    shutil.rmtree(root / "ground_truth_attributes")  # no ground truth is used
    main(["--root", str(root), "--out", str(tmp_path / "pseudo"), "--clusters", "2", "--method", "gmm"])
    written = sorted(p.relative_to(tmp_path / "pseudo").as_posix() for p in (tmp_path / "pseudo").rglob("*.csv"))
    assert written == [f"dev_data/{m}/attributes_00_train_correspondence.csv" for m in ("ToyGear", "ToyHum")]
    for machine in ("ToyHum", "ToyGear"):
        clips = [
            c
            for c in index_machine(root, "dev", machine, correspondence_dir=tmp_path / "pseudo")
            if c.info.split == "train"
        ]
        values = {(c.info.domain, dict(c.info.attributes)["pseudo"]) for c in clips}
        # two clusters per domain, named apart so that source and target clusters never merge
        assert values == {("source", "s0"), ("source", "s1"), ("target", "t0"), ("target", "t1")}
        assert len({class_name(c.info) for c in clips}) == 4  # the domain fallback gives 2
    assert set(cluster(np.eye(3), 5, "kmeans")) == {0, 1, 2}  # never more clusters than clips
