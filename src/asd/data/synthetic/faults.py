"""Anomalies of the ``dcase`` profile as physical faults of a rotating machine, each an additive
component that :func:`add_fault` sets to a small power relative to the machine's own sound (and so far
below the factory background, which is mixed in afterwards at the clip's SNR).

Sources: the MIMII DG and ToyADMOS2 papers (Dohi et al. 2022; Harada et al. 2021) list the faults that
were made on real machines — damaged bearings, imbalance (a weight on a fan blade), misalignment and
belt/rail damage, rubbing, clogging and leaks; classic vibration diagnostics (Randall, "Vibration-based
Condition Monitoring", 2011) gives their signatures:
* bearing damage: weak impulses at the outer-race defect frequency (about 3.6 x the shaft rate), each
  ringing a structural resonance (kHz);
* imbalance: a once-per-revolution modulation of the machine's sound;
* misalignment: raised 2x and 3x shaft harmonics;
* rubbing: band noise in bursts, once per revolution;
* leak: steady band noise (a hiss);
* belt slip (a loose belt or worn coupling; MIMII DG's belt damage, ToyADMOS2's belt faults): the speed
  fluctuates by a few per cent at a slip rate of a few Hz, which frequency-modulates every harmonic into
  sidebands. A **structural** fault: it changes how the machine sounds, not how loud it is (the clip
  keeps its power), so its size is the fluctuation's depth, not a level (calibration step 3,
  experiments/README.md);
* more slip under friction (calibration step 6): an induction motor turns below its synchronous speed by a
  slip that grows with its load torque (a few per cent at rated load), so the friction of a damaged
  bearing, of rubbing or of a misaligned coupling slows it by a fraction of a per cent more — while a
  healthy machine at a set load and mains frequency keeps its speed to about 0.2 % (the mains frequency's
  own drift). Every harmonic moves by that fraction: at a few hundred Hz a shift of a few Hz, within one
  bin of a 1,024-point STFT (15.6 Hz) but many bins of a whole-clip spectrum (0.1 Hz).

A solenoid valve has no shaft to unbalance or bearing to wear: MIMII (Purohit et al. 2019) made its valve
anomalies by **contamination** — debris in the valve. Debris acts on the valve's own switching, so the
valve's sound renders these faults itself (:data:`VALVE_FAULTS`, calibration step 10):
* sticking: the plunger drags, so each switch comes late by a random delay of up to a few hundred ms (a
  healthy solenoid valve switches within tens of ms of its command, on a controller's fixed pattern) — a
  **structural** fault: the same hiss and clacks, at irregular instants;
* seat leak: debris holds the seat open, so the flow's hiss goes on, weaker, while the valve is shut;
* rebound: the plunger lands on debris and bounces, a second clack a few ms after each closing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asd.data.synthetic.signals import SAMPLE_RATE, band_noise, power, scaled_to

#: the outer-race defect frequency of a typical deep-groove ball bearing, in shaft orders
OUTER_RACE_ORDER = 3.57


def bearing_damage(rng, t, machine, shaft_hz):
    rate = OUTER_RACE_ORDER * shaft_hz
    impulses = np.zeros(t.size)
    onsets = np.arange(rng.uniform(0, 1 / rate), t[-1], 1 / rate)
    impulses[(onsets * SAMPLE_RATE).astype(int)] = rng.uniform(0.7, 1.0, onsets.size)
    ring_t = np.arange(int(0.01 * SAMPLE_RATE)) / SAMPLE_RATE
    resonance = rng.uniform(2500.0, 4500.0)
    ring = np.exp(-ring_t * 900.0) * np.sin(2 * np.pi * resonance * ring_t)
    return np.convolve(impulses, ring)[: t.size]


def imbalance(rng, t, machine, shaft_hz):
    return machine * np.sin(2 * np.pi * shaft_hz * t + rng.uniform(0, 2 * np.pi))


def misalignment(rng, t, machine, shaft_hz):
    return sum(
        amplitude * np.sin(2 * np.pi * order * shaft_hz * t + rng.uniform(0, 2 * np.pi))
        for order, amplitude in ((2, 1.0), (3, 0.6))
    )


def rubbing(rng, t, machine, shaft_hz):
    gate = np.sin(2 * np.pi * shaft_hz * t + rng.uniform(0, 2 * np.pi)) > 0.6
    return gate * band_noise(rng, t.size, 1000.0, 3000.0)


def leak(rng, t, machine, shaft_hz):
    return band_noise(rng, t.size, 3000.0, 7000.0)


def belt_slip(rng, t, machine, shaft_hz, depth):
    """``machine`` played at a speed that fluctuates by ``depth`` (a fraction of the speed) at 1-4 Hz, at
    its own power."""
    rate = rng.uniform(1.0, 4.0)
    clock = t + depth / (2 * np.pi * rate) * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    warped = np.interp(clock, t, machine)
    return warped * np.sqrt(power(machine) / power(warped))


#: faults that load the machine with friction, and so lower its speed by more slip
FRICTION_FAULTS = frozenset({"bearing", "rubbing", "misalignment"})

#: structural faults: a function of (rng, t, machine, shaft rate, depth) returning the faulty machine
STRUCTURAL_FAULTS = {"slip": belt_slip}

FAULTS = {
    "bearing": bearing_damage,
    "imbalance": imbalance,
    "misalignment": misalignment,
    "rubbing": rubbing,
    "leak": leak,
}


#: faults of a contaminated solenoid valve, rendered by the valve's sound (machines.MachineType.sound's ``fault``)
VALVE_FAULTS = ("sticking", "seat_leak", "rebound")


@dataclass(frozen=True)
class ValveFault:
    """One of :data:`VALVE_FAULTS` with its size: ``level_db`` sets an added component's power relative to
    the healthy valve (seat leak, rebound), ``longest_delay_s`` a sticking valve's latest switch. ``rng`` is
    the fault's own generator, so that the valve's other draws stay the healthy clip's."""

    name: str
    rng: np.random.Generator
    level_db: float
    longest_delay_s: float


def late_switches(rng, switches: np.ndarray, longest_delay_s: float, n: int) -> np.ndarray:
    """The sample indices of ``switches``, each later by a delay drawn up to ``longest_delay_s`` (kept in
    order: the delay is shorter than the time between switches), those delayed past the clip dropped."""
    delayed = switches + (rng.uniform(0.0, longest_delay_s, switches.size) * SAMPLE_RATE).astype(int)
    return np.sort(delayed[delayed < n])


def seat_leak(rng, open_: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """The flow's hiss (``low_hz``..``high_hz``) while the valve is shut."""
    return ~open_ * band_noise(rng, open_.size, low_hz, high_hz)


def rebound(rng, closings: np.ndarray, ring: np.ndarray, n: int) -> np.ndarray:
    """A second clack (``ring``) 3-15 ms after each closing."""
    bounces = closings + (rng.uniform(0.003, 0.015, closings.size) * SAMPLE_RATE).astype(int)
    clacks = np.zeros(n)
    clacks[bounces[bounces < n]] = 1.0
    return np.convolve(clacks, ring)[:n]


def add_fault(rng, t, machine: np.ndarray, shaft_hz: float, fault: str, level_db: float) -> np.ndarray:
    """``machine`` with ``fault``'s component added at ``level_db`` dB relative to its power (an additive
    fault; :data:`STRUCTURAL_FAULTS` change the machine instead)."""
    component = FAULTS[fault](rng, t, machine, shaft_hz)
    return machine + scaled_to(component, machine, level_db)
