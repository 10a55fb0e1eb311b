"""How a clip reaches the file besides the machine itself: a second, far microphone (DCASE 2026's
stereo files) and, in the ``benchmark`` profile, another channel for the target domain."""

from __future__ import annotations

import numpy as np
import scipy.signal

from asd.data.synthetic.signals import coloured_noise


def far_microphone(near: np.ndarray, seed_parts: tuple[int, ...]) -> np.ndarray:
    """The far microphone's recording of a clip: a third of the level, 3 ms later, with room noise
    as loud as the machine there (its own draw, so the near channel stays the mono clip)."""
    rng = np.random.default_rng((*seed_parts, 2))
    delayed = np.concatenate([np.zeros(48), near[:-48]]) / 3.0
    noise = coloured_noise(rng, near.size, 1.0) * np.std(delayed)
    return np.clip(delayed + noise, -1.0, 1.0).astype(np.float32)


def moved_microphone(sound: np.ndarray, machine_no: int) -> np.ndarray:
    """The target domain heard through another channel (a first-order filter per machine type): a
    shift beyond the operating condition, as a moved microphone or another mounting."""
    pole = np.random.default_rng((machine_no, 77)).uniform(-0.6, 0.6)
    return scipy.signal.lfilter([1.0 - abs(pole)], [1.0, -pole], sound)
