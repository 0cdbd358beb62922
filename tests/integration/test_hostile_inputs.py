"""Every entry point on hostile files and folder layouts: a clean outcome, in seconds and bounded memory.

A folder holds two good classes and, among them, what a fuzzing sweep found: a WAV of
0-bit samples, a header claiming 1 Hz, floats of 1e30, a cut AIFF and Ogg, a FLAC written
to a pipe (no length), an MP3 whose Xing tag claims 9 years, float audio beyond +-1, a
FIFO, a link loop and a name that is not UTF-8. ``beats validate`` and ``beats extract``
run on it as users run them, in processes whose peak memory is measured (``wait4``);
each file also goes, alone, through ``audio_info``/``load_audio``, the extractor and the
training data preparation in a fresh process that measures the growth of its peak
memory case by case. Run as a script (``python test_hostile_inputs.py FOLDER OUT``) this
file is that process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import hostile  # noqa: E402
import testkit  # noqa: E402

#: file name -> what it is; the files that decode are those of DECODABLE.
HOSTILE_FILES = {
    "zero_bits.wav": "no decoder reads its audio stream",
    "rate1.wav": "sample rate of 1 Hz",
    "huge.wav": r"samples reach 1e+30",
    "cut.aiff": "truncated",
    "cut.ogg": "truncated",
    "pipe.flac": None,
    "tag.mp3": None,
    "loud.wav": None,
    "stream.wav": "a FIFO (named pipe), not a regular file",
}
LATIN1_NAME = b"caf\xe9.wav"
PIPE_FLAC_SECONDS = 30.0
#: The most a case may add to a process's peak memory, and the most time it may take.
MAX_GROWTH_BYTES = 200 * 2**20
MAX_SECONDS = 20.0


def make_hostile_folder(root: Path) -> Path:
    """Write the folder: classes ``a`` and ``b`` (3 good clips each) holding the hostile files."""
    testkit.make_directory_dataset(root, {"a": 3, "b": 3}, sample_rate=44100)
    hostile.wav_with_zero_bits(root / "a" / "zero_bits.wav")
    hostile.wav_with_rate(root / "a" / "rate1.wav", 1)
    hostile.float_wav(root / "b" / "huge.wav", 1e30)
    hostile.truncated(testkit.write_audio(root / "b" / "cut.aiff", testkit.noise(2.0, 44100), 44100), 0.27)
    hostile.truncated(testkit.write_audio(root / "b" / "cut.ogg", testkit.noise(2.0, 44100), 44100), 0.66)
    hostile.flac_without_length(root / "a" / "pipe.flac", testkit.noise(PIPE_FLAC_SECONDS, 44100), 44100)
    hostile.mp3_claiming_frames(root / "b" / "tag.mp3")
    hostile.float_wav(root / "b" / "loud.wav", 1.5, rate=44100)
    hostile.fifo(root / "b" / "stream.wav")
    (root / "a" / "up").symlink_to("..")  # a loop
    latin1 = hostile.non_utf8_path(root / "b", LATIN1_NAME)
    testkit.write_audio(root / "latin1.tmp.wav", testkit.class_sound(1, 0.5, 44100, seed=9), 44100).rename(
        latin1
    )
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hostile_folder(tmp_path_factory.mktemp("hostile") / "data")


def _run_measured(command: list[str], timeout: float, cwd: Path) -> tuple[int, str, str, float, int]:
    """Run a command; return its status, stdout, stderr, seconds and peak RSS in bytes (from ``wait4``)."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    start = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=cwd)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            process.kill()
            os.wait4(process.pid, 0)
            pytest.fail(f"{' '.join(command)} still ran after {timeout:g} s")
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    decode = lambda path: path.read_bytes().decode("utf-8", "backslashreplace")  # noqa: E731
    return process.returncode, decode(out), decode(err), seconds, usage.ru_maxrss * 1024


def _beats(*args: str) -> list[str]:
    return [sys.executable, "-m", "beats_core.cli", *args]


def test_beats_validate_reports_each_hostile_file_and_finishes(folder, tmp_path):
    status, out, err, seconds, peak = _run_measured(
        _beats("validate", str(folder), "--workers", "0", "--json"), timeout=180, cwd=tmp_path
    )

    assert status == 1 and "Traceback" not in err  # errors in the data, reported
    report = json.loads(out)
    reasons = {Path(e): r for e, r in report["errors"][0]["details"]["reasons"].items()}
    assert [e["code"] for e in report["errors"]] == ["undecodable_file"]
    expected = {name: text for name, text in HOSTILE_FILES.items() if text and name != "stream.wav"}
    assert {p.name for p in reasons} == set(expected)
    for path, reason in reasons.items():
        assert expected[path.name] in reason and str(path) in reason
    assert "stream.wav': a FIFO (named pipe), not a regular file" in err and "a/up': a link to" in err
    assert report["stats"]["num_clips"] == 6 + len(HOSTILE_FILES) - 1 + 1  # no FIFO, the loop once, latin1
    assert report["stats"]["num_decoded"] == report["stats"]["num_clips"] - len(expected)
    assert "beyond_full_scale" in {w["code"] for w in report["warnings"]}
    assert seconds < 120 and peak < 2**30


def test_beats_extract_embeds_what_decodes_and_lists_the_rest(folder, tmp_path, reference_dir):
    out_file = tmp_path / "features.npz"
    command = _beats(
        "extract", str(folder), "--model", str(reference_dir / "tiny_pretrained.pt"), "-o", str(out_file)
    )
    status, _, err, seconds, peak = _run_measured([*command, "--workers", "0"], timeout=180, cwd=tmp_path)

    assert status == 0 and "Traceback" not in err
    failed = [name for name, text in HOSTILE_FILES.items() if text and name != "stream.wav"]
    assert f"{len(failed)} of {6 + len(HOSTILE_FILES)} files could not be decoded" in err
    assert all(name in err for name in failed)
    from beats_extract import load_features

    saved = load_features(out_file)
    names = {os.fsencode(Path(p).name) for p in saved.paths}
    assert {b"pipe.flac", b"tag.mp3", b"loud.wav", LATIN1_NAME} <= names and len(names) == len(
        saved.paths
    ) == 10
    assert saved.features.shape[0] == 10 and bool((saved.features == saved.features).all())  # no NaN
    assert seconds < 120 and peak < 2**30


def test_each_hostile_file_alone_in_every_entry_point(folder, tmp_path, reference_dir):
    results = tmp_path / "results.json"
    status, _, err, _, _ = _run_measured(
        [sys.executable, __file__, str(folder), str(reference_dir / "tiny_pretrained.pt"), str(results)],
        timeout=300,
        cwd=tmp_path,
    )
    assert status == 0, err

    cases = json.loads(results.read_text())
    for name, expected in HOSTILE_FILES.items():
        case = cases[name]
        for entry in ("load", "extract"):
            outcome = case[entry]
            if expected is None:
                assert outcome["error"] is None, (name, entry, outcome)
            else:
                assert expected in outcome["error"] and name in outcome["error"], (name, entry, outcome)
            assert outcome["seconds"] < MAX_SECONDS, (name, entry, outcome)
            assert outcome["growth"] < MAX_GROWTH_BYTES, (name, entry, outcome)
    assert cases["pipe.flac"]["load"]["samples"] == PIPE_FLAC_SECONDS * 16000  # all of it, counted
    assert cases["latin1"]["load"]["error"] is None and cases["latin1"]["extract"]["error"] is None
    train = cases["prepare_data"]
    assert train["error"] is None and train["rows"] == 10  # the undecodable left out, each file once
    assert train["seconds"] < 60 and train["growth"] < MAX_GROWTH_BYTES


# ---------------------------------------------------------------------------
# The measuring process
# ---------------------------------------------------------------------------


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(action) -> dict:
    """Run ``action``; its outcome with the seconds it took and how much it raised the peak RSS."""
    before, start = _peak_rss(), time.perf_counter()
    try:
        outcome = {"error": None, **(action() or {})}
    except Exception as e:  # the outcome is judged by the test: only the message matters here
        outcome = {"error": f"{type(e).__name__}: {e}"}
    return {**outcome, "seconds": time.perf_counter() - start, "growth": _peak_rss() - before}


def _drive(folder: Path, checkpoint: Path, results: Path) -> None:
    from beats_core.audio import audio_info, load_audio
    from beats_extract import BEATsFeatureExtractor
    from beats_train.config import DataConfig
    from beats_train.data import prepare_data

    warnings.simplefilter("ignore")
    extractor = BEATsFeatureExtractor(checkpoint, num_workers=0)
    good = folder / "a" / "a_0.wav"
    extractor.extract_from_files([good], progress=False)  # everything imported and warm
    load_audio(good)

    def load(path: Path) -> dict:
        audio_info(path)
        return {"samples": int(load_audio(path).shape[0])}

    def extract(path: Path) -> dict:
        (result,) = extractor.stream_from_files([path], on_error="skip")
        if result.error is not None:
            raise result.error
        return {}

    paths = {name: folder / ("a" if (folder / "a" / name).exists() else "b") / name for name in HOSTILE_FILES}
    paths["latin1"] = hostile.non_utf8_path(folder / "b", LATIN1_NAME)
    cases: dict = {
        name: {"load": _measure(lambda p=path: load(p)), "extract": _measure(lambda p=path: extract(p))}
        for name, path in paths.items()
    }
    config = DataConfig(data_dir=str(folder), train_split=0.5, val_split=0.25, test_split=0.25, num_workers=0)
    cases["prepare_data"] = _measure(lambda: {"rows": len(prepare_data(config, progress=False).frame)})
    results.write_text(json.dumps(cases, indent=2))


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
