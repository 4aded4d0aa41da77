"""A polite, bounded HTTP fetcher for live ingest: every request ends as a value, never a crash.

Live sources are public services with rate limits (the Hub counts requests per 5-minute window and
answers 429 with IETF `RateLimit` headers), flaky edges (5xx, resets, stalls) and the occasional
surprise (an HTML login page, a redirect to somewhere else, a body far larger than expected). The
fetcher absorbs all of that per item so that one bad URL holds back that item only:

- bounded concurrency (a thread pool) and per-request timeouts, plus a wall-clock deadline per
  attempt so a server trickling bytes cannot hold a worker forever;
- retries with exponential backoff and jitter on connection errors, timeouts, 429 and 5xx,
  waiting at least what `Retry-After` (seconds or an HTTP date) or `RateLimit` (`t=`) asks, and
  pausing every request to that host meanwhile;
- proactive pacing from the `RateLimit` / `RateLimit-Policy` headers of every answer: when a
  quota's remaining requests run low (at most the worker count, or 10% of the policy's quota),
  requests to that host are spaced `reset / remaining` seconds apart until the window resets, and
  an exhausted quota (`r=0`) pauses the host until its reset, so the fetcher slows down before
  the server has to answer 429;
- a response-size cap enforced while streaming;
- redirects followed by hand, only to allowed hosts;
- conditional GET (`If-None-Match` -> 304 `NotModified`);
- the Hugging Face token sent as a Bearer token to the Hub's host only. It lives in a `Secret` whose
  repr is masked, and every failure reason is scrubbed of it, so it cannot reach logs, run metadata,
  exceptions or the failures table.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpx

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "fitatlas-ingest/0.1 (+https://github.com/fitatlas)"


class Secret:
    """A credential whose repr and str never show it; only `reveal()` does, at the header."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class HttpPolicy:
    """How hard and how long to try (configured through `LiveSourcesResource`; tests shrink it)."""

    timeout_s: float = 30.0
    attempt_deadline_s: float = 120.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_server_wait_s: float = 300.0
    max_bytes: int = 64 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 8


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    content: bytes
    etag: str | None
    content_type: str | None
    retries: int
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    link: str | None = None  # the `Link` header (RFC 8288), how paginated listings name their next page


@dataclass(frozen=True)
class NotModified:
    url: str
    etag: str | None
    retries: int


@dataclass(frozen=True)
class FetchFailed:
    url: str
    reason: str
    status: int | None
    retries: int


FetchOutcome = Fetched | NotModified | FetchFailed


@dataclass(frozen=True)
class FetchRequest:
    url: str
    etag: str | None = None


@dataclass(frozen=True)
class _Redirect:
    status: int
    location: str


class _Retryable(Exception):
    """An attempt failed in a way worth retrying; `wait_s` is what the server asked for, if anything."""

    def __init__(self, reason: str, status: int | None = None, wait_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.wait_s = wait_s


class _Final(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def ratelimit_reset_seconds(value: str | None) -> float | None:
    """Seconds until the exhausted quota resets, from an IETF draft `RateLimit` header.

    The Hub sends e.g. `"api";r=0;t=55`: quota policy `api`, `r` requests remaining, reset in `t`
    seconds. Only exhausted policies (`r=0`) say how long to wait; the longest of them wins.
    """
    if not value:
        return None
    waits: list[float] = []
    for item in value.split(","):
        params = dict(
            part.strip().split("=", 1) for part in item.split(";")[1:] if "=" in part
        )
        try:
            remaining = int(params.get("r", "1"))
            reset = float(params["t"])
        except (KeyError, ValueError):
            continue
        if remaining <= 0:
            waits.append(reset)
    return max(waits) if waits else None


QUOTA_LOW_FRACTION = 0.1


def _structured_items(value: str | None) -> list[tuple[str | None, dict[str, str]]]:
    """Items of a structured-field list like `"api";r=12;t=55` or `"fixed window";"api";q=500;w=300`:
    (the item's last bare name, its parameters)."""
    items: list[tuple[str | None, dict[str, str]]] = []
    for item in (value or "").split(","):
        parts = [part.strip() for part in item.split(";") if part.strip()]
        names = [part.strip('"') for part in parts if "=" not in part]
        params = {k.strip(): v.strip().strip('"') for k, v in (part.split("=", 1) for part in parts if "=" in part)}
        if names or params:
            items.append((names[-1] if names else None, params))
    return items


def ratelimit_pacing(ratelimit: str | None, policy: str | None, *, reserve: int) -> tuple[float, float] | None:
    """(seconds between requests, seconds until the quota resets) when a quota runs low, else None.

    `RateLimit: "api";r=12;t=55` says 12 requests remain in the window that resets in 55 s;
    `RateLimit-Policy: "fixed window";"api";q=500;w=300` gives the window's quota. A quota is low
    when at most `reserve` (the requests that may be in flight at once) or 10% of `q` remain; the
    remaining requests are then spread over what is left of the window (`t / r`). An exhausted quota
    (`r=0`) asks for the whole `t`. The tightest quota wins.
    """
    quotas: dict[str | None, float] = {}
    for name, params in _structured_items(policy):
        try:
            quotas[name] = float(params["q"])
        except (KeyError, ValueError):
            continue
    tightest: tuple[float, float] | None = None
    for name, params in _structured_items(ratelimit):
        try:
            remaining = int(float(params["r"]))
            reset = float(params["t"])
        except (KeyError, ValueError):
            continue
        if reset <= 0:
            continue
        quota = quotas.get(name)
        low = max(float(reserve), quota * QUOTA_LOW_FRACTION if quota else 0.0)
        if remaining > low:
            continue
        interval = reset if remaining <= 0 else reset / remaining
        if tightest is None or interval > tightest[0]:
            tightest = (interval, reset)
    return tightest


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Exact host names, or `.suffix` entries that allow every subdomain (`.hf.co`)."""
    host = host.lower()
    for entry in allowed_hosts:
        entry = entry.lower()
        if host == entry or (entry.startswith(".") and host.endswith(entry)):
            return True
    return False


class HttpFetcher:
    """Fetch URLs under an `HttpPolicy`; thread-safe, one pooled client, usable as a context manager."""

    def __init__(
        self,
        policy: HttpPolicy,
        *,
        allowed_hosts: Iterable[str],
        hf_host: str | None = None,
        hf_token: Secret | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.policy = policy
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts if h)
        self._hf_host = (hf_host or "").lower() or None
        self._hf_token = hf_token if hf_token and hf_token.reveal() else None
        self._sleep = sleep
        self._client = httpx.Client(
            timeout=httpx.Timeout(policy.timeout_s),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=policy.concurrency, max_keepalive_connections=policy.concurrency),
        )
        self._host_pause_until: dict[str, float] = {}
        # host -> (seconds between requests, monotonic end of the quota window, next free slot)
        self._host_pacing: dict[str, tuple[float, float, float]] = {}
        self._pause_lock = threading.Lock()
        self._retry_lock = threading.Lock()
        self.retries = 0
        self.quota_pauses = 0  # requests delayed because a rate-limit quota ran low

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"HttpFetcher(allowed_hosts={sorted(self.allowed_hosts)}, hf_token={'set' if self._hf_token else 'unset'})"

    def get_many(self, requests: Sequence[FetchRequest | str]) -> list[FetchOutcome]:
        """Fetch all, at most `policy.concurrency` at a time; outcomes in request order."""
        normalised = [r if isinstance(r, FetchRequest) else FetchRequest(r) for r in requests]
        if len(normalised) <= 1:
            return [self.get(r.url, etag=r.etag) for r in normalised]
        with ThreadPoolExecutor(max_workers=self.policy.concurrency, thread_name_prefix="fitatlas-http") as pool:
            return list(pool.map(lambda r: self.get(r.url, etag=r.etag), normalised))

    def get(self, url: str, *, etag: str | None = None) -> FetchOutcome:
        """One GET with retries; returns `Fetched`, `NotModified` or `FetchFailed`, never raises."""
        try:
            return self._get_with_retries(url, etag)
        except Exception as error:  # a bug or an unforeseen library error must still hold back one item only
            return FetchFailed(url, self._scrub(f"unexpected error: {type(error).__name__}: {error}"), None, 0)

    def _get_with_retries(self, url: str, etag: str | None) -> FetchOutcome:
        if not host_allowed(_host(url), self.allowed_hosts):
            return FetchFailed(url, f"host {_host(url)!r} is not an allowed source host", None, 0)
        retries = 0
        while True:
            self._wait_for_host(_host(url))
            try:
                outcome = self._attempt(url, etag)
                return _with_retries(outcome, retries)
            except _Final as final:
                return FetchFailed(url, self._scrub(final.reason), final.status, retries)
            except _Retryable as retryable:
                attempts = retries + 1
                if attempts >= self.policy.max_attempts:
                    reason = f"{retryable.reason} (gave up after {attempts} attempts)"
                    return FetchFailed(url, self._scrub(reason), retryable.status, retries)
                if retryable.wait_s is not None and retryable.wait_s > self.policy.max_server_wait_s:
                    reason = (
                        f"{retryable.reason}: server asks to wait {retryable.wait_s:.0f}s, "
                        f"more than the {self.policy.max_server_wait_s:.0f}s allowed"
                    )
                    return FetchFailed(url, self._scrub(reason), retryable.status, retries)
                delay = self._backoff(retries, retryable.wait_s)
                if retryable.wait_s is not None:
                    self._pause_host(_host(url), delay)
                retries += 1
                with self._retry_lock:
                    self.retries += 1
                self._sleep(delay)

    def _attempt(self, url: str, etag: str | None) -> FetchOutcome:
        """One request, following allowed redirects by hand; raises `_Retryable` or `_Final`."""
        current = url
        for _hop in range(self.policy.max_redirects + 1):
            headers = {"Accept-Encoding": "identity"}
            if etag:
                headers["If-None-Match"] = etag
            if self._hf_token and self._hf_host and _host(current) == self._hf_host:
                headers["Authorization"] = f"Bearer {self._hf_token.reveal()}"
            answer = self._send(url, current, headers)
            if not isinstance(answer, _Redirect):
                return answer
            target = urljoin(current, answer.location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise _Final(f"redirect to a non-HTTP URL ({urlsplit(target).scheme}:)", answer.status)
            if not host_allowed(_host(target), self.allowed_hosts):
                raise _Final(f"redirect (HTTP {answer.status}) to host {_host(target)!r}, which is not allowed", answer.status)
            current = target
        raise _Final(f"more than {self.policy.max_redirects} redirects", None)

    def _send(self, url: str, current: str, headers: dict[str, str]) -> FetchOutcome | _Redirect:
        """GET `current` (a hop on the way to `url`) once and classify the answer."""
        started = time.monotonic()
        try:
            with self._client.stream("GET", current, headers=headers) as response:
                status = response.status_code
                self._note_quota(_host(current), response.headers)
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise _Final(f"HTTP {status} redirect without a Location header", status)
                    return _Redirect(status, location)
                if status == 304:
                    return NotModified(url, response.headers.get("etag"), 0)
                if status == 429:
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                    if wait is None:
                        wait = ratelimit_reset_seconds(response.headers.get("ratelimit"))
                    raise _Retryable("rate limited (HTTP 429)", status, wait)
                if status >= 500:
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                    raise _Retryable(f"server error (HTTP {status})", status, wait)
                if status in (401, 403):
                    raise _Final(f"gated or unauthorised (HTTP {status}): accept the model's terms and set HF_TOKEN", status)
                if status == 404:
                    raise _Final("not found (HTTP 404)", status)
                if status >= 400:
                    raise _Final(f"client error (HTTP {status})", status)
                content = self._read_capped(response, started)
                return Fetched(
                    url=url,
                    status=status,
                    content=content,
                    etag=response.headers.get("etag"),
                    content_type=response.headers.get("content-type"),
                    retries=0,
                    link=response.headers.get("link"),
                )
        except httpx.TimeoutException as error:
            raise _Retryable(f"timed out ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise _Retryable(f"connection problem ({type(error).__name__}: {error})") from None

    def _read_capped(self, response: httpx.Response, started: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise _Final(f"response of {int(declared)} bytes exceeds the {self.policy.max_bytes}-byte cap", response.status_code)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.policy.max_bytes:
                raise _Final(f"response exceeds the {self.policy.max_bytes}-byte cap (aborted while streaming)", response.status_code)
            if time.monotonic() - started > self.policy.attempt_deadline_s:
                raise _Retryable(f"body still arriving after {self.policy.attempt_deadline_s:.0f}s", response.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

    def _backoff(self, retries: int, server_wait_s: float | None) -> float:
        exponential = min(self.policy.backoff_max_s, self.policy.backoff_base_s * (2**retries))
        jittered = exponential / 2 + random.uniform(0, exponential / 2)
        return max(jittered, server_wait_s or 0.0)

    def _pause_host(self, host: str, seconds: float) -> None:
        """A 429's wait applies to the whole quota, so every worker holds off that host."""
        with self._pause_lock:
            until = time.monotonic() + seconds
            self._host_pause_until[host] = max(until, self._host_pause_until.get(host, 0.0))

    def _note_quota(self, host: str, headers: httpx.Headers) -> None:
        """Pace this host when the answer says its quota runs low; stop pacing once it no longer does."""
        ratelimit = headers.get("ratelimit")
        if not ratelimit:
            return
        pacing = ratelimit_pacing(ratelimit, headers.get("ratelimit-policy"), reserve=self.policy.concurrency)
        with self._pause_lock:
            if pacing is None:
                self._host_pacing.pop(host, None)
                return
            interval, reset = (min(value, self.policy.max_server_wait_s) for value in pacing)
            now = time.monotonic()
            previous_slot = self._host_pacing[host][2] if host in self._host_pacing else 0.0
            self._host_pacing[host] = (interval, now + reset, max(previous_slot, now + interval))

    def _wait_for_host(self, host: str) -> None:
        """Wait out a pause of the host, and while its quota is paced, take the next free slot."""
        paced = False
        with self._pause_lock:
            now = time.monotonic()
            start = max(now, self._host_pause_until.get(host, 0.0))
            if host in self._host_pacing:
                interval, window_end, next_slot = self._host_pacing[host]
                if now >= window_end:
                    del self._host_pacing[host]  # the quota has reset
                else:
                    paced = next_slot > start
                    start = max(start, next_slot)
                    self._host_pacing[host] = (interval, window_end, start + interval)
            remaining = start - now
        if remaining > 0:
            if paced:
                with self._retry_lock:
                    self.quota_pauses += 1
            self._sleep(remaining)

    def _scrub(self, text: str) -> str:
        return self._hf_token.scrub(text) if self._hf_token else text


def _with_retries(outcome: FetchOutcome, retries: int) -> FetchOutcome:
    if isinstance(outcome, Fetched):
        return Fetched(
            outcome.url, outcome.status, outcome.content, outcome.etag, outcome.content_type, retries, outcome.fetched_at, outcome.link
        )
    if isinstance(outcome, NotModified):
        return NotModified(outcome.url, outcome.etag, retries)
    return FetchFailed(outcome.url, outcome.reason, outcome.status, retries)
