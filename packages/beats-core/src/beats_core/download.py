"""Checkpoints by name: download from the Hugging Face Hub, validate, return the cached file.

:func:`ensure_checkpoint` turns a model name from the registry (or the path of a local
file) into the path of a validated checkpoint. Downloads go through
``huggingface_hub.hf_hub_download`` into the standard Hugging Face cache, with the hub's
progress bar, its download locks and its atomic writes.

The Hugging Face environment variables (``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, ``HF_TOKEN``, ``HF_HUB_ETAG_TIMEOUT``) are read when a function is
called, not when this module is imported, so a setting made in a running process is
honoured; beats-core's README describes them in a table.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.utils import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from beats_core.__about__ import __version__
from beats_core.checkpoint import CHECKPOINT_SUFFIXES, read_checkpoint
from beats_core.errors import CheckpointError
from beats_core.registry import (
    DEFAULT_MODEL,
    HUB_PREFIX,
    ModelInfo,
    find_registration,
    hub_model_info,
    list_available_models,
)

__all__ = [
    "CheckpointFile",
    "ensure_checkpoint",
    "fetch_checkpoint",
    "file_sha256",
    "find_cached_checkpoint",
    "hub_cache_dir",
    "hub_endpoint",
    "local_checkpoint_path",
]

logger = logging.getLogger(__name__)

_DEFAULT_ENDPOINT = "https://huggingface.co"
_DEFAULT_ETAG_TIMEOUT = 10.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class CheckpointFile:
    """A validated checkpoint file and its content, read once.

    Attributes:
        path: the file: a local file, or the file in the Hugging Face cache's ``snapshots``.
        content: what :func:`~beats_core.checkpoint.read_checkpoint` read from it: ``"cfg"``,
            ``"model"`` (official key names) and, for a classifier, ``"label_dict"``.
    """

    path: Path
    content: dict[str, Any]


def ensure_checkpoint(
    name: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
) -> Path:
    """Return the path of a validated BEATs checkpoint, downloading it first if needed.

    A registered model name is downloaded from the Hugging Face Hub into the Hugging Face
    cache (with a progress bar), or taken from the cache. The path of a local file is
    accepted wherever a name is. Either way the file is validated before it is returned:
    its SHA-256 (the registry's, else the Hub's for a file stored with Git LFS), its size
    when the registry knows it, and always that it loads with
    ``torch.load(weights_only=True)`` as a BEATs checkpoint. A cached file that fails is
    downloaded once more; a file that still fails raises. A file already validated in
    this process, and unchanged since (same size and modification time), is not checked
    again.

    Concurrent callers (threads, or processes such as the ranks of ``accelerate launch``)
    share one download and end with one good file: the hub locks the download, and a
    file lock in the cache serialises validation and repair.

    A registered name wins over a file of the same name in the working directory; pass a
    ``Path`` (or ``./name``) to mean the file. ``hf-hub:owner/name[@revision]`` names the file
    ``beats_checkpoint.pt`` of a Hub model repository that is not registered (what
    beats-train's ``push_to_hub`` uploads); it is downloaded and validated the same way.

    Args:
        name: a registered model name (see ``beats models``), ``hf-hub:owner/name``, or the
            path of a checkpoint file. *Optional*, defaults to
            :data:`~beats_core.registry.DEFAULT_MODEL`.
        revision: the branch, tag or commit to download. *Optional*, defaults to the
            revision in the registry. Ignored for a local file.
        cache_dir: the Hugging Face cache folder. *Optional*, defaults to ``HF_HUB_CACHE``,
            else ``$HF_HOME/hub``.
        force_download: download the file again even when it is cached.

    Returns:
        The path of the checkpoint file: the local file itself, or the file in the
        cache's ``snapshots`` folder.

    Raises:
        UnknownModelError: ``name`` is neither a registered model nor a file; the message
            names the closest registered model.
        CheckpointError: the file is missing, corrupt or not a BEATs checkpoint; or it is
            not cached and cannot be downloaded (network disabled with ``HF_HUB_OFFLINE``,
            network failure, repository or file not found, access denied). The message
            says which, and what to do.
    """
    return _fetch(name, revision, cache_dir, force_download, read=False).path


def fetch_checkpoint(
    name: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
) -> CheckpointFile:
    """:func:`ensure_checkpoint`, returning the content it read to validate the file as well.

    Building a model from a checkpoint needs the content; this way the file is read once
    (the factory, :func:`beats_core.create_model`, uses it).

    Args:
        name: as for :func:`ensure_checkpoint`.
        revision: as for :func:`ensure_checkpoint`.
        cache_dir: as for :func:`ensure_checkpoint`.
        force_download: as for :func:`ensure_checkpoint`.

    Returns:
        The :class:`CheckpointFile`.

    Raises:
        UnknownModelError: as for :func:`ensure_checkpoint`.
        CheckpointError: as for :func:`ensure_checkpoint`.
    """
    return _fetch(name, revision, cache_dir, force_download, read=True)


def _fetch(
    name: str | os.PathLike[str] | None,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    force_download: bool,
    *,
    read: bool,
) -> CheckpointFile:
    """Find or download, then validate; ``read=False`` may skip reading a file known to be good."""
    target = DEFAULT_MODEL if name is None else name
    local = local_checkpoint_path(target)
    if local is not None:
        return _validated(local, sha256=None, size=None, read=read)

    info, distribution = _lookup(str(target))
    download = _Download(
        name=str(target),
        info=info,
        revision=revision or info.revision,
        distribution=distribution,
        settings=_HubSettings.from_environment(cache_dir),
    )
    if force_download and download.settings.offline:
        raise CheckpointError(
            f"cannot download checkpoint {download.name!r} again: downloads are disabled (HF_HUB_OFFLINE is set). "
            "Unset HF_HUB_OFFLINE, or run without --force / force_download to use the cached file."
        )
    with _lock(download.lock_path()):
        path = download.fetch(force=force_download)
        try:
            return _validated(path, sha256=download.info.sha256, size=download.info.size, read=read)
        except CheckpointError as error:
            problem = error
        if download.settings.offline:
            raise CheckpointError(
                f"the cached checkpoint {download.name!r} ({path}) is damaged: {problem}. Downloads are disabled "
                f"(HF_HUB_OFFLINE is set), so it cannot be replaced: run `beats download {download.name} --force` "
                "with network access, or pass the path of a good local checkpoint file."
            ) from problem
        logger.warning(
            "checkpoint %r at %s is damaged (%s); downloading it again", download.name, path, problem
        )
        path = download.fetch(force=True)
        try:
            return _validated(path, sha256=download.info.sha256, size=download.info.size, read=read)
        except CheckpointError as error:
            culprit = (
                f"the owners of {download.info.repo_id!r}"
                if download.distribution is None
                else f"the maintainers of {download.distribution!r}, which registers it"
            )
            raise CheckpointError(
                f"checkpoint {download.name!r} downloaded from {download.where()} is damaged: {error}, and it "
                f"still was after downloading it again. Report it to {culprit}, or pass the path of a good "
                "local checkpoint file."
            ) from error


def find_cached_checkpoint(
    name: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Return the cached file of a checkpoint without downloading or validating it.

    Args:
        name: a registered model name, ``hf-hub:owner/name``, or the path of a checkpoint
            file. *Optional*, defaults to :data:`~beats_core.registry.DEFAULT_MODEL`.
        revision: the branch, tag or commit. *Optional*, defaults to the registry's.
        cache_dir: the Hugging Face cache folder. *Optional*, defaults to
            :func:`hub_cache_dir`.

    Returns:
        The path in the cache (or the local file, if it exists), ``None`` if not cached.

    Raises:
        UnknownModelError: ``name`` is neither a registered model nor a path.
    """
    target = DEFAULT_MODEL if name is None else name
    local = local_checkpoint_path(target)
    if local is not None:
        return local if local.is_file() else None
    info, _ = _lookup(str(target))
    return _cached_file(info, revision or info.revision, hub_cache_dir(cache_dir))


def _cached_file(info: ModelInfo, revision: str, cache_dir: Path) -> Path | None:
    """The checkpoint's file in the cache at ``revision``, or None."""
    cached = try_to_load_from_cache(
        info.repo_id, info.filename, cache_dir=cache_dir, revision=revision, repo_type=info.repo_type
    )
    return Path(cached) if isinstance(cached, str) and os.path.isfile(cached) else None


def hub_endpoint() -> str:
    """The Hugging Face Hub to talk to: ``$HF_ENDPOINT`` (read now), else ``https://huggingface.co``.

    Returns:
        The endpoint URL without a trailing slash.
    """
    return (os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the Hugging Face cache folder that checkpoints are downloaded to.

    Args:
        cache_dir: an explicit folder, returned as is (with ``~`` expanded). *Optional*.

    Returns:
        ``cache_dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (``HF_HOME``
        defaulting to ``$XDG_CACHE_HOME/huggingface``, then ``~/.cache/huggingface``),
        read from the environment now.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    return _hf_home() / "hub"


def _lookup(name: str) -> tuple[ModelInfo, str | None]:
    """Where a model name's checkpoint lives, and the distribution that registers it (``None`` for ``hf-hub:``)."""
    info = hub_model_info(name)
    if info is not None:
        return info, None
    registration = find_registration(name)
    return registration.value, registration.distribution


# ---------------------------------------------------------------------------
# Settings read at call time
# ---------------------------------------------------------------------------


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hf_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(os.path.expandvars(os.environ.get("HF_HOME") or str(default))).expanduser()


@dataclass(frozen=True)
class _HubSettings:
    """The Hugging Face settings of one call, read from the environment."""

    endpoint: str
    cache_dir: Path
    offline: bool
    token: str | None
    etag_timeout: float

    @classmethod
    def from_environment(cls, cache_dir: str | os.PathLike[str] | None) -> _HubSettings:
        from huggingface_hub import constants

        try:
            etag_timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or _DEFAULT_ETAG_TIMEOUT)
        except ValueError:
            etag_timeout = _DEFAULT_ETAG_TIMEOUT
        return cls(
            endpoint=hub_endpoint(),
            cache_dir=hub_cache_dir(cache_dir),
            # The hub client refuses all requests if offline mode was on when it was imported.
            offline=_is_true(os.environ.get("HF_HUB_OFFLINE"))
            or _is_true(os.environ.get("TRANSFORMERS_OFFLINE"))
            or constants.HF_HUB_OFFLINE,
            token=_token(),
            etag_timeout=etag_timeout,
        )


def _token() -> str | None:
    """The token from ``HF_TOKEN``, else from the token file; ``None`` leaves it to the hub client."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token and token.strip():
        return token.strip()
    token_file = Path(os.environ.get("HF_TOKEN_PATH") or _hf_home() / "token").expanduser()
    with contextlib.suppress(OSError):
        return token_file.read_text().strip() or None
    return None


# ---------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Download:
    """One registered checkpoint to fetch from the Hub, with the settings of this call."""

    name: str
    info: ModelInfo
    revision: str
    distribution: str | None  # None for an hf-hub: name, which no plugin registers
    settings: _HubSettings

    def where(self) -> str:
        info = self.info
        return (
            f"file {info.filename!r} of {info.repo_type} repository {info.repo_id!r} at revision "
            f"{self.revision!r} on {self.settings.endpoint}"
        )

    def lock_path(self) -> Path:
        info = self.info
        folder = f"{info.repo_type}s--{info.repo_id.replace('/', '--')}"
        key = hashlib.sha256(f"{info.filename}@{self.revision}".encode()).hexdigest()[:16]
        return self.settings.cache_dir / ".locks" / folder / f"beats-{key}.lock"

    def fetch(self, *, force: bool) -> Path:
        """Download (or find in the cache) the file; hub errors become CheckpointErrors."""
        info, settings = self.info, self.settings
        try:
            if not settings.offline and (
                force or _cached_file(info, self.revision, settings.cache_dir) is None
            ):
                _check_endpoint_reachable(settings.endpoint, settings.etag_timeout)
            path = hf_hub_download(
                repo_id=info.repo_id,
                filename=info.filename,
                repo_type=info.repo_type,
                revision=self.revision,
                cache_dir=settings.cache_dir,
                endpoint=settings.endpoint,
                token=settings.token,
                local_files_only=settings.offline,
                force_download=force,
                etag_timeout=settings.etag_timeout,
                library_name="beats-core",
                library_version=__version__,
            )
        except Exception as e:  # the hub client also raises its HTTP library's errors, which vary by version
            raise self._error(e) from e
        return Path(path)

    def _error(self, error: Exception) -> CheckpointError:
        name, info, settings = self.name, self.info, self.settings
        repo = f"{info.repo_type} repository {info.repo_id!r}"
        local_hint = "or pass the path of a local checkpoint file"
        if isinstance(error, LocalEntryNotFoundError):
            cause = error.__cause__
            if settings.offline or isinstance(cause, OfflineModeIsEnabled):
                reason = "downloads are disabled (HF_HUB_OFFLINE is set)"
                fix = (
                    f"run `beats download {name}` on a machine with network access and copy the cache folder "
                    f"over, unset HF_HUB_OFFLINE, {local_hint}"
                )
            else:
                reason = f"{settings.endpoint} could not be reached ({_describe(cause or error)})"
                fix = (
                    "check the network connection, the proxy settings and HF_ENDPOINT, then try again; or run "
                    f"`beats download {name}` on a machine with network access, {local_hint}"
                )
            return CheckpointError(
                f"checkpoint {name!r} is not in the cache ({settings.cache_dir}) and {reason}: {fix}."
            )
        if isinstance(error, RevisionNotFoundError):
            return CheckpointError(
                f"revision {self.revision!r} of checkpoint {name!r} does not exist in {repo} on "
                f"{settings.endpoint}: pass an existing branch, tag or commit, {local_hint}."
            )
        if isinstance(error, EntryNotFoundError):
            fix = (
                f"An {HUB_PREFIX} name means the file {info.filename!r} (what beats-train's push_to_hub uploads): "
                f"check the repository, {local_hint}."
                if self.distribution is None
                else f"The registry entry (from {self.distribution!r}) may be out of date: upgrade "
                f"{self.distribution!r}, {local_hint}."
            )
            return CheckpointError(
                f"checkpoint {name!r} was not found: {repo} has no file {info.filename!r} at revision "
                f"{self.revision!r} on {settings.endpoint}. {fix}"
            )
        if isinstance(error, GatedRepoError):
            return CheckpointError(
                f"checkpoint {name!r} is in the gated {repo}: accept its conditions on {settings.endpoint} and "
                "set HF_TOKEN (or run `hf auth login`) with an account that has access."
            )
        if isinstance(error, RepositoryNotFoundError):
            otherwise = (
                "check the repository id"
                if self.distribution is None
                else f"upgrade {self.distribution!r}, which registers it"
            )
            return CheckpointError(
                f"checkpoint {name!r}: {repo} was not found on {settings.endpoint}, or it is private and no "
                f"valid token was sent. If you have access, set HF_TOKEN (or run `hf auth login`); otherwise "
                f"{otherwise}, {local_hint}."
            )
        if isinstance(error, HfHubHTTPError):
            status = getattr(getattr(error, "response", None), "status_code", "?")
            return CheckpointError(
                f"downloading checkpoint {name!r} failed: {settings.endpoint} answered HTTP {status} for "
                f"{self.where()} ({_describe(error)}). Try again later, {local_hint}."
            )
        return CheckpointError(
            f"downloading checkpoint {name!r} ({self.where()}) failed: {_describe(error)}. Check the network "
            f"connection and the free space in {settings.cache_dir}, then run the same command again, {local_hint}."
        )


def _check_endpoint_reachable(endpoint: str, timeout: float) -> None:
    """Raise the hub client's "cannot connect" error at once if the endpoint cannot be reached.

    The hub client retries a failed connection five times with back-off, about 25 s, which
    is pointless on a machine that cannot resolve the host name (no network, no DNS) or
    whose connections to it are refused. Behind a proxy the proxy connects, so nothing is
    checked there.
    """
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return
    url = urllib.parse.urlsplit(endpoint)
    if not url.hostname:
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = socket.getaddrinfo(url.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise LocalEntryNotFoundError(f"cannot resolve {url.hostname}") from error
    refusals = []
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as connection:
            connection.settimeout(timeout)
            try:
                connection.connect(address)
            except OSError as error:
                refusals.append(error)
                continue
        return
    if refusals:
        raise LocalEntryNotFoundError(
            f"cannot connect to {url.hostname}:{port} ({refusals[-1]})"
        ) from refusals[-1]


def _describe(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold a file lock; a cache that cannot hold one (read-only) is used without it."""
    lock: filelock.FileLock | None = filelock.FileLock(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=10)
        except filelock.Timeout:
            logger.info("waiting for another process to finish with %s (lock %s)", path.parent.name, path)
            lock.acquire()
    except OSError as e:  # filelock.Timeout is handled above
        logger.debug("cannot lock %s (%s); going on without the lock", path, e)
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

_verified: set[tuple[str, int, int, str | None]] = set()
_verified_lock = threading.Lock()


def _validated(path: Path, *, sha256: str | None, size: int | None, read: bool) -> CheckpointFile:
    """Check a checkpoint file and read it; raise a CheckpointError saying what is wrong.

    The file's digest is checked against ``sha256`` (the registry's) or, without one,
    against the Hub's: the cache names a blob by its SHA-256 for a file the Hub stores
    with Git LFS, and by its git blob SHA-1 for a small file stored in git itself.
    Digests that passed are remembered by (real path, size, modification time, expected
    digest), so an unchanged file is checked once per process. The file is read with
    ``torch.load(weights_only=True)`` as a BEATs checkpoint the first time, and whenever
    ``read`` asks for its content (``content`` is empty otherwise).
    """
    real = Path(os.path.realpath(path))
    try:
        stat = real.stat()
    except OSError:
        stat = None
    expected, origin = sha256, "the registry's"
    if expected is None and real.parent.name == "blobs" and _SHA256.fullmatch(real.name):
        expected, origin = real.name, "the Hub's"
    git_sha1 = sha256 is None and real.parent.name == "blobs" and _GIT_SHA1.fullmatch(real.name)
    if git_sha1:
        expected, origin = real.name, "the Hub's git blob"
    key = (str(real), stat.st_size, stat.st_mtime_ns, expected) if stat is not None else None
    with _verified_lock:
        known_good = key in _verified
    if stat is not None and not known_good:
        if size is not None and stat.st_size != size:
            raise CheckpointError(f"its size is {stat.st_size:,} bytes, expected {size:,}")
        if expected is not None:
            digest = _git_blob_sha1(real) if git_sha1 else _sha256(real)
            if digest != expected:
                kind = "git blob SHA-1" if git_sha1 else "SHA-256"
                raise CheckpointError(f"its {kind} is {digest}, expected {expected} ({origin})")
    if known_good and not read:
        return CheckpointFile(Path(path), {})
    content = read_checkpoint(path)
    if key is not None:
        with _verified_lock:
            _verified.add(key)
    return CheckpointFile(Path(path), content)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content, read in blocks (a checkpoint's, for provenance records).

    Args:
        path: the file.

    Returns:
        64 hex digits.
    """
    return _sha256(Path(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    """The SHA-1 git gives a file's content (``git hash-object``): the Hub's ETag of a non-LFS file."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def local_checkpoint_path(spec: str | os.PathLike[str]) -> Path | None:
    """The one rule that tells a checkpoint file from a model name.

    A ``Path`` (any ``os.PathLike``) is a file. A string is a model name when it is
    ``hf-hub:...`` or a registered name (a registered name wins over a file of the same
    name in the working directory: write ``./name`` for the file). Otherwise it is a file
    when it exists, contains a path separator, starts with ``~`` or ``.``, or ends in a
    checkpoint suffix (:data:`~beats_core.checkpoint.CHECKPOINT_SUFFIXES`); anything
    else is a name (and an unknown one is reported with the registered names).

    Args:
        spec: what the user gave.

    Returns:
        The file's path (``~`` expanded), or ``None`` for a model name.
    """
    if not isinstance(spec, str):
        return Path(spec).expanduser()
    if spec.startswith(HUB_PREFIX) or spec in list_available_models():
        return None
    path = Path(spec).expanduser()
    looks_like_path = (
        path.exists()
        or os.sep in spec
        or "/" in spec
        or spec.startswith(("~", "."))
        or spec.lower().endswith(CHECKPOINT_SUFFIXES)
    )
    return path if looks_like_path else None
