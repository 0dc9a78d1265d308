"""The response cache: entries written in the background are seen at once and on disk after
flush; a fresh cache over the same folder reads them."""

from __future__ import annotations

import threading
from pathlib import Path

from evalpipe.replay.cache import ResponseCache, request_key


def _key(i: int) -> str:
    return request_key(provider="openai", model="m", host="h", kwargs={"messages": [i]}, repeat=0)


def test_put_is_seen_at_once_and_on_disk_after_flush(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    keys = [_key(i) for i in range(300)]
    for i, key in enumerate(keys):
        cache.put(key, {"output_text": f"answer {i}"})
    assert cache.get(keys[-1]) == {"output_text": "answer 299"}  # pending or written
    cache.flush()
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 300
    fresh = ResponseCache(tmp_path / "cache")
    assert [fresh.get(k) for k in keys] == [{"output_text": f"answer {i}"} for i in range(300)]
    assert not list((tmp_path / "cache").rglob("*.tmp"))


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
