"""A server on loopback that answers the way broken providers and proxies do.

The model name picks the misbehaviour, on both `/v1/chat/completions` and `/v1/messages`:

- `text-200`: status 200 with an HTML page (a proxy's error page)
- `bad-json-200`: status 200, content type JSON, a body that is not JSON
- `wrong-shape-200`: status 200 with JSON that is not a completion (`{"hello": "world"}`)
- `garbage-once`: `bad-json-200` on a request's first attempt, a good answer after
- `reset`: the connection is reset as soon as the request has arrived
- `hang`: no answer at all (the client's read timeout ends it)
- anything else: a good answer

Plain asyncio sockets, so that a reset is a real reset and a hang a real hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

import orjson

_GOOD_OPENAI = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_764_000_000,
    "model": "good",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "All good."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
}
_GOOD_ANTHROPIC = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "good",
    "content": [{"type": "text", "text": "All good."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 3},
}


def _response(status: int, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} OK\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class Misbehaving:
    """The server's state: how many requests each body has made (for `garbage-once`)."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        self.requests += 1
        path = head.split(b" ", 2)[1]
        anthropic = path.startswith(b"/v1/messages")
        try:
            model = str(orjson.loads(body).get("model"))
        except (orjson.JSONDecodeError, AttributeError):
            model = ""
        if not body:  # a GET (the client's first-contact check): something answers
            writer.write(_response(404, "application/json", b'{"error": "not found"}'))
        elif model == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        elif model == "hang":  # until the client gives up and closes
            with contextlib.suppress(ConnectionError):
                await reader.read()
        elif model == "text-200":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            writer.write(_response(200, "text/html", page))
        elif model == "bad-json-200" or (model == "garbage-once" and self._first(path + body)):
            writer.write(_response(200, "application/json", b'{"id": "chatcmpl-1", "choi'))
        elif model == "wrong-shape-200":
            writer.write(_response(200, "application/json", b'{"hello": "world"}'))
        else:
            good = _GOOD_ANTHROPIC if anthropic else _GOOD_OPENAI
            writer.write(_response(200, "application/json", orjson.dumps(good)))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            writer.close()

    def _first(self, body: bytes) -> bool:
        n = self.seen.get(body, 0)
        self.seen[body] = n + 1
        return n == 0


@contextlib.contextmanager
def misbehaving_server() -> Iterator[str]:
    """Serve on a free loopback port in a thread; yields the root URL."""
    loop = asyncio.new_event_loop()
    state = Misbehaving()
    server = loop.run_until_complete(asyncio.start_server(state.handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="misbehaving")
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:

        async def shut() -> None:
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
