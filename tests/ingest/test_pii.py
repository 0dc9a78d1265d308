"""redact_pii: emails, phones, cards, API keys; innocent numbers untouched."""

from __future__ import annotations

import pyarrow as pa
import pytest

from evalpipe.ingest import redact_pii


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+x@example.co.uk today", "write to [EMAIL] today"),
        ("call +1 415-555-0123 now", "call [PHONE] now"),
        ("or (415) 555-0199", "or [PHONE]"),
        ("or 415.555.0100.", "or [PHONE]."),
        ("+44 20 7946 0958", "[PHONE]"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111111111111111", "card [CARD]"),
        ("amex 3782-822463-10005", "amex [CARD]"),
        ("key sk-proj-abcdefghijklmnop1234", "key [API_KEY]"),
        ("sk-ant-api03-abcdefghijklmnopqrstu", "[API_KEY]"),
        ("aws AKIAABCDEFGHIJKLMNOP", "aws [API_KEY]"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[API_KEY]"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz12", "Authorization: Bearer [API_KEY]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert redact_pii(pa.array([text])).to_pylist() == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "created 1729730156000 at 2024-10-24T01:02:03Z",
        "tokens 36501, order 12345, version 1.2.3, price $1,234.56",
        "id chatcmpl-abc123 sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "request_id req_00019, custom_id request-64",
    ],
)
def test_leaves_innocent_text_alone(text: str) -> None:
    assert redact_pii(pa.array([text])).to_pylist() == [text]


def test_nulls_and_chunked_arrays() -> None:
    chunked = pa.chunked_array([["a@b.io", None], ["x"]])
    out = redact_pii(chunked)
    assert isinstance(out, pa.ChunkedArray)
    assert out.to_pylist() == ["[EMAIL]", None, "x"]
