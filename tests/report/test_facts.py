"""Run facts about replay fidelity: what was not sent as logged, and why requests were skipped."""

from __future__ import annotations

from typing import Any

from evalpipe.report.facts import not_sent, skipped

COVERAGE = {"baseline": {}, "claude": {}, "logged": {}}


def test_a_reason_on_every_arm_is_said_once() -> None:
    group = {"reason": "framework setting", "params": ["http_options", "maxRetries"], "records": 12}
    manifest: dict[str, Any] = {
        "coverage": COVERAGE,
        "params_not_replayed_reasons": {
            "baseline": [group],
            "claude": [
                group,
                {
                    "reason": "no equivalent on Anthropic Messages",
                    "params": ["temperature"],
                    "records": 30,
                },
            ],
        },
    }
    assert not_sent(manifest) == [
        "12 records: `http_options`, `maxRetries` not sent — framework setting",
        "30 records on claude: `temperature` not sent — no equivalent on Anthropic Messages",
    ]


def test_skips_are_counted_by_reason() -> None:
    manifest: dict[str, Any] = {
        "coverage": COVERAGE,
        "skipped": {
            "baseline": {
                "not replayable: previous_response_id": 2,
                "not replayable: no_content_captured": 1,
            },
            "claude": {
                "not replayable: previous_response_id": 2,
                "not replayable: no_content_captured": 1,
                "untranslatable: n > 1": 3,
                "budget_usd reached": 40,
            },
        },
    }
    assert skipped(manifest) == [
        "not replayable: previous_response_id 2, no content captured 1",
        "untranslatable on claude: n > 1 (3)",
        "budget_usd reached 40 on claude",
    ]


def test_nothing_lost_says_nothing() -> None:
    assert not_sent({"coverage": COVERAGE}) == [] == skipped({})
