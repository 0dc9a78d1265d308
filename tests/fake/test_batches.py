"""The fake provider's batch APIs (OpenAI files + batches, Anthropic Message Batches), driven by
the real SDKs: each request of a batch answers exactly what the online endpoint answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from evalpipe.fake import BAD_KEY, serving

from .conftest import SYSTEM, tickets

POLLS = 3


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    """A fake of this module's own (its counts are ours), ending each batch at its third poll."""
    with serving(latency_ms=1.0, batch_polls=POLLS) as url:
        yield url


def _report(root: str) -> dict[str, Any]:
    report: dict[str, Any] = httpx.get(f"{root}/_fake/batches").json()
    return report


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    return {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 400, **extra}


def test_openai_batch_answers_as_online_after_its_polls_and_files_errors(root: str) -> None:
    client = openai.OpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0)
    bodies = {f"t{i}": _chat(text) for i, text in enumerate(tickets(5, seed=3))}
    bodies["bad"] = _chat("hello", temperature=7)  # out of range: a 400 line
    bodies["down"] = {**_chat("hello"), "model": "fake-down"}  # 503, as online
    bodies["quota"] = {**_chat("hello"), "model": "fake-throttled"}  # never runs: expires
    data = b"".join(
        orjson.dumps({"custom_id": c, "method": "POST", "url": "/v1/chat/completions", "body": b})
        + b"\n"
        for c, b in bodies.items()
    )
    before = _report(root)
    file = client.files.create(file=("in.jsonl", data), purpose="batch")
    assert file.id.startswith("file-") and file.bytes == len(data) and file.purpose == "batch"
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating" and batch.output_file_id is None
    statuses = [client.batches.retrieve(batch.id).status for _ in range(POLLS)]
    assert statuses == ["in_progress"] * (POLLS - 1) + ["expired"]  # a line expired
    done = client.batches.retrieve(batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (8, 5)
    assert done.output_file_id and done.error_file_id

    out = [orjson.loads(x) for x in client.files.content(done.output_file_id).content.splitlines()]
    assert sorted(x["custom_id"] for x in out) == [f"t{i}" for i in range(5)]
    for line in out:
        assert line["error"] is None and line["response"]["status_code"] == 200
        online = client.chat.completions.create(**bodies[line["custom_id"]])
        got = line["response"]["body"]
        assert got["choices"][0]["message"]["content"] == online.choices[0].message.content
        assert got["id"] == online.id and got["model"] == online.model
        assert got["usage"]["completion_tokens"] == online.usage.completion_tokens  # type: ignore[union-attr]
    errors = {
        x["custom_id"]: x
        for x in map(orjson.loads, client.files.content(done.error_file_id).content.splitlines())
    }
    assert errors["bad"]["response"]["status_code"] == 400
    assert "temperature" in errors["bad"]["response"]["body"]["error"]["message"]
    with pytest.raises(openai.BadRequestError):  # online says the same
        client.chat.completions.create(**bodies["bad"])
    assert errors["down"]["response"]["status_code"] == 503
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(**bodies["down"])
    assert errors["quota"]["response"] is None
    assert errors["quota"]["error"]["code"] == "batch_expired"

    after = _report(root)
    assert after["created"]["openai"] == before["created"]["openai"] + 1
    assert after["polls"][batch.id] == POLLS + 1
    assert after["lines"]["gpt-4o-mini"] - before["lines"].get("gpt-4o-mini", 0) == 6
    assert after["batches"][batch.id] == "expired"


def test_openai_batch_with_a_broken_input_file_fails_validation(root: str) -> None:
    client = openai.OpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0)
    line = {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": _chat("hi")}
    file = client.files.create(file=("in.jsonl", orjson.dumps(line) + b"\n"), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "invalid_url" and batch.errors.data[0].line == 1
    with pytest.raises(openai.BadRequestError, match="batches /v1/chat/completions only"):
        client.batches.create(
            input_file_id=file.id, endpoint="/v1/responses", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{root}/v1", api_key=BAD_KEY).batches.retrieve(batch.id)


def test_anthropic_message_batch_answers_as_online_and_reads_results_url(root: str) -> None:
    client = anthropic.Anthropic(base_url=root, api_key="k", max_retries=0)

    def params(text: str, **extra: Any) -> dict[str, Any]:
        messages = [{"role": "user", "content": text}]
        return {
            "model": "claude-haiku-4-5",
            "max_tokens": 400,
            "system": SYSTEM,
            "messages": messages,
            **extra,
        }

    requests: list[Any] = [
        {"custom_id": f"t{i}", "params": params(text)} for i, text in enumerate(tickets(4, seed=5))
    ]
    requests.append({"custom_id": "bad", "params": params("hi", temperature=3)})
    requests.append({"custom_id": "down", "params": {**params("hi"), "model": "fake-down"}})
    requests.append({"custom_id": "quota", "params": {**params("hi"), "model": "fake-throttled"}})
    before = _report(root)
    batch = client.messages.batches.create(requests=requests)
    assert batch.processing_status == "in_progress" and batch.results_url is None
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)  # (the SDK polls once to learn it)
    polled = [client.messages.batches.retrieve(batch.id) for _ in range(POLLS - 1)]
    assert [b.processing_status for b in polled] == ["in_progress"] * (POLLS - 2) + ["ended"]
    ended = polled[-1]
    assert ended.results_url and ended.results_url.endswith(
        f"/v1/messages/batches/{batch.id}/results"
    )
    counts = ended.request_counts
    assert (counts.succeeded, counts.errored, counts.expired, counts.processing) == (4, 2, 1, 0)

    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert set(results) == {"t0", "t1", "t2", "t3", "bad", "down", "quota"}
    for item in requests[:4]:
        got = results[item["custom_id"]]
        assert got.type == "succeeded"
        online = client.messages.create(**item["params"])
        assert got.message.content == online.content and got.message.id == online.id
        assert got.message.usage.output_tokens == online.usage.output_tokens
    bad = results["bad"]
    assert bad.type == "errored"
    assert bad.error.error.type == "invalid_request_error"
    assert "temperature" in bad.error.error.message
    down = results["down"]
    assert down.type == "errored" and down.error.error.type == "overloaded_error"
    with pytest.raises(anthropic.InternalServerError):  # online: 529 overloaded
        client.messages.create(**requests[-2]["params"])
    assert results["quota"].type == "expired"

    after = _report(root)
    assert after["created"]["anthropic"] == before["created"]["anthropic"] + 1
    assert after["polls"][batch.id] == POLLS + 1  # and once more by `results`
    assert after["downloads"] == before["downloads"] + 1
    with pytest.raises(anthropic.BadRequestError, match="not unique"):
        client.messages.batches.create(requests=[requests[0], requests[0]])
