from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import testkit
import torch

from beats_core import AudioDecodeError, ConfigError, DatasetError
from beats_core.audio import load_audio
from beats_data import AudioCollator, AudioDataset, LabelEncoder, create_dataloader, load_urbansound8k


def _offset_of(window: np.ndarray, whole: np.ndarray) -> int:
    """Where ``window`` best matches inside ``whole`` (FFT cross-correlation)."""
    n = len(whole) + len(window)
    correlation = np.fft.irfft(np.fft.rfft(whole, n) * np.conj(np.fft.rfft(window, n)), n)
    return int(np.argmax(correlation[: len(whole) - len(window) + 1]))


def _smooth_noise(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Noise below about 200 Hz: unique, so a window can be located, and barely changed by a
    sub-sample shift of the 16 kHz sampling grid (a cropped window is resampled on its own grid)."""
    width = sample_rate // 200
    smooth = testkit.noise(seconds, sample_rate, seed=seed)
    for _ in range(4):  # a box filter 4 times over: close to Gaussian, with no high-frequency leaks
        smooth = np.convolve(smooth, np.ones(width) / width, mode="same")
    return (0.3 * smooth / np.abs(smooth).max()).astype(np.float32)


@pytest.fixture
def long_clips(tmp_path):
    paths = [
        testkit.write_audio(tmp_path / "a.wav", _smooth_noise(3.0, 44100, seed=1), 44100),
        testkit.write_audio(tmp_path / "b.flac", _smooth_noise(2.5, 22050, seed=2), 22050),
        testkit.write_audio(tmp_path / "c.wav", testkit.noise(0.1, 16000, 0.3, seed=3), 16000),
    ]
    return pd.DataFrame({"filename": [str(p) for p in paths], "category": ["x", "y", "x"]})


def test_items_are_16k_waveforms_with_targets_and_row_index(urbansound8k_root):
    frame = load_urbansound8k(urbansound8k_root)
    dataset = AudioDataset(frame)

    item = dataset[7]

    assert set(item) == {"waveform", "index", "target"}
    assert item["waveform"].dtype == torch.float32 and item["waveform"].shape == (8000,)
    assert item["index"] == 7
    assert item["target"].dtype == torch.int64 and int(item["target"]) == frame["target"].iloc[7]
    assert dataset.label_dict == {0: "air_conditioner", 1: "car_horn", 2: "children_playing"}


@pytest.mark.parametrize("known_durations", [True, False], ids=["window-decoded", "cropped-in-memory"])
def test_training_crops_a_random_window_of_max_duration(long_clips, known_durations):
    dataset = AudioDataset(long_clips, train=True, max_duration=1.0)
    if known_durations:
        dataset.durations()
    whole = load_audio(long_clips["filename"][0]).numpy()

    torch.manual_seed(0)
    crops = [dataset[0]["waveform"].numpy() for _ in range(4)]
    torch.manual_seed(0)
    again = dataset[0]["waveform"].numpy()

    assert all(c.shape == (16000,) for c in crops)
    np.testing.assert_array_equal(crops[0], again)
    offsets = [_offset_of(c, whole) for c in crops]
    assert len(set(offsets)) == 4 and all(0 <= o <= 32000 for o in offsets)
    for crop, offset in zip(crops, offsets, strict=True):  # a true window of the clip
        np.testing.assert_allclose(crop[300:-300], whole[offset + 300 : offset + 16000 - 300], atol=0.01)
    assert dataset[2]["waveform"].shape == (1600,)  # shorter clips stay whole


def test_evaluation_cuts_long_clips_into_deterministic_windows(long_clips):
    dataset = AudioDataset(long_clips, max_duration=1.0)
    whole = load_audio(long_clips["filename"][1]).numpy()  # 2.5 s

    items = [dataset[i] for i in range(len(dataset))]

    assert [(it["index"], it["window"]) for it in items] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
    ]
    # The one clip rule (ClipRule.windows): windows of 1 s every 6 whole time steps (0.96 s); the
    # last one of the 2.5 s clip holds what is left, as the feature extractor's windows do.
    assert dataset.lengths().tolist() == [16000] * 5 + [40000 - 2 * 15360, 1600]
    last = items[5]["waveform"].numpy()
    assert last.shape == (40000 - 2 * 15360,)
    np.testing.assert_allclose(last[300:-300], whole[2 * 15360 + 300 : -300], atol=0.01)
    np.testing.assert_array_equal(dataset[4]["waveform"].numpy(), items[4]["waveform"].numpy())
    assert len(AudioDataset(long_clips)) == 3  # whole clips without max_duration


def test_collate_pads_with_a_mask_and_a_minimum_length(long_clips):
    dataset = AudioDataset(long_clips)
    items = [dataset[2], dataset[2]]

    batch = AudioCollator()(items)
    longer = AudioCollator(min_length=0)([dataset[1], dataset[2]])

    assert batch["waveform"].shape == batch["padding_mask"].shape == (2, 2800)
    assert not batch["padding_mask"][:, :1600].any() and batch["padding_mask"][:, 1600:].all()
    assert batch["target"].tolist() == [0, 0] and batch["index"].tolist() == [2, 2]
    assert longer["waveform"].shape == (2, 40000)
    assert longer["padding_mask"].sum(dim=1).tolist() == [0, 40000 - 1600]


def test_multi_label_and_unlabeled_datasets(long_clips):
    frame = long_clips.assign(category=["x;y", "y", "x"])
    labels = LabelEncoder.from_frame(frame, multi_label=True, delimiter=";")

    batch = AudioCollator()([AudioDataset(frame, labels=labels)[i] for i in range(3)])
    unlabeled = AudioDataset(long_clips.drop(columns="category"), label_column=None)

    assert batch["target"].dtype == torch.float32
    assert batch["target"].tolist() == [[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]
    assert set(unlabeled[0]) == {"waveform", "index"}
    assert set(AudioCollator()([unlabeled[0]])) == {"waveform", "padding_mask", "index"}


def test_bad_files_are_skipped_with_a_warning_or_raise(long_clips, tmp_path, caplog):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF garbage")
    frame = pd.concat(
        [long_clips, pd.DataFrame({"filename": [str(broken)], "category": ["y"]})], ignore_index=True
    )
    dataset = AudioDataset(frame)

    with caplog.at_level(logging.WARNING, logger="beats_data"):
        batch = AudioCollator()([dataset[3], dataset[2]])

    assert batch["index"].tolist() == [2]
    assert "skipping row 3" in caplog.text and "broken.wav" in caplog.text
    with pytest.raises(DatasetError, match=r"all 2 clips of a batch failed to decode.*beats validate"):
        AudioCollator()([dataset[3], dataset[3]])
    with pytest.raises(AudioDecodeError, match=r"broken\.wav"):
        AudioDataset(frame, on_error="raise")[3]


def test_dataloader_with_workers_covers_every_row_once_with_consistent_masks(urbansound8k_root):
    frame = load_urbansound8k(urbansound8k_root)
    frame = frame.assign(
        filename=[f if i % 4 else f.replace(".wav", "_short.wav") for i, f in enumerate(frame["filename"])]
    )
    for i in range(0, len(frame), 4):  # every 4th clip is shorter, to make lengths differ
        testkit.write_audio(frame["filename"][i], testkit.noise(0.2 + 0.01 * i, 48000, seed=i), 48000)
    dataset = AudioDataset(frame, train=True, max_duration=2.0)
    loader = create_dataloader(dataset, batch_size=4, num_workers=2, seed=5)

    batches = list(loader)

    indices = torch.cat([b["index"] for b in batches]).tolist()
    assert sorted(indices) == list(range(len(frame)))
    lengths = dataset.lengths()
    for batch in batches:
        expected = torch.tensor([max(int(lengths[i]), 0) for i in batch["index"]])
        assert ((~batch["padding_mask"]).sum(dim=1) - expected).abs().max() <= 2
        assert batch["waveform"].shape[1] >= 2800
        assert batch["target"].tolist() == frame["target"].iloc[batch["index"].tolist()].tolist()
    assert [b["index"].tolist() for b in create_dataloader(dataset, 4, seed=5)] == [
        b["index"].tolist() for b in batches
    ]


def test_lengths_come_from_a_duration_column_without_reading_headers(long_clips):
    frame = long_clips.assign(
        filename=["/nowhere/a.wav", "/nowhere/b.wav", "/nowhere/c.wav"], duration=[3.0, 2.5, 0.1]
    )

    assert AudioDataset(frame, train=True, max_duration=2.0).lengths().tolist() == [32000, 32000, 1600]


def test_bad_configuration(long_clips):
    with pytest.raises(ConfigError, match="on_error"):
        AudioDataset(long_clips, on_error="ignore")
    with pytest.raises(ConfigError, match="max_duration"):
        AudioDataset(long_clips, max_duration=0)
    with pytest.raises(DatasetError, match=r"no column 'label'.*Pass label_column="):
        AudioDataset(long_clips, label_column="label", labels=LabelEncoder(("x", "y")))
    with pytest.raises(DatasetError, match="label 'z' is not one of the 2 known classes"):
        AudioDataset(long_clips.assign(category=["x", "y", "z"]), labels=LabelEncoder(("x", "y")))
