"""Properties: no adapter raises anything but BadRecord on any JSON value, and every row it
returns (beside bad and skipped items) fits the RECORDS schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalpipe.ingest.formats import ADAPTERS
from evalpipe.ingest.records import Adapter, BadRecord, Location, RecordColumns
from tests.ingest.helpers import chat_record
from tests.ingest.test_detect import SAMPLES

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)

# Realistic records to mutate, so the fuzz reaches deep into each adapter.
SEEDS: dict[str, Any] = {
    **{name.split("@")[0]: sample for name, sample in SAMPLES.items()},
    "openai_chat": chat_record(0),
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out += _paths(inner, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    out = copy.copy(value)
    out[path[0]] = _replace(value[path[0]], path[1:], new)
    return out


def _check(adapter: Adapter, value: Any) -> None:
    columns = RecordColumns()
    try:
        rows = list(adapter.convert(value, Location("f.jsonl", 1, b"{}")))
    except BadRecord:
        rows = []
    rows += [r for _, r in adapter.finish()]
    for row in rows:
        if isinstance(row, dict):
            row.setdefault("record_id", "r")
            columns.add(row)
    _, bad = columns.to_table_checked()
    assert bad == []


@pytest.mark.parametrize("name", list(ADAPTERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_arbitrary_json_never_raises(name: str, value: Any) -> None:
    _check(ADAPTERS[name](), value)


@pytest.mark.parametrize("name", list(ADAPTERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_records_never_raise(name: str, data: st.DataObject) -> None:
    seed = SEEDS[name]
    value = seed
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(value)))
        value = _replace(value, path, data.draw(json_values))
    _check(ADAPTERS[name](), value)
