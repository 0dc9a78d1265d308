"""What every adapter shares: the adapter base, the bad-record error, and canonical-record helpers.

An adapter turns one parsed input item (a JSON value) into canonical rows (dicts keyed by RECORDS
column names) or raises `BadRecord` naming the field and the reason; the reader turns that into a
quarantine row. What is left out on purpose (a span that is not a model call) is a `Skipped` with
its reason, so every span and observation is counted. Rows are collected column-wise by
`RecordColumns`, never one table per record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import orjson
import pyarrow as pa

from evalpipe.tables import RECORDS

__all__ = [
    "FINISH_REASONS",
    "Adapter",
    "BadRecord",
    "Location",
    "RecordColumns",
    "Row",
    "Skipped",
    "attributes_of",
    "canonical_request",
    "envelope",
    "expect_dict",
    "expect_list",
    "id_text",
    "int_or_none",
    "json_text",
    "labels_of",
    "maybe_json",
    "num_or_none",
    "openai_usage",
    "params_of",
    "read_params",
    "sha256_hex",
    "stop_list",
    "str_or_none",
    "timestamp_us",
]

Row = dict[str, Any]

FINISH_REASONS: Final = frozenset(
    {"stop", "length", "tool_calls", "content_filter", "refusal", "error", "other"}
)

_OPT_SORTED: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class BadRecord(ValueError):
    """An input item that cannot become a canonical record.

    Attributes:
        field: dotted path of the offending field (``request.messages[2].role``), or None.
        reason: what is wrong, for a person reading the quarantine.
    """

    def __init__(self, field: str | None, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field or '-'}: {reason}")


class Skipped:
    """An input item left out on purpose (not a model call, a repeated id), counted by `reason`."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Location:
    """Where an item came from: file and 1-based line (array element for a JSON array)."""

    __slots__ = ("file", "line", "raw")

    def __init__(self, file: str, line: int, raw: bytes | None = None) -> None:
        self.file, self.line, self.raw = file, line, raw


class Adapter:
    """Base of the format adapters. Subclasses set `name`, `version`, `sniff` and `convert`.

    One instance serves one ingest call, so adapters that join files (batch input with output) can
    keep state and emit the joined rows from `finish`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    provider: ClassVar[str | None] = None
    parallel_safe: ClassVar[bool] = False
    """Whether items convert independently (no state across items), so workers may share a file."""

    @property
    def source_format(self) -> str:
        return f"{self.name}@{self.version}"

    @staticmethod
    def sniff(obj: Any) -> bool:
        """Whether a parsed item looks like this format (used by auto-detection)."""
        return False

    def convert(self, obj: Any, loc: Location) -> Sequence[Row | BadRecord | Skipped]:
        """Rows for one parsed item; raise `BadRecord` for one that cannot be used.

        An item holding many records (an OTLP document) may return a `BadRecord` in place of
        each record that cannot be used, so that the others are kept, and a `Skipped` for each
        span or observation it leaves out on purpose.
        """
        raise NotImplementedError

    def finish(self) -> Iterable[tuple[Location, Row | BadRecord | Skipped]]:
        """Rows (or bad records) held back until every file was read; most adapters have none."""
        return ()


# --- small typed getters -------------------------------------------------------------------------


def expect_dict(value: Any, field: str | None, *, required: bool = True) -> dict[str, Any]:
    """`value` as a dict, `{}` when absent and optional; `BadRecord` when of the wrong type."""
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return {}
    if value is None and field is not None:
        raise BadRecord(field, "missing required field")
    raise BadRecord(field, f"expected an object, got {_type_name(value)}")


def expect_list(value: Any, field: str, *, required: bool = True) -> list[Any]:
    """`value` as a list, `[]` when absent and optional; `BadRecord` when of the wrong type."""
    if isinstance(value, list):
        return value
    if value is None and not required:
        return []
    if value is None:
        raise BadRecord(field, "missing required field")
    raise BadRecord(field, f"expected a list, got {_type_name(value)}")


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def str_or_none(value: Any, field: str) -> str | None:
    """A string field; numbers are accepted as their text, other types are bad."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise BadRecord(field, f"expected a string, got {_type_name(value)}")


_MAX_INT: Final = 2**62


def int_or_none(value: Any, field: str) -> int | None:
    """A non-negative integer field (token counts); integral floats are accepted."""
    if type(value) is int and 0 <= value <= _MAX_INT:  # the common case, checked first
        return value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(field, f"expected an integer, got {_type_name(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise BadRecord(field, f"expected an integer, got {value}")
    if value < 0 or value > _MAX_INT:
        raise BadRecord(field, f"out of range: {value}")
    return int(value)


def bool_or_none(value: Any, field: str) -> bool | None:
    """A true/false field (`parallel_tool_calls`)."""
    if value is None or isinstance(value, bool):
        return value
    raise BadRecord(field, f"expected true or false, got {_type_name(value)}")


def num_or_none(value: Any, field: str) -> float | None:
    """A finite number field (latencies, parameters)."""
    kind = type(value)
    if kind is float and value - value == 0:  # finite (inf - inf and nan - nan are nan)
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(field, f"expected a number, got {_type_name(value)}")
    out = float(value)
    if out != out or out in (float("inf"), float("-inf")):
        raise BadRecord(field, f"not a finite number: {value}")
    return out


# Epoch values above these are taken as milliseconds / microseconds / nanoseconds.
_MS, _US, _NS = 1e11, 1e14, 1e17
_MIN_US, _MAX_US = 0, 253402300799_000000  # 1970 … 9999-12-31


def timestamp_us(value: Any, field: str) -> int | None:
    """Microseconds since the epoch from an ISO-8601 string or epoch seconds/ms/µs/ns."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRecord(field, "expected a timestamp, got a boolean")
    if isinstance(value, int | float):
        x = float(value)
        if x != x:
            raise BadRecord(field, "not a timestamp: NaN")
        if abs(x) >= _NS:
            us = int(value) // 1000 if isinstance(value, int) else int(x / 1000)
        elif abs(x) >= _US:
            us = int(x)
        elif abs(x) >= _MS:
            us = round(x * 1000)
        else:
            us = round(x * 1_000_000)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadRecord(field, f"not a timestamp: {value[:40]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - _EPOCH
        us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    else:
        raise BadRecord(field, f"expected a timestamp, got {_type_name(value)}")
    if not _MIN_US <= us <= _MAX_US:
        raise BadRecord(field, f"timestamp out of range: {value}")
    return us


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# --- JSON ----------------------------------------------------------------------------------------


def json_text(value: Any) -> str:
    """Compact JSON of a value (non-string keys allowed)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def maybe_json(text: Any) -> Any:
    """Parsed JSON when `text` is a JSON string, else the value itself (tool-call arguments)."""
    if isinstance(text, str):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return text


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_request(request: Mapping[str, Any]) -> tuple[str, str]:
    """The canonical request's JSON (sorted keys) and its sha256."""
    data = orjson.dumps(request, option=_OPT_SORTED)
    return data.decode(), hashlib.sha256(data).hexdigest()


def params_of(
    *,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    stop: list[str],
    seed: int | None,
    extra: Mapping[str, Any],
    parallel_tool_calls: bool | None = None,
) -> dict[str, Any]:
    """The canonical `params` object; `parallel_tool_calls` and `extra` only when set.

    `parallel_tool_calls` is OpenAI's flag and the inverse of Anthropic's
    `tool_choice.disable_parallel_tool_use`: one setting both providers understand, so it
    translates across them instead of riding in `extra`. Left out when unset, so requests
    logged without it keep the `request_sha256` they always had.
    """
    out: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "stop": stop,
        "seed": seed,
    }
    if parallel_tool_calls is not None:
        out["parallel_tool_calls"] = parallel_tool_calls
    if extra:
        out["extra"] = dict(extra)
    return out


def stop_list(value: Any, field: str) -> list[str]:
    """`stop` as a list of strings (a single string becomes a one-item list)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise BadRecord(field, "expected a string or a list of strings")


def openai_usage(usage: Any, row: Row, *, inputs: str, outputs: str) -> None:
    """Token columns from an OpenAI ``usage`` object (chat: ``prompt_tokens`` / ``completion_tokens``,
    Responses: ``input_tokens`` / ``output_tokens``), cached and reasoning tokens in their details."""
    usage = expect_dict(usage, "response.usage", required=False)
    row["input_tokens"] = int_or_none(usage.get(inputs), f"response.usage.{inputs}")
    row["output_tokens"] = int_or_none(usage.get(outputs), f"response.usage.{outputs}")
    for column, side, key in (
        ("cached_input_tokens", inputs, "cached_tokens"),
        ("reasoning_tokens", outputs, "reasoning_tokens"),
    ):
        details = usage.get(f"{side}_details")
        if isinstance(details, dict):
            row[column] = int_or_none(details.get(key), f"response.usage.{side}_details.{key}")


# --- logged parameters -------------------------------------------------------------------------

_NULL_TEXTS: Final = frozenset({"", "null", "none", "undefined"})


def _number(value: Any) -> float | None:
    """A finite number, from a number or its text ("0.7"); None when it is neither."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number - number == 0 else None


def _count(value: Any) -> int | None:
    """A non-negative integer (max_tokens, seed), from a number or its text; else None."""
    number = _number(value)
    return int(number) if number is not None and number.is_integer() and number >= 0 else None


def _stop(value: Any) -> list[str] | None:
    value = maybe_json(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    return None


_READERS: Final = {
    "max_tokens": _count,
    "temperature": _number,
    "top_p": _number,
    "stop": _stop,
    "seed": _count,
}


def read_params(logged: Mapping[str, Any], names: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The canonical `params` of parameters an observability tool logged.

    Such tools keep values as text ("0.7", "false", "null"). Each canonical parameter in `names`
    (``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``) is read from the first of its
    logged names whose value means it for certain; null, "null" and "" are absent; anything
    else (framework settings, ``max_tokens: -1``, ``temperature: "hot"``) stays in ``extra`` as
    logged, for replay to send only what the target API accepts.
    """
    present = {
        key: value
        for key, value in logged.items()
        if value is not None
        and not (isinstance(value, str) and value.strip().lower() in _NULL_TEXTS)
    }
    params: dict[str, Any] = {}
    used: set[str] = set()
    for name, keys in names.items():
        for key in keys:
            if key in present and name not in params:
                value = _READERS[name](present[key])
                if value is not None:
                    params[name] = value
                    used.add(key)
    return params_of(
        max_tokens=params.get("max_tokens"),
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        stop=params.get("stop", []),
        seed=params.get("seed"),
        extra={key: value for key, value in present.items() if key not in used},
    )


# --- metadata ------------------------------------------------------------------------------------


def attributes_of(metadata: Any, field: str) -> list[tuple[str, str]] | None:
    """A metadata object as map entries (string values; other values JSON-encoded)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise BadRecord(field, f"expected an object, got {_type_name(metadata)}")
    return [
        (str(key), value if type(value) is str else json_text(value))
        for key, value in metadata.items()
        if value is not None
    ]


def labels_of(value: Any, field: str) -> list[tuple[str, float]] | None:
    """Numeric feedback as map entries; booleans become 1.0 / 0.0, non-numbers are skipped."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRecord(field, f"expected an object, got {_type_name(value)}")
    out: list[tuple[str, float]] = []
    for key, v in value.items():
        if isinstance(v, bool):
            out.append((str(key), 1.0 if v else 0.0))
        elif isinstance(v, int | float) and v == v:
            out.append((str(key), float(v)))
    return out or None


def id_text(value: Any) -> str | None:
    """An id-like value as text (ids are strings or integers in the wild), else None."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def envelope(obj: dict[str, Any], row: Row) -> dict[str, Any]:
    """Fill the log-envelope columns (timing, metadata, feedback); returns the metadata."""
    metadata = expect_dict(obj.get("metadata"), "metadata", required=False)
    row["timestamp"] = timestamp_us(obj.get("timestamp"), "timestamp")
    row["latency_ms"] = num_or_none(obj.get("latency_ms"), "latency_ms")
    row["ttft_ms"] = num_or_none(obj.get("ttft_ms"), "ttft_ms")
    row["attributes"] = attributes_of(metadata, "metadata") if metadata else None
    row["labels"] = labels_of(obj.get("labels"), "labels")
    reference = obj.get("reference")
    if reference is not None:
        row["reference"] = reference if isinstance(reference, str) else json_text(reference)
    for key in ("session_id", "user_id"):
        value = metadata.get(key, obj.get(key))
        row[key] = id_text(value) if value is not None else None
    if obj.get("truncated") is True or metadata.get("truncated") is True:
        row["replayable"], row["replay_issue"] = False, "truncated"
    elif obj.get("redacted") is True or metadata.get("redacted") is True:
        row["replayable"], row["replay_issue"] = False, "redacted"
    return metadata


# --- column-wise collection ----------------------------------------------------------------------


_COLUMNS: Final = tuple(RECORDS.names)


class RecordColumns:
    """Canonical rows collected as tuples in RECORDS column order, then made a table in one go."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []

    @property
    def n(self) -> int:
        return len(self._rows)

    def add(self, row: Mapping[str, Any]) -> None:
        self._rows.append(tuple(map(row.get, _COLUMNS)))

    def to_table(self) -> pa.Table:
        """The collected rows as a RECORDS table; the collector is emptied."""
        table, bad = self.to_table_checked()
        if bad:
            raise BadRecord(None, bad[0][2])
        return table

    def to_table_checked(self) -> tuple[pa.Table, list[tuple[str, int | None, str]]]:
        """The rows that convert, and (file, line, reason) of those that do not (adapter bugs)."""
        rows, self._rows = self._rows, []
        try:
            return _table(rows), []
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
        good: list[tuple[Any, ...]] = []
        bad: list[tuple[str, int | None, str]] = []
        for row in rows:
            try:
                _table([row])
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                line = row[_LINE]
                bad.append(
                    (
                        str(row[_FILE]),
                        line if isinstance(line, int) else None,
                        f"cannot store: {exc}",
                    )
                )
                continue
            good.append(row)
        return _table(good), bad


_FILE: Final = _COLUMNS.index("source_file")
_LINE: Final = _COLUMNS.index("source_line")
_REPLAYABLE: Final = _COLUMNS.index("replayable")


def _table(rows: list[tuple[Any, ...]]) -> pa.Table:
    if not rows:
        return RECORDS.empty_table()
    columns: list[Any] = list(zip(*rows, strict=True))
    columns[_REPLAYABLE] = [value is not False for value in columns[_REPLAYABLE]]
    return pa.Table.from_arrays(
        [pa.array(column, field.type) for column, field in zip(columns, RECORDS, strict=True)],
        schema=RECORDS,
    )
