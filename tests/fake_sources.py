"""A real HTTP server on 127.0.0.1 that speaks the live sources' wire formats, with injectable faults.

It serves ../shared/data: the Hub's `/api/models/{repo}` (model info synthesised with a commit sha
each test controls) and `/{repo}/resolve/{rev}/{file}` from hf_configs, the Hub's paginated model
listing `/api/models` (entries each test lists, per sort key, in the Hub's order), OpenRouter's
`/api/v1/models`, LiteLLM's and genai-prices' JSON and SkyPilot catalog CSVs. Every static answer
carries an ETag and honours If-None-Match. Faults are queued per path (`fail`, consumed one per
request, then the path answers normally) or pinned (`always`). Every request is logged with its
headers so tests can see what was asked, how often, and with which credentials.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

OPENROUTER_PATH = "/api/v1/models"
LISTING_PATH = "/api/models"
LITELLM_PATH = "/litellm/model_prices_and_context_window.json"
GENAI_PATH = "/genai-prices/data.json"


def skypilot_path(cloud: str) -> str:
    return f"/skypilot/catalogs/v7/{cloud}/vms.csv"


STATIC_FILES = {
    OPENROUTER_PATH: SHARED_DATA / "prices" / "openrouter_api_v1_models_2026-08-19.json",
    LITELLM_PATH: SHARED_DATA / "prices" / "litellm_model_prices_and_context_window.json",
    GENAI_PATH: SHARED_DATA / "prices" / "genai-prices_data.json",
    skypilot_path("lambda"): SHARED_DATA / "prices" / "gpu_rental" / "lambda_vms.csv",
    skypilot_path("vast"): SHARED_DATA / "prices" / "gpu_rental" / "vast_vms.csv",
}


# Environment names live mode reads that a test must not inherit from the developer's shell.
LIVE_ENV_CLEARED = ("HF_TOKEN", "FITATLAS_HTTP_ALLOWED_HOSTS", "FITATLAS_SPEC_SHEETS_DIR", "FITATLAS_SNAPSHOT_DIR")


def live_mode_env(server: FakeSources, data_dir: Path, watchlist: Path, clouds: tuple[str, ...]) -> dict[str, str]:
    """Live mode pointed at this server, with timeouts and backoffs short enough for tests."""
    return {
        "FITATLAS_SOURCE": "live",
        "FITATLAS_DATA_DIR": str(data_dir),
        "FITATLAS_WATCHLIST": str(watchlist),
        "HF_ENDPOINT": server.base_url,
        "FITATLAS_OPENROUTER_URL": server.url(OPENROUTER_PATH),
        "FITATLAS_LITELLM_URL": server.url(LITELLM_PATH),
        "FITATLAS_GENAI_PRICES_URL": server.url(GENAI_PATH),
        "FITATLAS_GPU_PRICES_URL": ",".join(server.url(skypilot_path(cloud)) for cloud in clouds),
        "FITATLAS_HTTP_TIMEOUT_S": "0.5",
        "FITATLAS_HTTP_MAX_ATTEMPTS": "3",
        "FITATLAS_HTTP_BACKOFF_S": "0.01",
        "FITATLAS_HTTP_BACKOFF_MAX_S": "0.05",
        "FITATLAS_HTTP_MAX_SERVER_WAIT_S": "3",
        "FITATLAS_HTTP_MAX_BYTES": str(8 * 1024 * 1024),
    }


def litellm_subset(entries: int) -> bytes:
    """The first `entries` models of the real LiteLLM map (plus `sample_spec`): the same wire
    format, small enough that landing it keeps a test quick."""
    document = json.loads(STATIC_FILES[LITELLM_PATH].read_bytes())
    return json.dumps(dict(list(document.items())[: entries + 1])).encode()


@dataclass(frozen=True)
class Fault:
    """One abnormal answer. Build with the class methods below."""

    kind: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    seconds: float = 0.0
    size: int = 0
    declare_length: bool = True

    @classmethod
    def status_code(cls, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Fault:
        return cls("status", status, tuple((headers or {}).items()), body)

    @classmethod
    def rate_limited(cls, retry_after: str | None = None, ratelimit: str | None = None) -> Fault:
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if ratelimit is not None:
            headers["RateLimit"] = ratelimit
            headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
        return cls.status_code(429, headers, b'{"error": "rate limited"}')

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Say nothing for `seconds` (past the client's timeout), then answer normally."""
        return cls("stall", seconds=seconds)

    @classmethod
    def truncated_json(cls) -> Fault:
        """Half the real body with an honest Content-Length: a well-formed response, broken JSON."""
        return cls("truncated_json")

    @classmethod
    def cut_connection(cls) -> Fault:
        """Promise the whole body in Content-Length, send half, hang up."""
        return cls("cut_connection")

    @classmethod
    def html(cls, status: int = 200) -> Fault:
        body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in</body></html>"
        return cls("status", status, (("Content-Type", "text/html; charset=utf-8"),), body)

    @classmethod
    def oversized(cls, size: int, declare_length: bool = True) -> Fault:
        return cls("oversized", size=size, declare_length=declare_length)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Fault:
        return cls.status_code(status, {"Location": location})


@dataclass
class FakeModel:
    """A Hub repo: its files come from hf_configs/<owner>__<name>; sha and gating are the test's."""

    repo: str
    sha: str
    gated: bool | str = False
    license: str | None = "apache-2.0"
    parameters: int | None = None
    # The Hub's `safetensors.parameters` (stored elements per dtype, e.g. {"BF16": n, "F8_E4M3": m});
    # when None and `parameters` is set, the repo is served as all-BF16.
    safetensors_parameters: dict[str, int] | None = None
    list_siblings: bool = True
    directory: Path | None = None

    def files(self) -> dict[str, Path]:
        directory = self.directory or SHARED_DATA / "hf_configs" / self.repo.replace("/", "__", 1)
        if not directory.is_dir():
            return {}
        return {p.name: p for p in directory.iterdir() if p.is_file() and p.suffix == ".json"}

    def info(self) -> dict[str, object]:
        document: dict[str, object] = {
            "_id": hashlib.sha1(self.repo.encode()).hexdigest()[:24],
            "id": self.repo,
            "modelId": self.repo,
            "author": self.repo.split("/")[0],
            "sha": self.sha,
            "lastModified": "2026-11-20T10:00:00.000Z",
            "private": False,
            "gated": self.gated,
            "disabled": False,
            "tags": ["transformers", "safetensors"],
            "pipeline_tag": "text-generation",
            "library_name": "transformers",
            "cardData": {"license": self.license} if self.license else {},
        }
        if self.list_siblings:
            document["siblings"] = [{"rfilename": name} for name in sorted(self.files())]
        if self.safetensors_parameters is not None:
            document["safetensors"] = {
                "parameters": dict(self.safetensors_parameters),
                "total": sum(self.safetensors_parameters.values()),
            }
        elif self.parameters is not None:
            document["safetensors"] = {"parameters": {"BF16": self.parameters}, "total": self.parameters}
        return document


def listing_entry(
    repo: str,
    sha: str,
    *,
    downloads: int = 0,
    trending: int = 0,
    likes: int = 0,
    gated: bool | str = False,
    pipeline_tag: str = "text-generation",
    tags: tuple[str, ...] = ("transformers", "safetensors", "text-generation"),
) -> dict[str, object]:
    """A model as the Hub's listing knows it, every expandable field the discovery asks for filled
    (huggingface_hub `ExpandModelProperty_T` names); the server answers only the expanded ones."""
    return {
        "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
        "id": repo,
        "sha": sha,
        "downloads": downloads,
        "likes": likes,
        "trendingScore": trending,
        "createdAt": "2026-01-15T09:30:00.000Z",
        "lastModified": "2026-11-20T10:00:00.000Z",
        "library_name": "transformers",
        "pipeline_tag": pipeline_tag,
        "tags": list(tags),
        "gated": gated,
        "private": False,
    }


@dataclass
class LoggedRequest:
    path: str
    headers: dict[str, str]
    host: str = ""
    query: str = ""


@dataclass
class FakeSources:
    """Start with `with FakeSources() as server:`; `server.url(path)` is an address on it."""

    hf_token: str | None = None
    models: dict[str, FakeModel] = field(default_factory=dict)
    # The Hub listing (`/api/models`): `sort` key -> entries in the order the Hub would list them.
    # An entry is a model's dict (`listing_entry`) or anything else, served as-is (a malformed entry).
    listings: dict[str, list[object]] = field(default_factory=dict)
    listing_page_size: int = 1000  # the server's own cap on a page, whatever `limit` asks
    bodies: dict[str, bytes] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests the server was answering at once
    stalling: int = 0
    max_stalling: int = 0  # the most requests inside a stall at once: all ended before any reply went out
    _queued: dict[str, deque[Fault]] = field(default_factory=dict)
    _pinned: dict[str, Fault] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ---
    def __enter__(self) -> FakeSources:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # --- content and faults ---
    def add_model(self, repo: str, sha: str = "a" * 40, **kwargs: object) -> FakeModel:
        model = FakeModel(repo, sha, **kwargs)  # type: ignore[arg-type]
        self.models[repo] = model
        return model

    def fail(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self._queued.setdefault(path, deque()).extend(faults)

    def always(self, path: str, fault: Fault) -> None:
        with self._lock:
            self._pinned[path] = fault

    def listing_url(self, query: dict[str, object]) -> str:
        return self.url(f"{LISTING_PATH}?{urlencode(query, doseq=True)}")

    def requests_to(self, path: str) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def paths_requested(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._queued.get(path)
            if queue:
                return queue.popleft()
            return self._pinned.get(path)

    # --- routing ---
    def _resolve(self, path: str, headers: dict[str, str], query: str = "") -> tuple[int, dict[str, str], bytes]:
        if path == LISTING_PATH:
            return self._listing_page(parse_qs(query, keep_blank_values=True))
        if path in self.bodies:
            return _static(self.bodies[path], "application/json", headers)
        if path in STATIC_FILES:
            content_type = "text/csv" if path.endswith(".csv") else "application/json"
            return _static(STATIC_FILES[path].read_bytes(), content_type, headers)
        if path.startswith("/api/models/"):
            model = self.models.get(path.removeprefix("/api/models/"))
            if model is None:
                return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'
            return 200, {"Content-Type": "application/json"}, json.dumps(model.info()).encode()
        if "/resolve/" in path:
            repo, _, rest = path.lstrip("/").partition("/resolve/")
            revision, _, filename = rest.partition("/")
            model = self.models.get(repo)
            if model is None:
                return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'
            if model.gated and headers.get("authorization") != f"Bearer {self.hf_token}":
                return 401, {"X-Error-Code": "GatedRepo"}, b'{"error": "Access to this model is restricted."}'
            if revision not in (model.sha, "main"):
                return 404, {"X-Error-Code": "RevisionNotFound"}, b'{"error": "Invalid rev id"}'
            file = model.files().get(filename)
            if file is None:
                return 404, {"X-Error-Code": "EntryNotFound"}, b'{"error": "Entry not found"}'
            return _static(file.read_bytes(), "application/json", headers)
        return 404, {"Content-Type": "text/plain"}, b"not found"


    def _listing_page(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        """One page of the listing, as the Hub answers it: filtered by `pipeline_tag` and `filter`
        tags, only the `expand[]` fields (plus `id` and `_id`), at most `limit` (and the server's
        own cap) entries, and a `Link: <...>; rel="next"` header carrying the query and an opaque
        `cursor` while entries remain."""
        def first(name: str) -> str | None:
            return query[name][0] if query.get(name) else None

        entries = [
            entry
            for entry in self.listings.get(first("sort") or "", [])
            if not isinstance(entry, dict)
            or (
                entry.get("pipeline_tag") == (first("pipeline_tag") or entry.get("pipeline_tag"))
                and all(tag in (entry.get("tags") or []) for tag in query.get("filter", []))
            )
        ]
        try:
            limit = min(int(first("limit") or 1000), self.listing_page_size)
            cursor = first("cursor")
            offset = json.loads(base64.urlsafe_b64decode(cursor))["offset"] if cursor else 0
        except (ValueError, KeyError, TypeError):
            return 400, {"Content-Type": "application/json"}, b'{"error": "Invalid cursor or limit"}'
        expand = query.get("expand[]", []) + query.get("expand", [])
        page = [
            {k: v for k, v in entry.items() if k in ("_id", "id", *expand)} if isinstance(entry, dict) and expand else entry
            for entry in entries[offset : offset + limit]
        ]
        headers = {"Content-Type": "application/json"}
        if offset + limit < len(entries):
            cursor = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit}).encode()).decode()
            following = {k: v for k, v in query.items() if k != "cursor"} | {"cursor": [cursor]}
            headers["Link"] = f'<{self.listing_url(following)}>; rel="next"'
        return 200, headers, json.dumps(page).encode()


def _static(content: bytes, content_type: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    etag = f'"{hashlib.sha256(content).hexdigest()[:20]}"'
    if headers.get("if-none-match") == etag:
        return 304, {"ETag": etag}, b""
    return 200, {"ETag": etag, "Content-Type": content_type}, content


def _handler_for(sources: FakeSources) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path, query = urlsplit(self.path).path, urlsplit(self.path).query
            headers = {k.lower(): v for k, v in self.headers.items()}
            with sources._lock:
                sources.requests.append(LoggedRequest(path, headers, headers.get("host", ""), query))
                sources.in_flight += 1
                sources.max_in_flight = max(sources.max_in_flight, sources.in_flight)
            fault = sources._next_fault(path)
            try:
                self._answer(path, headers, fault, query)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with sources._lock:
                    sources.in_flight -= 1

        def _answer(self, path: str, headers: dict[str, str], fault: Fault | None, query: str = "") -> None:
            if fault and fault.kind == "stall":
                with sources._lock:
                    sources.stalling += 1
                    sources.max_stalling = max(sources.max_stalling, sources.stalling)
                time.sleep(fault.seconds)
                with sources._lock:
                    sources.stalling -= 1
                fault = None
            if fault and fault.kind == "status":
                self._send(fault.status, dict(fault.headers), fault.body)
                return
            if fault and fault.kind == "oversized":
                self._send_oversized(fault.size, fault.declare_length)
                return
            status, answer_headers, body = sources._resolve(path, headers, query)
            if fault and fault.kind == "truncated_json":
                self._send(status, answer_headers, body[: len(body) // 2])
            elif fault and fault.kind == "cut_connection":
                self._send(status, answer_headers, body[: len(body) // 2], declared_length=len(body))
            else:
                self._send(status, answer_headers, body)

        def _send(self, status: int, headers: dict[str, str], body: bytes, declared_length: int | None = None) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(declared_length if declared_length is not None else len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _send_oversized(self, size: int, declare_length: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if declare_length:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b" " * 65536
            sent = 0
            while sent < size:
                self.wfile.write(chunk[: min(len(chunk), size - sent)])
                sent += len(chunk)

    return Handler
