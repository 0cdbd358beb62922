"""ensure_checkpoint against a real HTTP server speaking the Hub's protocol, with the real hub client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hub_server import FakeHub, client_environment, serve_in_process

from beats_core import (
    BEATs,
    BEATsConfig,
    CheckpointError,
    ModelInfo,
    UnknownModelError,
    create_model,
    hookimpl,
    load_checkpoint,
    save_checkpoint,
)
from beats_core.download import ensure_checkpoint, find_cached_checkpoint, hub_cache_dir
from beats_core.plugins import get_plugin_manager

REPO = "beats-test/tiny-checkpoints"  # the repository of the models of tests/plugins/beats-plugin-model
FILES = ("tiny_pretrained.pt", "tiny_finetuned.pt")


@pytest.fixture
def plugin_dir(install_plugin) -> Path:
    """Install the test plugin that registers test_tiny_pretrained (pinned) and test_tiny_finetuned."""
    return install_plugin("beats-plugin-model")


@pytest.fixture
def hf_home(tmp_path) -> Path:
    return tmp_path / "hf"


@pytest.fixture
def hub(reference_dir, hf_home, monkeypatch, plugin_dir):
    """A fake Hub holding the tiny reference checkpoints; the Hub client of this process points at it."""
    with FakeHub() as server:
        for filename in FILES:
            server.add_file(REPO, filename, (reference_dir / filename).read_bytes(), repo_type="dataset")
        _apply(monkeypatch, client_environment(server.url, hf_home))
        yield server


def _apply(monkeypatch, environment: dict[str, str | None]) -> None:
    for key, value in environment.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)


class _Models:
    def __init__(self, **models: ModelInfo) -> None:
        self.models = models

    @hookimpl
    def beats_models(self):
        return self.models


@pytest.fixture
def register():
    """Register models in this process for one test."""
    manager, plugins = get_plugin_manager(), []

    def register(**models: ModelInfo) -> None:
        plugins.append(_Models(**models))
        manager.register(plugins[-1])

    yield register
    for plugin in plugins:
        manager.unregister(plugin)


def _gets(hub: FakeHub, filename: str) -> int:
    return len(hub.requests_for(filename, "GET"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------
# Downloads and the cache
# ---------------------------------------------------------------------------


def test_first_download_lands_in_the_hf_cache(hub, hf_home, reference_dir):
    assert find_cached_checkpoint("test_tiny_pretrained") is None
    path = ensure_checkpoint("test_tiny_pretrained")
    snapshots = hf_home / "hub" / "datasets--beats-test--tiny-checkpoints" / "snapshots"
    assert path.parent.parent == snapshots and path.name == "tiny_pretrained.pt"
    assert path.read_bytes() == (reference_dir / "tiny_pretrained.pt").read_bytes()
    assert _gets(hub, "tiny_pretrained.pt") == 1
    assert find_cached_checkpoint("test_tiny_pretrained") == path
    assert hub_cache_dir() == hf_home / "hub"


def test_models_load_by_registry_name(hub):
    loaded = load_checkpoint("test_tiny_finetuned")
    assert loaded.label_dict is not None and len(loaded.label_dict) == 5
    assert loaded.config.predictor_class == 5
    model = create_model("test_tiny_pretrained")
    assert model.predictor is None and not model.training
    assert _gets(hub, "tiny_finetuned.pt") == 1 and _gets(hub, "tiny_pretrained.pt") == 1


def test_cache_hit_downloads_nothing_and_works_with_the_server_stopped(hub):
    path = ensure_checkpoint("test_tiny_finetuned")
    assert ensure_checkpoint("test_tiny_finetuned") == path
    assert _gets(hub, "tiny_finetuned.pt") == 1  # the second call only asked the Hub for the file's version
    hub.stop()
    assert ensure_checkpoint("test_tiny_finetuned") == path


def test_offline_serves_the_cache_without_a_single_request(hub, monkeypatch):
    path = ensure_checkpoint("test_tiny_pretrained")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set after huggingface_hub was imported
    before = len(hub.requests)
    assert ensure_checkpoint("test_tiny_pretrained") == path
    assert len(hub.requests) == before


def test_offline_and_not_cached_says_so_and_what_to_do(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint("test_tiny_pretrained")
    message = str(error.value)
    assert "not in the cache" in message and "downloads are disabled (HF_HUB_OFFLINE is set)" in message
    assert "`beats download test_tiny_pretrained`" in message and "local checkpoint file" in message
    assert hub.requests == []
    with pytest.raises(CheckpointError, match="cannot download checkpoint 'test_tiny_pretrained' again"):
        ensure_checkpoint("test_tiny_pretrained", force_download=True)


def test_an_endpoint_that_is_not_a_hub_is_a_network_failure_not_offline_mode(hub):
    hub.faults.not_a_hub = True  # a captive portal or a misconfigured proxy answers
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint("test_tiny_pretrained")
    message = str(error.value)
    assert f"{hub.url} could not be reached" in message and "X-Repo-Commit" in message
    assert "HF_HUB_OFFLINE" not in message and "HF_ENDPOINT" in message


def test_an_unreachable_hub_is_a_network_failure_not_offline_mode(hub):
    """A refused connection fails at once (the hub client alone retries it for about 23 s)."""
    hub.stop()
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint("test_tiny_pretrained")
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert f"{hub.url} could not be reached (Connection" in message
    assert "check the network connection" in message and "HF_HUB_OFFLINE" not in message


def test_a_host_name_that_does_not_resolve_fails_at_once_and_the_cache_still_serves(hub, monkeypatch):
    """No DNS (no network): the error comes from the name lookup, not after the hub client's 25 s of retries."""
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    cached = ensure_checkpoint("test_tiny_finetuned")
    monkeypatch.setenv("HF_ENDPOINT", "https://beats-test.invalid")  # .invalid never resolves (RFC 2606)
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint("test_tiny_pretrained")
    message = str(error.value)
    assert "is not in the cache" in message
    assert "https://beats-test.invalid could not be reached (gaierror" in message
    assert "check the network connection" in message and "HF_HUB_OFFLINE" not in message
    assert ensure_checkpoint("test_tiny_finetuned") == cached


def test_hf_hub_cache_and_cache_dir_choose_the_cache(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "from-env"))
    assert ensure_checkpoint("test_tiny_finetuned").is_relative_to(tmp_path / "from-env")
    path = ensure_checkpoint("test_tiny_finetuned", cache_dir=tmp_path / "explicit")
    assert path.is_relative_to(tmp_path / "explicit")
    assert find_cached_checkpoint("test_tiny_finetuned", cache_dir=tmp_path / "explicit") == path


def test_revision_selects_a_commit(hub, reference_dir):
    old_commit = hub.repos[("dataset", REPO)].branches["main"]
    hub.add_file(
        REPO, "tiny_finetuned.pt", (reference_dir / "tiny_pretrained.pt").read_bytes(), repo_type="dataset"
    )
    latest = ensure_checkpoint("test_tiny_finetuned")
    pinned = ensure_checkpoint("test_tiny_finetuned", revision=old_commit)
    assert pinned.parent.name == old_commit and latest.parent.name != old_commit
    assert pinned.read_bytes() == (reference_dir / "tiny_finetuned.pt").read_bytes()
    assert latest.read_bytes() == (reference_dir / "tiny_pretrained.pt").read_bytes()


def test_force_download_fetches_the_file_again(hub):
    path = ensure_checkpoint("test_tiny_pretrained")
    assert ensure_checkpoint("test_tiny_pretrained", force_download=True) == path
    assert _gets(hub, "tiny_pretrained.pt") == 2


def test_the_default_model_comes_from_the_project_repository(hub, reference_dir):
    data = (reference_dir / "tiny_pretrained.pt").read_bytes()  # stands in for the real 360 MB file
    hub.add_file("ninanor/beats-checkpoints", "BEATs_iter3_plus_AS2M.pt", data, repo_type="dataset", lfs=True)
    path = ensure_checkpoint()
    assert path.parts[-4:-2] == ("datasets--ninanor--beats-checkpoints", "snapshots")
    assert path.read_bytes() == data
    assert find_cached_checkpoint() == path


# ---------------------------------------------------------------------------
# Hub errors
# ---------------------------------------------------------------------------


def test_missing_file_names_the_repository_and_the_file(hub, register):
    register(test_gone=ModelInfo(repo_id=REPO, repo_type="dataset", filename="weights/gone.pt"))
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint("test_gone")
    message = str(error.value)
    assert f"dataset repository '{REPO}' has no file 'weights/gone.pt' at revision 'main'" in message
    assert "from '<local>'" in message


def test_missing_repository_and_missing_revision(hub, register):
    register(test_norepo=ModelInfo(repo_id="nobody/nothing", filename="x.pt"))
    with pytest.raises(CheckpointError, match=r"model repository 'nobody/nothing' was not found.*HF_TOKEN"):
        ensure_checkpoint("test_norepo")
    with pytest.raises(
        CheckpointError, match="revision 'v9' of checkpoint 'test_tiny_pretrained' does not exist"
    ):
        ensure_checkpoint("test_tiny_pretrained", revision="v9")


def test_unknown_name_suggests_the_closest(hub):
    with pytest.raises(UnknownModelError, match="Did you mean 'test_tiny_pretrained'"):
        ensure_checkpoint("test_tiny_pretrain")
    assert hub.requests == []


# ---------------------------------------------------------------------------
# Validation and repair
# ---------------------------------------------------------------------------


def test_corrupt_payload_fails_its_checksum_after_one_more_download(hub):
    hub.faults.corrupt = True
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint("test_tiny_pretrained")
    message = str(error.value)
    assert "its SHA-256 is" in message and "expected c0a6cf1e" in message
    assert "still was after downloading it again" in message and "'beats-plugin-model'" in message
    assert _gets(hub, "tiny_pretrained.pt") == 2


def test_without_a_registry_hash_an_lfs_file_is_checked_against_the_hubs(hub, reference_dir):
    data = (reference_dir / "tiny_pretrained.pt").read_bytes()
    hub.add_file("ninanor/beats-checkpoints", "BEATs_iter3_plus_AS2M.pt", data, repo_type="dataset", lfs=True)
    hub.faults.corrupt = True  # flipped bytes inside a tensor: it still loads, only a hash can tell
    with pytest.raises(
        CheckpointError,
        match=rf"its SHA-256 is [0-9a-f]{{64}}, expected {hashlib.sha256(data).hexdigest()} \(the Hub's\)",
    ):
        ensure_checkpoint()
    assert _gets(hub, "BEATs_iter3_plus_AS2M.pt") == 2


def test_a_hub_file_that_is_no_checkpoint_fails_to_load_after_one_more_download(hub):
    hub.add_file(REPO, "tiny_finetuned.pt", b"<html>not a checkpoint</html>", repo_type="dataset")
    with pytest.raises(
        CheckpointError, match=r"is damaged: checkpoint file .*tiny_finetuned\.pt.*still was after"
    ):
        ensure_checkpoint("test_tiny_finetuned")  # no SHA-256 registered: the load check catches it
    assert _gets(hub, "tiny_finetuned.pt") == 2


@pytest.mark.parametrize("name", ["test_tiny_pretrained", "test_tiny_finetuned"])
def test_a_damaged_cached_file_is_downloaded_again(hub, reference_dir, name):
    path = ensure_checkpoint(name)
    blob = path.resolve()
    blob.write_bytes(blob.read_bytes()[:1000])  # truncated, as by a full disk
    assert ensure_checkpoint(name) == path
    assert path.read_bytes() == (reference_dir / path.name).read_bytes()
    assert _gets(hub, path.name) == 2


def test_an_unchanged_file_is_validated_once_per_process(hub, reference_dir):
    path = ensure_checkpoint("test_tiny_finetuned")
    blob = path.resolve()
    stat = blob.stat()
    blob.write_bytes(b"\0" * stat.st_size)  # damage it, keeping its size and modification time
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ensure_checkpoint("test_tiny_finetuned") == path  # remembered: not read again
    assert _gets(hub, "tiny_finetuned.pt") == 1
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # now it changed
    assert ensure_checkpoint("test_tiny_finetuned") == path
    assert _gets(hub, "tiny_finetuned.pt") == 2
    assert path.read_bytes() == (reference_dir / "tiny_finetuned.pt").read_bytes()


def test_a_replaced_cached_file_that_still_loads_is_caught_by_its_git_blob_id(hub, reference_dir):
    """A small file stored in git (not LFS) is cached under its git blob SHA-1: a changed copy is refetched."""
    path = ensure_checkpoint("test_tiny_finetuned")
    assert len(path.resolve().name) == 40  # the ETag of a non-LFS file
    path.resolve().write_bytes((reference_dir / "tiny_pretrained.pt").read_bytes())  # a valid checkpoint
    assert ensure_checkpoint("test_tiny_finetuned") == path
    assert path.read_bytes() == (reference_dir / "tiny_finetuned.pt").read_bytes()
    assert _gets(hub, "tiny_finetuned.pt") == 2


def test_a_model_is_read_once_per_load(hub, monkeypatch):
    """Validation and building share one torch.load; a fresh load of an unchanged file hashes it no more."""
    loads = []
    original = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or original(*a, **k))
    create_model("test_tiny_finetuned")
    assert len(loads) == 1
    create_model("test_tiny_finetuned")
    assert len(loads) == 2


def test_damaged_cache_while_offline_cannot_be_repaired_and_says_so(hub, monkeypatch):
    path = ensure_checkpoint("test_tiny_pretrained")
    path.resolve().write_bytes(b"x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        CheckpointError,
        match=r"is damaged: its size is 1 bytes.*`beats download test_tiny_pretrained --force`",
    ):
        ensure_checkpoint("test_tiny_pretrained")


def test_a_local_path_is_accepted_and_validated_the_same_way(hub, reference_dir, tmp_path, monkeypatch):
    good = reference_dir / "tiny_finetuned.pt"
    assert ensure_checkpoint(good) == good
    assert ensure_checkpoint(str(good)) == good
    junk = tmp_path / "junk.pt"
    junk.write_bytes(good.read_bytes()[:200_000])  # an interrupted copy
    with pytest.raises(CheckpointError, match=r"'.*junk\.pt' cannot be read"):
        ensure_checkpoint(junk)
    monkeypatch.chdir(tmp_path)
    for spelling in ("junk.pt", "./junk.pt"):  # names of existing files, or that look like paths, are files
        with pytest.raises(CheckpointError, match=r"junk\.pt' cannot be read"):
            ensure_checkpoint(spelling)
    with pytest.raises(CheckpointError, match=r"'missing\.pt' does not exist"):
        ensure_checkpoint("missing.pt")
    assert hub.requests == []


# ---------------------------------------------------------------------------
# Transfers
# ---------------------------------------------------------------------------


def test_a_connection_dropped_mid_file_is_resumed_with_a_range_request(hub, register, tmp_path):
    # The client keeps what it received in 10 MiB pieces, so a resumable file must be larger.
    config = BEATsConfig.tiny().replace(encoder_embed_dim=256, encoder_ffn_embed_dim=1024, encoder_layers=4)
    large = save_checkpoint(BEATs(config), tmp_path / "large.pt")
    data = large.read_bytes()
    hub.add_file("beats-test/large", "large.pt", data, lfs=True)
    register(test_large=ModelInfo(repo_id="beats-test/large", filename="large.pt", size=len(data)))
    hub.faults.drop_after, hub.faults.drops = 11 * 2**20, 1
    path = ensure_checkpoint("test_large")
    assert path.read_bytes() == data
    assert [get.range for get in hub.requests_for("large.pt", "GET")] == [None, f"bytes={10 * 2**20}-"]


@pytest.mark.slow  # the hub client waits 1 s before each of its 5 resume attempts
def test_a_connection_dropped_on_every_attempt_fails_with_a_clear_message(hub, hf_home):
    hub.faults.drop_after = 0
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint("test_tiny_pretrained")
    message = str(error.value)
    assert "downloading checkpoint 'test_tiny_pretrained'" in message and "failed" in message
    assert f"dataset repository '{REPO}'" in message and "run the same command again" in message
    assert not list((hf_home / "hub").rglob("*.incomplete"))


def test_lfs_files_come_from_the_cdn_and_the_token_stays_on_the_hub(
    hub, reference_dir, register, monkeypatch
):
    data = (reference_dir / "tiny_pretrained.pt").read_bytes()
    hub.add_file("beats-test/lfs", "model.pt", data, repo_type="model", lfs=True)
    register(
        test_lfs=ModelInfo(
            repo_id="beats-test/lfs", filename="model.pt", sha256=hashlib.sha256(data).hexdigest()
        )
    )
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    path = ensure_checkpoint("test_lfs")
    assert path.read_bytes() == data
    head, get = hub.requests_for("model.pt", "HEAD")[0], hub.requests_for("model.pt", "GET")[0]
    assert (head.server, head.authorization) == ("hub", "Bearer hf_secret")
    assert (get.server, get.authorization) == ("cdn", None)


def test_the_token_file_of_hf_home_is_read_at_call_time(hub, hf_home):
    hf_home.mkdir(parents=True)
    (hf_home / "token").write_text("hf_from_file\n")
    ensure_checkpoint("test_tiny_finetuned")
    assert {r.authorization for r in hub.requests_for("tiny_finetuned.pt", "HEAD")} == {"Bearer hf_from_file"}


# ---------------------------------------------------------------------------
# Concurrent processes
# ---------------------------------------------------------------------------

_CLIENT = """
import sys, time
from pathlib import Path
from beats_core import ensure_checkpoint
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
print(ensure_checkpoint(sys.argv[1]), flush=True)
"""


def _run_together(name: str, environment: dict[str, str | None], go: Path, count: int = 2) -> list[Path]:
    """Start ``count`` processes calling ensure_checkpoint(name) at the same moment; return their paths."""
    env = {k: v for k, v in {**os.environ, **environment}.items() if v is not None}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CLIENT, name, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
    go.touch()
    paths = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        paths.append(Path(out.strip()))
    return paths


@pytest.fixture
def process_hub(reference_dir, tmp_path, plugin_dir):
    """The fake Hub in its own process, slowed down so that concurrent downloads overlap."""
    log = tmp_path / "requests.jsonl"
    files = [f"--file=dataset:{REPO}:{name}={reference_dir / name}" for name in FILES]
    with serve_in_process([*files, "--chunk-delay=0.15", f"--log={log}"]) as url:
        environment = client_environment(url, tmp_path / "hf")
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")])
        )
        yield environment, log


def _logged_gets(log: Path, filename: str) -> int:
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    return sum(r["method"] == "GET" and r["path"].endswith(f"/{filename}") for r in requests)


@pytest.mark.slow
def test_two_processes_asking_at_once_share_one_download(process_hub, tmp_path, reference_dir):
    environment, log = process_hub
    paths = _run_together("test_tiny_pretrained", environment, tmp_path / "go")
    assert paths[0] == paths[1]
    assert _sha256(paths[0]) == _sha256(reference_dir / "tiny_pretrained.pt")
    assert _logged_gets(log, "tiny_pretrained.pt") == 1
    blobs = tmp_path / "hf" / "hub" / "datasets--beats-test--tiny-checkpoints" / "blobs"
    assert [p.name for p in blobs.iterdir()] == [paths[0].resolve().name]


@pytest.mark.slow
def test_two_processes_finding_a_damaged_file_repair_it_once(
    process_hub, tmp_path, reference_dir, monkeypatch
):
    environment, log = process_hub
    _apply(monkeypatch, environment)
    path = ensure_checkpoint("test_tiny_finetuned")
    path.resolve().write_bytes(b"damaged")
    paths = _run_together("test_tiny_finetuned", environment, tmp_path / "go")
    assert paths == [path, path]
    assert path.read_bytes() == (reference_dir / "tiny_finetuned.pt").read_bytes()
    assert _logged_gets(log, "tiny_finetuned.pt") == 2  # the first download, then one repair for both


# ---------------------------------------------------------------------------
# hf-hub:owner/name, a Hub model repository that is not registered
# ---------------------------------------------------------------------------


def test_an_hf_hub_name_loads_the_checkpoint_file_of_a_model_repository(hub, reference_dir, hf_home):
    first = hub.add_file(
        "someone/beats-birds", "beats_checkpoint.pt", (reference_dir / "tiny_finetuned.pt").read_bytes()
    )
    path = ensure_checkpoint("hf-hub:someone/beats-birds")
    assert path.parent.parent == hf_home / "hub" / "models--someone--beats-birds" / "snapshots"
    assert path.name == "beats_checkpoint.pt"
    assert load_checkpoint("hf-hub:someone/beats-birds").label_dict is not None
    assert find_cached_checkpoint("hf-hub:someone/beats-birds") == path
    hub.add_file(
        "someone/beats-birds", "beats_checkpoint.pt", (reference_dir / "tiny_pretrained.pt").read_bytes()
    )
    pinned = ensure_checkpoint(f"hf-hub:someone/beats-birds@{first}")
    assert pinned.read_bytes() == (reference_dir / "tiny_finetuned.pt").read_bytes()
    assert load_checkpoint("hf-hub:someone/beats-birds").label_dict is None  # main moved on


def test_hf_hub_names_say_what_is_missing(hub):
    hub.add_file("someone/other-files", "model.safetensors", b"x")
    with pytest.raises(CheckpointError, match=r"has no file 'beats_checkpoint\.pt'.*push_to_hub"):
        ensure_checkpoint("hf-hub:someone/other-files")
    with pytest.raises(CheckpointError, match=r"'someone/nothing' was not found.*check the repository id"):
        ensure_checkpoint("hf-hub:someone/nothing")
    for bad in ("hf-hub:no-owner", "hf-hub:a/b@", "hf-hub:a/b/c"):
        with pytest.raises(UnknownModelError, match="hf-hub:OWNER/NAME"):
            ensure_checkpoint(bad)
