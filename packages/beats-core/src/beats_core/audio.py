"""Decoding audio files into the float32 waveforms BEATs expects (16 kHz, mono by default).

Two decoders are used, picked by the file's content rather than its extension:

* `soundfile <https://python-soundfile.readthedocs.io>`_ (libsndfile) for WAV (PCM 8/16/24/32-bit
  and float), FLAC, OGG Vorbis/Opus, AIFF and the other formats libsndfile reads;
* `PyAV <https://pyav.basswood-io.com>`_ (FFmpeg) for MP3, M4A/AAC and every other container
  FFmpeg reads (MP4, WebM, MKV, WMA, ...). MP3 goes to FFmpeg although libsndfile opens it:
  libsndfile 1.2 returns wrong samples when a variable-bitrate MP3 is read in blocks or after
  a seek, and stops early on an MP3 without a Xing/Info/VBRI length header.

Audio is decoded in blocks: a window (``offset``, ``duration``) is read by seeking to it, and
the blocks are mixed down and resampled (soxr, high quality) as they come, so the native-rate
signal of a long recording never has to fit in memory at once.

Anything that cannot be decoded raises :class:`~beats_core.errors.AudioDecodeError` naming
the file and the reason (missing, empty, not a regular file, truncated, not audio,
unsupported, zero samples, an implausible sample rate, NaN, infinite or huge samples).

Headers are not trusted further than the file's size allows: the length a header claims is
capped by what that many bytes can hold (:func:`audio_info` never reports more), a file
whose header states no length is counted by decoding it, and decoding keeps what decodes.
"""

from __future__ import annotations

import math
import os
import re
import stat
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from beats_core.errors import AudioDecodeError, ConfigError, InvalidAudioError
from beats_core.geometry import SAMPLE_RATE

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_SAMPLE_MAGNITUDE",
    "MAX_SAMPLE_RATE",
    "MAX_UPSAMPLING",
    "MIN_SAMPLE_RATE",
    "AudioInfo",
    "audio_info",
    "check_waveform_values",
    "load_audio",
    "resample",
]


#: File extensions (lower case, with the dot) treated as audio when scanning folders.
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4",
        ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64", ".rf64", ".wma", ".webm", ".mka", ".mkv",
    }
)  # fmt: skip

#: The lowest sample rate, in Hz, a file may declare. Audio is not recorded below 1 kHz
#: (telephony uses 8 kHz; the lowest rates in use, for infrasound and hydrophones, are a few
#: kHz); a header claiming less is corrupt or hostile: at 1 Hz, a 32 KB file would be
#: upsampled into a gigabyte.
MIN_SAMPLE_RATE = 1000
#: The highest sample rate, in Hz, a file may declare: 768 kHz, the highest rate of audio
#: converters and of the ultrasonic recorders used for bats and rodents.
MAX_SAMPLE_RATE = 768000
#: The most :func:`load_audio` upsamples a file (output rate / native rate): 16 kHz from the
#: lowest rate allowed is 16x; more would turn a small file into a huge waveform.
MAX_UPSAMPLING = 64
#: The largest magnitude a sample may have. The fbank scales samples by 2**15 and squares
#: the FFT of a 400-sample frame: with pre-emphasis and mean removal a frame's samples reach
#: 3.94 * 2**15 * peak, and by Parseval a mel energy is at most 512 * 400 * (3.94 * 2**15 *
#: peak)**2 = 3.4e15 * peak**2, which overflows float32 (3.4e38) beyond a peak of 3.2e11.
#: 1e10 leaves a 30x margin (resampling overshoot) and still takes float files written on
#: the int16 or int32 scale (peaks up to 2**31), which are audio at the wrong level.
MAX_SAMPLE_MAGNITUDE = 1e10

# Samples decoded per block (all channels together): bounds memory whatever the header says.
_BLOCK_SAMPLES = 1 << 20
# Decoded PyAV audio before the requested offset, to let the decoder settle after a seek.
_SEEK_PREROLL_SECONDS = 0.2
_RESAMPLE_QUALITY = "HQ"
# libsndfile's log says "<chunk> : <declared> (should be <present>)" when the audio data is
# shorter than a header claims: a WAV's "data", an AIFF's "SSND", an AU's "Data Size", an
# 8SVX's "BODY", a W64's "riff" (the whole file). 0 and 0xFFFFFFFF are placeholders of
# streaming writers. RF64 and VOC files say it in words.
_DATA_SHORT = re.compile(
    r"^\s*(?:data|SSND|Data Size|BODY|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE
)
_DATA_SIZE_PLACEHOLDERS = {0, 0xFFFFFFFF, 0x7FFFFFFF}
_RF64_FRAMES_SHORT = re.compile(
    r"Calculated frame count (\d+) does not match value from 'ds64' chunk of (\d+)"
)
_VOC_TRUNCATED = "Seems to be a truncated file"
# libsndfile's frame count of a file whose header states no length (a FLAC written to a pipe).
_SF_UNKNOWN_FRAMES = 2**63 - 1
# An Ogg page: 27 header bytes, a table of up to 255 segment sizes, up to 255 * 255 body bytes.
_OGG_MAX_PAGE = 27 + 255 + 255 * 255
_OGG_END_OF_STREAM = 0x04
_ZERO_SAMPLES = "it holds zero audio samples; it is empty, corrupt or not audio"
_MP3_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")
_MP3_SYNC = re.compile(rb"\xff[\xe0-\xff]")
# FFmpeg demuxers of raw elementary streams: no index to seek by, and unless an MP3 has a
# Xing/Info/VBRI header, a length estimated from the bitrate.
_RAW_STREAM_FORMATS = frozenset({"mp3", "aac", "ac3", "eac3", "dts", "mp2", "amr", "truehd", "mlp"})
# Where the length is exact (MP4/M4A, MP3 with a length header), decoding may end this many
# samples short (about two codec frames) before the file counts as truncated.
_CODEC_FRAME_SLACK = 2048

# The most audio a file's size can hold, as the fewest bits a frame (one sample per channel)
# takes: PCM exactly its sample width; lossless codecs (FLAC, ALAC, ...) at least 1/1024 bit:
# a FLAC frame holds at most 65535 samples per channel in at least 12 bytes, 5461 samples a
# byte; other waveform coders (ADPCM, GSM, ...) at least 1 bit per sample; lossy codecs
# a minimum bitrate. Digital silence takes 560-700 bit/s in AAC and Vorbis at 8 kHz (the
# cheapest encodings measured), so 100 bit/s leaves a 5x margin; MPEG audio has no bitrate
# below 8 kbit/s.
_LOSSLESS_MIN_BITS_PER_FRAME = 1 / 1024
_LOSSY_MIN_BITRATE = 100
_MPEG_MIN_BITRATE = 8000
_MPEG_CODECS = frozenset({"mp1", "mp2", "mp3"})
_LOSSLESS_CODECS = frozenset({"flac", "alac", "wavpack", "tta", "ape", "mlp", "truehd", "shorten", "als"})
# Soundfile subtypes that store every sample in a fixed number of bits.
_PCM_SUBTYPE_BITS = {
    "PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
    "ULAW": 8, "ALAW": 8, "DPCM_8": 8, "DPCM_16": 16,
}  # fmt: skip
_PCM_CODEC_BITS = re.compile(r"^pcm_[suf]?(\d+)")


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says, read without decoding the whole file.

    Attributes:
        path: the file.
        sample_rate: the native sample rate in Hz, between :data:`MIN_SAMPLE_RATE` and
            :data:`MAX_SAMPLE_RATE`.
        channels: the number of channels.
        frames: the number of samples per channel at the native rate. For MP3 files without
            a Xing/Info/VBRI header and for raw ADTS AAC it is an estimate from the bitrate.
            It is never more than the file's size can hold: where a header claims more, it
            is that bound (and decoding keeps what decodes). A file whose header states no
            length (a FLAC written to a pipe) is counted by decoding it.
        duration: ``frames / sample_rate``, in seconds.
        format: the container, lower case: ``"wav"``, ``"flac"``, ``"ogg"``, ``"mp3"``,
            ``"m4a"``, ...
        codec: the encoding, lower case: ``"pcm_16"``, ``"float"``, ``"vorbis"``, ``"opus"``,
            ``"mp3"``, ``"aac"``, ...
        backend: the decoder that reads it, ``"soundfile"`` or ``"pyav"``.
    """

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str
    codec: str
    backend: str


def audio_info(path: str | Path) -> AudioInfo:
    """Read an audio file's sample rate, channels, length and format from its header.

    Only the header (and, for a few formats, the container index) is read, so this takes
    about a millisecond whatever the file's length; a file whose header states no length
    is decoded once to count its samples.

    Args:
        path: the audio file.

    Returns:
        The file's :class:`AudioInfo`.

    Raises:
        AudioDecodeError: the file is missing, empty, not a regular file, truncated, not
            audio, in a format neither decoder reads, or declares a sample rate outside
            [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`]. The message names the file
            and the reason.
    """
    path, size = _checked_path(path)
    with _open_decoder(path, size) as decoder:
        return decoder.info


def load_audio(
    path: str | Path,
    *,
    sample_rate: int | None = SAMPLE_RATE,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Decode an audio file (or a window of it) into a float32 waveform.

    Integer PCM is scaled to [-1, 1); float files keep their values. Channels are
    averaged when ``mono`` is true. The signal is resampled with soxr (high quality)
    from the file's native rate to ``sample_rate``. Only the requested window is
    decoded where the format allows seeking (all formats above do).

    Args:
        path: the audio file, of any format listed in the module docstring.
        sample_rate: the output rate in Hz (default 16000, the rate of BEATs);
            ``None`` keeps the file's native rate.
        mono: average the channels into one (default). With ``False`` every channel is kept.
        offset: where the window starts, in seconds from the beginning of the file.
        duration: the window's length in seconds; ``None`` reads to the end of the file.
            A window running past the end stops at the end.

    Returns:
        A float32 tensor: ``(samples,)`` when ``mono`` is true, else
        ``(channels, samples)``; ``samples`` is at ``sample_rate`` (about
        ``duration * sample_rate``). Never empty; every sample is finite (the file's own
        samples are at most :data:`MAX_SAMPLE_MAGNITUDE` in magnitude; resampling may
        overshoot them by a few percent).

    Raises:
        AudioDecodeError: the file is missing, empty, not a regular file, truncated, not
            audio or in an unsupported format, holds zero samples (or none in the window,
            e.g. an ``offset`` past its end), declares a sample rate outside
            [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`], would be upsampled more
            than :data:`MAX_UPSAMPLING` times, or holds NaN, infinite or huge samples (see
            :func:`check_waveform_values`). The message names the file and the reason.
        ConfigError: ``sample_rate``, ``offset`` or ``duration`` is out of range.
    """
    import torch

    if sample_rate is not None and not sample_rate > 0:
        raise ConfigError(f"sample_rate must be a positive number of Hz or None, got {sample_rate!r}")
    if not (math.isfinite(offset) and offset >= 0):
        raise ConfigError(f"offset must be a finite number of seconds >= 0, got {offset!r}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ConfigError(f"duration must be a finite number of seconds > 0 or None, got {duration!r}")
    path, size = _checked_path(path)
    with _open_decoder(path, size) as decoder:
        info = decoder.info
        target_rate = info.sample_rate if sample_rate is None else int(sample_rate)
        if target_rate > MAX_UPSAMPLING * info.sample_rate:
            raise _decode_error(
                path,
                f"its {info.sample_rate} Hz would be upsampled {target_rate / info.sample_rate:.0f}x to "
                f"{target_rate} Hz, more than the {MAX_UPSAMPLING}x allowed; ask for a lower sample_rate",
            )
        start = round(offset * info.sample_rate)
        stop = None if duration is None else start + max(1, round(duration * info.sample_rate))
        if decoder.length_slack is not None and info.frames == 0:
            raise _decode_error(path, _ZERO_SAMPLES)
        if decoder.length_slack is not None and start >= info.frames:
            raise _decode_error(
                path,
                f"offset {offset:g} s is at or past the end of the file ({info.duration:.3f} s long)",
            )
        signal = _decode_and_resample(decoder, path, start, stop, target_rate, mono)
    if signal.shape[0] == 0:
        if start == 0 and stop is None:
            raise _decode_error(path, _ZERO_SAMPLES)
        raise _decode_error(
            path, f"it holds no audio samples in the window starting at {offset:g} s{decoder.header_note()}"
        )
    waveform = torch.from_numpy(np.ascontiguousarray(signal.T))
    return waveform[0] if mono else waveform


def check_waveform_values(
    waveform: np.ndarray | torch.Tensor, where: str, sample_rate: int | None = None
) -> None:
    """Check that a waveform holds audio samples: finite, and at most :data:`MAX_SAMPLE_MAGNITUDE`.

    :func:`load_audio` applies this check to every file it decodes (and raises
    :class:`~beats_core.errors.AudioDecodeError` instead); call it on waveforms that come
    from elsewhere before computing features, which NaN, infinite or huge samples would
    turn into NaN without a word.

    Args:
        waveform: float samples (numpy array or tensor, any device and float dtype) whose
            last axis is time: ``(samples,)``, ``(channels, samples)`` or ``(batch, samples)``.
        where: what the waveform is, for the message, e.g. ``"waveform 3"``.
        sample_rate: the waveform's rate in Hz, to place the first bad sample in seconds;
            ``None`` places it in samples.

    Raises:
        InvalidAudioError: a sample is NaN or infinite, or its magnitude is beyond
            :data:`MAX_SAMPLE_MAGNITUDE`; the message names ``where`` and the first bad
            position or the peak.
    """
    array = _as_numpy(waveform)
    if array.size == 0:
        return
    frames = array.reshape(-1, array.shape[-1]).T if array.ndim else array.reshape(1, 1)
    problem = _waveform_problem(frames, 0, sample_rate)
    if problem is not None:
        raise InvalidAudioError(f"{where}: {problem}")


def resample(waveform: np.ndarray | torch.Tensor, orig_sample_rate: int, sample_rate: int) -> torch.Tensor:
    """Resample a waveform with soxr (high quality), as :func:`load_audio` does.

    Args:
        waveform: float samples, ``(samples,)`` or ``(channels, samples)``.
        orig_sample_rate: the waveform's rate in Hz.
        sample_rate: the wanted rate in Hz.

    Returns:
        A float32 tensor of the same rank, ``samples * sample_rate / orig_sample_rate``
        samples long (rounded).

    Raises:
        ConfigError: a rate is not positive, the waveform would be upsampled more than
            :data:`MAX_UPSAMPLING` times, or it has more than 2 dimensions.
    """
    import soxr
    import torch

    if orig_sample_rate <= 0 or sample_rate <= 0:
        raise ConfigError(f"sample rates must be positive, got {orig_sample_rate!r} and {sample_rate!r}")
    if sample_rate > MAX_UPSAMPLING * orig_sample_rate:
        raise ConfigError(
            f"resampling from {orig_sample_rate} Hz to {sample_rate} Hz upsamples "
            f"{sample_rate / orig_sample_rate:.0f}x, more than the {MAX_UPSAMPLING}x allowed; check the rates"
        )
    array = _as_numpy(waveform)
    if array.ndim not in (1, 2):
        raise ConfigError(f"waveform must be (samples,) or (channels, samples), got shape {array.shape}")
    array = array.astype(np.float32, copy=False)
    if orig_sample_rate != sample_rate:
        array = soxr.resample(array.T, orig_sample_rate, sample_rate, quality=_RESAMPLE_QUALITY).T
    return torch.from_numpy(np.ascontiguousarray(array))


def _as_numpy(waveform: np.ndarray | torch.Tensor) -> np.ndarray:
    """A numpy view or copy of a waveform; tensors of any device and float dtype are taken to float32 on the CPU."""
    if isinstance(waveform, np.ndarray):
        return waveform
    import torch

    if isinstance(waveform, torch.Tensor):
        tensor = waveform.detach()
        if tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.float()
        return tensor.cpu().numpy()
    return np.asarray(waveform)


def _waveform_problem(frames: np.ndarray, first: int, sample_rate: int | None) -> str | None:
    """Why ``(frames, channels)`` samples starting at frame ``first`` are not audio, or ``None``.

    Two reductions on the good path (minimum and maximum, which NaN propagates through);
    the first bad position is looked for only when there is one.
    """
    if frames.size == 0:
        return None
    low, high = frames.min(), frames.max()
    if low >= -MAX_SAMPLE_MAGNITUDE and high <= MAX_SAMPLE_MAGNITUDE:
        return None
    finite = np.isfinite(frames).all(axis=1)
    if not finite.all():
        bad = first + int(np.argmin(finite))
        where = f"sample {bad}" if sample_rate is None else f"{bad / sample_rate:.3f} s"
        return (
            f"it holds NaN or infinite samples (first at {where}); re-export it from the program that made it"
        )
    peak = float(max(-low, high))
    return (
        f"its samples reach {peak:.3g}, beyond the {MAX_SAMPLE_MAGNITUDE:.0e} that audio can have "
        "(float audio lies within [-1, 1]; the features would overflow): it is not audio, or it was "
        "written with the wrong scale; re-export it from the program that made it"
    )


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


def _decode_and_resample(
    decoder: _Decoder, path: Path, start: int, stop: int | None, target_rate: int, mono: bool
) -> np.ndarray:
    """Decode frames ``[start, stop)`` block by block; returns ``(samples, channels)`` float32."""
    import soxr

    info = decoder.info
    channels = 1 if mono else info.channels
    stream = None
    if target_rate != info.sample_rate:
        stream = soxr.ResampleStream(
            info.sample_rate, target_rate, channels, dtype="float32", quality=_RESAMPLE_QUALITY
        )
    pieces: list[np.ndarray] = []
    decoded = 0
    for block in decoder.blocks(start, stop):
        problem = _waveform_problem(block, start + decoded, info.sample_rate)
        if problem is not None:
            raise _decode_error(path, problem)
        decoded += block.shape[0]
        if mono and block.shape[1] > 1:
            block = _mix_down(block)
        pieces.append(block if stream is None else stream.resample_chunk(block))
    if stream is not None:
        pieces.append(stream.resample_chunk(np.zeros((0, channels), np.float32), last=True))
    expected = (info.frames if stop is None else min(stop, info.frames)) - start
    if decoder.length_slack is not None and decoded < expected - decoder.length_slack:
        raise _decode_error(
            path,
            f"it is truncated: its header promises {info.frames} samples per channel but decoding "
            f"stopped after {start + decoded}; re-export or re-download it",
        )
    if not pieces:
        return np.zeros((0, channels), np.float32)
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _mix_down(block: np.ndarray) -> np.ndarray:
    """Average ``(frames, channels)`` into ``(frames, 1)``.

    Column by column: 30x faster than ``mean(axis=1)``, and without the BLAS threads of a
    matrix product, which would fight DataLoader workers for the cores.
    """
    mixed = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        mixed += block[:, channel]
    mixed *= np.float32(1 / block.shape[1])
    return mixed[:, None]


class _Decoder(AbstractContextManager):
    """An open audio file: its :class:`AudioInfo` and its frames as float32 blocks."""

    info: AudioInfo
    #: How many frames short of ``info.frames`` decoding may end before the file counts as
    #: truncated; ``None`` where the header's length is not reliable enough to tell.
    length_slack: int | None
    #: The frames the header claims where that is more than the file's size can hold
    #: (``info.frames`` is then that bound, and decoding keeps what decodes); else ``None``.
    overstated_frames: int | None = None
    size: int

    def header_note(self) -> str:
        """Words to add to an error where the header's length was not trusted, else ``""``."""
        if self.overstated_frames is None:
            return ""
        return (
            f" (its header claims {self.overstated_frames / self.info.sample_rate:.0f} s, more than its "
            f"{self.size} bytes can hold: the header is wrong)"
        )

    @abstractmethod
    def blocks(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        """Yield frames ``[start, stop)`` as float32 blocks of shape ``(frames, channels)``."""


class _NeedsFFmpeg(Exception):
    """libsndfile opened the file but cannot be trusted with it; the message says why."""


class _SoundfileDecoder(_Decoder):
    def __init__(self, path: Path, size: int, handle: object) -> None:
        import soundfile

        self._path = path
        self.size = size
        self._file: soundfile.SoundFile = handle  # type: ignore[assignment]
        self.length_slack = 0
        rate, channels, frames = int(self._file.samplerate), int(self._file.channels), int(self._file.frames)
        _check_sample_rate(path, rate)
        # libsndfile cannot read such a FLAC to its end ("psf_fseek() failed"); FFmpeg counts it.
        if frames >= _SF_UNKNOWN_FRAMES:
            raise _NeedsFFmpeg("its header states no length")
        bits = _soundfile_min_bits_per_frame(self._file.format, self._file.subtype, channels, rate)
        if frames > _max_frames(size, bits):
            raise _NeedsFFmpeg(f"its header claims {frames} samples, more than its {size} bytes can hold")
        shortfall = _libsndfile_shortfall(self._file.extra_info)
        if shortfall is not None:
            raise _decode_error(path, f"it is truncated: {shortfall}; re-export or re-download it")
        if self._file.format == "OGG":
            _check_ogg_end(path, size)
        self.info = AudioInfo(
            path=str(path),
            sample_rate=rate,
            channels=channels,
            frames=frames,
            duration=frames / rate,
            format=str(self._file.format).lower(),
            codec=str(self._file.subtype).lower(),
            backend="soundfile",
        )

    def blocks(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        import soundfile

        stop = self.info.frames if stop is None else min(stop, self.info.frames)
        block_frames = max(1024, _BLOCK_SAMPLES // max(1, self.info.channels))
        try:
            if start:
                self._file.seek(start)
            position = start
            while position < stop:
                block = self._file.read(min(block_frames, stop - position), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    return
                position += block.shape[0]
                yield block
        except (soundfile.LibsndfileError, RuntimeError, ValueError, MemoryError) as e:
            raise _decode_error(self._path, f"it is corrupt or truncated ({_first_line(e)})") from e

    def __exit__(self, *exc: object) -> None:
        self._file.close()


class _PyAVDecoder(_Decoder):
    def __init__(self, path: Path, size: int, container: object) -> None:
        import av

        self._path = path
        self.size = size
        self._container: av.container.InputContainer = container  # type: ignore[assignment]
        format_name = self._container.format.name
        if not self._container.streams.audio:
            kinds = sorted({s.type for s in self._container.streams}) or ["none"]
            raise _decode_error(
                path,
                f"it holds no audio stream (format {format_name!r}, streams: "
                f"{', '.join(kinds)}); it is not an audio file",
            )
        self._stream = self._container.streams.audio[0]
        codec = self._stream.codec_context
        if codec is None:  # FFmpeg found the stream but no decoder for it (e.g. a WAV of 0-bit samples)
            raise _decode_error(
                path,
                f"no decoder reads its audio stream (format {format_name!r}): its encoding is unsupported "
                "or its header is corrupt; convert it to WAV or FLAC",
            )
        if not codec.sample_rate or not codec.channels:
            raise _decode_error(
                path, f"its audio stream ({codec.name}) has no sample rate or channel count; it is corrupt"
            )
        rate, channels = int(codec.sample_rate), int(codec.channels)
        _check_sample_rate(path, rate)
        names = format_name.split(",")
        if "ogg" in names:
            _check_ogg_end(path, size)
        seconds = self._declared_seconds()
        # PyAV decodes whole codec frames (AAC adds up to ~1400 samples of padding), so output
        # is trimmed to the length a container or an MP3 length header declares. Other raw
        # streams (MP3 without one, ADTS AAC) only have an estimate from the bitrate, which
        # is neither trimmed to nor checked.
        self._raw_stream = format_name in _RAW_STREAM_FORMATS
        exact = seconds is not None and (
            not self._raw_stream or (names == ["mp3"] and _mp3_has_length_tag(path))
        )
        # A file that states no length at all is counted by decoding it once.
        frames = self._count_frames() if seconds is None else round(seconds * rate)
        codec_name = str(codec.codec.canonical_name).lower()
        bound = _max_frames(size, _codec_min_bits_per_frame(codec_name, channels, rate))
        if seconds is not None and frames > bound:
            self.overstated_frames, frames, exact = frames, bound, False
        self._declared_frames = frames if exact else None
        self.length_slack = _CODEC_FRAME_SLACK if exact and ("mp4" in names or "mp3" in names) else None
        suffix = path.suffix.lower().lstrip(".")
        self.info = AudioInfo(
            path=str(path),
            sample_rate=rate,
            channels=channels,
            frames=frames,
            duration=frames / rate,
            format=suffix if suffix in names else names[0],
            codec=codec_name,
            backend="pyav",
        )

    def _declared_seconds(self) -> float | None:
        """The length the stream or container declares; ``None`` when none, or not a positive finite one."""
        stream = self._stream
        seconds = None
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            seconds = self._container.duration / 1_000_000  # av.time_base
        return seconds if seconds is not None and math.isfinite(seconds) and seconds > 0 else None

    def _count_frames(self) -> int:
        total = sum(block.shape[0] for _, block in self._positioned_blocks(0))
        self._container.seek(0)
        return total

    def _positioned_blocks(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index of its first frame, float32 (frames, channels) block)`` from about ``start`` on.

        The first decoded frame's timestamp places the samples; those that follow are contiguous.
        Codec frames are joined into blocks of about ``_BLOCK_SAMPLES`` to keep per-frame work low.
        """
        import av

        stream = self._stream
        rate = stream.codec_context.sample_rate
        origin = stream.start_time or 0
        # Raw streams such as MP3 are decoded from the start: seeking in them is inexact.
        seeked = start > 0 and not self._raw_stream
        if seeked:
            target = max(0, start - round(_SEEK_PREROLL_SECONDS * rate))
            self._container.seek(origin + int(target / (rate * stream.time_base)), stream=stream)
        resampler = av.AudioResampler(format="fltp")
        block_frames = max(1024, _BLOCK_SAMPLES // stream.codec_context.channels)
        position = None if seeked else 0
        pending: list[np.ndarray] = []
        pending_frames = 0
        for frame in self._container.decode(stream):
            if position is None:
                if frame.pts is None:  # nothing tells where the seek landed: start from the beginning
                    self._container.seek(0)
                    yield from self._positioned_blocks(0)
                    return
                position = round((frame.pts - origin) * stream.time_base * rate)
            arrays = (
                [frame.to_ndarray()]
                if frame.format.name == "fltp"
                else [converted.to_ndarray() for converted in resampler.resample(frame)]
            )
            pending.extend(arrays)
            pending_frames += sum(array.shape[1] for array in arrays)
            if pending_frames >= block_frames:
                yield position, np.concatenate(pending, axis=1).T
                position += pending_frames
                pending, pending_frames = [], 0
        if pending:
            yield position, np.concatenate(pending, axis=1).T

    def blocks(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        import av

        if self._declared_frames is not None:
            stop = self._declared_frames if stop is None else min(stop, self._declared_frames)
        try:
            for position, block in self._positioned_blocks(start):
                end = position + block.shape[0]
                if stop is not None and position >= stop:
                    return
                if end > start:
                    yield block[
                        max(0, start - position) : block.shape[0] if stop is None else stop - position
                    ]
        except (av.error.FFmpegError, RuntimeError, ValueError, MemoryError) as e:
            raise _decode_error(
                self._path, f"it is corrupt or truncated ({_first_line(e)}){self.header_note()}"
            ) from e

    def __exit__(self, *exc: object) -> None:
        self._container.close()


def _open_decoder(path: Path, size: int) -> _Decoder:
    """Open ``path`` (``size`` bytes) with soundfile, or PyAV where soundfile cannot read it reliably."""
    import av
    import soundfile

    # libsndfile 1.2 decodes MP3 wrongly when read in blocks or after a seek (variable
    # bitrate files), and stops early on one without a length header: FFmpeg reads MP3. A file
    # that starts like MPEG audio goes there at once (libsndfile's MP3 decoder would also
    # print notes on stderr about a broken one).
    soundfile_reason = "MP3 is read by FFmpeg"
    if not _starts_like_mpeg_audio(path):
        name = os.fsencode(path)  # soundfile encodes a str strictly: names that are not UTF-8 would fail
        try:
            handle = soundfile.SoundFile(name)
        except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError, MemoryError) as e:
            soundfile_reason = _first_line(e).replace(f"Error opening {name!r}: ", "").rstrip(".")
            if "does not exist" in soundfile_reason:  # libsndfile's words for a bad MPEG stream
                soundfile_reason = "not a valid MP3 stream"
        else:
            # A "RAW" file has no header at all: libsndfile guessed an encoding from the extension.
            soundfile_reason = "no audio header" if handle.format == "RAW" else "MP3 is read by FFmpeg"
            if handle.format not in ("MP3", "RAW"):
                try:
                    return _SoundfileDecoder(path, size, handle)
                except _NeedsFFmpeg as e:
                    soundfile_reason = str(e)
                except BaseException:
                    handle.close()
                    raise
            handle.close()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, RuntimeError, ValueError, OSError, MemoryError, EOFError) as e:
        ffmpeg_reason = getattr(e, "strerror", None) or _first_line(e)
        raise _decode_error(
            path,
            f"it is not audio in a format that can be read, or it is corrupt or truncated "
            f"(soundfile: {soundfile_reason}; FFmpeg: {ffmpeg_reason}); convert it to WAV or FLAC",
        ) from e
    try:
        return _PyAVDecoder(path, size, container)
    except AudioDecodeError:
        container.close()
        raise
    except (av.error.FFmpegError, RuntimeError, ValueError, MemoryError, EOFError) as e:
        container.close()
        raise _decode_error(path, f"it is corrupt or unsupported ({_first_line(e)})") from e


# ---------------------------------------------------------------------------
# What a header may claim
# ---------------------------------------------------------------------------


def _check_sample_rate(path: Path, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise _decode_error(
            path,
            f"its header declares a sample rate of {rate} Hz, outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
            "of audio; the header is corrupt",
        )


def _max_frames(size: int, min_bits_per_frame: float) -> int:
    """The most frames ``size`` bytes can hold when a frame takes at least ``min_bits_per_frame`` bits."""
    return math.floor(size * 8 / min_bits_per_frame)


def _soundfile_min_bits_per_frame(format: str, subtype: str, channels: int, rate: int) -> float:
    """The fewest bits a frame takes in a file libsndfile reads (see ``_LOSSY_MIN_BITRATE``)."""
    if format == "FLAC" or subtype.startswith("ALAC"):
        return _LOSSLESS_MIN_BITS_PER_FRAME
    if subtype in _PCM_SUBTYPE_BITS:
        return _PCM_SUBTYPE_BITS[subtype] * channels
    if subtype.startswith("MPEG"):
        return _MPEG_MIN_BITRATE / rate
    if subtype in ("VORBIS", "OPUS"):
        return _LOSSY_MIN_BITRATE / rate
    return channels  # ADPCM, GSM 6.10, G.72x, DWVW, ...: at least a bit per sample


def _codec_min_bits_per_frame(codec: str, channels: int, rate: int) -> float:
    """The fewest bits a frame takes in an FFmpeg codec's stream (see ``_LOSSY_MIN_BITRATE``)."""
    if codec in _LOSSLESS_CODECS:
        return _LOSSLESS_MIN_BITS_PER_FRAME
    if pcm := _PCM_CODEC_BITS.match(codec):
        return int(pcm[1]) * channels
    if codec.startswith(("pcm_", "adpcm_")):
        return channels
    if codec in _MPEG_CODECS:
        return _MPEG_MIN_BITRATE / rate
    return _LOSSY_MIN_BITRATE / rate


def _libsndfile_shortfall(log: str) -> str | None:
    """What libsndfile's log says is missing from a file's audio data, or ``None``."""
    for declared, present in _DATA_SHORT.findall(log):
        if int(declared) not in _DATA_SIZE_PLACEHOLDERS and int(declared) > int(present):
            return f"its header declares {declared} bytes but only {present} are present"
    rf64 = _RF64_FRAMES_SHORT.search(log)
    if rf64 is not None and int(rf64[1]) < int(rf64[2]):
        return f"its header declares {rf64[2]} samples per channel but only {rf64[1]} are present"
    if _VOC_TRUNCATED in log:
        return "its last block is cut short"
    return None


def _check_ogg_end(path: Path, size: int) -> None:
    """Raise unless the last complete Ogg page of the file ends its stream (a cut file's does not).

    The last page of an Ogg stream carries the end-of-stream flag. A file cut short ends
    in a partial page (libsndfile then ignores it as "junk") or on a page boundary: either
    way, its last complete page lacks the flag. Bytes after the last page (a tag some
    programs append) do not matter.
    """
    with path.open("rb") as f:
        f.seek(max(0, size - 2 * _OGG_MAX_PAGE))
        tail = f.read()
    position = tail.rfind(b"OggS")
    while position >= 0:
        header = tail[position : position + 27]
        if len(header) == 27 and header[4] == 0:  # stream structure version 0
            table = tail[position + 27 : position + 27 + header[26]]
            if len(table) == header[26] and position + 27 + len(table) + sum(table) <= len(tail):
                if header[5] & _OGG_END_OF_STREAM:
                    return
                break
        position = tail.rfind(b"OggS", 0, position)
    raise _decode_error(
        path,
        "it is truncated: its last Ogg page has no end-of-stream mark; re-export or re-download it",
    )


def _starts_like_mpeg_audio(path: Path) -> bool:
    """Whether a file starts with an ID3v2 tag or an MPEG audio frame sync (MP3, MP2, ADTS AAC)."""
    with path.open("rb") as f:
        head = f.read(3)
    return head == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _mp3_has_length_tag(path: Path) -> bool:
    """Whether an MP3's first frame carries a Xing/Info/VBRI header giving the exact length."""
    with path.open("rb") as f:
        head = f.read(10)
        if head[:3] == b"ID3" and len(head) == 10:  # skip an ID3v2 tag (size is syncsafe)
            size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
            f.seek(10 + size + (10 if head[5] & 0x10 else 0))
        else:
            f.seek(0)
        first_frame = f.read(4096)
    sync = _MP3_SYNC.search(first_frame)
    return sync is not None and any(
        tag in first_frame[sync.start() : sync.start() + 200] for tag in _MP3_LENGTH_TAGS
    )


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

_NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _checked_path(path: str | Path) -> tuple[Path, int]:
    """The path and its size in bytes, once it is known to be a readable, non-empty regular file."""
    path = Path(path)
    if not path.exists():
        raise _decode_error(path, "the file does not exist; check the path")
    if path.is_dir():
        raise _decode_error(path, "it is a directory, not an audio file")
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):  # opening a FIFO would block for ever
        kind = _NOT_REGULAR.get(stat.S_IFMT(status.st_mode), "not a regular file")
        raise _decode_error(
            path, f"it is {kind}, not a regular file (reading it could wait for ever); pass an audio file"
        )
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise _decode_error(path, f"it cannot be read ({e.strerror or e}); check its permissions") from e
    if status.st_size == 0:
        raise _decode_error(path, "the file is empty (0 bytes); re-export or re-download it")
    return path, status.st_size


def _decode_error(path: Path, reason: str) -> AudioDecodeError:
    return AudioDecodeError(f"cannot decode audio file {str(path)!r}: {reason}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
