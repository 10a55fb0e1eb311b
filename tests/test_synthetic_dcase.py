"""The generator's dcase profile: each mechanism does what its module says, and the files are a DCASE year."""

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED

from asd.data.filenames import UNKNOWN, parse_file_name
from asd.data.index import index_machine, list_machines
from asd.data.synthetic import PROFILES, SyntheticSpec, ensure_dataset
from asd.data.synthetic import __main__ as synthetic_cli
from asd.data.synthetic.background import FACTORIES, at_snr, factory_noise
from asd.data.synthetic.faults import FAULTS, STRUCTURAL_FAULTS, VALVE_FAULTS, ValveFault, add_fault
from asd.data.synthetic.layout import fault_of_test_clip, write_machine
from asd.data.synthetic.machines import DEVELOPMENT_TYPES, EVALUATION_TYPES, MACHINE_TYPES
from asd.data.synthetic.profiles import render
from asd.data.synthetic.signals import SAMPLE_RATE, level_db

DCASE = PROFILES["dcase"]
SHORT = replace(DCASE, spec=SyntheticSpec(duration_s=2.0, source_train=4, target_train=2, test_per_domain_and_label=3))
SILENT_FACTORY = (200.0, 200.0)  # an SNR at which the background is nothing: the machine alone
NO_FAULT = (-300.0, -300.0)


def _seed_parts(k):
    return (5, 0, 1, 1, k)


@pytest.mark.parametrize("machine", DEVELOPMENT_TYPES + EVALUATION_TYPES)
def test_the_background_lies_in_the_profiles_snr_range_below_or_above_the_machine(machine):
    snrs = []
    for k in range(6):
        clip, _ = render(machine, _seed_parts(k), "source", None, SHORT)
        alone, _ = render(machine, _seed_parts(k), "source", None, replace(SHORT, snr_db=SILENT_FACTORY))
        snrs.append(level_db(alone, clip - alone))
    low, high = DCASE.snr_db
    assert all(low - 0.05 <= snr <= high + 0.05 for snr in snrs), snrs
    assert max(snrs) - min(snrs) > 2.0  # drawn per clip, not one fixed level
    # mixing sets the level it is asked for
    machine_sound = MACHINE_TYPES[machine].sound(
        np.random.default_rng(0), np.arange(SAMPLE_RATE) / SAMPLE_RATE, 30.0, 0.5
    )
    noise = factory_noise(np.random.default_rng(1), SAMPLE_RATE, FACTORIES["source"])
    assert level_db(machine_sound, at_snr(noise, machine_sound, -4.0)) == pytest.approx(-4.0)


def test_the_background_is_recorded_apart_and_each_domain_has_its_own_factory():
    # the same clip seed with and without a fault: the same background (its own draws)
    normal, _ = render("fan", _seed_parts(0), "source", None, SHORT)
    faulty, _ = render("fan", _seed_parts(0), "source", "bearing", SHORT)
    alone, _ = render("fan", _seed_parts(0), "source", None, replace(SHORT, snr_db=SILENT_FACTORY))
    faulty_alone, _ = render("fan", _seed_parts(0), "source", "bearing", replace(SHORT, snr_db=SILENT_FACTORY))
    np.testing.assert_allclose(normal - alone, faulty - faulty_alone, atol=2e-4)  # 16-bit-like float32 rounding
    assert FACTORIES["source"] != FACTORIES["target"]
    source_noise = factory_noise(np.random.default_rng(3), 4 * SAMPLE_RATE, FACTORIES["source"])
    target_noise = factory_noise(np.random.default_rng(3), 4 * SAMPLE_RATE, FACTORIES["target"])
    freqs = np.fft.rfftfreq(source_noise.size, 1 / SAMPLE_RATE)
    high = freqs > 2000

    def high_share(noise):
        spectrum = np.abs(np.fft.rfft(noise)) ** 2
        return spectrum[high].sum() / spectrum.sum()

    assert high_share(target_noise) > 1.5 * high_share(source_noise)  # the target factory is brighter


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faults_energy_relative_to_the_machine_lies_in_its_range_far_below_the_background(fault):
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    machine = MACHINE_TYPES["gearbox"].sound(np.random.default_rng(0), t, 25.0, 0.5)
    faulty = add_fault(np.random.default_rng(1), t, machine, 25.0, fault, -12.0)
    assert level_db(faulty - machine, machine) == pytest.approx(-12.0)
    # through a rendered clip: the fault's level lies in the profile's range, and with the background
    # never below the machine (snr_db), at least 15 dB below the background (the added component alone: a
    # friction fault's slower speed is tested apart)
    levels = []
    for k in range(4):
        machine_type = next(m for m in MACHINE_TYPES if fault in MACHINE_TYPES[m].faults)
        quiet = replace(SHORT, snr_db=SILENT_FACTORY, friction_slip=(0.0, 0.0))
        alone, _ = render(machine_type, _seed_parts(k), "target", None, quiet)
        with_fault, _ = render(machine_type, _seed_parts(k), "target", fault, quiet)
        levels.append(level_db(with_fault - alone, alone))
    low, high = DCASE.fault_level_db
    assert all(low - 0.1 <= level <= high + 0.1 for level in levels), levels


def test_a_fault_has_its_physical_signature():
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    machine = MACHINE_TYPES["bearing"].sound(np.random.default_rng(0), t, 40.0, 0.5)
    freqs = np.fft.rfftfreq(t.size, 1 / SAMPLE_RATE)

    def spectrum_of(fault):
        return np.abs(np.fft.rfft(add_fault(np.random.default_rng(2), t, machine, 40.0, fault, -10.0) - machine))

    misalignment = spectrum_of("misalignment")
    assert set(np.round(freqs[np.argsort(misalignment)[-2:]])) == {80.0, 120.0}  # 2x and 3x the shaft rate
    leak = spectrum_of("leak") ** 2
    assert leak[(freqs >= 3000) & (freqs <= 7000)].sum() > 0.99 * leak.sum()  # a hiss in its band
    # bearing damage: impulses at the outer-race rate (3.57 x 40 Hz = 142.8 Hz) in the envelope
    impulses = add_fault(np.random.default_rng(2), t, machine, 40.0, "bearing", -10.0) - machine
    envelope = np.abs(np.fft.rfft(np.abs(impulses) - np.abs(impulses).mean()))
    assert abs(freqs[1 + np.argmax(envelope[1:1000])] - 142.8) < 1.0


def test_belt_slip_spreads_each_harmonic_into_sidebands_at_the_machines_own_power():
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 200.0 * t)
    freqs = np.fft.rfftfreq(t.size, 1 / SAMPLE_RATE)

    def share_at_200_hz(signal):
        spectrum = np.abs(np.fft.rfft(signal)) ** 2
        return spectrum[np.abs(freqs - 200.0) <= 1.0].sum() / spectrum.sum()

    slipping = STRUCTURAL_FAULTS["slip"](np.random.default_rng(0), t, tone, 25.0, 0.02)
    assert level_db(slipping, tone) == pytest.approx(0.0, abs=1e-9)  # as loud as before
    assert share_at_200_hz(tone) > 0.99 and share_at_200_hz(slipping) < 0.6  # the rest went to sidebands
    assert np.allclose(STRUCTURAL_FAULTS["slip"](np.random.default_rng(0), t, tone, 25.0, 0.0), tone)


@pytest.mark.parametrize("machine", [m for m in MACHINE_TYPES if "slip" in MACHINE_TYPES[m].faults])
def test_a_slipping_machine_changes_more_than_an_additive_fault_at_the_same_loudness(machine):
    quiet = replace(SHORT, snr_db=SILENT_FACTORY)
    for k in range(3):
        alone, _ = render(machine, _seed_parts(k), "target", None, quiet)
        slipping, _ = render(machine, _seed_parts(k), "target", "slip", quiet)
        assert abs(level_db(slipping, alone)) < 0.1
        # the change is louder than the loudest additive fault of the profile, yet adds no power
        assert level_db(slipping - alone, alone) > DCASE.fault_level_db[1]


def _blade_pass_hz(clip):
    """The fan's blade-pass tone (6 x the shaft rate, 120-250 Hz) to 0.1 Hz: the whole clip's spectrum."""
    freqs = np.fft.rfftfreq(clip.size, 1 / SAMPLE_RATE)
    band = (freqs > 120.0) & (freqs < 250.0)
    return freqs[band][np.argmax(np.abs(np.fft.rfft(clip))[band])]


def test_a_friction_fault_slows_the_machine_by_more_than_healthy_clips_vary():
    """A healthy clip's blade-pass tone lies within the profile's speed spread of its attribute's rate; a
    bearing fault of the same seed turns the same machine slower by a fraction in the friction-slip range."""
    quiet = replace(DCASE, snr_db=SILENT_FACTORY, fault_level_db=NO_FAULT)
    rates = {value: 6 * hz for value, hz in MACHINE_TYPES["fan"].speed[1].items()}
    drops = []
    for k in range(6):
        healthy, attributes = render("fan", _seed_parts(k), "source", None, quiet)
        assert _blade_pass_hz(healthy) / rates[attributes["vel"]] - 1 == pytest.approx(
            0, abs=DCASE.speed_spread + 0.001
        )
        worn, _ = render("fan", _seed_parts(k), "source", "bearing", quiet)
        drops.append(1 - _blade_pass_hz(worn) / _blade_pass_hz(healthy))
    low, high = DCASE.friction_slip
    assert all(low - 0.001 <= drop <= high + 0.001 for drop in drops) and max(drops) - min(drops) > 0.002
    # faults without friction keep the speed
    leaky, _ = render("pump", _seed_parts(0), "source", "leak", quiet)
    assert np.allclose(leaky, render("pump", _seed_parts(0), "source", None, quiet)[0])


@pytest.mark.parametrize("machine, key, order", [("fan", "vel", 6), ("gearbox", "rpm", 23)])
def test_the_speed_attribute_sets_the_harmonic_spacing(machine, key, order):
    machine_type = MACHINE_TYPES[machine]
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    freqs = np.fft.rfftfreq(t.size, 1 / SAMPLE_RATE)
    peaks = {}
    for value, shaft_hz in machine_type.speed[1].items():
        spectrum = np.abs(np.fft.rfft(machine_type.sound(np.random.default_rng(0), t, shaft_hz, 0.5)))
        peaks[value] = freqs[np.argmax(spectrum)]
        assert peaks[value] == pytest.approx(order * shaft_hz, abs=0.5)  # blade-pass / gear-mesh tone
    assert len(set(peaks.values())) == 3
    # source clips have the first two speed values, target clips the third
    source = {render(machine, _seed_parts(k), "source", None, SHORT)[1][key] for k in range(12)}
    target = {render(machine, _seed_parts(k), "target", None, SHORT)[1][key] for k in range(4)}
    assert source == set(list(machine_type.speed[1])[:2]) and target == set(list(machine_type.speed[1])[2:])


def test_the_dcase_profile_writes_a_dcase_year_deterministically(tmp_path):
    spec = ["--duration-s", "1", "--source-train", "3", "--target-train", "2", "--test-per-domain-and-label", "2"]
    synthetic_cli.main([str(tmp_path / "a"), "--profile", "dcase", "--seed", "4", *spec])
    root = tmp_path / "a"
    assert list_machines(root, "dev") == sorted(DEVELOPMENT_TYPES)
    assert list_machines(root, "eval") == sorted(EVALUATION_TYPES)
    marker = json.loads((root / "synthetic_dataset.json").read_text())
    assert marker["profile"] == "dcase" and marker["generation_s"] > 0  # the time it took is recorded
    # 10 target against the source's many in the profile itself; here the sizes given
    assert (DCASE.spec.source_train, DCASE.spec.target_train, DCASE.spec.duration_s) == (990, 10, 10.0)
    fan = index_machine(root, "dev", "fan")
    assert sum(c.info.domain == "target" and c.info.split == "train" for c in fan) == 2
    assert sf.info(fan[0].path).duration == 1.0 and sf.info(fan[0].path).samplerate == SAMPLE_RATE
    for machine in DEVELOPMENT_TYPES:
        names = [p.name for p in (root / "dev_data" / "raw" / machine / "train").iterdir()]
        concealed = machine in DCASE.concealed
        assert all(name.endswith("_noAttribute.wav") for name in names) == concealed
        assert (root / "ground_truth_attributes" / "dev_data" / machine).is_dir() == concealed
    # evaluation types: renamed test files labelled by the ground truth
    assert all(
        parse_file_name(p).label == UNKNOWN for p in (root / "eval_data" / "raw" / "blower" / "test").glob("*.wav")
    )
    truth = (root / "ground_truth" / "ground_truth_data" / "ground_truth_blower_section_00_test.csv").read_text()
    assert sorted(int(line.split(",")[1]) for line in truth.splitlines()) == [0, 0, 0, 0, 1, 1, 1, 1]
    synthetic_cli.main([str(tmp_path / "b"), "--profile", "dcase", "--seed", "4", *spec])
    for path in root.rglob("*.wav"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(root)).read_bytes()


def test_a_size_option_out_of_range_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        synthetic_cli.main([str(tmp_path / "x"), "--profile", "dcase", "--source-train", "0"])
    assert stopped.value.code == 2 and "--source-train must be positive, got 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_datamodule_reads_datasets_and_never_imports_the_generator():
    # asd.train runs the generator (data.synthetic); the datamodule and all it imports only read
    import ast
    import importlib.util

    seen, pending = set(), ["asd.data.datamodule"]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        spec = importlib.util.find_spec(module)
        tree = ast.parse(open(spec.origin).read())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            pending += [n for n in names if n.startswith("asd.")]
    assert "asd.data.index" in seen  # the walk follows the imports
    assert not any(m.startswith("asd.data.synthetic") for m in seen)


def test_a_dcase_dataset_written_before_the_profile_changed_is_written_again(tmp_path):
    """Calibration changes the dcase profile's sound step by step; a folder an earlier step wrote (its
    marker as that version wrote it) is not read back as today's profile by ensure_dataset (asd.train,
    calibrate_dcase.py), while today's folder is."""
    spec = ["--duration-s", "1", "--source-train", "2", "--target-train", "1", "--test-per-domain-and-label", "1"]
    root = tmp_path / "dc"
    synthetic_cli.main([str(root), "--profile", "dcase", "--seed", "4", *spec])
    size = SyntheticSpec(duration_s=1.0, source_train=2, target_train=1, test_per_domain_and_label=1)
    clip = next((root / "dev_data" / "raw" / "fan" / "train").iterdir())
    today = clip.read_bytes()
    clip.write_bytes(b"an earlier profile's clip")
    marker = json.loads((root / "synthetic_dataset.json").read_text())
    (root / "synthetic_dataset.json").write_text(json.dumps(marker))
    ensure_dataset(root, seed=4, spec=size, profile="dcase")
    assert clip.read_bytes() == b"an earlier profile's clip"  # today's marker: read back, not rewritten
    del marker["profile_version"]  # as the profile before calibration step 6 wrote it
    (root / "synthetic_dataset.json").write_text(json.dumps(marker))
    ensure_dataset(root, seed=4, spec=size, profile="dcase")
    assert clip.read_bytes() == today


def test_fault_of_test_clip_names_the_fault_each_written_test_clip_was_rendered_with(tmp_path):
    """What calibrate_dcase.py's per-fault table reads: a test clip's number says its fault."""
    profile = replace(DCASE, spec=replace(SHORT.spec, duration_s=0.5, test_per_domain_and_label=5))
    write_machine(tmp_path / "fan", 7, profile, 0, 1, tmp_path / "correspondence")
    kinds = MACHINE_TYPES["fan"].faults
    seen = []
    for path in sorted((tmp_path / "fan" / "test").glob("*.wav")):
        info = parse_file_name(path)
        fault = fault_of_test_clip(profile, "fan", info.index)
        assert (fault is None) == (info.label == "normal"), path.name
        written, _ = sf.read(path)
        distance = {
            kind: np.abs(written - render("fan", (7, 0, 0, 1, info.index), info.domain, kind, profile)[0]).max()
            for kind in (None, *kinds)
        }
        assert distance[fault] < 1e-4, path.name
        assert all(d > 1e-3 for kind, d in distance.items() if kind != fault), path.name
        seen.append((info.domain, fault))
    # five anomalous clips a domain draw the four faults in turn
    assert sorted(f for d, f in seen if d == "target" and f) == sorted([*kinds, kinds[0]])


@pytest.mark.skipif(not (SHARED / "dcase_names").is_dir(), reason="../shared/dcase_names is not beside this checkout")
def test_the_profile_conceals_what_dcase_2024_concealed():
    """The 2024 development types that came with ``noAttribute`` names (those given ground-truth attribute
    files) are concealed here too, among the types the profile models; the others are not."""
    revealed_later = SHARED / "dcase_names" / "ground_truth_attributes" / "dcase2024t2" / "dev_data"
    concealed_in_2024 = {p.name for p in revealed_later.iterdir() if p.is_dir()}
    assert set(DCASE.concealed) == concealed_in_2024 & set(DEVELOPMENT_TYPES)


VALVE_T = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE


def _valve(fault=None, level_db=-15.0, longest_delay_s=0.2):
    """The valve at its fastest pattern (a switch every third of a second), healthy or with ``fault``."""
    valve_fault = None if fault is None else ValveFault(fault, np.random.default_rng(9), level_db, longest_delay_s)
    return MACHINE_TYPES["valve"].sound(np.random.default_rng(4), VALVE_T, 45.0, 0.5, fault=valve_fault)


def _open_frames(valve):
    """Which 5-ms frames the flow hisses in (its 1-4 kHz band far above the valve's own hum)."""
    spectrum = np.fft.rfft(valve)
    spectrum[np.fft.rfftfreq(valve.size, 1 / SAMPLE_RATE) < 800.0] = 0.0
    frames = np.fft.irfft(spectrum, valve.size).reshape(-1, SAMPLE_RATE // 200)
    energy = np.mean(frames**2, axis=1)
    return energy > 0.1 * np.median(energy[energy > np.median(energy)])


def _switch_times(valve):
    return np.flatnonzero(np.diff(_open_frames(valve).astype(int))) * 0.005


def test_the_valves_faults_are_contaminations_not_a_rotating_machines():
    assert MACHINE_TYPES["valve"].faults == VALVE_FAULTS
    assert not set(VALVE_FAULTS) & (set(FAULTS) | set(STRUCTURAL_FAULTS))


def test_a_sticking_valve_switches_late_by_irregular_delays():
    healthy, sticking = _switch_times(_valve()), _switch_times(_valve("sticking", longest_delay_s=0.2))
    # a fixed pattern: an opening every 2/3 s, a closing between (detected later: the clack rings on)
    assert len(healthy) >= 10 and np.allclose(healthy[2:] - healthy[:-2], 2 / 3, atol=0.011)
    delays = sticking[: len(healthy)] - healthy[: len(sticking)]
    assert np.all((delays > -0.011) & (delays < 0.211)), delays
    assert delays.max() - delays.min() > 0.05  # each switch its own delay: the pattern is broken


@pytest.mark.parametrize("fault", ["seat_leak", "rebound"])
def test_a_contaminated_valves_added_sound_lies_at_its_level(fault):
    healthy = _valve()
    added = _valve(fault, level_db=-18.0) - healthy
    assert level_db(added, healthy) == pytest.approx(-18.0)
    shut = ~np.repeat(_open_frames(healthy), SAMPLE_RATE // 200)
    if fault == "seat_leak":  # the flow goes on while the valve is shut, and only then
        # (5-ms frames: a closing's clack rings into frames counted as open)
        assert np.sum(added[shut] ** 2) > 0.9 * np.sum(added**2)
    else:  # a second clack in the 35 ms after each closing (a bounce 3-15 ms late, its 20-ms ring); the
        # frames see a closing up to 25 ms late (its own clack rings on)
        closings = np.flatnonzero(np.diff(shut.astype(int)) == 1)
        near = np.zeros(VALVE_T.size, dtype=bool)
        for closing in closings:
            near[max(0, closing - int(0.025 * SAMPLE_RATE)) : closing + int(0.035 * SAMPLE_RATE)] = True
        assert near.mean() < 0.15
        assert np.sum(added[near] ** 2) > 0.999 * np.sum(added**2)
    # through a rendered clip: the level drawn from the profile's range
    quiet = replace(SHORT, snr_db=SILENT_FACTORY)
    alone, _ = render("valve", _seed_parts(0), "target", None, quiet)
    with_fault, _ = render("valve", _seed_parts(0), "target", fault, quiet)
    low, high = DCASE.fault_level_db
    assert low - 0.2 <= level_db(with_fault - alone, alone) <= high + 0.2
