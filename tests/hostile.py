"""Builders of hostile audio files and folder layouts, written for real (bytes, links, FIFOs).

Each builder takes a valid file made with :func:`testkit.write_audio` and changes what a
broken or malicious one has: a header field, a length, the bytes after a cut. They are the
cases a fuzzing sweep found; the tests assert that every entry point ends each of them
cleanly (an error naming the file, or a warning and a skip) within seconds and bounded memory.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile
import testkit


def wav_with_zero_bits(path: Path) -> Path:
    """A 16-bit WAV whose ``fmt`` chunk says 0 bits per sample: FFmpeg finds no decoder for it."""
    soundfile.write(path, testkit.noise(1.0, 16000), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ") + 8  # the chunk's body: format, channels, rate, byte rate, align, bits
    data[fmt + 14 : fmt + 16] = struct.pack("<H", 0)
    path.write_bytes(bytes(data))
    return path


def wav_with_rate(path: Path, rate: int, seconds: float = 1.0) -> Path:
    """A 16-bit mono WAV of noise whose header claims ``rate`` Hz (its byte rate to match)."""
    soundfile.write(path, testkit.noise(seconds, 16000), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ") + 8
    data[fmt + 4 : fmt + 12] = struct.pack("<II", rate, 2 * rate)
    path.write_bytes(bytes(data))
    return path


def flac_without_length(path: Path, signal: np.ndarray, rate: int) -> Path:
    """A valid FLAC as written to a pipe: STREAMINFO's 36-bit total_samples is 0 ("unknown")."""
    soundfile.write(path, signal, rate, format="FLAC")
    return _set_flac_total_samples(path, 0)


def flac_claiming_samples(path: Path, signal: np.ndarray, rate: int, total_samples: int) -> Path:
    """A FLAC whose STREAMINFO claims ``total_samples`` (at most 2**36 - 1) whatever it holds."""
    soundfile.write(path, signal, rate, format="FLAC")
    return _set_flac_total_samples(path, total_samples)


def _set_flac_total_samples(path: Path, total_samples: int) -> Path:
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and (data[4] & 0x7F) == 0, "STREAMINFO is the first metadata block"
    info = 8  # after "fLaC" and the block header
    # bits 108..143 of STREAMINFO: the low 4 bits of byte 13, then bytes 14..17
    data[info + 13] = (data[info + 13] & 0xF0) | (total_samples >> 32)
    data[info + 14 : info + 18] = struct.pack(">I", total_samples & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def mp3_claiming_frames(path: Path, mpeg_frames: int = 0xFFFFFFF0, seconds: float = 0.3) -> Path:
    """A small 8 kHz MP3 whose Xing/Info tag claims ``mpeg_frames`` MPEG frames (days of audio)."""
    testkit.write_audio(path, testkit.noise(seconds, 8000, amplitude=0.3), 8000, format=".mp3")
    data = bytearray(path.read_bytes())
    tag = max(data.find(b"Xing"), data.find(b"Info"))
    assert tag > 0, "FFmpeg's MP3 muxer writes a Xing/Info tag"
    flags = struct.unpack(">I", data[tag + 4 : tag + 8])[0]
    assert flags & 1, "the tag holds a frame count"
    data[tag + 8 : tag + 12] = struct.pack(">I", mpeg_frames)
    path.write_bytes(bytes(data))
    return path


def float_wav(path: Path, peak: float, rate: int = 16000, seconds: float = 0.5) -> Path:
    """A float WAV of a 440 Hz tone whose largest sample is ``peak``."""
    signal = testkit.sine(440.0, seconds, rate, amplitude=1.0)
    signal = signal / np.abs(signal).max() * peak
    soundfile.write(path, signal.astype(np.float32), rate, subtype="FLOAT")
    return path


def truncated(path: Path, fraction: float) -> Path:
    """Cut a file to ``fraction`` of its bytes, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def fifo(path: Path) -> Path:
    """A named pipe: opening it for reading waits for a writer, for ever."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def non_utf8_path(folder: Path, name: bytes) -> Path:
    """The path of ``folder/name`` for a name that is not valid UTF-8, as Python's ``os`` gives it."""
    return folder / os.fsdecode(name)
