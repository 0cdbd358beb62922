"""A fake Hugging Face Hub: a real HTTP server on 127.0.0.1 for tests of the Hub client.

It serves the Hub's file-download routes for repositories held in memory, answering
the way ``huggingface_hub`` expects (checked with huggingface_hub 2.4.0):

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}`` (model repositories) and
  ``/{datasets|spaces}/{repo_id}/resolve/{revision}/{path}``, with ``X-Repo-Commit``,
  ``ETag``, ``Content-Length``, ``Accept-Ranges`` and ``Range`` requests (``206``).
  ``revision`` is a branch or a 40-hex commit, URL-encoded when it holds ``/``.
* Files added with ``lfs=True`` answer as LFS files do on the real Hub: ``302`` to a
  second server (the "CDN", another port, so the client drops the token), with
  ``X-Linked-Etag`` (the SHA-256) and ``X-Linked-Size``.
* Errors carry ``X-Error-Code`` as on the Hub: ``RepoNotFound`` (401),
  ``RevisionNotFound`` (404), ``EntryNotFound`` (404, with ``X-Repo-Commit``).
* ``GET /api/agent-harnesses`` (asked by the client unless ``HF_HUB_DISABLE_TELEMETRY=1``).

Uploads (``HfApi.create_repo``, ``create_commit``, ``upload_file``, ``upload_folder``):

* ``POST /api/repos/create`` (``409`` when the repository exists), ``GET /api/{models|datasets|
  spaces}/{repo_id}[/revision/{revision}]`` (repository info with its files);
* ``POST /api/validate-yaml`` (the metadata block of a ``README.md``, parsed as YAML);
* ``POST /api/{repo_type}s/{repo_id}/preupload/{revision}``: every file is answered as a regular
  (non-LFS) file, with the ``oid`` of the file already there so that the client skips unchanged
  files; the client then sends the content inside the commit;
* ``POST /api/{repo_type}s/{repo_id}/commit/{revision}``: the ndjson commit (``header``,
  ``file`` in base64, ``deletedFile``); a commit becomes the new head of the branch.

With ``FakeHub(write_token=...)`` these routes answer ``401`` unless the request carries
``Authorization: Bearer <write_token>``, as the Hub does for a missing or read-only token.

Faults are set per test through :attr:`FakeHub.faults` (a corrupted payload, a connection
dropped mid-file, a slow transfer, an endpoint that is not a Hub), and every request is
recorded in :attr:`FakeHub.requests`.

In a test::

    with FakeHub() as hub:
        hub.add_file("org/repo", "model.pt", data, repo_type="dataset")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)

As a process (for tests that run clients in other processes), it prints its URL on the
first line of stdout and serves until it is terminated::

    python tests/hub_server.py --file dataset:org/repo:model.pt=/path/to/model.pt
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

REPO_TYPES = ("model", "dataset", "space")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHUNK = 64 * 1024


@dataclass
class StoredFile:
    """One file of a commit."""

    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_sha1(self) -> str:
        """The git blob id, which the Hub sends as the ETag of a regular (non-LFS) file."""
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class Repo:
    """A repository: commits (commit id -> files) and branches (name -> commit id)."""

    commits: dict[str, dict[str, StoredFile]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        """The commit a branch or a full commit id names, or ``None``."""
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


@dataclass
class Faults:
    """Ways to misbehave, applied to the bodies of file downloads (``GET``).

    Attributes:
        corrupt: flip bytes in the middle of each payload (same length, same headers).
        drop_after: close the connection after sending this many bytes of a body.
        drops: how many downloads ``drop_after`` cuts (``None``: all of them).
        chunk_delay: seconds to sleep between 64 KiB chunks (a slow network).
        not_a_hub: answer every request with ``200`` and an HTML page, as a captive
            portal or a misconfigured proxy does.
    """

    corrupt: bool = False
    drop_after: int | None = None
    drops: int | None = None
    chunk_delay: float = 0.0
    not_a_hub: bool = False


@dataclass(frozen=True)
class Request:
    """A request the server received."""

    method: str
    path: str
    range: str | None
    authorization: str | None
    server: str  # "hub" or "cdn"


class FakeHub:
    """A fake Hugging Face Hub on 127.0.0.1 (random free ports), run in a background thread.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, *, log: Path | None = None, write_token: str | None = None) -> None:
        """Create the server (not started).

        Args:
            log: a file to append every request to, as a JSON line (for a server in
                another process).
            write_token: the token that upload routes require; ``None`` accepts any request.
        """
        self.repos: dict[tuple[str, str], Repo] = {}
        self.write_token = write_token
        self.faults = Faults()
        self.requests: list[Request] = []
        self.log = log
        self._lock = threading.Lock()
        self._servers: dict[str, ThreadingHTTPServer] = {}

    # -- life cycle ---------------------------------------------------------

    def start(self) -> FakeHub:
        """Start the Hub and CDN servers; returns ``self``."""
        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self, role))
            server.daemon_threads = True
            serve = threading.Thread(
                target=server.serve_forever, args=(0.02,), name=f"fake-{role}", daemon=True
            )
            serve.start()
            self._servers[role] = server
        return self

    def stop(self) -> None:
        """Stop serving; later connections are refused."""
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint to put in ``HF_ENDPOINT``."""
        return _server_url(self._servers["hub"])

    @property
    def cdn_url(self) -> str:
        """Where LFS files are served from."""
        return _server_url(self._servers["cdn"])

    # -- content ------------------------------------------------------------

    def add_file(
        self,
        repo_id: str,
        path_in_repo: str,
        data: bytes,
        *,
        repo_type: str = "model",
        branch: str = "main",
        lfs: bool = False,
    ) -> str:
        """Commit one file on a branch (creating the repository if needed).

        Returns:
            The id (40 hex) of the new commit, which holds the branch's previous files too.
        """
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
        return self.commit(repo_id, {path_in_repo: StoredFile(data, lfs)}, repo_type=repo_type, branch=branch)

    def commit(
        self,
        repo_id: str,
        changes: dict[str, StoredFile | None],
        *,
        repo_type: str = "model",
        branch: str = "main",
        message: str = "",
    ) -> str:
        """Commit changes on a branch (creating the repository if needed): a file, or ``None`` to delete one.

        Returns:
            The id (40 hex) of the new commit, which holds the branch's other files too.
        """
        with self._lock:
            repo = self.repos.setdefault((repo_type, repo_id), Repo())
            parent = repo.branches.get(branch, "")
            files = dict(repo.commits.get(parent, {}))
            digest = hashlib.sha1(f"{parent}\0{message}\0".encode())
            for path, stored in sorted(changes.items()):
                digest.update(f"{path}\0".encode() + (b"-" if stored is None else stored.data))
                if stored is None:
                    files.pop(path, None)
                else:
                    files[path] = stored
            commit = digest.hexdigest()
            repo.commits[commit] = files
            repo.branches[branch] = commit
        return commit

    def files(self, repo_id: str, *, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of a repository at a revision, path -> content (empty if there is no such revision)."""
        with self._lock:
            repo = self.repos.get((repo_type, repo_id))
            commit = repo.resolve(revision) if repo is not None else None
            stored = repo.commits[commit] if commit is not None else {}
            return {path: file.data for path, file in stored.items()}

    def requests_for(self, path_in_repo: str, method: str = "GET") -> list[Request]:
        """The recorded requests of one method that fetched ``path_in_repo`` (by name or by LFS blob)."""
        with self._lock:
            blobs = {
                f"/lfs/{stored.sha256}"
                for repo in self.repos.values()
                for files in repo.commits.values()
                for name, stored in files.items()
                if name == path_in_repo
            }
            return [
                r
                for r in self.requests
                if r.method == method and (r.path.endswith(f"/{quote(path_in_repo)}") or r.path in blobs)
            ]

    # -- internals used by the handler ----------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
            if self.log is not None:
                with self.log.open("a") as log:
                    log.write(json.dumps(dataclasses.asdict(request)) + "\n")

    def _take_drop(self) -> int | None:
        """How many bytes this download may send before the connection is dropped."""
        with self._lock:
            faults = self.faults
            if faults.drop_after is None or faults.drops == 0:
                return None
            if faults.drops is not None:
                faults.drops -= 1
            return faults.drop_after

    def _lookup(
        self, repo_type: str, repo_id: str, revision: str, path: str
    ) -> tuple[int, dict[str, str], StoredFile | None]:
        with self._lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                return 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, None
            commit = repo.resolve(revision)
            if commit is None:
                return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, None
            stored = repo.commits[commit].get(path)
            if stored is None:
                headers = {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}
                return 404, {**headers, "X-Repo-Commit": commit}, None
            return 200, {"X-Repo-Commit": commit}, stored

    def _blob(self, sha256: str) -> StoredFile | None:
        with self._lock:
            for repo in self.repos.values():
                for files in repo.commits.values():
                    for stored in files.values():
                        if stored.lfs and stored.sha256 == sha256:
                            return stored
        return None


def _server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def _parse_resolve(path: str) -> tuple[str, str, str, str] | None:
    """Split ``/[datasets/|spaces/]{repo_id}/resolve/{revision}/{path}``; ``None`` if it is not one."""
    parts = path.lstrip("/").split("/")
    repo_type = "model"
    if parts and parts[0] in ("datasets", "spaces"):
        repo_type = parts.pop(0)[:-1]
    if "resolve" not in parts[1:3]:
        return None
    at = parts.index("resolve", 1)
    if len(parts) < at + 3:
        return None
    repo_id = "/".join(unquote(p) for p in parts[:at])
    revision = unquote(parts[at + 1])
    return repo_type, repo_id, revision, "/".join(unquote(p) for p in parts[at + 2 :])


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range: bytes=a-b`` header asks for, or ``None`` for the whole file."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        return max(size - int(last), 0), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


def _handler_class(hub: FakeHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.hub = hub
    Handler.role = role
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub
    role: str

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        self.hub._record(
            Request(
                method="POST",
                path=path,
                range=None,
                authorization=self.headers.get("Authorization"),
                server=self.role,
            )
        )
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.role != "hub" or self.hub.faults.not_a_hub:
            self._send_json(404, {"error": f"no route for POST {path}"}, body=True)
            return
        token = self.hub.write_token
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            self._send_json(401, {"error": "Invalid username or password."}, body=True)
            return
        if path == "/api/repos/create":
            self._create_repo(json.loads(body))
        elif path == "/api/validate-yaml":
            self._validate_yaml(json.loads(body))
        elif match := re.fullmatch(r"/api/(models|datasets|spaces)/(.+)/(preupload|commit)/([^/]+)", path):
            kind, repo_id, action, revision = match.groups()
            key = (kind[:-1], unquote(repo_id))
            if key not in self.hub.repos:
                headers = {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
                self._send_json(404, {"error": "Repository not found"}, headers, body=True)
            elif action == "preupload":
                self._preupload(key, unquote(revision), json.loads(body))
            else:
                self._commit(key, unquote(revision), body)
        else:
            self._send_json(404, {"error": f"no route for POST {path}"}, body=True)

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.hub.url}/{prefix}{repo_id}"

    def _create_repo(self, payload: dict) -> None:
        repo_type = payload.get("type") or "model"
        repo_id = "/".join(part for part in (payload.get("organization"), payload.get("name")) if part)
        url = self._repo_url(repo_type, repo_id)
        with self.hub._lock:
            exists = (repo_type, repo_id) in self.hub.repos
            if not exists:
                self.hub.repos[(repo_type, repo_id)] = Repo()
        if exists:
            self._send_json(409, {"error": "You already created this repo", "url": url}, body=True)
            return
        self.hub.commit(repo_id, {}, repo_type=repo_type, message="initial commit")
        self._send_json(200, {"url": url, "name": repo_id}, body=True)

    def _validate_yaml(self, payload: dict) -> None:
        import yaml

        content = payload.get("content", "")
        match = re.match(r"---\n(.*?)\n---", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as e:
            self._send_json(400, {"errors": [{"message": f"invalid YAML: {e}"}]}, body=True)
            return
        if metadata is not None and not isinstance(metadata, dict):
            self._send_json(400, {"errors": [{"message": "metadata must be a mapping"}]}, body=True)
            return
        self._send_json(200, {"errors": [], "warnings": []}, body=True)

    def _preupload(self, key: tuple[str, str], revision: str, payload: dict) -> None:
        existing = self.hub.files(key[1], repo_type=key[0], revision=revision)
        answers = [
            {
                "path": item["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": StoredFile(existing[item["path"]], False).git_sha1
                if item["path"] in existing
                else None,
            }
            for item in payload.get("files", [])
        ]
        self._send_json(200, {"files": answers, "commitOid": None}, body=True)

    def _commit(self, key: tuple[str, str], revision: str, body: bytes) -> None:
        changes: dict[str, StoredFile | None] = {}
        summary = ""
        for line in body.splitlines():
            item = json.loads(line)
            value = item.get("value", {})
            if item.get("key") == "header":
                summary = value.get("summary", "")
            elif item.get("key") == "file":
                changes[value["path"]] = StoredFile(base64.b64decode(value["content"]), lfs=False)
            elif item.get("key") == "deletedFile":
                changes[value["path"]] = None
            else:
                message = f"this fake Hub does not support commit entries of kind {item.get('key')!r}"
                self._send_json(400, {"error": message}, body=True)
                return
        commit = self.hub.commit(key[1], changes, repo_type=key[0], branch=revision, message=summary)
        url = f"{self._repo_url(*key)}/commit/{commit}"
        self._send_json(200, {"commitUrl": url, "commitOid": commit, "pullRequestUrl": None}, body=True)

    def _repo_info(self, path: str, *, body: bool) -> bool:
        """Answer ``GET /api/{models|datasets|spaces}/{repo_id}[/revision/{revision}]``; False if not such a path."""
        match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if match is None:
            return False
        kind, repo_id, revision = match.groups()
        repo_type, repo_id, revision = kind[:-1], unquote(repo_id), unquote(revision or "main")
        with self.hub._lock:
            repo = self.hub.repos.get((repo_type, repo_id))
            commit = repo.resolve(revision) if repo is not None else None
        if repo is None:
            headers = {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
            self._send_json(401, {"error": "Repository not found"}, headers, body=body)
        elif commit is None:
            headers = {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}
            self._send_json(404, {"error": "Invalid rev id"}, headers, body=body)
        else:
            names = sorted(self.hub.files(repo_id, repo_type=repo_type, revision=commit))
            info = {
                "id": repo_id,
                "sha": commit,
                "private": False,
                "siblings": [{"rfilename": n} for n in names],
            }
            self._send_json(200, info, body=body)
        return True

    def _serve(self, *, body: bool) -> None:
        path = urlsplit(self.path).path
        self.hub._record(
            Request(
                method=self.command,
                path=path,
                range=self.headers.get("Range"),
                authorization=self.headers.get("Authorization"),
                server=self.role,
            )
        )
        if self.hub.faults.not_a_hub:
            page = b"<html><body>Please sign in to the network</body></html>"
            self._send(200, {"Content-Type": "text/html"}, page if body else b"", length=len(page))
            return
        if self.role == "cdn":
            match = re.fullmatch(r"/lfs/([0-9a-f]{64})", path)
            stored = self.hub._blob(match.group(1)) if match else None
            if stored is None:
                self._send_json(404, {"error": "blob not found"}, body=body)
            else:
                name = parse_qs(urlsplit(self.path).query).get("filename", [match.group(1)])[0]
                self._send_file(stored, {"ETag": f'"{stored.sha256}"'} | _disposition(name), body=body)
            return
        if path == "/api/agent-harnesses":
            self._send_json(200, {"standardEnvVars": [], "harnesses": {}}, body=body)
            return
        if self._repo_info(path, body=body):
            return
        parsed = _parse_resolve(path)
        if parsed is None:
            self._send_json(404, {"error": f"no route for {path}"}, body=body)
            return
        status, headers, stored = self.hub._lookup(*parsed)
        if stored is None:
            self._send_json(status, {"error": headers.get("X-Error-Message", "")}, headers, body=body)
        elif stored.lfs:
            name = parsed[3].rsplit("/", 1)[-1]
            headers |= {
                "Location": f"{self.hub.cdn_url}/lfs/{stored.sha256}?filename={quote(name)}",
                "X-Linked-Etag": f'"{stored.sha256}"',
                "X-Linked-Size": str(len(stored.data)),
                "ETag": f'"{StoredFile(_lfs_pointer(stored), False).git_sha1}"',
            }
            self._send(302, headers, b"", length=0)
        else:
            name = parsed[3].rsplit("/", 1)[-1]
            self._send_file(
                stored, headers | {"ETag": f'"{stored.git_sha1}"'} | _disposition(name), body=body
            )

    def _send_file(self, stored: StoredFile, headers: dict[str, str], *, body: bool) -> None:
        data = stored.data
        if self.hub.faults.corrupt and data:
            middle = len(data) // 2
            data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
        headers = headers | {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        span = _byte_range(self.headers.get("Range"), len(data)) if body else None
        status = 200
        if span is not None:
            first, last = span
            if first >= len(data):
                self._send(416, headers | {"Content-Range": f"bytes */{len(data)}"}, b"", length=0)
                return
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            data, status = data[first : last + 1], 206
        if not body:
            self._send(status, headers, b"", length=len(data))
            return
        limit = self.hub._take_drop()
        self._send(status, headers, data if limit is None else data[:limit], length=len(data))
        if limit is not None and limit < len(data):
            self.close_connection = True

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None, *, body: bool
    ) -> None:
        data = json.dumps(payload).encode()
        headers = (headers or {}) | {"Content-Type": "application/json"}
        self._send(status, headers, data if body else b"", length=len(data))

    def _send(self, status: int, headers: dict[str, str], data: bytes, *, length: int) -> None:
        """Send the status, the headers (with ``Content-Length: length``) and ``data``, slowly if asked."""
        self.send_response(status, HTTPStatus(status).phrase)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        delay = self.hub.faults.chunk_delay
        for start in range(0, len(data), _CHUNK):
            if delay:
                time.sleep(delay)
            self.wfile.write(data[start : start + _CHUNK])
        self.wfile.flush()


def _disposition(filename: str) -> dict[str, str]:
    """The Content-Disposition header the Hub sends with a file (the client shows the name in its progress bar)."""
    return {"Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{filename}\";"}


def _lfs_pointer(stored: StoredFile) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{stored.sha256}\nsize {len(stored.data)}\n".encode()


def client_environment(endpoint: str, hf_home: Path) -> dict[str, str | None]:
    """The environment of a Hub client isolated from the machine's, talking to ``endpoint``.

    Returns:
        Variable -> value; ``None`` means the variable must be unset. Apply it with
        ``monkeypatch.setenv``/``delenv``, or merge it into a child process's environment.
    """
    unset: dict[str, str | None] = dict.fromkeys(
        (
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_ETAG_TIMEOUT",
        )
    )
    return {**unset, "HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1"}


# ---------------------------------------------------------------------------
# Running it as a process
# ---------------------------------------------------------------------------


@contextmanager
def serve_in_process(args: list[str]) -> Iterator[str]:
    """Run ``python tests/hub_server.py ARGS`` in a child process; yield its URL, stop it afterwards.

    Args:
        args: the command-line arguments (see ``--help``).
    """
    import subprocess

    process = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().strip() if process.stdout else ""
        if not url.startswith("http://"):
            process.kill()
            raise RuntimeError(
                f"the fake Hub did not start: {process.stderr.read() if process.stderr else ''}"
            )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """Serve files until terminated; print the URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="TYPE:REPO_ID:PATH_IN_REPO=LOCAL_FILE",
        help="a file to serve, e.g. dataset:org/repo:model.pt=/tmp/model.pt (repeatable)",
    )
    parser.add_argument("--lfs", action="store_true", help="serve every file as an LFS file")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between 64 KiB chunks")
    parser.add_argument("--log", type=Path, help="append every request to this file as a JSON line")
    args = parser.parse_args(argv)
    hub = FakeHub(log=args.log).start()
    hub.faults.chunk_delay = args.chunk_delay
    for spec in args.file:
        target, local = spec.split("=", 1)
        repo_type, repo_id, path_in_repo = target.split(":", 2)
        hub.add_file(repo_id, path_in_repo, Path(local).read_bytes(), repo_type=repo_type, lfs=args.lfs)
    print(hub.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
