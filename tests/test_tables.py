"""Table helpers: map values found on the flat keys equal Arrow's map_lookup."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from evalpipe.tables import column_values, map_value

_MAPS = st.lists(
    st.one_of(
        st.none(),
        st.lists(
            st.tuples(
                st.sampled_from(["feature", "lang", "tier", "feat"]),
                st.one_of(st.none(), st.text(max_size=3)),
            ),
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(_MAPS, st.data())
def test_map_value_is_map_lookup_first(
    rows: list[list[tuple[str, str | None]] | None], data: st.DataObject
) -> None:
    """Repeated keys (the first wins), absent keys, null maps, null values, sliced and
    chunked columns."""
    maps = pa.array(rows, pa.map_(pa.string(), pa.string()))
    start = data.draw(st.integers(0, len(rows) - 1))
    stop = data.draw(st.integers(start, len(rows)))
    cut = data.draw(st.integers(start, stop))
    column = pa.chunked_array([maps.slice(start, cut - start), maps.slice(cut, stop - cut)])
    for key in ("feature", "lang", "nope"):
        want = pc.map_lookup(column, pa.scalar(key), "first")
        got = map_value(column, key)
        assert got.type == want.type
        assert got.to_pylist() == want.to_pylist()
        assert (
            map_value(maps, key).to_pylist()
            == pc.map_lookup(maps, pa.scalar(key), "first").to_pylist()
        )


def test_column_values_reads_attributes_keys() -> None:
    records = pa.table(
        {
            "arm": ["a", "b"],
            "attributes": pa.array(
                [[("feature", "triage")], []], pa.map_(pa.string(), pa.string())
            ),
            "labels": pa.array([None, [("thumbs", "1")]], pa.map_(pa.string(), pa.string())),
        }
    )
    assert column_values(records, "feature").to_pylist() == ["triage", None]
    assert column_values(records, "attributes.feature").to_pylist() == ["triage", None]
    assert column_values(records, "labels.thumbs").to_pylist() == [None, "1"]
    assert column_values(records, "arm").to_pylist() == ["a", "b"]
