"""push_to_hub against the fake Hub (a real HTTP server), and loading the model back by repo id."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import yaml
from hub_server import FakeHub, client_environment

from beats_core import HubError, load_checkpoint
from beats_core.registry import HUB_CHECKPOINT_FILENAME
from beats_train import BEATsTrainer


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with FakeHub(write_token="write-token") as server:
        for key, value in client_environment(server.url, tmp_path / "hf").items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("HF_TOKEN", "write-token")
        yield server


def test_a_pushed_model_loads_back_by_repo_id(hub, trained, sound_root):
    url = trained.push_to_hub("me/beats-sounds")
    files = hub.files("me/beats-sounds")
    assert set(files) == {HUB_CHECKPOINT_FILENAME, "README.md", "config.yaml"}
    assert (
        url.startswith(hub.url)
        and url.rsplit("/", 1)[-1] == hub.repos[("model", "me/beats-sounds")].branches["main"]
    )

    loaded = load_checkpoint(
        "hf-hub:me/beats-sounds"
    )  # through beats-core's registry lookup and Hub download
    assert loaded.label_dict == {0: "chirp", 1: "clicks", 2: "noise_band", 3: "tone"}
    reloaded = BEATsTrainer.from_checkpoint("hf-hub:me/beats-sounds")
    clips = [sound_root / "tone" / "tone_1.wav", sound_root / "clicks" / "clicks_2.wav"]
    assert np.allclose(
        reloaded.predict(clips)["probability"], trained.predict(clips)["probability"], atol=1e-5
    )

    card = files["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "beats" and metadata["pipeline_tag"] == "audio-classification"
    for needle in (
        "| 2 | noise_band |",
        "| test | accuracy |",
        "hf-hub:me/beats-sounds",
        "random:tiny",
        "fbank",
    ):
        assert needle in card
    assert f"{trained.results.test_metrics['accuracy']:.4f}" in card
    config = yaml.safe_load(files["config.yaml"])
    assert config["training"]["model"] == "random:tiny" and config["data"]["batch_size"] == 8


def test_pushing_again_commits_only_what_changed(hub, trained):
    trained.push_to_hub("me/again")
    first = hub.repos[("model", "me/again")].branches["main"]
    trained.push_to_hub("me/again", commit_message="no change")
    assert hub.repos[("model", "me/again")].branches["main"] == first


def test_without_write_access_the_error_says_how_to_log_in(hub, trained, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "read-only")
    with pytest.raises(
        HubError, match=r"refused to let this account write to 'me/denied' \(HTTP 401\).*hf auth login"
    ):
        trained.push_to_hub("me/denied")
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError, match=f"127.0.0.1:{port} could not be reached"):
        trained.push_to_hub("me/unreachable")


def test_repo_ids_are_checked_and_a_model_is_needed(trained, sound_root):
    from beats_core import ConfigError

    with pytest.raises(ConfigError, match="repo_id must be 'owner/name'"):
        trained.push_to_hub("just-a-name")
    with pytest.raises(ConfigError, match="no fine-tuned model yet"):
        BEATsTrainer.from_directory(sound_root).push_to_hub("me/x")
