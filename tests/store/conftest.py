"""A local S3-compatible server (moto's, on 127.0.0.1) for the remote-store tests, one a session."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BUCKET = "evalpipe-tests"

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """The server's environment, as a user sets it for a non-AWS S3 (set for the session)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto[server] is in the [dev] extra
        pytest.skip(f"moto[server] is not installed ({exc}): pip install -e '.[dev]'")
    pytest.importorskip("s3fs", reason="s3fs is not installed: pip install -e '.[dev]'")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(BUCKET)
        yield env
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_url(s3_server: dict[str, str]) -> str:
    """A fresh store URL in the test bucket."""
    return f"s3://{BUCKET}/store-{os.getpid()}-{next(_prefixes)}"


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Point the staging folders at a folder of this test: `staging("b")` is another machine's."""

    def use(name: str) -> Path:
        folder = tmp_path / f"staging-{name}"
        monkeypatch.setenv("EVALPIPE_STAGING_DIR", str(folder))
        return folder

    use("a")
    return use
