"""`canonical@1`: records.parquet itself (or its rows as JSON Lines), read as it stands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    Row,
    attributes_of,
    expect_dict,
    int_or_none,
    labels_of,
    num_or_none,
    str_or_none,
    timestamp_us,
)
from evalpipe.tables import RECORDS, conform

__all__ = ["Canonical"]

_REQUIRED = ("record_id", "request_sha256", "request")


class Canonical(Adapter):
    """Canonical records: a records.parquet (batch by batch) or JSONL rows of its columns."""

    name: ClassVar[str] = "canonical"
    version: ClassVar[int] = 1
    parallel_safe: ClassVar[bool] = True
    parquet_columns: ClassVar[tuple[str, ...]] = _REQUIRED

    @staticmethod
    def sniff(obj: Any) -> bool:
        return isinstance(obj, dict) and all(k in obj for k in _REQUIRED)

    def convert(self, obj: Any, loc: Location) -> list[Row]:
        obj = expect_dict(obj, None)
        row: Row = {}
        for field in RECORDS:
            value = obj.get(field.name)
            name, kind = field.name, field.type
            if name == "timestamp":
                row[name] = timestamp_us(value, name)
            elif pa.types.is_string(kind):
                row[name] = str_or_none(value, name)
            elif pa.types.is_int64(kind):
                row[name] = int_or_none(value, name)
            elif pa.types.is_float64(kind):
                row[name] = num_or_none(value, name)
            elif pa.types.is_boolean(kind):
                if value is not None and not isinstance(value, bool):
                    raise BadRecord(name, "expected a boolean")
                row[name] = value
            elif name == "attributes":
                row[name] = attributes_of(value, name)
            elif name == "labels":
                row[name] = labels_of(value, name)
        if not isinstance(row.get("request"), str):
            raise BadRecord("request", "expected the canonical request as a JSON string")
        return [row]

    def read_parquet(self, path: Path) -> Iterator[tuple[Location, pa.Table]]:
        """The file's row groups as RECORDS tables (missing columns null, replayable default true)."""
        for batch in pq.ParquetFile(path).iter_batches(batch_size=20_000):
            table = conform(pa.Table.from_batches([batch]), RECORDS)
            if table["replayable"].null_count:
                index = RECORDS.get_field_index("replayable")
                table = table.set_column(
                    index, RECORDS.field(index), pc.fill_null(table["replayable"], True)
                )
            yield Location(str(path), 0), table
