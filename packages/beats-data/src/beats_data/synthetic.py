"""A generated, labelled sound dataset for demos, tutorials and smoke tests.

:func:`make_synthetic_dataset` writes WAV files in the directory layout
(``root/<class>/<class>_<i>.wav``) that :func:`~beats_data.loaders.scan_directory_dataset`
reads, so everything downstream (validation, training, extraction) runs exactly as on a
user's own folder, without any download. Each class is a family of sounds with
realistic variation from clip to clip: pitch, rate and duration, the position of the
event in the clip, level, background noise at a random signal-to-noise ratio, and room
reverberation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from tqdm.auto import tqdm

from beats_core.errors import ConfigError

__all__ = ["SYNTHETIC_CLASSES", "make_synthetic_dataset", "synthesize_clip"]

_Generator = Callable[[np.random.Generator, int, int], np.ndarray]


def _time(num_samples: int, sample_rate: int) -> np.ndarray:
    return np.arange(num_samples) / sample_rate


def _envelope(num_samples: int, attack: int, release: int) -> np.ndarray:
    """A trapezoid envelope: linear attack, flat, linear release (in samples)."""
    env = np.ones(num_samples)
    attack, release = min(attack, num_samples // 2), min(release, num_samples // 2)
    env[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False)
    if release:
        env[-release:] = np.linspace(1.0, 0.0, release)
    return env


def _whistle(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    """A whistled tone gliding between two pitches, with vibrato and a few harmonics."""
    t = _time(num_samples, sample_rate)
    start, end = rng.uniform(900, 2800, size=2)
    vibrato = rng.uniform(0.005, 0.02) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    frequency = np.linspace(start, end, num_samples) * (1 + vibrato)
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    tone = np.sin(phase) + 0.25 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)
    return tone * _envelope(num_samples, sample_rate // 20, sample_rate // 10)


def _birdsong(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    """A song of short, fast downward frequency sweeps (syllables) at a random rate."""
    out = np.zeros(num_samples)
    syllable = int(sample_rate * rng.uniform(0.04, 0.09))
    gap = int(sample_rate * rng.uniform(0.05, 0.15))
    high, low = rng.uniform(4500, 7000), rng.uniform(2200, 3800)
    t = _time(syllable, sample_rate)
    frequency = np.geomspace(high, low, syllable)
    chirp = np.sin(2 * np.pi * np.cumsum(frequency) / sample_rate) * np.sin(np.pi * t / t[-1]) ** 2
    for start in range(int(rng.integers(0, gap + 1)), num_samples - syllable, syllable + gap):
        out[start : start + syllable] += chirp * rng.uniform(0.6, 1.0)
    return out


def _engine(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    """A low engine hum: a harmonic series on a slowly drifting fundamental, amplitude-modulated."""
    t = _time(num_samples, sample_rate)
    f0 = rng.uniform(45, 110) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 9))
    firing = 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(8, 20) * t)
    return harmonics * firing


def _knocking(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    """Knocks: decaying resonances at a random pitch, repeated at a random rate with jitter."""
    out = np.zeros(num_samples)
    length = int(sample_rate * 0.12)
    t = _time(length, sample_rate)
    knock = np.sin(2 * np.pi * rng.uniform(180, 700) * t) * np.exp(-t * rng.uniform(30, 60))
    period = int(sample_rate * rng.uniform(0.12, 0.35))
    position = int(rng.integers(0, period))
    while position < num_samples - length:
        out[position : position + length] += knock * rng.uniform(0.5, 1.0)
        position += int(period * rng.uniform(0.8, 1.2))
    return out


def _siren(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    """A siren: a tone swept up and down between two pitches with a period of about a second."""
    t = _time(num_samples, sample_rate)
    low, high = rng.uniform(500, 800), rng.uniform(1100, 1700)
    sweep = 0.5 * (1 - np.cos(2 * np.pi * t / rng.uniform(0.6, 1.8) + rng.uniform(0, 2 * np.pi)))
    frequency = low + (high - low) * sweep
    return np.sin(2 * np.pi * np.cumsum(frequency) / sample_rate)


def _rain(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    """Rain: a band of noise at a random centre frequency with random drop transients."""
    noise = rng.standard_normal(num_samples)
    spectrum = np.fft.rfft(noise)
    frequencies = np.fft.rfftfreq(num_samples, 1 / sample_rate)
    centre, width = rng.uniform(1500, 4000), rng.uniform(0.5, 1.2)
    spectrum *= np.exp(-0.5 * (np.log(np.maximum(frequencies, 1.0) / centre) / width) ** 2)
    out = np.fft.irfft(spectrum, num_samples)
    out /= np.abs(out).max() + 1e-9
    drops = rng.integers(0, num_samples, size=int(rng.uniform(5, 25) * num_samples / sample_rate))
    out[drops] += rng.uniform(0.5, 1.0, size=drops.size) * rng.choice([-1, 1], size=drops.size)
    return out


#: The sound classes :func:`make_synthetic_dataset` can generate, name -> generator.
SYNTHETIC_CLASSES: dict[str, _Generator] = {
    "whistle": _whistle,
    "birdsong": _birdsong,
    "engine": _engine,
    "knocking": _knocking,
    "siren": _siren,
    "rain": _rain,
}


def _reverb(signal: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Convolve with an exponentially decaying noise impulse response (RT60 0.1-0.6 s)."""
    rt60 = rng.uniform(0.1, 0.6)
    length = int(rt60 * sample_rate)
    t = _time(length, sample_rate)
    response = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    response[0] = 1.0 / rng.uniform(0.3, 1.0)  # the direct sound
    size = len(signal) + length - 1
    wet = np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(response, size), size)[: len(signal)]
    return wet / (np.abs(wet).max() + 1e-9) * np.abs(signal).max()


def _background(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Pink-ish background noise (white noise with a 1/sqrt(f) spectrum), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    noise = np.fft.irfft(spectrum, num_samples)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def synthesize_clip(
    sound_class: str,
    seconds: float,
    *,
    sample_rate: int = 16000,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Generate one clip of a synthetic sound class with random, realistic variation.

    The event occupies a random part of the clip (at least half of it), is reverberated
    in a random room, mixed with background noise at 5-30 dB SNR and scaled to a random
    peak level between -18 and -3 dBFS.

    Args:
        sound_class: one of :data:`SYNTHETIC_CLASSES`.
        seconds: the clip duration in seconds (> 0).
        sample_rate: samples per second.
        seed: a seed or a numpy random generator; the same seed gives the same clip.

    Returns:
        Float32 samples in [-1, 1], shape ``(round(seconds * sample_rate),)``.

    Raises:
        ConfigError: unknown class or non-positive duration.
    """
    if sound_class not in SYNTHETIC_CLASSES:
        raise ConfigError(
            f"unknown synthetic sound class {sound_class!r}; choose from {list(SYNTHETIC_CLASSES)}"
        )
    num_samples = round(seconds * sample_rate)
    if num_samples <= 0:
        raise ConfigError(f"seconds must be positive, got {seconds}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    event_length = int(num_samples * rng.uniform(0.5, 1.0))
    event = SYNTHETIC_CLASSES[sound_class](rng, event_length, sample_rate)
    event = event / (np.abs(event).max() + 1e-9)
    clip = np.zeros(num_samples)
    start = int(rng.integers(0, num_samples - event_length + 1))
    clip[start : start + event_length] = event
    clip = _reverb(clip, rng, sample_rate)
    signal_rms = np.sqrt(np.mean(clip**2)) + 1e-12
    snr_db = rng.uniform(5, 30)
    clip = clip + _background(rng, num_samples) * signal_rms / 10 ** (snr_db / 20)
    peak = 10 ** (rng.uniform(-18, -3) / 20)
    return (clip / (np.abs(clip).max() + 1e-9) * peak).astype(np.float32)


def make_synthetic_dataset(
    root: str | Path,
    *,
    classes: Sequence[str] | None = None,
    clips_per_class: int = 20,
    min_seconds: float = 1.0,
    max_seconds: float = 3.0,
    sample_rate: int = 16000,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Write a labelled dataset of synthetic sounds as WAV files, one folder per class.

    The files are ``root/<class>/<class>_<i>.wav`` (16-bit PCM); the result is the
    standard dataset frame of :func:`~beats_data.loaders.scan_directory_dataset`, so
    ``make_synthetic_dataset(root)`` and ``scan_directory_dataset(root)`` describe the
    same data.

    Args:
        root: the folder to write into (created if needed; existing files of the same
            names are overwritten).
        classes: the sound classes, a subset of :data:`SYNTHETIC_CLASSES` (all by default).
        clips_per_class: clips written per class.
        min_seconds: shortest clip duration; durations are uniform in
            ``[min_seconds, max_seconds]``.
        max_seconds: longest clip duration.
        sample_rate: the files' sample rate in Hz.
        seed: the random seed; the same seed writes the same files.
        progress: show a progress bar.

    Returns:
        A DataFrame with one row per clip: ``filename`` (absolute path) and ``category``.

    Raises:
        ConfigError: unknown class, fewer than 1 clip per class, or invalid durations.
    """
    classes = list(SYNTHETIC_CLASSES if classes is None else classes)
    unknown = [name for name in classes if name not in SYNTHETIC_CLASSES]
    if unknown:
        raise ConfigError(f"unknown synthetic sound classes {unknown}; choose from {list(SYNTHETIC_CLASSES)}")
    if clips_per_class < 1:
        raise ConfigError(f"clips_per_class must be at least 1, got {clips_per_class}")
    if not 0 < min_seconds <= max_seconds:
        raise ConfigError(
            f"durations must satisfy 0 < min_seconds <= max_seconds, got {min_seconds} and {max_seconds}"
        )
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    jobs = [(name, index) for name in classes for index in range(clips_per_class)]
    for name, index in tqdm(jobs, desc="Generating sounds", unit="clip", disable=not progress):
        seconds = rng.uniform(min_seconds, max_seconds)
        clip = synthesize_clip(name, seconds, sample_rate=sample_rate, seed=rng)
        path = root / name / f"{name}_{index:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, clip, sample_rate, subtype="PCM_16")
        rows.append({"filename": str(path.resolve()), "category": name})
    return pd.DataFrame(rows, columns=["filename", "category"])
