"""PII redaction of the texts a report shows (the patterns themselves: tests/test_pii.py)."""

from __future__ import annotations

from evalpipe.report.redact import redact_texts


def test_redact_texts_keeps_nulls_and_order() -> None:
    assert redact_texts(["a@b.io", None, "plain"]) == ["[EMAIL]", None, "plain"]


def test_redact_texts_of_nothing() -> None:
    assert redact_texts([]) == []
