"""`bfcl@1`: Berkeley Function Calling Leaderboard question files (+ their possible answers).

Question lines ``{"id", "question": [[messages]], "function": [...]}`` become requests (there are
no responses); the ground truth of the matching ``possible_answer`` line goes to `reference`
as JSON. Answers are read from the files given and, for a question file, from the sibling
``possible_answer/<same name>`` when it exists. BFCL's type names are made JSON Schema: ``dict`` →
``object``, ``float`` → ``number``, ``tuple`` → ``array``, ``any`` → no type constraint.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    Row,
    canonical_request,
    expect_dict,
    expect_list,
    id_text,
    json_text,
    params_of,
)

__all__ = ["Bfcl", "json_schema"]

log = logging.getLogger(__name__)

_TYPES: Final = {"dict": "object", "float": "number", "tuple": "array"}
_CATEGORY = re.compile(r"^(.*?)_\d[\d-]*$")


def _type(value: Any) -> Any:
    if isinstance(value, list):
        return [_TYPES.get(v, v) for v in value if v != "any"]
    return _TYPES.get(value, value)


def json_schema(schema: Any) -> Any:
    """A BFCL parameter schema as JSON Schema (types renamed; the non-standard `optional` dropped)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            if value == "any":
                continue
            out[key] = _type(value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = json_schema(value)
        elif key == "optional":
            continue
        else:
            out[key] = value
    return out


def _category(record_id: str) -> str:
    match = _CATEGORY.match(record_id)
    return match.group(1) if match else record_id


class Bfcl(Adapter):
    """BFCL question files, joined with their possible answers by id."""

    name: ClassVar[str] = "bfcl"
    version: ClassVar[int] = 1

    def __init__(self) -> None:
        self._questions: dict[str, tuple[Location, Row]] = {}
        self._answers: dict[str, Any] = {}
        self._answer_files: set[Path] = set()

    @staticmethod
    def sniff(obj: Any) -> bool:
        if not isinstance(obj, dict) or "id" not in obj:
            return False
        return ("question" in obj and "function" in obj) or "ground_truth" in obj

    def convert(self, obj: Any, loc: Location) -> list[Row]:
        obj = expect_dict(obj, None)
        rid = id_text(obj.get("id"))
        if rid is None:
            raise BadRecord("id", "missing required field")
        if "ground_truth" in obj and "question" not in obj:
            self._answers[rid] = obj["ground_truth"]
            return []
        if rid in self._questions:
            raise BadRecord("id", "duplicate record_id")
        self._load_answers(Path(loc.file))
        turns = expect_list(obj.get("question"), "question")
        if not turns:
            raise BadRecord("question", "no turns")
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        first = turns[0]
        if isinstance(first, dict):  # some releases hold one flat list of messages
            first, turns = turns, [turns]
        for i, msg in enumerate(expect_list(first, "question[0]")):
            msg = expect_dict(msg, f"question[0][{i}]")
            role, content = msg.get("role"), msg.get("content")
            if not isinstance(content, str):
                raise BadRecord(f"question[0][{i}].content", "expected a string")
            if role == "system":
                system.append(content)
            elif role in ("user", "assistant"):
                messages.append({"role": role, "content": [{"type": "text", "text": content}]})
            else:
                raise BadRecord(f"question[0][{i}].role", f"unknown role {role!r}"[:80])
        tools = []
        for i, fn in enumerate(expect_list(obj.get("function"), "function")):
            fn = expect_dict(fn, f"function[{i}]")
            name = fn.get("name")
            if not isinstance(name, str):
                raise BadRecord(f"function[{i}].name", "missing tool name")
            parameters = json_schema(fn.get("parameters") or {"type": "object"})
            tools.append(
                {"name": name, "description": fn.get("description"), "parameters": parameters}
            )
        request = {
            "system": "\n\n".join(system) if system else None,
            "messages": messages,
            "tools": tools,
            "tool_choice": None,
            "response_format": None,
            "params": params_of(
                max_tokens=None, temperature=None, top_p=None, stop=[], seed=None, extra={}
            ),
        }
        row: Row = {"record_id": rid}
        row["request"], row["request_sha256"] = canonical_request(request)
        row["request_raw"] = json_text(obj)
        row["attributes"] = [("category", _category(rid)), ("bfcl_file", Path(loc.file).name)]
        if len(turns) > 1:
            # later turns answer the model's earlier replies, which one request cannot carry
            row["replayable"], row["replay_issue"] = False, "untranslatable: multi-turn question"
        self._questions[rid] = (loc, row)
        return []

    def _load_answers(self, question_file: Path) -> None:
        path = question_file.parent / "possible_answer" / question_file.name
        if path in self._answer_files:
            return
        self._answer_files.add(path)
        if not path.is_file():
            return
        with path.open("rb") as fh:
            for n, line in enumerate(fh, start=1):
                try:
                    answer = orjson.loads(line)
                except orjson.JSONDecodeError:
                    if line.strip():
                        log.warning("%s:%d: not JSON, ignored", path, n)
                    continue
                if isinstance(answer, dict) and id_text(answer.get("id")) is not None:
                    self._answers.setdefault(str(answer["id"]), answer.get("ground_truth"))

    def finish(self) -> Iterable[tuple[Location, Row | BadRecord]]:
        questions, self._questions = self._questions, {}
        for rid, (loc, row) in questions.items():
            if rid in self._answers:
                row["reference"] = json_text(self._answers[rid])
            elif _category(rid) == "irrelevance":
                row["reference"] = "[]"  # the expected behaviour is to call no function
            yield loc, row
