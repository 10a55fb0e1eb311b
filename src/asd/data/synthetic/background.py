"""Factory background noise of the ``dcase`` profile, recorded apart from the machine and mixed in at a
signal-to-noise ratio drawn per clip.

Source: the MIMII DG and ToyADMOS2 papers and the DCASE 2021-2024 Task 2 descriptions — the machine
sounds were recorded in a quiet room and mixed with noise recorded in real factories; the noise is often
as loud as or louder than the machine (MIMII: SNR -6, 0 and +6 dB), it holds other machines' hum and
impulsive events (tools, doors, carts), and a change of factory is one of the domain shifts ("different
environmental noise" in the target domain). Each domain has its own factory (:data:`FACTORIES`); a clip's
background is its own draw, independent of the machine (recorded apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asd.data.synthetic.signals import SAMPLE_RATE, coloured_noise, power


@dataclass(frozen=True)
class Factory:
    """A factory hall's noise: its broadband colour, the mains frequency of its other machines and how
    many of them hum, and how often something bangs."""

    tilt: float
    mains_hz: float
    other_machines: int
    events_per_s: float


FACTORIES = {
    "source": Factory(tilt=1.0, mains_hz=50.0, other_machines=2, events_per_s=0.3),
    "target": Factory(tilt=0.6, mains_hz=60.0, other_machines=4, events_per_s=0.8),
}


def factory_noise(rng: np.random.Generator, n: int, factory: Factory) -> np.ndarray:
    """One background recording of ``n`` samples, unit power."""
    t = np.arange(n) / SAMPLE_RATE
    noise = coloured_noise(rng, n, factory.tilt)
    for _ in range(factory.other_machines):  # other machines' hum: harmonics of a rate tied to the mains
        f0 = factory.mains_hz * rng.choice([0.5, 1.0, 2.0]) * rng.uniform(0.97, 1.03)
        level = rng.uniform(0.2, 0.6)
        noise = noise + level * sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    for _ in range(rng.poisson(factory.events_per_s * t[-1])):  # tools, doors, carts
        start = int(rng.integers(0, n))
        length = min(int(rng.uniform(0.02, 0.2) * SAMPLE_RATE), n - start)
        noise[start : start + length] += rng.uniform(2.0, 6.0) * rng.standard_normal(length) * np.hanning(length)
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))  # slow level drift
    noise = noise * swell
    return noise / np.sqrt(power(noise))


def at_snr(background: np.ndarray, machine: np.ndarray, snr_db: float) -> np.ndarray:
    """``background`` scaled so that ``machine`` lies ``snr_db`` dB above it (the clip is their sum)."""
    return background * np.sqrt(power(machine) / power(background) / 10 ** (snr_db / 10))
