"""A store at an fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``az://…``): the remote is the
truth, a local staging folder its working copy.

The stages read and write local files as they do for a local store, in a staging folder keyed by
the URL (under ``$EVALPIPE_STAGING_DIR``, default ``~/.cache/evalpipe/stores/``); this module moves
files between it and the remote:

- opening a run pulls the run's files (manifest, records, responses parts, scores, gate);
- a run's files are pushed whenever its manifest changes, the files first and the manifest last:
  an object store has no atomic rename, so the manifest written last is the commit, and readers
  trust a stage's output only when the manifest says the stage is done;
- a replay partition's part files are pushed as soon as the partition finishes (each in one PUT,
  after the local file is whole, so an object there is a finished partition, as a part file is
  locally); the journals of unfinished partitions stay in the staging folder;
- cache entries are pushed in batches by the cache's writer thread as they are written, and a
  lookup that misses locally asks the remote (its listing, one prefix folder at a time), so a run
  resumed on another machine does not pay again for answers already cached;
- the catalog is rebuilt in the staging folder from what the remote holds whenever a command
  lists runs or reads nights: the runs tables from the manifests and gate tables (the run
  folders are the truth), the nights tables from the nights' files (``nights/<series>/…json``,
  each pushed as it is recorded).

Nothing here imports fsspec until a remote store is used, so a local store costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import orjson

from evalpipe.errors import StoreError

__all__ = ["STAGING_ENV", "Remote", "is_remote", "remote_of", "staging_for"]

log = logging.getLogger(__name__)

STAGING_ENV: Final = "EVALPIPE_STAGING_DIR"
"""Folder under which each remote store gets its staging folder (default: the user cache dir)."""

_MARK: Final = ".store-url"
"""A staging folder's file naming the remote store it stages."""

_LOCAL_ONLY = re.compile(r"(^|/)(journal-[^/]*\.jsonl|\.[^/]*\.tmp)$")
"""Files never pushed: journals of unfinished partitions, temporary files being written."""


def is_remote(url: str) -> bool:
    """Whether a store path is a remote fsspec URL (``file://`` and plain paths are local)."""
    return "://" in url and not url.startswith("file://")


def staging_for(url: str) -> Path:
    """The local staging folder of the remote store at `url` (made on first use)."""
    url = url.rstrip("/")
    base = os.environ.get(STAGING_ENV)
    if base:
        root = Path(base).expanduser()
    else:
        cache_home = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
        root = Path(cache_home).expanduser() / "evalpipe" / "stores"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", url)[:48]
    folder = (root / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:12]}").resolve()
    mark = folder / _MARK
    if not mark.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        mark.write_text(url + "\n", encoding="utf-8")
    return folder


_remotes: dict[Path, Remote | None] = {}
_remotes_lock = threading.Lock()


def remote_of(root: Path) -> Remote | None:
    """The remote store whose staging folder is `root`; None for a local store."""
    if root in _remotes:
        return _remotes[root]
    mark = root / _MARK
    remote = Remote(mark.read_text(encoding="utf-8").strip(), root) if mark.is_file() else None
    with _remotes_lock:
        return _remotes.setdefault(root, remote)


class Remote:
    """The remote side of a store (thread-safe; one per store and process)."""

    def __init__(self, url: str, staging: Path) -> None:
        self.url, self.staging = url, staging
        self._fs: Any = None
        self._base = ""
        self._lock = threading.Lock()
        self._known: dict[str, tuple[int, int]] = {}
        """Path below the store → (size, local mtime_ns) as last pushed or pulled; mtime -1
        when only the remote listing told its size."""
        self._listed: set[str] = set()
        """Run ids whose remote files are in `_known`."""
        self._cache_keys: dict[str, set[str]] = {}
        """Cache key prefix (2 hex) → keys the remote holds, listed on first need."""

    # --- the filesystem -------------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        if self._fs is None:
            with self._errors("opening"):
                try:
                    from fsspec.core import url_to_fs
                except ImportError:  # (a dependency of evalpipe, but be plain about it)
                    raise StoreError(f"store {self.url}: fsspec is not installed") from None
                try:
                    fs, base = url_to_fs(self.url)
                except ImportError as exc:
                    raise StoreError(
                        f"store {self.url}: its filesystem is not installed ({exc}); "
                        "for s3:// run pip install 'evalpipe[s3]'"
                    ) from None
                except ValueError as exc:
                    raise StoreError(f"store {self.url}: {exc}") from None
            self._fs, self._base = fs, str(base).rstrip("/")
        return self._fs

    def _remote(self, rel: str) -> str:
        self.fs  # noqa: B018 (sets _base)
        return f"{self._base}/{rel}" if self._base else rel

    def _rel(self, remote_path: str) -> str:
        return remote_path.removeprefix(self._base).lstrip("/")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Any failure of the remote as one StoreError line naming the store."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = "the URL and the credentials"
            if self.url.startswith(("s3://", "s3a://")):
                hint += (
                    " (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; AWS_ENDPOINT_URL "
                    "for a server other than AWS)"
                )
            raise StoreError(
                f"store {self.url}: {what} failed ({type(exc).__name__}: {first}); check {hint}"
            ) from None

    def _list(self, rel: str) -> dict[str, int]:
        """Every file below `rel` → its size (empty when there is none)."""
        fs = self.fs
        path = self._remote(rel)
        fs.invalidate_cache(path)
        try:
            found = fs.find(path, detail=True)
        except FileNotFoundError:
            return {}
        return {
            self._rel(name): int(info.get("size") or 0)
            for name, info in found.items()
            if info.get("type", "file") == "file"
        }

    def _download(self, rel: str) -> None:
        """The remote file `rel` into the staging folder (streamed; atomic locally)."""
        local = self.staging / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".tmp")
        os.close(fd)
        try:
            self.fs.get_file(self._remote(rel), tmp)
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._remember(rel, local)

    def _upload(self, rel: str, local: Path) -> None:
        """A whole local file to the remote in one put (streamed in parts when large)."""
        self.fs.put_file(str(local), self._remote(rel))
        self._remember(rel, local)

    def _remember(self, rel: str, local: Path) -> None:
        st = local.stat()
        with self._lock:
            self._known[rel] = (st.st_size, st.st_mtime_ns)

    def _stale(self, rel: str, local: Path) -> bool:
        """Whether the local file differs from what the remote holds (as far as we know)."""
        st = local.stat()
        with self._lock:
            known = self._known.get(rel)
        if known is None:
            return True
        size, mtime = known
        return size != st.st_size or (mtime != -1 and mtime != st.st_mtime_ns)

    # --- runs ------------------------------------------------------------------------------------

    def pull_run(self, run_id: str, names: Iterable[str] | None = None) -> bool:
        """The run's files into the staging folder (all, or only `names` and a manifest the
        folder lacks or holds in another size); False when the remote has no manifest for it."""
        prefix = f"runs/{run_id}"
        with self._errors(f"reading run {run_id}"):
            listing = self._list(prefix)
            self._note_listing(run_id, listing)
            manifest = f"{prefix}/manifest.json"
            if manifest not in listing:
                return False
            wanted = None if names is None else {f"{prefix}/{n}" for n in names}
            for rel, size in sorted(listing.items()):
                if wanted is not None and rel not in wanted and rel != manifest:
                    continue
                local = self.staging / rel
                whole = local.is_file() and local.stat().st_size == size
                if not whole or (rel == manifest and wanted is None):
                    self._download(rel)
        return True

    def _note_listing(self, run_id: str, listing: dict[str, int]) -> None:
        with self._lock:
            for rel, size in listing.items():
                known = self._known.get(rel)
                if known is None or known[0] != size:
                    self._known[rel] = (size, -1)
            self._listed.add(run_id)

    def push_run(self, run_id: str) -> None:
        """The run's new or changed files, then its manifest (the commit)."""
        folder = self.staging / "runs" / run_id
        with self._errors(f"writing run {run_id}"):
            if run_id not in self._listed:
                self._note_listing(run_id, self._list(f"runs/{run_id}"))
            manifest = folder / "manifest.json"
            for local in sorted(p for p in folder.rglob("*") if p.is_file()):
                rel = local.relative_to(self.staging).as_posix()
                if local == manifest or _LOCAL_ONLY.search(rel):
                    continue
                if self._stale(rel, local):
                    self._upload(rel, local)
            if manifest.is_file():
                self._upload(manifest.relative_to(self.staging).as_posix(), manifest)

    def push(self, paths: Iterable[Path]) -> None:
        """Files of the staging folder that are new or changed, each in one put."""
        with self._errors("writing"):
            for local in paths:
                rel = local.relative_to(self.staging).as_posix()
                if local.is_file() and self._stale(rel, local):
                    self._upload(rel, local)

    def manifests(self) -> list[dict[str, Any]]:
        """Every run's manifest on the remote, newest first (read, not staged: a run this
        machine is running keeps its own until it pushes)."""
        with self._errors("listing runs"):
            fs = self.fs
            runs = self._remote("runs")
            fs.invalidate_cache(runs)
            try:
                folders = sorted(fs.ls(runs, detail=False), reverse=True)
            except FileNotFoundError:
                return []
            paths = [f"{f.rstrip('/')}/manifest.json" for f in folders]
            raw: dict[str, bytes] = fs.cat(paths, on_error="omit") if paths else {}
        out = []
        for path in paths:
            body = raw.get(path)
            if body is None:
                continue
            try:
                out.append(orjson.loads(body))
            except orjson.JSONDecodeError:
                log.warning("unreadable manifest %s", path)
        return out

    # --- the cache -------------------------------------------------------------------------------

    def _cache_rel(self, key: str) -> str:
        return f"cache/{key[:2]}/{key}.json"

    def cache_has(self, key: str) -> bool:
        """Whether the remote cache holds `key` (its prefix folder listed once per process)."""
        prefix = key[:2]
        with self._lock:
            keys = self._cache_keys.get(prefix)
        if keys is None:
            with self._errors("reading the cache"):
                listed = {Path(rel).stem for rel in self._list(f"cache/{prefix}")}
            with self._lock:
                keys = self._cache_keys.setdefault(prefix, set())
                keys |= listed
        return key in keys

    def cache_get(self, key: str) -> bytes | None:
        """The remote cache entry of `key`, None when it has none."""
        if not self.cache_has(key):
            return None
        with self._errors("reading the cache"):
            try:
                body: bytes = self.fs.cat_file(self._remote(self._cache_rel(key)))
            except FileNotFoundError:
                return None
        return body

    def cache_put(self, entries: dict[str, bytes]) -> None:
        """Cache entries to the remote (concurrent puts); content-addressed, so idempotent."""
        with self._errors("writing the cache"):
            self.fs.pipe({self._remote(self._cache_rel(k)): v for k, v in entries.items()})
        with self._lock:
            for key in entries:
                known = self._cache_keys.get(key[:2])
                if known is not None:
                    known.add(key)

    # --- the catalog -----------------------------------------------------------------------------

    def pull_small(self, prefix: str) -> list[Path]:
        """Every (small) file below `prefix` into the staging folder, read whole and in one
        concurrent batch; returns their local paths."""
        with self._errors(f"reading {prefix}/"):
            names = sorted(self._list(prefix))
            raw: dict[str, bytes] = (
                self.fs.cat([self._remote(n) for n in names], on_error="omit") if names else {}
            )
        out = []
        for path, body in sorted(raw.items()):
            rel = self._rel(path)
            local = self.staging / rel
            if not local.is_file() or local.read_bytes() != body:
                local.parent.mkdir(parents=True, exist_ok=True)
                tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
                tmp.write_bytes(body)
                os.replace(tmp, local)
            self._remember(rel, local)
            out.append(local)
        return out

    def mirror_gates(self, manifests: list[dict[str, Any]]) -> None:
        """The gate table and verdict of every finished run into the staging folder (what the
        catalog and the trends read)."""
        for m in manifests:
            self.pull_run(str(m["run_id"]), names=("gate.parquet", "verdict.json"))
