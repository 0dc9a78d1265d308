"""The response cache: entries written in the background are seen at once and on disk after
flush; a fresh cache over the same folder reads them (and a cache written before its SQLite file);
runs sharing it at once pay once (claims); a cache that cannot be written costs requests, never
the run."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from evalpipe.replay.cache import CLAIMS_ENV, DB_NAME, ResponseCache, request_key

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own (a sync Playwright session elsewhere in the suite
    leaves an event loop running on the main thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _key(i: int) -> str:
    return request_key(provider="openai", model="m", host="h", kwargs={"messages": [i]}, repeat=0)


def test_put_is_seen_at_once_and_on_disk_after_flush(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    keys = [_key(i) for i in range(300)]
    for i, key in enumerate(keys):
        cache.put(key, {"output_text": f"answer {i}"})
    assert cache.get(keys[-1]) == {"output_text": "answer 299"}  # pending or written
    cache.flush()
    assert _rows(tmp_path / "cache") == 300  # on disk, read by another connection
    fresh = ResponseCache(tmp_path / "cache")
    assert [fresh.get(k) for k in keys] == [{"output_text": f"answer {i}"} for i in range(300)]


def _rows(root: Path) -> int:
    with sqlite3.connect(root / DB_NAME) as conn:
        count: int = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    return count


def test_another_process_reads_what_one_wrote(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    cache.put(_key(7), {"output_text": "kept"})
    cache.flush()
    code = (
        "import sys; from pathlib import Path; from evalpipe.replay.cache import ResponseCache; "
        "print(ResponseCache(Path(sys.argv[1])).get(sys.argv[2])['output_text'])"
    )
    seen = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cache"), _key(7)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen.stdout.strip() == "kept"


def test_a_cache_written_before_the_sqlite_file_is_still_read(tmp_path: Path) -> None:
    key = _key(8)
    old = tmp_path / "cache" / key[:2] / f"{key}.json"  # the layout before responses.sqlite
    old.parent.mkdir(parents=True)
    old.write_bytes(orjson.dumps({"output_text": "from an older evalpipe"}))
    cache = ResponseCache(tmp_path / "cache")
    assert cache.get(key) == {"output_text": "from an older evalpipe"}
    assert cache.get(_key(9)) is None
    cache.flush()
    assert _rows(tmp_path / "cache") == 1  # kept in the SQLite file as it was read
    old.unlink()
    assert ResponseCache(tmp_path / "cache").get(key) == {"output_text": "from an older evalpipe"}


def test_a_cache_that_cannot_be_opened_is_a_warning_and_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / DB_NAME).write_bytes(b"this is not an SQLite file, it is damaged " * 100)
    cache = ResponseCache(tmp_path / "cache")
    cache.put(_key(1), {"x": 1})
    cache.flush()  # returns: the writer warned and went on
    assert cache.get(_key(2)) is None
    assert "cannot" in caplog.text and "response cache" in caplog.text


def test_puts_from_many_threads_all_land(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")

    def fill(start: int) -> None:
        for i in range(start, start + 100):
            cache.put(_key(i), {"i": i})

    threads = [threading.Thread(target=fill, args=(s,)) for s in (0, 100, 200, 300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.flush()
    fresh = ResponseCache(tmp_path / "cache")
    assert all(fresh.get(_key(i)) == {"i": i} for i in range(400))


def test_write_only_and_off_modes(tmp_path: Path) -> None:
    write_only = ResponseCache(tmp_path / "a", "write_only")
    write_only.put(_key(1), {"x": 1})
    write_only.flush()
    assert write_only.get(_key(1)) is None  # never read
    assert ResponseCache(tmp_path / "a").get(_key(1)) == {"x": 1}
    off = ResponseCache(tmp_path / "b", "off")
    off.put(_key(1), {"x": 1})
    off.flush()
    assert not (tmp_path / "b").exists()


# --- claims: runs sharing the cache at once pay once ----------------------------------------------


def test_a_second_claimant_waits_for_the_first_answer(tmp_path: Path) -> None:
    first, second = ResponseCache(tmp_path / "cache"), ResponseCache(tmp_path / "cache")
    key = _key(1)

    async def scenario() -> dict[str, Any] | None:
        assert await first.claim(key) is None  # the first to miss buys it
        waiting = asyncio.create_task(second.claim(key))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # the second waits instead of buying it again
        first.put(key, {"output_text": "bought once"})
        return await asyncio.wait_for(waiting, 5)

    assert _run(scenario()) == {"output_text": "bought once"}
    assert _run(ResponseCache(tmp_path / "cache").claim(key)) == {"output_text": "bought once"}


def test_a_failed_request_passes_its_claim_to_the_waiter(tmp_path: Path) -> None:
    first, second = ResponseCache(tmp_path / "cache"), ResponseCache(tmp_path / "cache")
    key = _key(2)

    async def scenario() -> dict[str, Any] | None:
        assert await first.claim(key) is None
        waiting = asyncio.create_task(second.claim(key))
        await asyncio.sleep(0.1)
        first.unclaim(key)  # its request failed: nothing to wait for
        return await asyncio.wait_for(waiting, 5)

    assert _run(scenario()) is None  # the waiter now buys it itself
    second.unclaim(key)


def test_write_only_never_waits(tmp_path: Path) -> None:
    first = ResponseCache(tmp_path / "cache")
    fresh = ResponseCache(tmp_path / "cache", "write_only")  # asks for new answers

    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        return await first.claim(_key(3)), await asyncio.wait_for(fresh.claim(_key(3)), 1)

    assert _run(scenario()) == (None, None)


_HOLDER = """
import asyncio, sys, time
from pathlib import Path
from evalpipe.replay.cache import ResponseCache
cache = ResponseCache(Path(sys.argv[1]))
async def hold():
    assert await cache.claim(sys.argv[2]) is None
    print("claimed", flush=True)
    await asyncio.sleep(float(sys.argv[3]))
    if sys.argv[4] == "answer":
        cache.put(sys.argv[2], {"output_text": "from the other process"})
        cache.flush()
asyncio.run(hold())
"""


def _holder(tmp_path: Path, key: str, seconds: float, then: str) -> subprocess.Popen[str]:
    """Another process that claims `key` in the cache, holds it `seconds`, then answers it or
    dies (exit without a word: its claim file stays behind)."""
    env = dict(os.environ, **{CLAIMS_ENV: "1"})
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "cache"), key, str(seconds), then],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "claimed"
    return proc


def test_across_processes_the_waiter_gets_the_other_process_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLAIMS_ENV, "1")
    key = _key(4)
    holder = _holder(tmp_path, key, 1.0, "answer")
    assert (tmp_path / "cache" / "claims" / f"{key}.claim").exists()
    started = time.monotonic()
    got = _run(ResponseCache(tmp_path / "cache").claim(key))
    assert got == {"output_text": "from the other process"}
    assert time.monotonic() - started > 0.5  # it waited for the answer
    assert holder.wait(10) == 0
    assert not (tmp_path / "cache" / "claims" / f"{key}.claim").exists()


def test_a_dead_process_claim_is_taken_over_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLAIMS_ENV, "1")
    key = _key(5)
    holder = _holder(tmp_path, key, 30.0, "die")
    holder.kill()  # as kill -9 would: the claim file stays
    holder.wait(10)
    assert (tmp_path / "cache" / "claims" / f"{key}.claim").exists()
    cache = ResponseCache(tmp_path / "cache")
    assert _run(asyncio.wait_for(cache.claim(key), 2)) is None  # ours now
    cache.unclaim(key)
    assert not (tmp_path / "cache" / "claims" / f"{key}.claim").exists()


def test_claims_cross_processes_only_when_another_process_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CLAIMS_ENV, raising=False)  # (a flow run earlier in the session sets it)
    cache = ResponseCache(tmp_path / "cache")
    cache.register()
    assert list((tmp_path / "cache" / ".active").iterdir())  # this process is registered
    assert not cache._across_processes()  # alone: no claim files
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        other = tmp_path / "cache" / ".active" / f"{socket.gethostname()}.{sleeper.pid}"
        other.write_bytes(b"")
        cache._others_checked = -10.0  # (re-read now rather than within the second)
        assert cache._across_processes()
    finally:
        sleeper.kill()
        sleeper.wait(10)
    cache._others_checked = -10.0
    assert not cache._across_processes()  # its process is gone
    cache.unregister()
    assert not (tmp_path / "cache" / ".active" / f"{socket.gethostname()}.{os.getpid()}").exists()
