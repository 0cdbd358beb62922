"""Helpers shared by the test suites of every package: reference data, signals, plugins."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("BEATS_REFERENCE_DIR", REPO_ROOT / "tests" / "reference"))
PLUGINS_DIR = REPO_ROOT / "tests" / "plugins"


def sine(freq: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine tone."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def install_plugin_package(package: str | Path, target: Path) -> Path:
    """pip-install a plugin package into ``target`` and return it.

    ``package`` is the name of a folder of ``tests/plugins`` or the path of a package folder
    (e.g. ``examples/beats-plugin-example``). The package is built and installed for real
    (wheel, dist-info, entry points); putting ``target`` on ``sys.path`` makes it visible
    to ``importlib.metadata``.
    """
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(package if isinstance(package, Path) else PLUGINS_DIR / package),
        ],
        check=True,
        capture_output=True,
    )
    return target


# ---------------------------------------------------------------------------
# Audio files
# ---------------------------------------------------------------------------

#: Extensions written with soundfile (libsndfile); the others are encoded with PyAV (FFmpeg).
SOUNDFILE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".opus": "OGG", ".aiff": "AIFF"}
#: Extension -> (PyAV container format, codec) for the formats libsndfile does not write well.
PYAV_FORMATS = {
    ".mp3": ("mp3", "libmp3lame"),
    ".m4a": ("ipod", "aac"),
    ".aac": ("adts", "aac"),
    ".mp4": ("mp4", "aac"),
    ".webm": ("webm", "libopus"),
    ".mka": ("matroska", "flac"),
}


def noise(seconds: float, sample_rate: int = 16000, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """Float32 Gaussian white noise with standard deviation ``amplitude``."""
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(round(seconds * sample_rate))).astype(np.float32)


def class_sound(index: int, seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A float32 sound that identifies class ``index``: a tone at 300 * (index + 1) Hz plus a little noise.

    Different seeds give different (never identical) clips of the same class.
    """
    return sine(300.0 * (index + 1), seconds, sample_rate, amplitude=0.4) + noise(
        seconds, sample_rate, amplitude=0.02, seed=seed
    )


def dominant_frequency(signal: np.ndarray, sample_rate: int) -> float:
    """The frequency in Hz of the largest peak of a 1-D signal's spectrum."""
    signal = np.asarray(signal, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum) * sample_rate / len(signal))


def write_audio(
    path: str | Path,
    signal: np.ndarray,
    sample_rate: int,
    *,
    format: str | None = None,
    subtype: str | None = None,
) -> Path:
    """Write ``signal`` to a real audio file and return its path.

    Args:
        path: the file to write; its extension picks the format unless ``format`` is given.
        signal: float samples in [-1, 1], ``(samples,)`` or ``(samples, channels)``.
        sample_rate: in Hz.
        format: the extension to encode as (e.g. ``".wav"`` to write WAV data under any name).
        subtype: soundfile subtype for soundfile formats (``"PCM_16"``, ``"PCM_24"``,
            ``"PCM_32"``, ``"PCM_U8"``, ``"FLOAT"``, ``"VORBIS"``, ``"OPUS"``); the format's
            default when ``None``.

    Supported: .wav .flac .ogg (Vorbis) .opus .aiff through soundfile; .mp3 .m4a .aac .mp4 .webm
    .mka through PyAV.
    """
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = (format or path.suffix).lower()
    signal = np.asarray(signal, dtype=np.float32)
    if kind in SOUNDFILE_FORMATS:
        if kind == ".opus":
            subtype = subtype or "OPUS"
        soundfile.write(path, signal, sample_rate, format=SOUNDFILE_FORMATS[kind], subtype=subtype)
    elif kind in PYAV_FORMATS:
        _write_with_pyav(path, signal, sample_rate, *PYAV_FORMATS[kind])
    else:
        raise ValueError(
            f"write_audio cannot write {kind!r}; use one of {sorted({**SOUNDFILE_FORMATS, **PYAV_FORMATS})}"
        )
    return path


def _write_with_pyav(
    path: Path, signal: np.ndarray, sample_rate: int, container_format: str, codec: str
) -> None:
    import av

    planar = np.ascontiguousarray((signal[:, None] if signal.ndim == 1 else signal).T)
    layout = {1: "mono", 2: "stereo"}.get(planar.shape[0], f"{planar.shape[0]}c")
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


# ---------------------------------------------------------------------------
# Datasets on disk
# ---------------------------------------------------------------------------

#: (target, category, esc10) of the ESC-50 classes used by the miniature tree.
ESC50_CLASSES = [
    (0, "dog", True),
    (1, "rooster", True),
    (2, "pig", False),
    (10, "rain", True),
    (44, "engine", False),
]
#: (classID, class) of UrbanSound8K.
URBANSOUND8K_CLASSES = [
    (0, "air_conditioner"),
    (1, "car_horn"),
    (2, "children_playing"),
    (3, "dog_bark"),
    (4, "drilling"),
    (5, "engine_idling"),
    (6, "gun_shot"),
    (7, "jackhammer"),
    (8, "siren"),
    (9, "street_music"),
]


def make_directory_dataset(
    root: str | Path,
    clips_per_class: dict[str, int],
    *,
    seconds: float = 0.5,
    sample_rate: int = 16000,
    extension: str = ".wav",
) -> Path:
    """Write ``root/<class>/<class>_<i><extension>`` clips, a distinct sound per class; returns ``root``."""
    root = Path(root)
    for k, (label, count) in enumerate(clips_per_class.items()):
        for i in range(count):
            write_audio(
                root / label / f"{label}_{i}{extension}",
                class_sound(k, seconds, sample_rate, seed=i),
                sample_rate,
            )
    return root


def make_esc50(
    root: str | Path, *, clips_per_fold: int = 1, seconds: float = 0.5, sample_rate: int = 44100
) -> Path:
    """Write a miniature ESC-50-master tree (``meta/esc50.csv``, ``audio/*.wav``) and return it.

    The CSV has ESC-50's real columns (filename, fold, target, category, esc10, src_file,
    take) and file naming ``{fold}-{src_file}-{take}-{target}.wav``; the audio is 44.1 kHz
    mono 16-bit WAV like the real dataset, shorter. Classes: :data:`ESC50_CLASSES`, five folds.
    """
    import pandas as pd

    root = Path(root)
    rows = []
    for k, (target, category, esc10) in enumerate(ESC50_CLASSES):
        for fold in range(1, 6):
            for take_index in range(clips_per_fold):
                src_file = 100000 + 100 * target + 10 * fold + take_index
                take = "ABCDEFGH"[take_index]
                filename = f"{fold}-{src_file}-{take}-{target}.wav"
                sound = class_sound(k, seconds, sample_rate, seed=fold * 10 + take_index)
                write_audio(root / "audio" / filename, sound, sample_rate, subtype="PCM_16")
                rows.append((filename, fold, target, category, esc10, src_file, take))
    columns = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    (root / "meta").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def make_urbansound8k(
    root: str | Path, *, classes: int = 3, clips_per_fold: int = 1, seconds: float = 0.5
) -> Path:
    """Write a miniature UrbanSound8K tree (``metadata/UrbanSound8K.csv``, ``audio/fold1..fold10``).

    The CSV has UrbanSound8K's real columns (slice_file_name, fsID, start, end, salience,
    fold, classID, class) and file naming ``{fsID}-{classID}-{occurrence}-{slice}.wav``. Like the
    real dataset, the files mix sample rates (22.05, 44.1, 48 kHz), channel counts and
    bit depths. Uses the first ``classes`` classes of :data:`URBANSOUND8K_CLASSES`.
    """
    import pandas as pd

    root = Path(root)
    rates = [22050, 44100, 48000]
    subtypes = ["PCM_16", "PCM_24", "PCM_U8"]
    rows = []
    for class_id, name in URBANSOUND8K_CLASSES[:classes]:
        for fold in range(1, 11):
            for slice_index in range(clips_per_fold):
                fs_id = 10000 + 100 * class_id + fold
                filename = f"{fs_id}-{class_id}-0-{slice_index}.wav"
                variant = fold + slice_index
                rate = rates[variant % 3]
                sound = class_sound(class_id, seconds, rate, seed=fold * 10 + slice_index)
                if variant % 2:
                    sound = np.stack([sound, 0.5 * sound], axis=1)
                write_audio(
                    root / "audio" / f"fold{fold}" / filename, sound, rate, subtype=subtypes[variant % 3]
                )
                start = float(slice_index * seconds)
                rows.append((filename, fs_id, start, start + seconds, 1 + variant % 2, fold, class_id, name))
    columns = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).to_csv(root / "metadata" / "UrbanSound8K.csv", index=False)
    return root


# ---------------------------------------------------------------------------
# Clearly different sound classes (for training)
# ---------------------------------------------------------------------------


def _tone_clip(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / 16000
    freq = rng.uniform(300, 600)
    return np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2 * freq * t)


def _noise_band_clip(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / 16000)
    low = rng.uniform(2500, 3500)
    spectrum[(freqs < low) | (freqs > low + 1500)] = 0
    band = np.fft.irfft(spectrum, n)
    return band / np.abs(band).max()


def _clicks_clip(rng: np.random.Generator, n: int) -> np.ndarray:
    signal = np.zeros(n)
    period = int(16000 / rng.uniform(6, 12))
    decay = np.exp(-np.arange(160) / 20.0)
    for start in range(int(rng.integers(0, period)), n - 160, period):
        signal[start : start + 160] += decay * rng.choice([-1.0, 1.0])
    return signal


def _chirp_clip(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / 16000
    start, stop = rng.uniform(200, 400), rng.uniform(4000, 6000)
    phase = 2 * np.pi * (start * t + (stop - start) * t**2 / (2 * t[-1]))
    return np.sin(phase)


#: Class name -> generator of one clip (float64, peak about 1).
SOUND_CLASSES = {
    "tone": _tone_clip,
    "noise_band": _noise_band_clip,
    "clicks": _clicks_clip,
    "chirp": _chirp_clip,
}


def sound_clip(name: str, seconds: float, seed: int) -> np.ndarray:
    """One clip of class ``name``: random parameters, random level, a little background noise."""
    rng = np.random.default_rng(seed)
    n = round(seconds * 16000)
    clip = SOUND_CLASSES[name](rng, n) * rng.uniform(0.2, 0.6)
    return (clip + 0.01 * rng.standard_normal(n)).astype(np.float32)


def make_sound_dataset(
    root: str | Path, clips_per_class: int, *, seconds: float = 1.0, classes: tuple[str, ...] | None = None
) -> Path:
    """Write ``root/<class>/<class>_<i>.wav`` for the sound classes; returns ``root``."""
    root = Path(root)
    for k, name in enumerate(classes or tuple(SOUND_CLASSES)):
        for i in range(clips_per_class):
            write_audio(root / name / f"{name}_{i}.wav", sound_clip(name, seconds, seed=1000 * k + i), 16000)
    return root


def make_fold_dataset(root: str | Path, folds: int, clips_per_fold: int, *, seconds: float = 1.0):
    """Sound-class clips with a ``fold`` column, as a DataFrame (``filename``, ``category``, ``fold``)."""
    import pandas as pd

    root = Path(root)
    rows = []
    for k, name in enumerate(SOUND_CLASSES):
        for fold in range(1, folds + 1):
            for i in range(clips_per_fold):
                path = root / f"{fold}-{name}-{i}.wav"
                write_audio(path, sound_clip(name, seconds, seed=10000 * k + 100 * fold + i), 16000)
                rows.append((str(path), name, fold))
    return pd.DataFrame(rows, columns=["filename", "category", "fold"])


# ----------------------------------------------------------------------------- stores of embeddings
#: ``beats extract`` arguments of the multi-process store tests: 2 s clips, float32, no workers.
STORE_ARGUMENTS = ["--clip-seconds", "2.0", "--dtype", "float32", "--workers", "0", "--no-progress"]


def archive_recordings(root: Path) -> list[Path]:
    """Recordings of very different lengths (0.7 to 14 s), so that a fair share is not a share of files."""
    lengths = [14.0, 1.0, 1.5, 6.0, 0.7, 9.0, 2.2, 3.3]
    return [
        write_audio(root / f"r{i}.flac", class_sound(i % 3, seconds, 22050, seed=i), 22050)
        for i, seconds in enumerate(lengths)
    ]


def assert_same_store_rows(first_store: Path, second_store: Path, atol: float = 1e-4) -> None:
    """Two stores hold the same rows (paths, starts, ends) and embeddings within ``atol``, in any order."""
    from beats_extract.store import read_store

    first, second = read_store(first_store), read_store(second_store)
    i = np.lexsort((first.starts, np.array(first.paths)))
    j = np.lexsort((second.starts, np.array(second.paths)))
    assert [first.paths[k] for k in i] == [second.paths[k] for k in j]
    np.testing.assert_allclose(first.starts[i], second.starts[j])
    np.testing.assert_allclose(first.ends[i], second.ends[j])
    np.testing.assert_allclose(first.features[i], second.features[j], atol=atol)


class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does (``OSError`` ENOSPC)."""

    def __init__(self, target: io.BufferedIOBase, room: int) -> None:
        self.target, self.room = target, room

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.target.write(data)
