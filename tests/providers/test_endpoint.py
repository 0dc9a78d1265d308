"""The endpoint's first-contact probe: a TCP connect, or HTTP through a proxy from the env."""

from __future__ import annotations

import pytest

from evalpipe.providers.endpoint import _proxied


def test_no_proxy_in_the_environment_means_a_direct_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    assert not _proxied("api.openai.com")


def test_a_proxy_is_used_unless_no_proxy_names_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("https_proxy", "no_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.example")
    assert _proxied("api.openai.com")
    assert not _proxied("localhost")
    assert not _proxied("llm.internal.example")
