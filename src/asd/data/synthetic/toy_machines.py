"""The sound sources of the ``default`` and ``benchmark`` profiles: six toy machine types, each with an
operating attribute whose value is the domain (source or target), a second attribute of two values,
and two kinds of anomaly of graded strength (``strength`` in the profile's range)."""

from __future__ import annotations

import numpy as np

from asd.data.synthetic.signals import SAMPLE_RATE, coloured_noise


def _rotor(rng, t, attributes, anomaly, strength):
    f0 = {"1": 120.0, "2": 155.0}[attributes["spd"]] * rng.uniform(0.98, 1.02)
    tilt = {"A": 0.8, "B": 1.1}[attributes["loc"]]
    sound = sum(
        rng.uniform(0.7, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 9)
    )
    sound = sound + 0.15 * coloured_noise(rng, t.size, tilt)
    if anomaly == "partial":
        sound = sound + strength * 0.5 * np.sin(2 * np.pi * 3.5 * f0 * t)
    elif anomaly == "ticks":
        ticks = (np.sin(2 * np.pi * 23.0 * t) > 0.995).astype(float)
        sound = sound + strength * 3.0 * np.convolve(ticks * rng.standard_normal(t.size), np.hanning(32), "same")
    return sound


def _clicker(rng, t, attributes, anomaly, strength):
    rate = {"8": 8.0, "11": 11.0}[attributes["rate"]]
    resonance = 2000.0 * rng.uniform(0.98, 1.02)
    if anomaly == "resonance":
        resonance *= 1.0 + 0.35 * strength
    impulse_response_t = np.arange(int(0.03 * SAMPLE_RATE)) / SAMPLE_RATE
    impulse_response = np.exp(-impulse_response_t * 150.0) * np.sin(2 * np.pi * resonance * impulse_response_t)
    clicks = np.zeros(t.size)
    jitter = 0.25 * strength / rate if anomaly == "jitter" else 0.004
    for onset in np.arange(rng.uniform(0, 1 / rate), t[-1], 1 / rate):
        position = int((onset + rng.uniform(-jitter, jitter)) * SAMPLE_RATE)
        if 0 <= position < t.size:
            clicks[position] = rng.uniform(0.8, 1.2)
    # the far microphone (mic 2) hears the clicks weaker against the room noise
    gain, noise = {"1": (2.0, 0.1), "2": (1.2, 0.2)}[attributes["mic"]]
    return gain * np.convolve(clicks, impulse_response)[: t.size] + noise * coloured_noise(rng, t.size, 0.5)


def _hum(rng, t, attributes, anomaly, strength):
    am_rate = {"2": 2.0, "5": 5.0}[attributes["am"]]
    load = {"lo": 0.6, "hi": 1.0}[attributes["load"]]
    wobble = 0.0
    if anomaly == "wobble":
        wobble = 4.0 * strength * np.sin(2 * np.pi * 3.0 * t)
    phase = 2 * np.pi * (50.0 * t + np.cumsum(wobble) / SAMPLE_RATE)
    hum = sum(load ** (k - 1) / k * np.sin(k * phase) for k in range(1, 12))
    envelope = 1.0 + 0.5 * np.sin(2 * np.pi * am_rate * t + rng.uniform(0, 2 * np.pi))
    sound = envelope * hum + 0.1 * coloured_noise(rng, t.size, 1.0)
    if anomaly == "rattle":
        bursts = (np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 2 * np.pi)) > 0.6).astype(float)
        sound = sound + strength * 0.6 * bursts * coloured_noise(rng, t.size, 0.0)
    return sound


def _fan(rng, t, attributes, anomaly, strength):
    blade_pass = {"1": 180.0, "2": 240.0}[attributes["spd"]] * rng.uniform(0.98, 1.02)
    flow = {"lo": 0.5, "hi": 0.9}[attributes["flow"]]
    sound = flow * coloured_noise(rng, t.size, 0.6)
    sound = sound + 0.6 * np.sin(2 * np.pi * blade_pass * t + rng.uniform(0, 2 * np.pi))
    sound = sound + 0.3 * np.sin(2 * np.pi * 2 * blade_pass * t + rng.uniform(0, 2 * np.pi))
    if anomaly == "imbalance":  # once per revolution (six blades)
        sound = sound * (1.0 + 0.8 * strength * np.sin(2 * np.pi * blade_pass / 6 * t))
    elif anomaly == "rub":
        gate = (np.sin(2 * np.pi * blade_pass / 6 * t + rng.uniform(0, 2 * np.pi)) > 0.7).astype(float)
        sound = sound + 0.8 * strength * gate * coloured_noise(rng, t.size, -0.5)
    return sound


def _pump(rng, t, attributes, anomaly, strength):
    strokes = {"4": 4.0, "6": 6.0}[attributes["strk"]]
    pressure = {"a": 1.0, "b": 1.4}[attributes["prs"]]
    envelope = np.maximum(0.0, np.sin(2 * np.pi * strokes * t + rng.uniform(0, 2 * np.pi))) ** 4
    f0 = 90.0 * rng.uniform(0.98, 1.02)
    carrier = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    sound = pressure * envelope * carrier + 0.1 * coloured_noise(rng, t.size, 1.0)
    if anomaly == "cavitation":  # broadband crackle during the strokes
        sound = sound + 0.6 * strength * envelope * coloured_noise(rng, t.size, 0.0)
    elif anomaly == "leak":  # a steady hiss
        sound = sound + 0.3 * strength * coloured_noise(rng, t.size, -0.3)
    return sound


def _gear(rng, t, attributes, anomaly, strength):
    mesh = {"1": 400.0, "2": 520.0}[attributes["rpm"]] * rng.uniform(0.99, 1.01)
    shaft = mesh / 20.0
    load = {"l": 0.7, "h": 1.0}[attributes["load"]]
    depth = 0.2 + (0.8 * strength if anomaly == "wear" else 0.0)  # worn teeth: stronger sidebands
    modulation = 1.0 + depth * np.sin(2 * np.pi * shaft * t)
    sound = modulation * sum(load**k / k * np.sin(2 * np.pi * k * mesh * t) for k in range(1, 5))
    sound = sound + 0.1 * coloured_noise(rng, t.size, 0.8)
    if anomaly == "crack":  # an impulse once per shaft revolution
        ticks = np.zeros(t.size)
        ticks[(np.arange(rng.uniform(0, 1 / shaft), t[-1], 1 / shaft) * SAMPLE_RATE).astype(int)] = 1.0
        sound = sound + 2.0 * strength * np.convolve(ticks, np.hanning(24) * rng.standard_normal(24), "same")
    return sound


# machine type -> (sound function, source attributes, target attributes, secondary attribute values, anomalies)
MACHINES = {
    "ToyRotor": (_rotor, {"spd": "1"}, {"spd": "2"}, ("loc", ("A", "B")), ("partial", "ticks")),
    "ToyClicker": (_clicker, {"rate": "8"}, {"rate": "11"}, ("mic", ("1", "2")), ("jitter", "resonance")),
    "ToyHum": (_hum, {"am": "2"}, {"am": "5"}, ("load", ("lo", "hi")), ("rattle", "wobble")),
    "ToyFan": (_fan, {"spd": "1"}, {"spd": "2"}, ("flow", ("lo", "hi")), ("imbalance", "rub")),
    "ToyPump": (_pump, {"strk": "4"}, {"strk": "6"}, ("prs", ("a", "b")), ("cavitation", "leak")),
    "ToyGear": (_gear, {"rpm": "1"}, {"rpm": "2"}, ("load", ("l", "h")), ("crack", "wear")),
}
