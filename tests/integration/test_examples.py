"""The tutorials in ``examples/``, each run as its own process exactly as a user runs it.

Every script asks for the default model by name; ``hub_env`` serves the tiny reference
checkpoint under the default model's Hub address from a real HTTP server, into a fresh
Hugging Face cache, so the download path runs for real. The data is what the scripts
generate themselves, or a folder the test writes (``--data``), kept tiny.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import testkit
import torch

from beats_core import DEFAULT_MODEL, list_available_models
from beats_data import load_esc50
from beats_extract import load_features

EXAMPLES = testkit.REPO_ROOT / "examples"
SYNTHETIC_CLASSES = ["birdsong", "engine", "knocking", "rain", "siren", "whistle"]
ACCELERATE_CPU = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
ACCELERATE_CPU += ["--dynamo_backend", "no", "--main_process_port", "0"]


@pytest.fixture(scope="module")
def embed_dim(reference_dir: Path) -> int:
    """Width of the tiny checkpoint the fake Hub serves as the default model."""
    return torch.load(reference_dir / "tiny_pretrained.pt", weights_only=True)["cfg"]["encoder_embed_dim"]


def run_example(
    script: str, arguments: list[str], env: dict[str, str], cwd: Path, *, launcher: list[str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``examples/<script>`` in a fresh process; fail with its output unless it succeeds.

    The process gets one torch thread, as each test worker has (tests/conftest.py): with
    ``-n 2`` on two cores, two threads per process would fight over the cores.
    """
    command = [sys.executable, *(launcher or []), str(EXAMPLES / script), *arguments]
    env = {**env, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def number_after(text: str, label: str) -> float:
    """The number printed after ``label`` on a line of ``text``."""
    match = re.search(re.escape(label) + r"\s*([-+]?\d+(?:\.\d+)?)", text)
    assert match, f"{label!r} not in the output:\n{text}"
    return float(match.group(1))


def assert_png(path: Path, min_width: int = 400, min_height: int = 300) -> None:
    """``path`` is a PNG picture that decodes, of at least the given size."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_height, f"{path} is only {width} x {height}"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05, f"{path} is blank"


def assert_default_model_downloaded(env: dict[str, str]) -> None:
    """The default model's file came from the (fake) Hub into the fresh cache."""
    filename = list_available_models()[DEFAULT_MODEL].filename
    assert list((Path(env["HF_HOME"]) / "hub").rglob(filename)), f"{filename} was not downloaded into HF_HOME"


# ----------------------------------------------------------------------------- archive_embeddings.py


def test_archive_embeddings_fills_a_store_resumes_and_draws_a_timeline(hub_env, tmp_path, embed_dim):
    result = run_example("archive_embeddings.py", ["--minutes", "1"], hub_env, tmp_path)
    output = tmp_path / "examples-output" / "archive_embeddings"
    assert_default_model_downloaded(hub_env)
    # 60 s, 45 s and 30 s in 5 s clips: 12 + 9 + 6 rows; the last recording was added by the resumed run
    assert "embedded 2 recordings, 21 clips" in result.stdout
    assert "embedded 1 recording(s), 6 clips; 2 already in the store" in result.stdout
    table = pd.read_parquet(output / "store")
    assert len(table) == 27 and set(table.columns) == {"path", "start", "end", "embedding"}
    assert len(table["embedding"].iloc[0]) == embed_dim and table["end"].max() == pytest.approx(60.0)
    assert_png(output / "timeline.png", min_width=600, min_height=200)


# ----------------------------------------------------------------------------- extract_and_search.py


def test_extract_and_search_on_generated_clips(hub_env, tmp_path, embed_dim):
    result = run_example("extract_and_search.py", ["--clips-per-class", "3", "--k", "2"], hub_env, tmp_path)
    output = tmp_path / "examples-output" / "extract_and_search"
    assert_default_model_downloaded(hub_env)

    saved = load_features(output / "features.npz")
    assert saved.features.shape == (18, embed_dim) and np.isfinite(saved.features).all()
    assert sorted({Path(p).parent.name for p in saved.paths}) == SYNTHETIC_CLASSES
    assert saved.metadata["model"] == DEFAULT_MODEL and saved.metadata["pooling"] == "mean"

    # the query (the first clip) finds itself first, with similarity 1
    hits = pd.read_csv(output / "search_results.csv")
    assert list(hits["rank"]) == [1, 2]
    assert hits["path"][0] == hits["query"][0] == saved.paths[0]
    assert hits["score"][0] == pytest.approx(1.0, abs=1e-4) and hits["score"][1] <= hits["score"][0]
    assert f"1  {hits['score'][0]:.4f}  {saved.paths[0]}" in result.stdout

    precision = number_after(result.stdout, "mean precision@2:")
    assert 0.0 <= precision <= 1.0
    assert_png(output / "similarity_matrix.png")


def test_extract_and_search_output_works_with_beats_search(hub_env, tmp_path):
    """The saved features file is the index `beats search` reads, as the docstring says."""
    clips = testkit.make_sound_dataset(tmp_path / "clips", 2, seconds=0.5)
    query = clips / "chirp" / "chirp_1.wav"
    out = tmp_path / "out"
    arguments = ["--data", str(clips), "--query", str(query), "--output-dir", str(out), "--k", "3"]
    result = run_example("extract_and_search.py", arguments, hub_env, tmp_path)
    assert "precision@3 by class" in result.stdout

    beats = Path(sys.executable).with_name("beats")
    search = subprocess.run(
        [beats, "search", str(out / "features.npz"), str(query), "-k", "3"],
        env={**hub_env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert search.returncode == 0, search.stderr
    ranked = [line.split()[-1] for line in search.stdout.splitlines()[1:]]
    assert ranked == list(pd.read_csv(out / "search_results.csv")["path"])
    assert ranked[0] == str(query)


# ----------------------------------------------------------------------------- finetune_folder.py


def test_finetune_folder_trains_reports_and_predicts(hub_env, tmp_path):
    arguments = ["--clips-per-class", "4", "--epochs", "2", "--batch-size", "4"]
    result = run_example("finetune_folder.py", arguments, hub_env, tmp_path)
    output = tmp_path / "examples-output" / "finetune_folder"
    run = output / "run"
    assert_default_model_downloaded(hub_env)

    accuracy = number_after(result.stdout, "test accuracy:")
    assert 0.0 <= accuracy <= 1.0 and 0.0 <= number_after(result.stdout, "test macro-F1:") <= 1.0
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 2 and results["test_metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert sorted(results["test_metrics"]["per_class"]) == SYNTHETIC_CLASSES
    assert_png(run / "confusion_matrix.png")
    assert_png(run / "training_curves.png")
    assert (run / "classification_report.txt").read_text().strip()
    assert (run / "best_model.pt").stat().st_size > 0

    # new clips (one per class, never trained on) get a label of the model and probabilities summing to 1
    predictions = pd.read_csv(output / "predictions.csv")
    assert len(predictions) == 6 and all(Path(f).exists() for f in predictions["filename"])
    assert set(predictions["label"]) <= set(SYNTHETIC_CLASSES)
    probabilities = predictions[[f"prob_{name}" for name in SYNTHETIC_CLASSES]].sum(axis=1)
    assert np.allclose(probabilities, 1.0, atol=1e-4)
    for key in ("classification_report.txt", "confusion_matrix.png", "training_curves.png"):
        assert f"examples-output/finetune_folder/run/{key}" in result.stdout


# ----------------------------------------------------------------------------- esc50_cross_validation.py


def test_esc50_cross_validation_runs_five_folds_on_a_generated_mini_esc50(hub_env, tmp_path):
    arguments = ["--clips-per-class", "5", "--clip-seconds", "1", "--epochs", "1", "--batch-size", "8"]
    result = run_example("esc50_cross_validation.py", arguments, hub_env, tmp_path)
    output = tmp_path / "examples-output" / "esc50_cross_validation"
    assert_default_model_downloaded(hub_env)

    # the miniature is a real ESC-50-master layout: the real columns, names and 44.1 kHz audio
    root = output / "ESC-50-master"
    meta = pd.read_csv(root / "meta" / "esc50.csv")
    assert list(meta.columns) == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    for row in meta.itertuples():
        assert row.filename == f"{row.fold}-{row.src_file}-{row.take}-{row.target}.wav"
        assert (root / "audio" / row.filename).is_file()
    assert sorted(meta["fold"].unique()) == [1, 2, 3, 4, 5] and len(meta) == 30
    frame = load_esc50(root)
    assert len(frame) == 30 and frame["category"].nunique() == 6

    # five folds, printed and summarised, the mean consistent with the folds
    folds = [float(a) for a in re.findall(r"^fold \d: test accuracy (\d\.\d+)$", result.stdout, re.MULTILINE)]
    assert len(folds) == 5 and all(0.0 <= a <= 1.0 for a in folds)
    mean = number_after(result.stdout, "mean accuracy over 5 folds:")
    assert mean == pytest.approx(np.mean(folds), abs=1e-3)
    assert "98.1" in result.stdout or "0.981" in result.stdout
    runs = output / "runs"
    summary = pd.read_csv(runs / "cross_validation.csv")
    assert list(summary["fold"]) == [1, 2, 3, 4, 5]
    assert np.allclose(summary["test_accuracy"], folds, atol=1e-4)
    assert all((runs / f"fold-{k}" / "results.json").is_file() for k in range(1, 6))
    assert_png(output / "fold_accuracies.png")


# ----------------------------------------------------------------------------- cluster_embeddings.py


def test_cluster_embeddings_on_a_users_folder(hub_env, tmp_path):
    data = testkit.make_sound_dataset(tmp_path / "my clips", 4, seconds=0.5)
    result = run_example("cluster_embeddings.py", ["--data", str(data), "--layer", "1"], hub_env, tmp_path)
    output = tmp_path / "examples-output" / "cluster_embeddings"
    assert_default_model_downloaded(hub_env)

    clusters = pd.read_csv(output / "clusters.csv")
    assert len(clusters) == 16
    assert sorted(clusters["class"].unique()) == sorted(testkit.SOUND_CLASSES)
    assert all(Path(p).parent.name == c for p, c in zip(clusters["path"], clusters["class"], strict=True))
    assert clusters["cluster"].nunique() <= 4 and clusters["cluster"].between(0, 3).all()
    assert "4 clusters" in result.stdout

    purity = number_after(result.stdout, "cluster purity:")
    assert 0.25 <= purity <= 1.0  # at least the largest class's share
    assert -1.0 <= number_after(result.stdout, "adjusted Rand index:") <= 1.0
    assert_png(output / "clusters.png")


def test_cluster_embeddings_scores_against_known_groupings():
    """The script's purity and ARI give the textbook values."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import cluster_embeddings
    finally:
        sys.path.remove(str(EXAMPLES))
    classes = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    clusters = np.array([1, 1, 0, 0, 2, 2, 2, 2])
    assert cluster_embeddings.purity(classes, clusters) == pytest.approx(5 / 8)
    # pairs: 3 together in both groupings; 8 in the same cluster, 7 in the same class, 28 in all
    expected = 8 * 7 / 28
    assert cluster_embeddings.adjusted_rand_index(classes, clusters) == pytest.approx(
        (3 - expected) / ((8 + 7) / 2 - expected)
    )
    assert cluster_embeddings.adjusted_rand_index(classes, 5 - classes) == pytest.approx(1.0)
    # k-means separates well-separated blobs exactly
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(centre, 0.1, size=(10, 3)) for centre in (0, 5, 10)])
    found = cluster_embeddings.kmeans(blobs, 3, seed=0)
    assert cluster_embeddings.adjusted_rand_index(np.repeat([0, 1, 2], 10), found) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- plugins.py


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory) -> Path:
    """examples/beats-plugin-example, pip-installed for real into a folder of its own."""
    return testkit.install_plugin_package(
        EXAMPLES / "beats-plugin-example", tmp_path_factory.mktemp("plugin")
    )


def test_plugins_example_lists_and_uses_the_plugin(hub_env, tmp_path, example_plugin, embed_dim):
    env = {**hub_env, "PYTHONPATH": str(example_plugin)}
    result = run_example("plugins.py", ["--clips-per-class", "2"], env, tmp_path)
    output = tmp_path / "examples-output" / "plugins"
    assert_default_model_downloaded(hub_env)

    loaders = re.search(r"^dataset loaders: (.*)$", result.stdout, re.MULTILINE).group(1).split(", ")
    assert {"jsonl", "csv", "directory", "esc50"} <= set(loaders)
    assert "maxmean (beats-plugin-example)" in result.stdout and "mean (beats-extract)" in result.stdout

    # the loader read the generated manifest: 12 clips, paths relative to the manifest
    manifest = output / "data" / "manifest.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(entries) == 12 and not Path(entries[0]["audio"]).is_absolute()
    assert "jsonl loader: 12 clips" in result.stdout and "gives the same 12 clips" in result.stdout

    # the pooling: max and mean side by side, the mean half equal to the built-in mean
    saved = load_features(output / "features.npz")
    assert saved.features.shape == (12, 2 * embed_dim) and saved.metadata["pooling"] == "maxmean"
    assert [Path(p).resolve() for p in saved.paths] == [
        (manifest.parent / e["audio"]).resolve() for e in entries
    ]
    assert "second half equals the mean pooling: True" in result.stdout
    assert "first half (max) >= second half (mean): True" in result.stdout


def test_plugins_example_says_how_to_install_the_plugin(hub_env, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "plugins.py")],
        env=hub_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "pip install -e examples/beats-plugin-example" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_plugin_loader_names_the_bad_line(hub_env, tmp_path, example_plugin):
    (tmp_path / "manifest.jsonl").write_text('{"audio": "a.wav", "label": "dog"}\n{"audio": "b.wav"}\n')
    code = "from beats_data import load_dataset; load_dataset('jsonl', 'manifest.jsonl')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**hub_env, "PYTHONPATH": str(example_plugin)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "DatasetError" in result.stderr and "manifest.jsonl, line 2 has no 'label'" in result.stderr


# ----------------------------------------------------------------------------- accelerate_launch.py


@pytest.mark.slow
def test_accelerate_launch_example_trains_with_two_processes(hub_env, tmp_path):
    arguments = ["--clips-per-class", "4", "--epochs", "1", "--batch-size", "4"]
    launcher = ["-m", "accelerate.commands.launch", *ACCELERATE_CPU]
    env = {**hub_env, "CUDA_VISIBLE_DEVICES": ""}  # two CPU processes, also on a machine with one GPU
    result = run_example("accelerate_launch.py", arguments, env, tmp_path, launcher=launcher)
    output = tmp_path / "examples-output" / "accelerate_launch"
    assert_default_model_downloaded(hub_env)

    assert "2 process(es), MULTI_CPU" in result.stdout
    assert result.stdout.count("run folder:") == 1  # only the main process reports
    assert result.stdout.count("No --data given: generating") == 1  # only the main process generated the data
    assert sorted(p.name for p in output.iterdir()) == ["data", "run"]  # one run folder
    assert len(list((output / "data").rglob("*.wav"))) == 24
    results = json.loads((output / "run" / "results.json").read_text())
    assert results["epochs"] == 1 and 0.0 <= results["test_metrics"]["accuracy"] <= 1.0
    # both processes trained: the saved state holds the random state of each
    assert len(torch.load(output / "run" / "state.pt", weights_only=True)["rng"]) == 2


# ----------------------------------------------------------------------------- onnx_classify.py

# Run a script with torch and every beats package made unimportable: a meta path finder in front
# of all others refuses them, so the script proves it needs only onnxruntime, numpy and soundfile.
WITHOUT_TORCH = """
import runpy, sys
from importlib.abc import MetaPathFinder

class Refuse(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch" or name.startswith("beats"):
            raise ImportError(f"{name} is not installed on this machine")
        return None

sys.meta_path.insert(0, Refuse())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
assert not [m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith("beats")]
"""


@pytest.mark.slow
def test_onnx_classify_runs_without_torch_and_gives_the_models_labels(reference_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from beats_core import create_model
    from beats_core.audio import load_audio
    from beats_extract import export_onnx

    checkpoint = reference_dir / "tiny_finetuned.pt"
    graph = export_onnx(checkpoint, tmp_path / "classifier.onnx")
    files = {  # name: (signal, sample rate)
        "tone.wav": (testkit.class_sound(1, 2.0, 16000, seed=1), 16000),
        "short.wav": (testkit.class_sound(3, 0.1, 16000, seed=2), 16000),  # shorter than one time step
        "long.wav": (testkit.class_sound(0, 12.5, 16000, seed=3), 16000),  # two windows: 10 s and 2.5 s
        "stereo_44k.wav": (np.stack([testkit.class_sound(2, 1.5, 44100, seed=4)] * 2, axis=1), 44100),
    }
    paths = [
        testkit.write_audio(tmp_path / name, signal, rate, subtype="FLOAT")
        for name, (signal, rate) in files.items()
    ]
    command = [sys.executable, "-c", WITHOUT_TORCH, str(EXAMPLES / "onnx_classify.py"), str(graph)]
    result = subprocess.run(
        [*command, *map(str, paths), "--top", "5"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5 classes, float32 weights" in result.stdout

    model = create_model(checkpoint)
    labels = model.label_dict
    printed = {}
    for block in result.stdout.split("\n")[1:]:
        if block and not block.startswith(" "):
            current = printed[Path(block).name] = {}
        elif block:
            _, probability, label = block.split()
            current[label] = float(probability)
    for name, (signal, rate) in files.items():
        with torch.inference_mode():
            if rate == 16000:  # the torch model on the same samples (10 s windows, weighted by length)
                pieces = [torch.from_numpy(signal[s : s + 160000]) for s in range(0, len(signal), 160000)]
                padded = [torch.nn.functional.pad(p, (0, max(0, 2800 - len(p))))[None] for p in pieces]
                probabilities = [model.extract_features(p)[0][0] for p in padded]
                weights = torch.tensor([len(p) for p in pieces], dtype=torch.float32)
                expected = (torch.stack(probabilities) * weights[:, None]).sum(0) / weights.sum()
                tolerance = 2e-4  # printed with 4 decimals
            else:  # resampled by the example in numpy, here by soxr: close, not equal
                audio = load_audio(tmp_path / name)
                expected = model.extract_features(torch.as_tensor(audio)[None])[0][0]
                tolerance = 0.01
        assert sorted(printed[name]) == sorted(labels.values()), name
        for index, label in labels.items():
            assert printed[name][label] == pytest.approx(float(expected[index]), abs=tolerance), (name, label)
        assert list(printed[name]) == sorted(printed[name], key=printed[name].get, reverse=True)  # ranked


# ----------------------------------------------------------------------------- detect_events.py


def test_detect_events_finds_the_planted_events_at_their_times(hub_env, tmp_path):
    result = run_example("detect_events.py", ["--recording-seconds", "60"], hub_env, tmp_path)
    output = tmp_path / "examples-output" / "detect_events"
    detections = output / "detections"

    planted = pd.read_csv(output / "planted_events.csv")
    table = pd.read_csv(detections / "detections.csv")
    assert len(planted) == 5 and list(table.columns) == ["path", "start", "end", "label", "confidence"]
    assert set(table["label"]) <= {"birdsong", "siren", "engine"}  # the background class is left out
    assert (table["confidence"] >= 0.5).all()
    found = 0
    for event in planted.itertuples():
        hits = table[
            (table["label"] == event.label) & (table["start"] < event.end) & (table["end"] > event.start)
        ]
        # at the right time: a merged event of 2 s clips, 1 s apart, reaches at most a clip beyond the sound
        found += bool(((hits["start"] >= event.start - 2.0) & (hits["end"] <= event.end + 2.0)).any())
    assert found >= 4, result.stdout
    assert re.search(r"^found \d of 5 planted events; \d+ false alarm", result.stdout, re.MULTILINE)

    recording = "recording.wav"
    assert (detections / f"{recording}.selections.txt").read_text().startswith("Selection\tView\tChannel\t")
    assert len((detections / f"{recording}.labels.txt").read_text().splitlines()) == len(table)
    assert_png(detections / f"{recording}.png", min_width=900, min_height=150)
    assert (output / "run" / "best_model.pt").is_file()


# ----------------------------------------------------------------------------- agile_modelling.py


def test_agile_modelling_finds_the_sound_of_one_example_across_the_archive(hub_env, tmp_path):
    result = run_example("agile_modelling.py", [], hub_env, tmp_path)
    output = tmp_path / "examples-output" / "agile_modelling"

    hits = pd.read_csv(output / "hits.csv")
    assert len(hits) == 40 and set(hits["label"]) == {"birdsong", "other"}
    assert list(hits.columns[:5]) == ["path", "start", "end", "score", "label"]
    # the probe embedded nothing: every labelled clip is a row of the store
    assert "5 recordings reused, 0 embedded, 0 clips cut from their audio" in result.stdout
    assert "no validation set: the last epoch" in result.stdout
    detections = pd.read_csv(output / "detections" / "detections.csv")
    assert set(detections["label"]) == {"birdsong"} and (detections["confidence"] >= 0.5).all()

    planted = pd.read_csv(output / "planted_events.csv")
    birdsong = planted[planted["label"] == "birdsong"]
    positives = set(zip(birdsong["path"], birdsong["clip_start"], strict=True))
    detected = set(zip(detections["path"], detections["start"], strict=True))
    precision, recall = number_after(result.stdout, "precision"), number_after(result.stdout, "recall")
    assert precision == pytest.approx(len(detected & positives) / len(detected), abs=1e-3)
    assert recall == pytest.approx(len(detected & positives) / len(positives), abs=1e-3)
    assert precision >= 0.4 and recall >= 0.5  # birdsong is in 18 of 120 clips: chance precision 0.15
