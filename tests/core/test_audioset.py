"""AudioSet class names: the shipped table, the id -> name mapping, ``beats info``, and the wheel that carries the table."""

from __future__ import annotations

import csv
import subprocess
import sys
import zipfile

import testkit

from beats_core.audioset import (
    AUDIOSET_LABELS_FILE,
    audioset_classes,
    display_name,
    display_names,
    is_audioset_id,
)
from beats_core.cli import main


def test_the_table_holds_the_527_classes_in_audiosets_order():
    classes = audioset_classes()
    assert len(classes) == 527
    assert [c.index for c in classes] == list(range(527))
    assert len({c.id for c in classes}) == 527 and len({c.name.lower() for c in classes}) == 527
    assert all(
        c.id.startswith(("/m/", "/t/", "/g/")) and c.name == c.name.strip() and c.name for c in classes
    )
    assert (classes[0].id, classes[0].name) == ("/m/09x0r", "Speech")
    assert (classes[74].id, classes[74].name) == ("/m/0bt9lr", "Dog")
    assert (classes[137].id, classes[137].name) == ("/m/04rlf", "Music")
    assert (classes[526].id, classes[526].name) == ("/m/07hvw1", "Field recording")


def test_ids_become_display_names_and_other_labels_stay():
    assert display_name("/m/09x0r") == "Speech"
    assert display_name("/m/0bt9lr") == "Dog"
    assert display_name("/m/05zppz") == "Male speech, man speaking"
    assert display_name("owl") == "owl" and display_name("/m/not-a-class") == "/m/not-a-class"
    assert display_names(["/m/06mb1", "rain", "/m/02mk9"]) == ["Rain", "rain", "Engine"]
    assert is_audioset_id("/t/dd00003") and not is_audioset_id("Speech") and not is_audioset_id("")


def test_beats_info_shows_the_names_next_to_the_ids(reference_dir, capsys):
    assert main(["info", str(reference_dir / "tiny_finetuned.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = [line.split() for line in lines if "/m/" in line]
    assert [row[-2:] for row in labels] == [
        ["/m/09x0r", "Speech"],
        ["/m/04rlf", "Music"],
        ["/m/0bt9lr", "Dog"],
        ["/m/06mb1", "Rain"],
        ["/m/02mk9", "Engine"],
    ]


def test_the_wheel_of_beats_core_ships_the_table(tmp_path):
    package = testkit.REPO_ROOT / "packages" / "beats-core"
    options = ["--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp_path)]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *options, str(package)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("beats_core-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read(f"beats_core/{AUDIOSET_LABELS_FILE}").decode()
    rows = list(csv.DictReader(shipped.splitlines()))
    assert len(rows) == 527 and rows[0] == {"index": "0", "mid": "/m/09x0r", "display_name": "Speech"}
