import csv
from pathlib import Path

import pytest
from conftest import SHARED

from asd.data.filenames import FileNameError, parse_attributes, parse_file_name


@pytest.mark.parametrize(
    "name, expected",
    [
        # 2020 development and renamed evaluation
        ("normal_id_00_00000000.wav", dict(section=0, section_prefix="id", label="normal", domain="unknown", index=0)),
        ("anomaly_id_04_00000123.wav", dict(section=4, label="anomaly", index=123)),
        ("id_01_00000007.wav", dict(section=1, section_prefix="id", label="unknown", index=7)),
        # 2021 renamed evaluation keeps the domain
        ("section_03_source_test_0000.wav", dict(section=3, domain="source", split="test", label="unknown")),
        # 2022-2025 development
        (
            "section_00_source_train_normal_0000_vel_21.wav",
            dict(domain="source", split="train", label="normal", attributes=(("vel", "21"),)),
        ),
        (
            "section_00_target_test_anomaly_0012_noAttribute.wav",
            dict(domain="target", split="test", label="anomaly", index=12, attributes=(), attributes_hidden=True),
        ),
        (
            "section_00_source_supplemental_normal_0003_car_A1_spd_28V_mic_1.wav",
            dict(split="supplemental", attributes=(("car", "A1"), ("spd", "28V"), ("mic", "1"))),
        ),
        # renamed evaluation files and originals listed without a split
        ("section_00_0000.wav", dict(section=0, domain="unknown", split="unknown", label="unknown")),
        (
            "section_00_source_normal_0035_weight15_BckgF.wav",
            dict(split="unknown", label="normal", attributes=(("weight", "15"), ("Bckg", "F"))),
        ),
    ],
)
def test_every_years_pattern(name, expected):
    info = parse_file_name(name, machine="fan")
    assert info.machine == "fan" and info.file_name == name
    for key, value in expected.items():
        assert getattr(info, key) == value, key


@pytest.mark.parametrize(
    "attribute_string, pairs",
    [
        (
            "mic_imp1absu_mic_pos_A_grind_1_bkg_A1",
            (("mic", "imp1absu"), ("mic_pos", "A"), ("grind", "1"), ("bkg", "A1")),
        ),
        ("ac_0.01_", (("ac", "0.01"),)),
        ("pro_A_wt_1_damage1", (("pro", "A"), ("wt", "1"), ("damage", "1"))),
        ("v1pat_1_v2pat_2", (("v1pat", "1"), ("v2pat", "2"))),
        ("spd1000", (("spd", "1000"),)),
        ("noAttribute", ()),
    ],
)
def test_irregular_attribute_strings(attribute_string, pairs):
    assert parse_attributes(attribute_string) == pairs


@pytest.mark.parametrize(
    "name",
    [
        "fan_0000.wav",
        "section_00_source_train_normal.wav",
        "section_xx_0000.wav",
        "section_00_0000.mp3",
        "",
        "normal_id_00.wav",
    ],
)
def test_unknown_names_are_errors_naming_the_file(name):
    with pytest.raises(FileNameError, match="fits no DCASE"):
        parse_file_name(f"/data/fan/train/{name}" if name else "/data/fan/train/")
    with pytest.raises(FileNameError) as err:
        parse_file_name(Path("/data/fan/train") / (name or "x"))
    assert "/data/fan/train" in str(err.value)


def _real_names():
    names = set()
    for path in sorted((SHARED / "dcase_names").rglob("*.csv")):
        with open(path, newline="") as file:
            for row in csv.reader(file):
                names.update(cell for cell in row if cell.endswith(".wav"))
    return names


@pytest.mark.skipif(not (SHARED / "dcase_names").is_dir(), reason="../shared/dcase_names is not beside this checkout")
def test_all_real_dcase_names_parse():
    names = _real_names()
    assert len(names) > 20000
    failures = []
    for name in names:
        try:
            info = parse_file_name(name)
        except FileNameError as err:
            failures.append(str(err))
            continue
        # Every name with a label or domain spelled out must decode it.
        if "_normal_" in name or name.startswith("normal_"):
            assert info.label == "normal", name
        if "_anomaly_" in name or name.startswith("anomaly_"):
            assert info.label == "anomaly", name
        if "_target_" in name:
            assert info.domain == "target", name
        # Attribute-carrying names must decode to at least one pair.
        tail = name.rsplit(".", 1)[0].split("_")
        if len(tail) > 6 and "noAttribute" not in name and tail[5].isdigit():
            assert info.attributes, name
    assert failures == []
