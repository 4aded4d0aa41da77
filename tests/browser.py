"""A real headless Chromium (the Debian `chromium` package), driven over the DevTools protocol.

No browser download and no driver: the system binary is started with a DevTools port and spoken to
over its WebSocket. A page load reports what a reader's browser would show and what it did: console
errors and uncaught exceptions, every URL it requested (so a test can prove nothing left the
machine), values evaluated in the page, and a full-page screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM_NAMES = ("chromium", "chromium-browser")
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


def chromium_binary() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@dataclass
class PageLoad:
    url: str
    width: int
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""

    @property
    def external_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


class Browser:
    """One headless Chromium for a test session; `load` opens a page at a viewport width."""

    def __init__(self, binary: str):
        self._profile = tempfile.mkdtemp(prefix="fitatlas-chromium-")
        self._process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._endpoint = self._read_endpoint()
        self._ids = itertools.count(1)

    def _read_endpoint(self) -> str:
        seen = []
        for line in self._process.stderr:
            seen.append(line)
            if match := LISTENING.search(line):
                return match.group(1)
        raise RuntimeError("chromium exited before its DevTools endpoint was up:\n" + "".join(seen[-20:]))

    def _page_socket(self) -> str:
        port = re.search(r":(\d+)/", self._endpoint).group(1)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())["webSocketDebuggerUrl"]

    def load(self, url: str, width: int, height: int = 900, evaluate: dict[str, str] | None = None,
             timeout_s: float = 60) -> tuple[PageLoad, dict[str, Any]]:
        """Open `url` at `width` x `height` CSS px; return what happened and each `evaluate` expression's value."""
        load = PageLoad(url=url, width=width)
        values: dict[str, Any] = {}
        with connect(self._page_socket(), max_size=64 * 1024 * 1024, open_timeout=30) as socket:

            def call(method: str, **params: Any) -> dict:
                ident = next(self._ids)
                socket.send(json.dumps({"id": ident, "method": method, "params": params}))
                deadline = time.monotonic() + timeout_s
                while True:
                    message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
                    if message.get("id") == ident:
                        if "error" in message:
                            raise RuntimeError(f"{method}: {message['error']}")
                        return message.get("result", {})
                    observe(message)

            loaded = {"done": False}

            def observe(message: dict) -> None:
                method, params = message.get("method"), message.get("params", {})
                if method == "Network.requestWillBeSent":
                    load.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    load.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
                elif method == "Runtime.exceptionThrown":
                    details = params.get("exceptionDetails", {})
                    load.console_errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
                elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    load.console_errors.append(params["entry"].get("text", ""))
                elif method == "Page.loadEventFired":
                    loaded["done"] = True

            for domain in ("Page", "Runtime", "Network", "Log"):
                call(f"{domain}.enable")
            call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=width < 600)
            call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            while not loaded["done"]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{url} did not finish loading in {timeout_s} s")
                observe(json.loads(socket.recv(timeout=remaining)))
            for name, expression in (evaluate or {}).items():
                result = call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
                if "exceptionDetails" in result:
                    raise RuntimeError(f"{name}: {result['exceptionDetails'].get('text')} in {expression!r}")
                values[name] = result["result"].get("value")
            shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            load.screenshot = base64.b64decode(shot["data"])
        return load, values

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._profile, ignore_errors=True)


def page_url(path: Path) -> str:
    return path.resolve().as_uri()
