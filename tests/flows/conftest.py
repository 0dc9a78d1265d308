"""A local webhook server on 127.0.0.1 that records what it is sent and answers as told."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest


class Webhook:
    """The server's state: the bodies POSTed, and how it answers (`status`, or `hang` seconds)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self.status = 200
        self.hang = 0.0

    def reset(self) -> None:
        self.posts.clear()
        self.attempts, self.status, self.hang = 0, 200, 0.0


@pytest.fixture(scope="session")
def _webhook_server() -> Iterator[Webhook]:
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hook.attempts += 1
            if hook.hang:
                time.sleep(hook.hang)
            if hook.status == 200:
                hook.posts.append(orjson.loads(body))
            self.send_response(hook.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that gave up waiting (the no-answer test) is expected

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook(_webhook_server: Webhook) -> Iterator[Webhook]:
    _webhook_server.reset()
    yield _webhook_server
    _webhook_server.reset()
