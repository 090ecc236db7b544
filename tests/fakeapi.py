"""A fake HTTP API on 127.0.0.1 for the fetch commands' tests: a real server in a thread,
answering each GET with what ``FakeApi.answer`` (a test's own function) says, and keeping
every request (path, query, headers) for the test to check.

    with serve(answer) as api:  # answer(request) -> (status, headers, body)
        run the command with SOURCE_API_URL=api.url
        api.requests[0].query["per_page"] == ["100"]
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from test_e2e import dora_command


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def one(self, name: str) -> str | None:
        """The query parameter's value, when it is given once."""
        values = self.query.get(name)
        return values[0] if values else None


Answer = tuple[int, dict[str, str], Any]


@dataclass
class FakeApi:
    answer: Callable[[Request], Answer]
    url: str = ""
    requests: list[Request] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@contextmanager
def serve(answer: Callable[[Request], Answer]) -> Iterator[FakeApi]:
    fake = FakeApi(answer)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            request = Request(
                "GET",
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                {name.lower(): value for name, value in self.headers.items()},
            )
            fake.requests.append(request)
            status, headers, body = fake.answer(request)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def run_dora(*args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    """The installed command, with ``env`` over this process's environment (None removes
    a variable) and no proxy for the fake server."""
    merged = {**os.environ, "NO_PROXY": "127.0.0.1", "CI": "1", **env}
    return subprocess.run(
        [*dora_command(), *args],
        env={name: value for name, value in merged.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=120,
    )


def link(url: str, path: str, query: dict[str, str]) -> str:
    """A ``Link`` header value pointing at the next page."""
    from urllib.parse import urlencode

    return f'<{url}{path}?{urlencode(query)}>; rel="next"'
