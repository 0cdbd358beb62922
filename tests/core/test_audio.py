from __future__ import annotations

import os
import re
import tracemalloc

import numpy as np
import pytest
import soundfile
import testkit
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beats_core import AudioDecodeError, ConfigError
from beats_core.audio import AUDIO_EXTENSIONS, AudioInfo, audio_info, load_audio, resample

RATES = [8000, 22050, 44100, 48000]
# (file name suffix, extension written, soundfile subtype, lossless)
FORMATS = [
    ("pcm16.wav", ".wav", "PCM_16", True),
    ("pcm24.wav", ".wav", "PCM_24", True),
    ("pcm32.wav", ".wav", "PCM_32", True),
    ("pcmu8.wav", ".wav", "PCM_U8", False),
    ("float.wav", ".wav", "FLOAT", True),
    ("flac", ".flac", None, True),
    ("ogg", ".ogg", "VORBIS", False),
    ("mp3", ".mp3", None, False),
    ("m4a", ".m4a", None, False),
]


def _middle(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """The signal without its first and last 0.1 s, where lossy codecs ring."""
    cut = sample_rate // 10
    return signal[cut:-cut]


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("name", "extension", "subtype", "lossless"), FORMATS, ids=[f[0] for f in FORMATS])
def test_every_format_rate_and_channel_count_decodes_to_16k_mono(
    tmp_path, name, extension, subtype, lossless, rate, channels
):
    tone = testkit.sine(1000.0, 1.0, rate, amplitude=0.5)
    signal = np.stack([tone, tone], axis=1) if channels == 2 else tone
    path = testkit.write_audio(tmp_path / f"tone.{name}", signal, rate, format=extension, subtype=subtype)

    waveform = load_audio(path)

    assert waveform.dtype == torch.float32 and waveform.ndim == 1
    assert abs(waveform.shape[0] - 16000) <= 16  # 1 s at 16 kHz
    middle = _middle(waveform.numpy(), 16000)
    assert testkit.dominant_frequency(middle, 16000) == pytest.approx(1000.0, abs=2.0)
    tolerance = 2e-3 if lossless else 0.06  # 8-bit and lossy codecs lose some level
    assert _rms(middle) == pytest.approx(0.5 / np.sqrt(2), rel=tolerance)


@pytest.mark.parametrize("extension", [".opus", ".aiff", ".aac", ".mp4", ".webm", ".mka"])
def test_other_containers_and_codecs_decode(tmp_path, extension):
    rate = 48000
    path = testkit.write_audio(tmp_path / f"tone{extension}", testkit.sine(440.0, 1.0, rate), rate)

    waveform = load_audio(path).numpy()

    # raw ADTS AAC keeps the encoder's priming samples (no container to say where audio starts)
    assert abs(waveform.shape[0] - 16000) <= (1100 if extension == ".aac" else 16)
    middle = _middle(waveform, 16000)
    assert testkit.dominant_frequency(middle, 16000) == pytest.approx(440.0, abs=2.0)
    assert _rms(middle) == pytest.approx(0.5 / np.sqrt(2), rel=0.06)


def test_channels_are_averaged_or_kept(tmp_path):
    rate = 44100
    tones = [
        testkit.sine(f, 1.0, rate, amplitude=0.1 * (i + 1))
        for i, f in enumerate([300, 500, 700, 900, 1100, 1300])
    ]
    signal = np.stack(tones, axis=1)
    path = testkit.write_audio(tmp_path / "six.wav", signal, rate, subtype="FLOAT")

    mono = load_audio(path)
    every = load_audio(path, mono=False)
    native = load_audio(path, mono=False, sample_rate=None)

    assert every.shape == (6, 16000)
    assert native.shape == (6, rate) and torch.allclose(native, torch.from_numpy(signal.T))
    for channel, frequency in zip(every.numpy(), [300, 500, 700, 900, 1100, 1300], strict=True):
        assert testkit.dominant_frequency(_middle(channel, 16000), 16000) == pytest.approx(frequency, abs=2.0)
    torch.testing.assert_close(mono, every.mean(dim=0), atol=1e-5, rtol=0)


def test_sample_rate_none_keeps_the_native_rate_and_integer_pcm_is_scaled(tmp_path):
    samples = np.array([0, 16384, -16384, 32767, -32768], dtype=np.int16)
    path = tmp_path / "ints.wav"
    soundfile.write(path, samples, 22050, subtype="PCM_16")

    waveform = load_audio(path, sample_rate=None)

    torch.testing.assert_close(waveform, torch.tensor([0.0, 0.5, -0.5, 32767 / 32768, -1.0]))


def test_other_output_rates(tmp_path):
    path = testkit.write_audio(tmp_path / "tone.flac", testkit.sine(1000.0, 1.0, 44100), 44100)

    waveform = load_audio(path, sample_rate=32000)

    assert waveform.shape == (32000,)
    assert testkit.dominant_frequency(_middle(waveform.numpy(), 32000), 32000) == pytest.approx(
        1000.0, abs=2.0
    )


@pytest.mark.parametrize("extension", [".wav", ".flac", ".ogg", ".mp3", ".m4a"])
def test_a_window_is_the_matching_slice_of_the_whole_file(tmp_path, extension):
    rate = 44100
    signal = testkit.sine(440.0, 4.0, rate) * np.linspace(0.2, 1.0, 4 * rate, dtype=np.float32)
    path = testkit.write_audio(tmp_path / f"ramp{extension}", signal, rate)
    whole = load_audio(path).numpy()

    for offset in [0.3, 1.0, 2.7]:
        window = load_audio(path, offset=offset, duration=0.5).numpy()
        start = round(offset * 16000)
        assert window.shape == (8000,)
        # soxr restarts at the window's edges: compare away from them
        np.testing.assert_allclose(window[200:-200], whole[start + 200 : start + 8000 - 200], atol=2e-3)


def test_libsndfile_written_vbr_mp3_windows_are_exact(tmp_path):
    # libsndfile 1.2 itself returns wrong samples for this file when read in blocks or after a seek
    rate = 44100
    signal = testkit.sine(440.0, 3.0, rate) * np.linspace(0.2, 1.0, 3 * rate, dtype=np.float32)
    path = tmp_path / "vbr.mp3"
    soundfile.write(path, signal, rate, format="MP3")
    whole = load_audio(path, sample_rate=None).numpy()

    window = load_audio(path, sample_rate=None, offset=1.0, duration=0.5).numpy()

    assert whole.shape == (3 * rate,)
    np.testing.assert_allclose(window, whole[rate : rate + rate // 2], atol=1e-6)


def test_window_past_the_end_stops_at_the_end_and_offset_past_the_end_is_an_error(tmp_path):
    path = testkit.write_audio(tmp_path / "one_second.wav", testkit.sine(440.0, 1.0, 16000), 16000)

    assert load_audio(path, offset=0.75, duration=10.0).shape == (4000,)
    with pytest.raises(
        AudioDecodeError, match=r"one_second\.wav.*offset 2 s is at or past the end.*1\.000 s long"
    ):
        load_audio(path, offset=2.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"offset": -1.0}, "offset"),
        ({"offset": float("nan")}, "offset"),
        ({"duration": 0.0}, "duration"),
        ({"sample_rate": 0}, "sample_rate"),
    ],
)
def test_bad_arguments_are_config_errors(tmp_path, kwargs, match):
    path = testkit.write_audio(tmp_path / "a.wav", testkit.sine(440.0, 0.1, 16000), 16000)
    with pytest.raises(ConfigError, match=match):
        load_audio(path, **kwargs)


def test_long_recordings_are_decoded_in_bounded_memory(tmp_path):
    rate, seconds = 48000, 120
    path = tmp_path / "long.wav"
    with soundfile.SoundFile(path, "w", rate, 2, subtype="FLOAT") as f:
        block = np.stack([testkit.sine(440.0, 1.0, rate)] * 2, axis=1)
        for _ in range(seconds):
            f.write(block)
    native_bytes = seconds * rate * 2 * 4  # 46 MB at the native rate
    output_bytes = seconds * 16000 * 4  # 7.7 MB at 16 kHz mono

    tracemalloc.start()
    try:
        whole = load_audio(path)
        _, whole_peak = tracemalloc.get_traced_memory()
        assert whole.shape == (seconds * 16000,)
        del whole
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        window = load_audio(path, offset=40.0, duration=1.0)
        window_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()

    assert window.shape == (16000,)
    # the output (and one copy while joining it) plus a few MB of blocks, never the native signal
    assert whole_peak < 2 * output_bytes + 8_000_000 < native_bytes
    assert window_peak < 1_000_000  # 1 s of 48 kHz stereo float is 384 kB


def test_audio_info_reads_the_header(tmp_path):
    stereo = np.stack([testkit.sine(440.0, 2.0, 22050)] * 2, axis=1)
    wav = testkit.write_audio(tmp_path / "a.wav", stereo, 22050, subtype="PCM_24")
    m4a = testkit.write_audio(tmp_path / "a.m4a", stereo, 44100)

    assert audio_info(wav) == AudioInfo(
        path=str(wav),
        sample_rate=22050,
        channels=2,
        frames=44100,
        duration=2.0,
        format="wav",
        codec="pcm_24",
        backend="soundfile",
    )
    info = audio_info(m4a)
    assert (info.sample_rate, info.channels, info.format, info.codec, info.backend) == (
        44100,
        2,
        "m4a",
        "aac",
        "pyav",
    )
    assert info.duration == pytest.approx(1.0, abs=0.03)  # written at 44.1 kHz: 44100 samples


def test_audio_info_does_not_decode_the_samples(tmp_path):
    signal = testkit.sine(440.0, 1.0, 16000)
    signal[100] = np.nan
    path = testkit.write_audio(tmp_path / "nan.wav", signal, 16000, subtype="FLOAT")

    assert audio_info(path).frames == 16000  # header only: the NaN is not seen
    with pytest.raises(AudioDecodeError, match=r"nan\.wav.*NaN or infinite samples \(first at 0\.006 s\)"):
        load_audio(path)


def test_resample_keeps_a_tone(tmp_path):
    tone = testkit.sine(1000.0, 1.0, 44100)

    out = resample(tone, 44100, 16000)
    stereo = resample(torch.from_numpy(np.stack([tone, tone])), 44100, 8000)

    assert out.shape == (16000,) and stereo.shape == (2, 8000)
    assert testkit.dominant_frequency(out.numpy(), 16000) == pytest.approx(1000.0, abs=1.0)
    with pytest.raises(ConfigError, match="positive"):
        resample(tone, 0, 16000)


# ---------------------------------------------------------------------------
# Broken files
# ---------------------------------------------------------------------------


def _truncate(path, fraction: float):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("extension", [".wav", ".flac", ".ogg", ".mp3", ".m4a"])
def test_truncated_files_are_reported(tmp_path, extension):
    rate = 44100
    path = testkit.write_audio(tmp_path / f"cut{extension}", testkit.noise(3.0, rate, amplitude=0.3), rate)
    _truncate(path, 0.5)

    with pytest.raises(AudioDecodeError, match=rf"cut\{extension}.*(truncated|corrupt)"):
        load_audio(path)


def test_header_only_wav_has_zero_samples(tmp_path):
    path = tmp_path / "header_only.wav"
    soundfile.write(path, np.zeros((0, 1), np.float32), 16000)

    with pytest.raises(AudioDecodeError, match=r"header_only\.wav.*zero audio samples"):
        load_audio(path)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: p.write_bytes(b"") and p, "empty"),
        (lambda p: p.mkdir() or p, "is a directory"),
        (lambda p: p.write_text("this is a text file, not audio\n") and p, "not audio"),
        (
            lambda p: p.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n") and p,
            "no audio stream.*subtitle",
        ),
    ],
    ids=["missing", "empty", "directory", "text", "subtitles"],
)
def test_broken_files_raise_audio_decode_error_naming_file_and_reason(tmp_path, make, match):
    path = make(tmp_path / "clip.wav") or tmp_path / "clip.wav"

    with pytest.raises(AudioDecodeError, match=re.escape(repr(str(tmp_path / "clip.wav"))) + ".*" + match):
        load_audio(path)
    with pytest.raises(AudioDecodeError, match=match):
        audio_info(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = testkit.write_audio(tmp_path / "locked.wav", testkit.sine(440.0, 0.1, 16000), 16000)
    path.chmod(0)
    try:
        with pytest.raises(AudioDecodeError, match=r"cannot be read.*permission"):
            load_audio(path)
    finally:
        path.chmod(0o644)


def test_infinite_samples(tmp_path):
    signal = np.zeros(8000, np.float32)
    signal[4000] = np.inf
    path = testkit.write_audio(tmp_path / "inf.flac", signal, 8000, format=".wav", subtype="FLOAT")

    with pytest.raises(AudioDecodeError, match=r"inf\.flac.*NaN or infinite.*0\.500 s"):
        load_audio(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=4096),
    extension=st.sampled_from(sorted(AUDIO_EXTENSIONS | {".txt", ""})),
)
def test_random_bytes_under_any_audio_extension_raise_audio_decode_error_only(tmp_path, data, extension):
    path = tmp_path / f"random{extension}"
    path.write_bytes(data)

    with pytest.raises(AudioDecodeError, match="random"):
        load_audio(path)
