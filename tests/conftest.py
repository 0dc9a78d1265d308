"""Session fixtures: the fake provider (real HTTP on loopback) and one Prefect test harness."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[str]:
    """Root URL of the fake provider; `base_url: builtin:fake` resolves to it during the tests."""
    from evalpipe.fake import serving
    from evalpipe.providers.endpoint import FAKE_URL_ENV

    with serving(host="127.0.0.1", port=0, latency_ms=2.0) as root:
        old = os.environ.get(FAKE_URL_ENV)
        os.environ[FAKE_URL_ENV] = root
        try:
            yield root
        finally:
            if old is None:
                os.environ.pop(FAKE_URL_ENV, None)
            else:
                os.environ[FAKE_URL_ENV] = old


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session (about 13 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
