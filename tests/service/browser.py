"""Headless Chromium driven over the DevTools protocol on a pipe, for the page tests.

`chromium --dump-dom` dumps when its virtual-time budget runs out, and virtual time runs on
while the page decodes images (which is not a network fetch), so under load it dumped the
page before /infer and /render had settled. Here the test asks the live page for its state
until it settles, on the wall clock. The protocol goes over file descriptors 3 and 4
(`--remote-debugging-pipe`, NUL-separated JSON), so no port and no client library is needed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--allow-file-access-from-files", "--remote-debugging-pipe",
]  # fmt: skip
READ_TIMEOUT_S = 60.0  # the longest a reply may take


class Page:
    """One tab, attached; `evaluate` runs JavaScript in it and returns the value."""

    def __init__(self, to_browser: int, from_browser: int, process: subprocess.Popen) -> None:
        self._out, self._in, self._process = to_browser, from_browser, process
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:  # events arrive between replies; only the reply to this call matters
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self) -> dict[str, Any]:
        """The next message; EOFError if Chromium exited, TimeoutError if it went silent
        (a hung browser fails the test instead of hanging the run)."""
        while b"\0" not in self._buffer:
            if not select.select([self._in], [], [], READ_TIMEOUT_S)[0]:
                raise TimeoutError(f"chromium said nothing for {READ_TIMEOUT_S} s")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise EOFError(f"chromium exited ({self._process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, width: int, height: int) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 120.0) -> Any:
        """Polls `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # a protocol error: the page is still navigating
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression!r} still falsy after {timeout_s} s")

    def html(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot")["data"]))


@contextmanager
def chromium_page(profile: Path, url: str, width: int = 1000, height: int = 900) -> Iterator[Page]:
    """A headless Chromium with one tab opened on `url`, closed on exit."""
    assert CHROMIUM, "chromium not installed: apt-get install chromium"
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def onto_fds_3_and_4() -> None:  # the pipe ends Chromium's DevTools reads and writes
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)  # above 3 and 4: not clobbered
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=onto_fds_3_and_4,
        pass_fds=(3, 4),  # kept open after preexec_fn: subprocess closes the others
    )  # fmt: skip
    os.close(to_browser_r)
    os.close(from_browser_w)
    try:
        page = Page(to_browser_w, from_browser_r, process)
        page.open(url, width, height)
        yield page
    finally:
        process.kill()
        process.wait(timeout=30)
        os.close(to_browser_w)
        os.close(from_browser_r)
