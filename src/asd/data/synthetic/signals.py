"""Signal pieces every mechanism of the generator shares: the sample rate, coloured and band-limited
noise, and scaling one component to a level relative to another."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000


def coloured_noise(rng: np.random.Generator, n: int, tilt: float) -> np.ndarray:
    """Gaussian noise with a spectral tilt (0 white, 1 pink-like), unit standard deviation."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum /= np.maximum(freqs, 20.0) ** (tilt / 2)
    out = np.fft.irfft(spectrum, n)
    return out / (np.std(out) + 1e-12)


def band_noise(rng: np.random.Generator, n: int, low_hz: float, high_hz: float) -> np.ndarray:
    """White noise kept between ``low_hz`` and ``high_hz``, unit standard deviation."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    out = np.fft.irfft(spectrum, n)
    return out / (np.std(out) + 1e-12)


def power(signal: np.ndarray) -> float:
    return float(np.mean(np.square(signal)))


def level_db(component: np.ndarray, reference: np.ndarray) -> float:
    """The power of ``component`` relative to ``reference``, in dB."""
    return 10.0 * np.log10(power(component) / power(reference))


def scaled_to(component: np.ndarray, reference: np.ndarray, ratio_db: float) -> np.ndarray:
    """``component`` scaled so that its power lies ``ratio_db`` dB from ``reference``'s."""
    return component * np.sqrt(power(reference) / (power(component) + 1e-30) * 10 ** (ratio_db / 10))
