"""PII redaction of the texts a report shows."""

from __future__ import annotations

import pyarrow as pa
import pytest

from evalpipe.report.redact import _fallback, redact_texts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+x@mail.example.co.uk today", "write to [EMAIL] today"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("call +44 20 7946 0958 now", "call [PHONE] now"),
        ("call (415) 555-0134", "call [PHONE]"),
        ("call 415-555-0134.", "call [PHONE]."),
        ("key sk-proj-abcdefghijklmnopqrstuv12", "key [API_KEY]"),
        ("key sk-ant-api03-abcdefghijklmnopqrstuv", "key [API_KEY]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [API_KEY]"),
        (
            "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
            "Authorization: Bearer [API_KEY]",
        ),
        ("order 12345 on 2026-11-25 costs $12.50", "order 12345 on 2026-11-25 costs $12.50"),
    ],
)
def test_fallback_patterns(text: str, expected: str) -> None:
    assert _fallback(pa.array([text])).to_pylist() == [expected]


def test_redact_texts_keeps_nulls_and_order() -> None:
    out = redact_texts(["a@b.io", None, "plain"])
    assert out[1:] == [None, "plain"]
    assert "a@b.io" not in (out[0] or "")


def test_redact_texts_of_nothing() -> None:
    assert redact_texts([]) == []


def test_prefers_the_ingest_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    import evalpipe.ingest as ingest

    monkeypatch.setattr(ingest, "redact_pii", lambda a: pa.array(["[X]"] * len(a)), raising=False)
    assert redact_texts(["jane@example.com"]) == ["[X]"]


def test_falls_back_when_the_ingest_redactor_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import evalpipe.ingest as ingest

    def broken(texts: object) -> object:
        raise TypeError("expects a str")

    monkeypatch.setattr(ingest, "redact_pii", broken, raising=False)
    assert redact_texts(["jane@example.com"]) == ["[EMAIL]"]
