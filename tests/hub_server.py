"""A local stand-in for the Hugging Face Hub HTTP API, for tests.

`HubServer` listens on 127.0.0.1 (a free port, a background thread, stdlib only) and speaks
the subset of the Hub API that the real `huggingface_hub` client (0.36) calls to create
repos, commit files (regular and LFS), list and read them -- through `HfApi`,
`hf_hub_download`, `HfFileSystem` and `fsspec.open("hf://...")`. Point the client at it
with `HF_ENDPOINT=server.url` (subprocesses) or `endpoint=server.url`, or in-process with
`point_client_at(server, monkeypatch)`, which the `hub_server` fixture does for you.

Endpoints (TYPE is models|datasets|spaces; PREFIX is "" for models, "datasets/" or "spaces/"):
only the ones ray_job and huggingface_hub's upload and download paths use (a request the
server does not know is recorded in `errors` and answered 404, so a new use shows up).

    POST   /api/repos/create                              create_repo   (409 + url if it exists)
    POST   /api/validate-yaml                             validate_yaml (README.md commits)
    GET    /api/TYPE/{repo}[/revision/{rev}]              repo_info     (siblings; blobs=True)
    POST   /api/TYPE/{repo}/preupload/{rev}               preupload     (uploadMode, shouldIgnore,
                                                                         oid)
    POST   /PREFIX{repo}.git/info/lfs/objects/batch       lfs_batch     (basic transfer only)
    PUT    /lfs-objects/TYPE/{repo}/{sha256}?sig=...      lfs_upload    (href from lfs_batch)
    POST   /PREFIX{repo}.git/info/lfs/objects/verify      lfs_verify    (verify action)
    POST   /api/TYPE/{repo}/commit/{rev}                  commit        (NDJSON; create_pr=1)
    GET    /api/TYPE/{repo}/tree/{rev}[/{path}]           tree          (recursive, expand,
                                                                         Link paging)
    POST   /api/TYPE/{repo}/paths-info/{rev}              paths_info
    HEAD   /PREFIX{repo}/resolve/{rev}/{path}             resolve       (LFS files: 302 to
                                                                         lfs-objects)
    GET    /PREFIX{repo}/resolve/{rev}/{path}             resolve       (Range -> 206 +
                                                                         Content-Range)
    GET    /lfs-objects/TYPE/{repo}/{sha256}?sig=...      lfs_download  (Range -> 206)
    GET    /api/TYPE/{repo}/xet-write-token/{rev}         xet_token     (xet=True: X-Xet-* headers)

The kind names on the right are what `fail_next` / `drop_next` take and what each entry of
`server.requests` carries as `.kind`.

Behaviour that mirrors the Hub:
  * A new repo gets an "initial commit" holding `.gitattributes` (the LFS patterns), like
    the Hub; `files()` therefore includes `.gitattributes`.
  * Preupload: "lfs" for files of `lfs_threshold` bytes or more (1 MiB) or matching
    `lfs_patterns`, else "regular"; `oid` is the stored file's oid when the path exists: the
    sha256 for an LFS file, the git blob sha1 ("blob <n>\\0" + content) for a regular one.
    That is exactly what the client compares with `CommitOperationAdd._local_oid`.
  * Tree / paths-info entries: `oid` is the git blob sha1 of the content for regular files
    and of the LFS *pointer file* for LFS files (as on the Hub); `lfs` = {oid: sha256, size,
    pointerSize}.
  * LFS objects belong to a repo; the batch answer has no `actions` for objects the repo
    already holds. Upload and download hrefs are signed (`sig=`), like presigned storage
    URLs: the client sends no Authorization header on the PUT.
  * A commit is checked completely and then applied at once: on any error nothing changes.
    A `parentCommit` that is not the branch head gets 412.
  * Errors are JSON `{"error": "..."}` with X-Error-Code (RepoNotFound, RevisionNotFound,
    EntryNotFound) / X-Error-Message headers, which the client maps to its exceptions.
  * With `token=...`, every write (create/delete repo, branch, preupload, lfs batch/verify,
    commit) needs `Authorization: Bearer <token>` (else 401); reading a private repo without
    it gets 401 + RepoNotFound; a wrong token gets 401 "Invalid credentials ...".

Xet (`HubServer(xet=True)`): when the client offers the "xet" transfer (huggingface_hub does
by default when hf_xet is installed), the LFS batch answers "xet" and the client fetches a
write token, uploads through hf_xet and commits LFS pointers. The Xet storage service itself
is not served: `fake_xet_cas(server, monkeypatch)` replaces hf_xet's upload functions in this
process with a stand-in that hands the bytes to the server (checking endpoint and token).

Test helpers: `url`, `requests` (RecordedRequest: method, path, query, headers (lower-case
names), body_size, body, kind, status (None if dropped)), `requests_of(kind)`,
`lfs_bytes_uploaded()`, `files(repo_id)`, `commits(repo_id)`, `add_file(repo_id, path, data)`,
`create_repo(...)`, `has_repo(...)`, `fail_next(count, kind, status=500)`,
`drop_next(count, kind, apply=False)` (apply=True: the request takes effect, only the answer
is lost), `errors` (requests the server did not understand or crashed on -- the `hub_server`
fixture asserts it stays empty), context manager, `point_client_at`, `hub_server` fixture.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import itertools
import json
import re
import secrets
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest

DEFAULT_LFS_THRESHOLD = 1 << 20
DEFAULT_LFS_PATTERNS = ("*.h5", "*.parquet", "*.duckdb", "*.arrow")
KINDS = (
    "create_repo", "validate_yaml", "repo_info",
    "preupload", "lfs_batch", "lfs_upload", "lfs_verify", "lfs_download", "commit",
    "tree", "paths_info", "resolve", "xet_token",
)

# URL pieces: /api/{models|datasets|spaces}/{repo} and /[datasets/|spaces/]{repo}, where repo is
# owner/name or a bare (canonical) name, which HfFileSystem tries when owner/name is missing.
_REPO = r"(?:(?P<owner>[^/]+)/)?(?P<name>[^/]+)"
_API = r"/api/(?P<api_type>models|datasets|spaces)/" + _REPO
_URL = r"/(?:(?P<prefix>datasets|spaces)/)?" + _REPO
_API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub calls a regular file's oid / blob id)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\n"
            f"size {size}\n").encode()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _truthy(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------- storage


@dataclass
class _Entry:
    """One file in a commit's tree (immutable once stored)."""

    data: bytes
    lfs: bool
    commit: str  # oid of the commit that last wrote this path

    def __post_init__(self):
        self.size = len(self.data)
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.pointer = lfs_pointer(self.sha256, self.size) if self.lfs else b""
        self.blob_id = git_blob_sha1(self.pointer if self.lfs else self.data)

    @property
    def preupload_oid(self) -> str:
        return self.sha256 if self.lfs else git_blob_sha1(self.data)


@dataclass
class _Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: datetime
    tree: dict  # path -> _Entry
    written: list
    changed: list
    deleted: list


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: datetime = field(default_factory=_now)
    refs: dict = field(default_factory=dict)  # "main" / "refs/pr/1" -> commit oid
    commits: dict = field(default_factory=dict)  # oid -> _Commit
    lfs_objects: dict = field(default_factory=dict)  # sha256 -> bytes
    pr_count: int = 0

    @property
    def url_path(self) -> str:
        return _URL_PREFIXES[self.repo_type] + self.repo_id


@dataclass
class CommitRecord:
    """A commit as `HubServer.commits()` reports it (oldest first)."""

    oid: str
    parent: str | None
    title: str
    message: str
    date: datetime
    written: list  # paths the commit payload carried (the client re-sends unchanged files too)
    changed: list  # paths added or modified (content or LFS-ness differs from the parent)
    deleted: list  # paths removed


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string, still %-encoded
    query: dict  # name -> list of values
    headers: dict  # lower-case header names
    body_size: int
    body: bytes = field(repr=False)
    kind: str | None  # route kind (see KINDS), None for an unknown route
    status: int | None = None  # None when the connection was dropped

    def json(self):
        return json.loads(self.body)


# --------------------------------------------------------------------------- HTTP plumbing


class HubError(Exception):
    """Raised by a handler: answered as the Hub's JSON error (status, X-Error-* headers)."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass
class _Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    params: dict  # the route's regex groups, %-decoded

    def arg(self, name: str, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from None


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    length: int | None = None  # Content-Length for HEAD answers (body not sent)

    @classmethod
    def json(cls, obj, status: int = 200, headers: dict | None = None) -> _Response:
        return cls(status, json.dumps(obj).encode(),
                   {"Content-Type": "application/json", **(headers or {})})


@dataclass
class _Route:
    methods: tuple
    pattern: re.Pattern
    kind: str
    handler: Callable  # (HubServer, _Request) -> _Response


@dataclass
class _Fault:
    matches: Callable  # (kind, path) -> bool
    remaining: int
    status: int | None  # None: drop the connection
    apply: bool = False  # drop only after the request took effect (the answer is lost)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the client's pooled sessions expect
    server_version = "hub-server"
    timeout = 60

    def log_message(self, format, *args):
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        body = self._read_body()
        record = RecordedRequest(
            method=self.command, path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()}, body_size=len(body), body=body,
            kind=None,
        )
        response = hub._serve(record, body)
        if response is None:  # injected dropped connection: no answer at all
            self.close_connection = True
            return
        record.status = response.status
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, str(value))
        length = (response.length if (self.command == "HEAD" and response.length is not None)
                  else len(response.body))
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients closing their end (a retried or abandoned request) is not an error here."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Routes:
    """Collects the routing table: @_routes.add("POST", r"/api/...", "kind")."""

    def __init__(self):
        self.table: list = []

    def add(self, methods: str, regex: str, kind: str):
        def register(func):
            self.table.append(_Route(tuple(methods.split("|")), re.compile(regex), kind, func))
            return func

        return register


_routes = _Routes()


# --------------------------------------------------------------------------- the server


class HubServer:
    """See the module docstring. `with HubServer(token="secret") as hub: ...`"""

    def __init__(
        self,
        token: str | None = None,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
        lfs_patterns: tuple = DEFAULT_LFS_PATTERNS,
        lfs_verify: bool = True,
        tree_page_size: int = 1000,
        user: str = "hub-server-user",
        xet: bool = False,
    ):
        self.token = token
        self.xet = xet
        self.xet_uploads: list = []  # bytes received through the Xet stand-in (fake_xet_cas)
        self._xet_tokens: dict = {}  # write token -> (repo_type, repo_id)
        self.lfs_threshold = lfs_threshold
        self.lfs_patterns = tuple(lfs_patterns)
        self.lfs_verify = lfs_verify
        self.tree_page_size = tree_page_size
        self.user = user
        self.requests: list = []
        self.errors: list = []  # (request line, message) for unknown routes and server crashes
        self._repos: dict = {}  # (repo_type, repo_id) -> _Repo
        self._faults: list = []
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(16)
        self._counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> HubServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ----------------------------------------------------------------- test helpers

    def fail_next(self, count: int, kind: str, status: int = 500) -> None:
        """The next `count` requests of `kind` (a name from KINDS, or else a regex searched in
        the request path) get `status` and a JSON error body, with no side effect."""
        self._add_fault(count, kind, status)

    def drop_next(self, count: int, kind: str, apply: bool = False) -> None:
        """The next `count` requests of `kind` are read, then the connection is closed
        without any answer (the client sees a dropped connection). With `apply=True` the
        request takes effect first (e.g. the commit lands) and only the answer is lost."""
        self._add_fault(count, kind, None, apply)

    def _add_fault(self, count: int, kind: str, status: int | None, apply: bool = False) -> None:
        if kind in KINDS:
            def matches(k, path, kind=kind):
                return k == kind
        else:
            regex = re.compile(kind)

            def matches(k, path):
                return regex.search(path) is not None
        with self._lock:
            self._faults.append(_Fault(matches, count, status, apply))

    def requests_of(self, kind: str, method: str | None = None) -> list:
        with self._lock:
            return [r for r in self.requests
                    if r.kind == kind and (method is None or r.method == method)]

    def lfs_bytes_uploaded(self) -> int:
        """Bytes received by LFS object PUTs that were accepted."""
        return sum(r.body_size for r in self.requests_of("lfs_upload") if r.status == 200)

    def create_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False) -> None:
        with self._lock:
            if (repo_type, repo_id) not in self._repos:
                self._new_repo(repo_type, repo_id, private)

    def add_file(self, repo_id: str, path: str, data: bytes, repo_type: str = "dataset",
                 lfs: bool | None = None, revision: str = "main", private: bool = False) -> str:
        """Seed a file directly (creating the repo if needed) as one commit; returns its oid.
        `lfs=None` stores it the way preupload would classify it."""
        with self._lock:
            repo = (self._repos.get((repo_type, repo_id))
                    or self._new_repo(repo_type, repo_id, private))
            if lfs is None:
                lfs = self._upload_mode(path, len(data)) == "lfs"
            if lfs:
                repo.lfs_objects[hashlib.sha256(data).hexdigest()] = data
            return self._apply_commit(repo, revision, f"Upload {path}", "",
                                      [("add", path, data, lfs)])

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> dict:
        """Committed state: path -> bytes (includes the initial `.gitattributes`)."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            tree = repo.commits[self._resolve_revision(repo, revision)].tree
            return {path: entry.data for path, entry in sorted(tree.items())}

    def commits(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list:
        """The commits reachable from `revision`, oldest first (the first is the initial commit)."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            out, oid = [], self._resolve_revision(repo, revision)
            while oid is not None:
                c = repo.commits[oid]
                out.append(CommitRecord(c.oid, c.parent, c.title, c.message, c.date,
                                        list(c.written), list(c.changed), list(c.deleted)))
                oid = c.parent
            return out[::-1]

    def has_repo(self, repo_id: str, repo_type: str = "dataset") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    # ----------------------------------------------------------------- dispatch

    def _serve(self, record: RecordedRequest, body: bytes) -> _Response | None:
        """Route one request; returns None to drop the connection."""
        route, groups = self._match(record.method, record.path)
        record.kind = route.kind if route else None
        with self._lock:
            self.requests.append(record)
            fault = next((f for f in self._faults
                          if f.remaining > 0 and f.matches(record.kind, record.path)), None)
            if fault is not None:
                fault.remaining -= 1
        if fault is not None and not fault.apply:
            if fault.status is None:
                return None
            return _Response.json({"error": f"Injected failure ({record.kind or record.path})"},
                                  fault.status)
        response = self._answer(record, route, groups, body)
        return None if fault is not None else response

    def _answer(self, record: RecordedRequest, route: _Route | None, groups: dict,
                body: bytes) -> _Response:
        if route is None:
            line = f"{record.method} {record.path}"
            self.errors.append((line, "no such endpoint in hub_server"))
            return _Response.json({"error": f"hub_server does not implement {line}"}, 404)
        request = _Request(record.method, record.path, record.query, record.headers, body,
                           {k: unquote(v) for k, v in groups.items() if v is not None})
        try:
            with self._lock:
                return route.handler(self, request)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            return _Response.json({"error": err.message}, err.status, headers)
        except Exception:  # noqa: BLE001 - a bug in this server: make it visible to the test
            self.errors.append((f"{record.method} {record.path}", traceback.format_exc()))
            return _Response.json({"error": "hub_server crashed:\n" + traceback.format_exc()}, 500)

    @staticmethod
    def _match(method: str, path: str):
        for route in _routes.table:
            if method in route.methods:
                m = route.pattern.fullmatch(path)
                if m:
                    return route, m.groupdict()
        return None, {}

    # ----------------------------------------------------------------- auth

    def _authorized(self, req: _Request, write: bool) -> bool:
        """True when the request carries the server's token (or the server has none).
        Raises 401 for a wrong token, and for a write without one."""
        if self.token is None:
            return True
        auth = req.headers.get("authorization")
        if auth is None:
            if write:
                raise HubError(401, "Invalid username or password.")
            return False
        if auth != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _repo(self, req: _Request, write: bool = False) -> _Repo:
        authorized = self._authorized(req, write)
        if "api_type" in req.params:
            repo_type = _API_TYPES[req.params["api_type"]]
        else:
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(req.params.get("prefix"),
                                                                       "model")
        repo = self._repos.get((repo_type, self._repo_id(req)))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if repo.private and not authorized:
            raise HubError(401, "Repository not found", "RepoNotFound")
        return repo

    def _sign(self, repo: _Repo, oid: str) -> str:
        message = f"{repo.repo_type}/{repo.repo_id}/{oid}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def _lfs_href(self, repo: _Repo, oid: str) -> str:
        api_type = repo.repo_type + "s"
        return f"{self.url}/lfs-objects/{api_type}/{repo.repo_id}/{oid}?sig={self._sign(repo, oid)}"

    # ----------------------------------------------------------------- model

    def _upload_mode(self, path: str, size: int) -> str:
        name = path.rsplit("/", 1)[-1]
        if size >= self.lfs_threshold or any(fnmatch.fnmatch(name, p) for p in self.lfs_patterns):
            return "lfs"
        return "regular"

    def _new_repo(self, repo_type: str, repo_id: str, private: bool) -> _Repo:
        repo = _Repo(repo_type, repo_id, private)
        self._repos[(repo_type, repo_id)] = repo
        attributes = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n"
                             for p in self.lfs_patterns)
        oid = self._new_commit_oid(None, "initial commit")
        repo.commits[oid] = _Commit(oid, None, "initial commit", "", _now(),
                                    {".gitattributes": _Entry(attributes.encode(), False, oid)},
                                    [".gitattributes"], [".gitattributes"], [])
        repo.refs["main"] = oid
        return repo

    def _new_commit_oid(self, parent: str | None, title: str) -> str:
        return hashlib.sha1(
            f"{parent}\n{title}\n{next(self._counter)}\n{_now()}".encode()).hexdigest()

    def _resolve_revision(self, repo: _Repo, revision: str) -> str:
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _tree(self, repo: _Repo, revision: str):
        oid = self._resolve_revision(repo, revision)
        return oid, repo.commits[oid].tree

    def _apply_commit(self, repo: _Repo, ref: str, title: str, message: str, ops: list) -> str:
        """Validate every operation against a copy of the branch's tree, then publish the new
        commit in one step. ops: ("add", path, bytes, lfs) | ("delete", path)
        | ("delete_folder", path)."""
        parent = self._resolve_revision(repo, ref)
        tree = dict(repo.commits[parent].tree)
        oid = self._new_commit_oid(parent, title)
        written, changed, deleted = [], [], []
        for op in ops:
            kind, path = op[0], op[1].strip("/")
            if kind == "add":
                written.append(path)
                old = tree.get(path)
                # (else: unchanged, the file keeps its last commit)
                if old is None or (old.data, old.lfs) != (op[2], op[3]):
                    tree[path] = _Entry(op[2], op[3], oid)
                    changed.append(path)
            elif kind == "delete":
                if path not in tree:
                    raise HubError(404, f"A file with this name doesn't exist: {path}",
                                   "EntryNotFound")
                del tree[path]
                deleted.append(path)
            else:
                gone = [p for p in tree if p.startswith(path + "/")]
                if not gone:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}",
                                   "EntryNotFound")
                for p in gone:
                    del tree[p]
                deleted.extend(gone)
        repo.commits[oid] = _Commit(oid, parent, title, message, _now(), tree, written, changed,
                                    deleted)
        repo.refs[ref] = oid
        return oid

    def _file_json(self, repo: _Repo, path: str, entry: _Entry, expand: bool) -> dict:
        out = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
        if entry.lfs:
            out["lfs"] = {"oid": entry.sha256, "size": entry.size,
                          "pointerSize": len(entry.pointer)}
        if expand:
            out["lastCommit"] = self._last_commit_json(repo, entry.commit)
        return out

    def _folder_json(self, repo: _Repo, path: str, tree: dict, expand: bool) -> dict:
        inside = sorted((p, e) for p, e in tree.items() if p.startswith(path + "/"))
        tree_id = hashlib.sha1(
            "".join(f"{p}:{e.blob_id}\n" for p, e in inside).encode()).hexdigest()
        out = {"type": "directory", "oid": tree_id, "size": 0, "path": path}
        if expand:
            newest = max((repo.commits[e.commit] for _, e in inside), key=lambda c: c.date)
            out["lastCommit"] = self._last_commit_json(repo, newest.oid)
        return out

    @staticmethod
    def _last_commit_json(repo: _Repo, oid: str) -> dict:
        c = repo.commits[oid]
        return {"id": c.oid, "title": c.title, "date": _iso(c.date)}

    @staticmethod
    def _folders(tree: dict) -> set:
        return {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)}

    def _serve_bytes(self, req: _Request, data: bytes, headers: dict) -> _Response:
        """200 with the whole content, or 206 / 416 for a single `Range: bytes=...`."""
        size = len(data)
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", **headers}
        spec = req.headers.get("range", "")
        m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", spec)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return _Response(200, data, headers, length=size)
        if m.group(1) == "":  # suffix: the last N bytes
            start, end = max(size - int(m.group(2)), 0), size - 1
        else:
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size or start > end:
            return _Response(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
        return _Response(206, data[start:end + 1],
                         {**headers, "Content-Range": f"bytes {start}-{end}/{size}"},
                         length=end - start + 1)

    # ----------------------------------------------------------------- handlers: repos

    @_routes.add("POST", r"/api/repos/create", "create_repo")
    def _create_repo(self, req: _Request) -> _Response:
        self._authorized(req, write=True)
        body = req.json()
        repo_type = body.get("type") or "model"
        if repo_type not in _URL_PREFIXES or not body.get("name"):
            raise HubError(400, f"Invalid repo type or name: {body}")
        owner = body.get("organization") or self.user
        repo_id = f"{owner}/{body['name']}"
        url = f"{self.url}/{_URL_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self._repos:
            return _Response.json({"error": f"You already created this {repo_type} repo",
                                   "url": url}, 409)
        self._new_repo(repo_type, repo_id, bool(body.get("private", False)))
        return _Response.json({"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    @_routes.add("POST", r"/api/validate-yaml", "validate_yaml")
    def _validate_yaml(self, req: _Request) -> _Response:
        return _Response.json({"errors": [], "warnings": []})

    @_routes.add("GET", _API + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info")
    def _repo_info(self, req: _Request) -> _Response:
        repo = self._repo(req)
        sha, tree = self._tree(repo, req.params.get("rev", "main"))
        blobs = _truthy(req.arg("blobs"))
        siblings = []
        for path, entry in sorted(tree.items()):
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.lfs:
                    sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size,
                                      "pointerSize": len(entry.pointer)}
            siblings.append(sibling)
        return _Response.json({
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0], "sha": sha, "private": repo.private,
            "gated": False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
            "createdAt": _iso(repo.created), "lastModified": _iso(repo.commits[sha].date),
        })

    # ----------------------------------------------------------------- handlers: uploads

    @_routes.add("POST", _API + r"/preupload/(?P<rev>[^/]+)", "preupload")
    def _preupload(self, req: _Request) -> _Response:
        repo = self._repo(req, write=True)
        sha, tree = self._tree(repo, req.params["rev"])
        files = []
        for item in req.json().get("files", []):
            path = item["path"]
            answer = {"path": path, "uploadMode": self._upload_mode(path, int(item["size"])),
                      "shouldIgnore": False}
            if path in tree:
                answer["oid"] = tree[path].preupload_oid
            files.append(answer)
        return _Response.json({"files": files, "commitOid": sha})

    @_routes.add("POST", _URL + r"\.git/info/lfs/objects/batch", "lfs_batch")
    def _lfs_batch(self, req: _Request) -> _Response:
        repo = self._repo(req, write=True)
        body = req.json()
        if body.get("operation") != "upload":
            raise HubError(400, "hub_server only implements the LFS upload operation")
        verify_href = f"{self.url}/{repo.url_path}.git/info/lfs/objects/verify"
        objects = []
        for obj in body.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in repo.lfs_objects:
                answer["actions"] = {"upload": {"href": self._lfs_href(repo, obj["oid"]),
                                                "header": {}}}
                if self.lfs_verify:
                    answer["actions"]["verify"] = {"href": verify_href, "header": {}}
            objects.append(answer)
        if self.xet and "xet" in body.get("transfers", []):
            # Xet storage: the client uploads through hf_xet, then commits the files as LFS
            # pointers (sha256), as on the Hub
            objects = [{"oid": o["oid"], "size": o["size"]} for o in body.get("objects", [])]
            return _Response.json({"transfer": "xet", "objects": objects},
                                  headers={"Content-Type": "application/vnd.git-lfs+json"})
        # "basic" when the client does not offer "xet" (or the server is not xet=True): it
        # then uploads through the LFS protocol.
        return _Response.json({"transfer": "basic", "objects": objects},
                              headers={"Content-Type": "application/vnd.git-lfs+json"})

    @_routes.add("GET", _API + r"/xet-write-token/(?P<rev>[^/]+)", "xet_token")
    def _xet_write_token(self, req: _Request) -> _Response:
        repo = self._repo(req, write=True)
        self._authorized(req, write=True)
        token = secrets.token_hex(16)
        self._xet_tokens[token] = (repo.repo_type, repo.repo_id)
        return _Response.json({}, headers={"X-Xet-Cas-Url": self.xet_cas_url,
                                           "X-Xet-Access-Token": token,
                                           "X-Xet-Token-Expiration": "4102444800"})

    @property
    def xet_cas_url(self) -> str:
        return f"{self.url}/xet-cas"

    def xet_cas_upload(self, endpoint: str, token: str, data: bytes) -> None:
        """What the Xet storage service does with an upload, for `fake_xet_cas`: the content
        becomes known to the repo the write token was issued for, by its sha256."""
        with self._lock:
            if endpoint != self.xet_cas_url or token not in self._xet_tokens:
                raise PermissionError("xet upload with a wrong endpoint or token")
            repo = self._repos[self._xet_tokens[token]]
            repo.lfs_objects[hashlib.sha256(data).hexdigest()] = data
            self.xet_uploads.append(len(data))

    @staticmethod
    def _repo_id(req: _Request) -> str:
        return (f"{req.params['owner']}/{req.params['name']}" if "owner" in req.params
                else req.params["name"])

    def _signed_repo(self, req: _Request) -> _Repo:
        repo = self._repos.get((_API_TYPES[req.params["api_type"]], self._repo_id(req)))
        if repo is None or not hmac.compare_digest(req.arg("sig", ""),
                                                   self._sign(repo, req.params["oid"])):
            raise HubError(403, "SignatureDoesNotMatch")
        return repo

    @_routes.add("PUT", r"/lfs-objects" + _API[4:] + r"/(?P<oid>[0-9a-f]{64})", "lfs_upload")
    def _lfs_upload(self, req: _Request) -> _Response:
        repo = self._signed_repo(req)
        oid = req.params["oid"]
        actual = hashlib.sha256(req.body).hexdigest()
        if actual != oid:
            raise HubError(400, f"sha256 mismatch: expected {oid}, received {actual} "
                                f"({len(req.body)} bytes)")
        repo.lfs_objects[oid] = req.body
        return _Response(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})

    @_routes.add("POST", _URL + r"\.git/info/lfs/objects/verify", "lfs_verify")
    def _lfs_verify(self, req: _Request) -> _Response:
        repo = self._repo(req, write=True)
        body = req.json()
        data = repo.lfs_objects.get(body.get("oid"))
        if data is None or len(data) != body.get("size"):
            raise HubError(404, f"LFS object {body.get('oid')} ({body.get('size')} bytes) "
                                "not found")
        return _Response.json({"success": True})

    @_routes.add("POST", _API + r"/commit/(?P<rev>[^/]+)", "commit")
    def _commit(self, req: _Request) -> _Response:
        repo = self._repo(req, write=True)
        ref = req.params["rev"]
        head = self._resolve_revision(repo, ref)
        if ref not in repo.refs:
            raise HubError(400, f"Can only commit to a branch, not to {ref}")
        try:
            lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        except ValueError as exc:
            raise HubError(400, f"Invalid NDJSON commit payload: {exc}") from None
        header, ops = {}, []
        for line in lines:
            key, value = line.get("key"), line.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                raw = value["content"]
                data = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
                ops.append(("add", value["path"], data, False))
            elif key == "lfsFile":
                data = repo.lfs_objects.get(value.get("oid"))
                if data is None or ("size" in value and value["size"] != len(data)):
                    raise HubError(422, "Your push was rejected because an LFS pointer pointed "
                                        f"to a file that does not exist: {value.get('path')} "
                                        f"({value.get('oid')})")
                ops.append(("add", value["path"], data, True))
            elif key == "deletedFile":
                ops.append(("delete", value["path"]))
            elif key == "deletedFolder":
                ops.append(("delete_folder", value["path"]))
            else:
                raise HubError(400, f"Unknown commit operation: {key}")
        title = header.get("summary") or ""
        if not title:
            raise HubError(400, "The commit summary (header.summary) is required")
        parent = header.get("parentCommit")
        if parent is not None and parent != head:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        pr_url = None
        if _truthy(req.arg("create_pr")):
            repo.pr_count += 1
            pr_ref = f"refs/pr/{repo.pr_count}"
            repo.refs[pr_ref] = head
            try:
                oid = self._apply_commit(repo, pr_ref, title, header.get("description", ""), ops)
            except HubError:
                del repo.refs[pr_ref]
                repo.pr_count -= 1
                raise
            pr_url = f"{self.url}/{repo.url_path}/discussions/{repo.pr_count}"
        else:
            oid = self._apply_commit(repo, ref, title, header.get("description", ""), ops)
        out = {"success": True, "commitOid": oid,
               "commitUrl": f"{self.url}/{repo.url_path}/commit/{oid}", "hookOutput": ""}
        if pr_url:
            out["pullRequestUrl"] = pr_url
        return _Response.json(out)

    # ----------------------------------------------------------------- handlers: reads

    @_routes.add("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree")
    def _list_tree(self, req: _Request) -> _Response:
        repo = self._repo(req)
        _, tree = self._tree(repo, req.params["rev"])
        base = req.params.get("path", "").strip("/")
        recursive, expand = _truthy(req.arg("recursive")), _truthy(req.arg("expand"))
        folders = self._folders(tree)
        if base and base not in folders:
            raise HubError(404, f"{base} does not exist or is not a folder", "EntryNotFound")
        prefix = base + "/" if base else ""

        def wanted(path):
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix):])

        entries = [self._folder_json(repo, p, tree, expand) for p in sorted(folders) if wanted(p)]
        entries += [self._file_json(repo, p, e, expand) for p, e in sorted(tree.items())
                    if wanted(p)]
        start = int(req.arg("cursor", "0"))
        page = entries[start:start + self.tree_page_size]
        headers = {}
        if start + self.tree_page_size < len(entries):
            query = {k: v[0] for k, v in req.query.items()}
            query["cursor"] = str(start + self.tree_page_size)
            headers["Link"] = f'<{self.url}{req.path}?{urlencode(query)}>; rel="next"'
        return _Response.json(page, headers=headers)

    @_routes.add("POST", _API + r"/paths-info/(?P<rev>[^/]+)", "paths_info")
    def _paths_info(self, req: _Request) -> _Response:
        repo = self._repo(req)
        _, tree = self._tree(repo, req.params["rev"])
        if req.headers.get("content-type", "").startswith("application/json"):
            body = req.json()
            paths, expand = body.get("paths", []), bool(body.get("expand"))
        else:
            form = parse_qs(req.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), _truthy((form.get("expand") or ["False"])[0])
        folders = self._folders(tree)
        out = []
        for path in (p.strip("/") for p in paths):
            if path in tree:
                out.append(self._file_json(repo, path, tree[path], expand))
            elif path in folders:
                out.append(self._folder_json(repo, path, tree, expand))
        return _Response.json(out)

    @_routes.add("HEAD|GET", _URL + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve")
    def _resolve(self, req: _Request) -> _Response:
        repo = self._repo(req)
        sha, tree = self._tree(repo, req.params["rev"])
        entry = tree.get(req.params["path"])
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.blob_id}"'}
        if entry.lfs:  # like the Hub: redirect to the (signed) storage URL of the LFS object
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": entry.size,
                            "Location": self._lfs_href(repo, entry.sha256)})
            return _Response(302, b"", headers)
        return self._serve_bytes(req, entry.data, headers)

    @_routes.add("GET", r"/lfs-objects" + _API[4:] + r"/(?P<oid>[0-9a-f]{64})", "lfs_download")
    def _lfs_download(self, req: _Request) -> _Response:
        repo = self._signed_repo(req)
        data = repo.lfs_objects.get(req.params["oid"])
        if data is None:
            raise HubError(404, "NoSuchKey")
        return self._serve_bytes(req, data, {"ETag": f'"{req.params["oid"]}"'})


# --------------------------------------------------------------------------- pytest glue


def point_client_at(server: HubServer, monkeypatch, xet: bool = False) -> None:
    """Make the `huggingface_hub` client in this process (and subprocesses started from it)
    talk to `server`, with Xet disabled (unless `xet`: then the client offers Xet, as it does
    by default with hf_xet installed), whether or not huggingface_hub was imported before.

    huggingface_hub reads HF_ENDPOINT and HF_HUB_DISABLE_XET once, when
    `huggingface_hub.constants` is imported, so setting the environment is not enough
    in-process: the constants, the URL template that `file_download` copied at import, and
    the endpoint of the module-level `HfApi` behind `huggingface_hub.upload_file` & co. are
    patched too, and so are `datasets`' own copies when it is imported already
    (monkeypatch restores everything)."""
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    if xet:
        monkeypatch.delenv("HF_HUB_DISABLE_XET", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    from huggingface_hub import constants, file_download, hf_api

    template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", not xet)
    monkeypatch.setattr(hf_api.api, "endpoint", server.url)
    datasets_config = sys.modules.get("datasets.config")   # `datasets` reads it at import too
    if datasets_config is not None:
        monkeypatch.setattr(datasets_config, "HF_ENDPOINT", server.url)
        monkeypatch.setattr(datasets_config, "HUB_DATASETS_URL",
                            server.url + "/datasets/{repo_id}/resolve/{revision}/{path}")


def fake_xet_cas(server: HubServer, monkeypatch) -> None:
    """Stand in for the Xet storage service in this process: hf_xet's upload functions (which
    speak Xet's own chunk protocol to it) are replaced by ones that hand the content to
    `server.xet_cas_upload` with the endpoint and write token the client got from the server.
    Everything before and after (negotiation, the token, the commit) is the real client's."""
    import hf_xet

    def upload_files(paths, endpoint, token_info, token_refresher, progress, repo_type=None):
        for path in paths:
            with open(path, "rb") as fh:
                server.xet_cas_upload(endpoint, token_info[0], fh.read())

    def upload_bytes(items, endpoint, token_info, token_refresher, progress, repo_type=None):
        for data in items:
            server.xet_cas_upload(endpoint, token_info[0], bytes(data))

    monkeypatch.setattr(hf_xet, "upload_files", upload_files)
    monkeypatch.setattr(hf_xet, "upload_bytes", upload_bytes)


@pytest.fixture
def hub_server(monkeypatch):
    """A started HubServer (no token) with the in-process client pointed at it."""
    with HubServer() as server:
        point_client_at(server, monkeypatch)
        yield server
        assert not server.errors, f"hub_server could not serve: {server.errors}"
