"""Machine types of the ``dcase`` profile: rotating machines whose operating attributes set the
structure of their sound.

Source: the DCASE 2020-2024 Task 2 descriptions and the MIMII DG / ToyADMOS2 papers — every type has
attributes that describe its operating condition (speed or velocity, load, pressure, voltage, ...), and
a change of attribute value between the source and the target domain is the main domain shift. A
speed changes the shaft rate and with it every harmonic's spacing (fan blade-pass, gear mesh, pump
strokes); a load changes the balance of harmonics and the broadband part. Each type here has a speed
attribute (its values are the domains: two in the source domain, another in the target domain) and a
load-like attribute (both values in both domains), and its own character:

=========== ==================================================================================
fan         blade-pass tones (6 blades) over aerodynamic noise that grows with the flow
pump        strokes twice per revolution modulating flow noise, motor harmonics
gearbox     gear-mesh tones (23 teeth) with shaft-rate sidebands; the load tilts the harmonics
bearing     shaft harmonics over rolling noise that grows with the load
slider      a servo motor's whine and end-of-stroke impacts
valve       flow hiss gated open and shut in a cycle, with a clack at each switch; debris in it
            (contamination) makes its faults
ToyCar      motor harmonics and a gear whine over road noise
compressor  (evaluation) piston impulses over a motor tone
blower      (evaluation) many-bladed impeller: weak blade-pass over strong broadband air noise
conveyor    (evaluation) roller ticks over belt noise
=========== ==================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from asd.data.synthetic import faults
from asd.data.synthetic.signals import SAMPLE_RATE, band_noise, coloured_noise, scaled_to


def _harmonics(rng, t, f0, amplitudes):
    return sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t + rng.uniform(0, 2 * np.pi)) for k, a in enumerate(amplitudes))


def _fan(rng, t, shaft_hz, load):
    blade_pass = 6 * shaft_hz
    tones = _harmonics(rng, t, blade_pass, [1.0, 0.5, 0.25, 0.12]) + 0.2 * np.sin(2 * np.pi * shaft_hz * t)
    return tones + (0.4 + 0.8 * load) * coloured_noise(rng, t.size, 0.5)


def _pump(rng, t, shaft_hz, load):
    strokes = np.abs(np.sin(np.pi * 2 * shaft_hz * t + rng.uniform(0, np.pi))) ** 4
    flow = strokes * band_noise(rng, t.size, 200.0, 2000.0) * (0.5 + load)
    return flow + _harmonics(rng, t, shaft_hz, [0.6, 0.4, 0.3, 0.2, 0.1])


def _gearbox(rng, t, shaft_hz, load):
    mesh = 23 * shaft_hz
    sidebands = 1.0 + 0.25 * np.sin(2 * np.pi * shaft_hz * t + rng.uniform(0, 2 * np.pi))
    tones = _harmonics(rng, t, mesh, [(0.4 + 0.6 * load) ** k for k in range(3)])
    return sidebands * tones + 0.15 * coloured_noise(rng, t.size, 0.8)


def _bearing(rng, t, shaft_hz, load):
    return _harmonics(rng, t, shaft_hz, [1.0, 0.6, 0.4, 0.3, 0.2, 0.1]) + (0.2 + 0.6 * load) * coloured_noise(
        rng, t.size, 1.0
    )


def _slider(rng, t, shaft_hz, load):
    whine = _harmonics(rng, t, 8 * shaft_hz, [0.5, 0.2])
    stroke_hz = shaft_hz / 16
    impacts = np.zeros(t.size)
    onsets = np.arange(rng.uniform(0, 0.5 / stroke_hz), t[-1], 0.5 / stroke_hz)
    impacts[(onsets * SAMPLE_RATE).astype(int)] = 1.0 + load
    ring_t = np.arange(int(0.05 * SAMPLE_RATE)) / SAMPLE_RATE
    ring = np.exp(-ring_t * 80.0) * np.sin(2 * np.pi * 900.0 * ring_t)
    return whine + 3.0 * np.convolve(impacts, ring)[: t.size] + 0.1 * coloured_noise(rng, t.size, 1.0)


def _valve(rng, t, shaft_hz, load, fault: faults.ValveFault | None = None):
    cycle_hz = shaft_hz / 30
    open_ = np.sin(2 * np.pi * cycle_hz * t + rng.uniform(0, 2 * np.pi)) > 0.0
    switches = np.flatnonzero(np.diff(open_.astype(int))) + 1
    if fault is not None and fault.name == "sticking":
        switches = faults.late_switches(fault.rng, switches, fault.longest_delay_s, t.size)
        toggles = np.zeros(t.size, dtype=int)
        toggles[switches] = 1
        open_ = (np.cumsum(toggles) % 2).astype(bool) ^ open_[0]
    hiss_band = (1000.0, 4000.0)
    hiss = open_ * band_noise(rng, t.size, *hiss_band) * (0.5 + load)
    clacks = np.zeros(t.size)
    clacks[switches] = 4.0
    ring_t = np.arange(int(0.02 * SAMPLE_RATE)) / SAMPLE_RATE
    ring = np.exp(-ring_t * 200.0) * np.sin(2 * np.pi * 1500.0 * ring_t)
    valve = hiss + np.convolve(clacks, ring)[: t.size] + _harmonics(rng, t, shaft_hz, [0.2, 0.1])
    if fault is None or fault.name == "sticking":
        return valve
    if fault.name == "seat_leak":
        added = faults.seat_leak(fault.rng, open_, *hiss_band)
    else:
        added = faults.rebound(fault.rng, switches[~open_[switches]], ring, t.size)
    return valve + scaled_to(added, valve, fault.level_db)


def _toycar(rng, t, shaft_hz, load):
    motor = _harmonics(rng, t, shaft_hz, [1.0, 0.7, 0.5, 0.3])
    gear = 0.3 * np.sin(2 * np.pi * 12 * shaft_hz * t)
    wheels = 1.0 + 0.2 * np.sin(2 * np.pi * shaft_hz / 10 * t)
    return wheels * (motor + gear) + (0.3 + 0.5 * load) * coloured_noise(rng, t.size, 0.7)


def _compressor(rng, t, shaft_hz, load):
    pulses = np.zeros(t.size)
    onsets = np.arange(rng.uniform(0, 1 / shaft_hz), t[-1], 1 / shaft_hz)
    pulses[(onsets * SAMPLE_RATE).astype(int)] = 1.0 + load
    ring_t = np.arange(int(0.01 * SAMPLE_RATE)) / SAMPLE_RATE
    ring = np.exp(-ring_t * 300.0) * np.sin(2 * np.pi * 600.0 * ring_t)
    return np.convolve(pulses, ring)[: t.size] + _harmonics(rng, t, 2 * shaft_hz, [0.5, 0.2])


def _blower(rng, t, shaft_hz, load):
    return 0.3 * _harmonics(rng, t, 12 * shaft_hz, [1.0, 0.4]) + (0.8 + load) * coloured_noise(rng, t.size, 0.3)


def _conveyor(rng, t, shaft_hz, load):
    ticks = np.zeros(t.size)
    onsets = np.arange(rng.uniform(0, 1 / (4 * shaft_hz)), t[-1], 1 / (4 * shaft_hz))
    ticks[(onsets * SAMPLE_RATE).astype(int)] = rng.uniform(0.5, 1.0, onsets.size)
    ring_t = np.arange(int(0.005 * SAMPLE_RATE)) / SAMPLE_RATE
    ring = np.exp(-ring_t * 1200.0) * np.sin(2 * np.pi * 2200.0 * ring_t)
    return np.convolve(ticks, ring)[: t.size] + (0.3 + 0.3 * load) * band_noise(rng, t.size, 100.0, 1500.0)


@dataclass(frozen=True)
class MachineType:
    """A machine type: its sound (a function of the shaft rate in Hz and a load in [0, 1]), its speed
    attribute (name, value -> shaft rate; the first two values are the source domain's, the last the
    target domain's), its load attribute (name, value -> load) and the faults it suffers. A sound that
    renders faults of its own mechanism (the valve's, faults.VALVE_FAULTS) takes them as ``fault``."""

    sound: Callable[..., np.ndarray]
    speed: tuple[str, dict[str, float]]
    load: tuple[str, dict[str, float]]
    faults: tuple[str, ...]

    def operating_point(
        self, rng: np.random.Generator, domain: str, speed_spread: float
    ) -> tuple[dict[str, str], float, float]:
        """A clip's attributes and the shaft rate and load they mean (the rate varies between clips by up to
        ``speed_spread``, a fraction)."""
        (speed_key, speeds), (load_key, loads) = self.speed, self.load
        values = list(speeds)[:2] if domain == "source" else list(speeds)[2:]
        speed = values[int(rng.integers(len(values)))]
        load = list(loads)[int(rng.integers(len(loads)))]
        shaft_hz = speeds[speed] * rng.uniform(1.0 - speed_spread, 1.0 + speed_spread)
        return {speed_key: speed, load_key: load}, shaft_hz, loads[load]


MACHINE_TYPES = {
    "fan": MachineType(
        _fan,
        ("vel", {"6": 25.0, "8": 30.0, "10": 37.0}),
        ("flow", {"lo": 0.2, "hi": 0.8}),
        ("imbalance", "bearing", "rubbing", "slip"),
    ),
    "pump": MachineType(
        _pump,
        ("spd", {"20": 20.0, "25": 25.0, "32": 32.0}),
        ("prs", {"a": 0.3, "b": 0.9}),
        ("leak", "bearing", "imbalance", "slip"),
    ),
    "gearbox": MachineType(
        _gearbox,
        ("rpm", {"1200": 20.0, "1500": 25.0, "1800": 30.0}),
        ("wt", {"150": 0.3, "300": 0.9}),
        ("misalignment", "bearing", "rubbing", "slip"),
    ),
    "bearing": MachineType(
        _bearing,
        ("vel", {"8": 40.0, "12": 48.0, "16": 60.0}),
        ("loc", {"A": 0.2, "B": 0.7}),
        ("bearing", "imbalance", "rubbing"),
    ),
    "slider": MachineType(
        _slider,
        ("vel", {"300": 40.0, "400": 48.0, "600": 64.0}),
        ("ac", {"03": 0.2, "05": 0.8}),
        ("rubbing", "bearing", "misalignment"),
    ),
    "valve": MachineType(
        _valve,
        ("pat", {"00": 30.0, "01": 36.0, "02": 45.0}),
        ("pres", {"1": 0.3, "2": 0.9}),
        faults.VALVE_FAULTS,
    ),
    "ToyCar": MachineType(
        _toycar,
        ("spd", {"28V": 80.0, "31V": 90.0, "38V": 110.0}),
        ("car", {"A1": 0.2, "B2": 0.7}),
        ("bearing", "misalignment", "imbalance"),
    ),
    "compressor": MachineType(
        _compressor,
        ("rpm", {"900": 15.0, "1050": 17.5, "1350": 22.5}),
        ("prs", {"lo": 0.3, "hi": 0.8}),
        ("leak", "bearing", "misalignment"),
    ),
    "blower": MachineType(
        _blower,
        ("spd", {"1": 20.0, "2": 24.0, "3": 30.0}),
        ("duct", {"s": 0.3, "l": 0.8}),
        ("imbalance", "rubbing", "bearing"),
    ),
    "conveyor": MachineType(
        _conveyor,
        ("vel", {"1": 12.0, "2": 15.0, "3": 20.0}),
        ("wt", {"0": 0.2, "1": 0.8}),
        ("bearing", "rubbing", "misalignment"),
    ),
}
#: the development types (seven, as DCASE 2024's) and the evaluation types
DEVELOPMENT_TYPES = ("fan", "pump", "gearbox", "bearing", "slider", "valve", "ToyCar")
EVALUATION_TYPES = ("compressor", "blower", "conveyor")
