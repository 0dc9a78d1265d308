"""The one PII rule (evalpipe/pii.py): what it redacts, what it leaves alone, and that ingest,
reports and the `no_pii` check all use it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from evalpipe.pii import PII_PATTERNS, contains_pii, redact_pii

POSITIVES = [
    # emails
    ("write to john.doe+x@example.co.uk today", "write to [EMAIL] today"),
    ("a@b.io", "[EMAIL]"),
    # phone numbers
    ("call +1 415-555-0123 now", "call [PHONE] now"),
    ("+44 20 7946 0958", "[PHONE]"),
    ("+49 (30) 901820", "[PHONE]"),
    ("or (415) 555-0199", "or [PHONE]"),
    ("or 415.555.0100.", "or [PHONE]."),
    ("call 415-555-0134.", "call [PHONE]."),
    # card numbers (Luhn-valid)
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ("card 4111111111111111", "card [CARD]"),
    ("card 4111-1111-1111-1111", "card [CARD]"),
    ("mc 5555555555554444, visa 4012888888881881", "mc [CARD], visa [CARD]"),
    ("amex 3782-822463-10005", "amex [CARD]"),
    # API-key shapes
    ("key sk-proj-abcdefghijklmnop1234", "key [API_KEY]"),
    ("sk-ant-api03-abcdefghijklmnopqrstu", "[API_KEY]"),
    ("stripe sk_live_abcdefghijklmnop1234", "stripe [API_KEY]"),
    ("aws AKIAABCDEFGHIJKLMNOP", "aws [API_KEY]"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[API_KEY]"),
    ("github_pat_abcdefghijklmnopqrstuv_123", "[API_KEY]"),
    ("slack xoxb-1234567890-abcdefghij", "slack [API_KEY]"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "google [API_KEY]"),
    ("hf hf_abcdefghijklmnopqrstuvwxyz012345", "hf [API_KEY]"),
    ("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2Q", "jwt [API_KEY]"),
    ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz12", "Authorization: Bearer [API_KEY]"),
    ("authorization: bearer abcdefghijklmnopqrstuvwxyz12", "authorization: Bearer [API_KEY]"),
    # a key's digits are not taken for a card
    ("sk-proj-4111111111111111abcdef", "[API_KEY]"),
]

NEGATIVES = [
    "created 1729730156000 at 2024-10-24T01:02:03Z",  # epoch ms, ISO time
    "tokens 36501, order 12345, version 1.2.3, price $1,234.56",
    "id chatcmpl-abc123 sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "request_id req_00019, custom_id request-64",
    "order 4111 1111 1111 1112 (fails the Luhn check)",
    "tracking 5555555555554445",  # card-shaped, not Luhn-valid
    "room 415 on floor 5, 2026-11-25",
    "sk-short, task-1234567890abcdefghij, not@an-email",
    "bearer of bad news",
    "[EMAIL] and [PHONE] are already redacted",
    "",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVES)
def test_redacts(text: str, expected: str) -> None:
    assert redact_pii(pa.array([text])).to_pylist() == [expected]
    assert contains_pii(pa.array([text])).to_pylist() == [True]


@pytest.mark.parametrize("text", NEGATIVES)
def test_leaves_innocent_text_alone(text: str) -> None:
    assert redact_pii(pa.array([text])).to_pylist() == [text]
    assert contains_pii(pa.array([text])).to_pylist() == [False]


def test_every_pattern_has_a_positive() -> None:
    kinds = {p.replacement for p in PII_PATTERNS}
    redacted = " ".join(expected for _, expected in POSITIVES)
    assert all(kind in redacted for kind in kinds)


def test_nulls_and_chunked_arrays() -> None:
    chunked = pa.chunked_array([["a@b.io", None, "4111111111111111"], ["x"], []])
    out = redact_pii(chunked)
    assert isinstance(out, pa.ChunkedArray)
    assert out.to_pylist() == ["[EMAIL]", None, "[CARD]", "x"]
    assert contains_pii(chunked).to_pylist() == [True, None, True, False]


def test_large_strings_and_non_strings() -> None:
    assert redact_pii(pa.array(["a@b.io"], pa.large_string())).to_pylist() == ["[EMAIL]"]
    assert redact_pii(pa.array([4111111111111111])).to_pylist() == ["[CARD]"]


def test_ingest_reports_and_the_no_pii_check_use_this_rule() -> None:
    import evalpipe.ingest
    import evalpipe.ingest.quarantine
    import evalpipe.report.redact
    from evalpipe.score.rules import CHECKS
    from evalpipe.spec import NoPii

    assert evalpipe.ingest.redact_pii is redact_pii
    assert evalpipe.ingest.quarantine.redact_pii is redact_pii
    texts = [text for text, _ in POSITIVES] + NEGATIVES + [None]
    expected = redact_pii(pa.array(texts, pa.string())).to_pylist()
    assert evalpipe.report.redact.redact_texts(texts) == expected
    frame = pa.table({"output_text": pa.array(texts, pa.string())})
    passed = CHECKS["no_pii"](frame, NoPii(name="no_pii", type="no_pii")).to_pylist()
    assert passed == [
        None if f is None else not f for f in contains_pii(frame["output_text"]).to_pylist()
    ]
    assert passed == [False] * len(POSITIVES) + [True] * len(NEGATIVES) + [None]
