from __future__ import annotations

import os
import re
import time
import tracemalloc

import hostile
import numpy as np
import pytest
import soundfile
import testkit
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beats_core import AudioDecodeError, ConfigError, InvalidAudioError
from beats_core.audio import (
    AUDIO_EXTENSIONS,
    AudioInfo,
    audio_info,
    check_waveform_values,
    load_audio,
    resample,
)

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
    with pytest.raises(ConfigError, match=r"from 1 Hz to 16000 Hz upsamples 16000x, more than the 64x"):
        resample(tone, 1, 16000)  # 44100 samples would become 706 million


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


# ---------------------------------------------------------------------------
# Hostile files (a fuzzing sweep's findings): a clean error or the audio, in seconds and bounded memory
# ---------------------------------------------------------------------------


class _Budget:
    """Measures the wall time and the peak of traced (numpy and Python) allocations of a block."""

    def __enter__(self) -> _Budget:
        tracemalloc.start()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def test_a_stream_without_a_decoder_is_an_audio_decode_error(tmp_path):
    path = hostile.wav_with_zero_bits(tmp_path / "zero_bits.wav")

    for read in (audio_info, load_audio):
        with pytest.raises(AudioDecodeError, match=r"zero_bits\.wav.*no decoder reads its audio stream"):
            read(path)


def test_a_flac_without_a_length_is_counted_and_decoded_whole(tmp_path):
    rate = 48000
    signal = testkit.noise(3.0, rate, amplitude=0.3)
    reference = testkit.write_audio(tmp_path / "reference.flac", signal, rate)
    path = hostile.flac_without_length(tmp_path / "pipe.flac", signal, rate)

    with _Budget() as budget:
        info = audio_info(path)
        waveform = load_audio(path, sample_rate=None)
        window = load_audio(path, sample_rate=None, offset=1.0, duration=0.5)

    assert info.frames == 3 * rate and info.sample_rate == rate  # counted, not 2**63
    torch.testing.assert_close(waveform, load_audio(reference, sample_rate=None), atol=0, rtol=0)
    torch.testing.assert_close(window, waveform[rate : rate + rate // 2], atol=0, rtol=0)
    assert budget.seconds < 10 and budget.peak_bytes < 20_000_000  # the whole file is 0.6 MB of float32


@pytest.mark.parametrize(
    "make",
    [
        lambda p: hostile.mp3_claiming_frames(p / "tag.mp3"),
        lambda p: hostile.flac_claiming_samples(p / "claim.flac", testkit.noise(0.5, 8000), 8000, 2**36 - 1),
    ],
    ids=["mp3_xing_tag", "flac_streaminfo"],
)
def test_a_length_claimed_beyond_the_file_size_is_capped_and_decoding_keeps_what_decodes(tmp_path, make):
    path = make(tmp_path)
    size = path.stat().st_size

    with _Budget() as budget:
        info = audio_info(path)
        waveform = load_audio(path, sample_rate=None)
        with pytest.raises(
            AudioDecodeError,
            match=r"(no audio samples in the window|corrupt or truncated) .*header claims .*is wrong",
        ):
            load_audio(path, offset=info.duration - 0.01)

    # never more than the file's bytes can hold: 8 kbit/s for MPEG, 8192 frames a byte for FLAC
    assert info.frames <= size * 8192 < 2**36 - 1
    assert (
        0.25 * info.sample_rate < waveform.shape[0] < 0.6 * info.sample_rate
    )  # what is there, about 0.3-0.5 s
    assert budget.seconds < 10 and budget.peak_bytes < 20_000_000


def test_mp3_lengths_are_capped_by_the_lowest_mpeg_bitrate(tmp_path):
    path = hostile.mp3_claiming_frames(tmp_path / "tag.mp3")

    info = audio_info(path)

    assert info.duration <= path.stat().st_size * 8 / 8000  # a 1 kB file holds at most 1 s


@pytest.mark.parametrize("rate", [1, 999, 768001, 4_000_000])
def test_implausible_sample_rates_are_refused(tmp_path, rate):
    path = hostile.wav_with_rate(tmp_path / "rate.wav", rate)

    with _Budget() as budget:
        for read in (audio_info, load_audio):
            with pytest.raises(
                AudioDecodeError, match=rf"rate\.wav.*sample rate of {rate} Hz, outside the 1000-768000 Hz"
            ):
                read(path)

    assert budget.seconds < 5 and budget.peak_bytes < 5_000_000  # at 1 Hz, 32 kB used to become 1 GB


def test_the_lowest_and_highest_rates_decode_and_upsampling_is_capped(tmp_path):
    low = hostile.wav_with_rate(tmp_path / "low.wav", 1000)
    high = hostile.wav_with_rate(tmp_path / "high.wav", 768000)

    assert load_audio(low).shape == (16 * 16000,)  # 16000 samples at 1 kHz are 16 s
    assert load_audio(low, sample_rate=64000).shape == (64 * 16000,)
    assert load_audio(high).shape == (round(16000 * 16000 / 768000),)
    with pytest.raises(
        AudioDecodeError, match=r"low\.wav.*upsampled 96x to 96000 Hz, more than the 64x allowed"
    ):
        load_audio(low, sample_rate=96000)


def test_huge_float_samples_are_refused_naming_the_file_and_the_peak(tmp_path):
    huge = hostile.float_wav(tmp_path / "huge.wav", 1e30)
    int32_scale = hostile.float_wav(tmp_path / "int32_scale.wav", 2.0**31)

    with pytest.raises(AudioDecodeError, match=r"huge\.wav.*samples reach 1e\+30, beyond the 1e\+10"):
        load_audio(huge)
    assert audio_info(huge).frames == 8000  # the header is fine: only decoding sees the samples
    # floats written on the int32 scale are audio at the wrong level: they decode
    assert load_audio(int32_scale, sample_rate=None).abs().max() == 2.0**31


def test_the_magnitude_limit_keeps_the_fbank_finite():
    from beats_core.audio import MAX_SAMPLE_MAGNITUDE
    from beats_core.fbank import compute_fbank

    rng = np.random.default_rng(0)
    signs = torch.from_numpy(
        np.sign(rng.standard_normal(16000)).astype(np.float32)
    )  # full power at every frequency

    assert torch.isfinite(compute_fbank(signs * MAX_SAMPLE_MAGNITUDE)).all()
    assert not torch.isfinite(compute_fbank(signs * 1e13)).all()  # what the limit keeps out


def test_check_waveform_values_on_arrays_and_tensors():
    good = testkit.sine(440.0, 0.5, 16000)
    nan = good.copy()
    nan[4000] = np.nan
    huge = np.stack([good, good * 2e12])  # peak 0.5 * 2e12

    check_waveform_values(good, "clip 0")
    check_waveform_values(torch.from_numpy(good).to(torch.bfloat16), "clip 0")
    check_waveform_values(np.zeros(0, np.float32), "empty")
    with pytest.raises(InvalidAudioError, match=r"^clip 3: .*NaN or infinite samples \(first at 0\.250 s\)"):
        check_waveform_values(torch.from_numpy(nan), "clip 3", sample_rate=16000)
    with pytest.raises(
        InvalidAudioError, match=r"^batch: .*NaN or infinite samples \(first at sample 4000\)"
    ):
        check_waveform_values(np.stack([good, nan]), "batch")
    with pytest.raises(InvalidAudioError, match=r"^row 1: its samples reach 1e\+12"):
        check_waveform_values(huge, "row 1")


@pytest.mark.parametrize("fraction", [0.27, 0.53, 0.66, 0.95])
@pytest.mark.parametrize(("extension", "rate"), [(".aiff", 44100), (".ogg", 44100), (".opus", 48000)])
def test_truncated_aiff_and_ogg_are_reported(tmp_path, extension, rate, fraction):
    path = testkit.write_audio(tmp_path / f"cut{extension}", testkit.noise(3.0, rate, amplitude=0.3), rate)
    hostile.truncated(path, fraction)

    with pytest.raises(AudioDecodeError, match=rf"cut\{extension}.*truncated"):
        load_audio(path)


@pytest.mark.parametrize("fraction", [0.27, 0.66])
@pytest.mark.parametrize("container", ["AU", "W64", "RF64", "VOC", "SVX"])
def test_truncated_pcm_containers_are_reported(tmp_path, container, fraction):
    path = tmp_path / f"cut.{container.lower()}"
    soundfile.write(path, testkit.noise(3.0, 22050, amplitude=0.3), 22050, format=container, subtype="PCM_16")
    whole = load_audio(path, sample_rate=None)
    hostile.truncated(path, fraction)

    assert whole.shape == (3 * 22050,)
    with pytest.raises(AudioDecodeError, match=rf"cut\.{container.lower()}.*truncated"):
        load_audio(path)


@pytest.mark.parametrize("extension", [".ogg", ".opus"])
def test_bytes_after_the_last_ogg_page_are_not_a_truncation(tmp_path, extension):
    rate = 48000
    path = testkit.write_audio(tmp_path / f"tagged{extension}", testkit.noise(1.0, rate), rate)
    path.write_bytes(path.read_bytes() + b"TAG" + bytes(125))  # an ID3v1 tag, as some taggers append

    assert abs(load_audio(path, sample_rate=None).shape[0] - rate) <= 400


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    pipe = hostile.fifo(tmp_path / "pipe.wav")

    with _Budget() as budget:
        for read in (audio_info, load_audio):
            with pytest.raises(
                AudioDecodeError, match=r"pipe\.wav.*a FIFO \(named pipe\), not a regular file"
            ):
                read(pipe)

    assert budget.seconds < 5


def test_file_names_that_are_not_utf8_decode(tmp_path):
    good = hostile.non_utf8_path(tmp_path, b"caf\xe9.wav")  # Latin-1, as old archives name files
    testkit.write_audio(tmp_path / "good.wav", testkit.sine(440.0, 0.5), 16000).rename(good)
    broken = hostile.non_utf8_path(tmp_path, b"\xff.flac")
    broken.write_bytes(b"not audio at all")

    info = audio_info(good)
    assert load_audio(good).shape == (8000,) and info.path == str(good) and info.backend == "soundfile"
    with pytest.raises(AudioDecodeError) as raised:
        load_audio(broken)
    assert str(raised.value).encode("utf-8")  # the message prints: the name is escaped
    assert "\\udcff.flac" in str(raised.value)


_FUZZ_SOURCES = [
    (".wav", "PCM_16"),
    (".wav", "FLOAT"),
    (".flac", None),
    (".ogg", None),
    (".aiff", None),
    (".mp3", None),
    (".m4a", None),
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(_FUZZ_SOURCES),
    edits=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), min_size=1, max_size=4),
    keep=st.one_of(st.none(), st.floats(0.05, 0.99)),
)
def test_mutated_headers_give_audio_or_an_audio_decode_error(tmp_path, source, edits, keep):
    extension, subtype = source
    path = testkit.write_audio(
        tmp_path / f"fuzz{extension}", testkit.noise(0.5, 22050, amplitude=0.3), 22050, subtype=subtype
    )
    data = bytearray(path.read_bytes())
    for position, value in edits:
        data[position] = value
    path.write_bytes(bytes(data[: int(len(data) * keep)] if keep else data))

    with _Budget() as budget:
        try:
            info = audio_info(path)
            waveform = load_audio(path)
        except AudioDecodeError as e:
            assert "fuzz" in str(e)
        else:
            assert info.frames <= path.stat().st_size * 8192
            assert torch.isfinite(waveform).all() and waveform.abs().max() < 2e10  # 1e10 and overshoot
            assert 0 < waveform.shape[0] <= 60 * 16000
    assert budget.seconds < 10 and budget.peak_bytes < 100_000_000
