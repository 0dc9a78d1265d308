"""Human or external labels per record (`labels:`): from a logged column or a file.

`label_values` gives one number per labelled record, mapped by the label's `values` and `range`
(AlpacaEval's preferences 1–2 with the legacy draw code 0 become the candidate's win share 0–1).
The gate sets them beside a judge's scores (gate/validity.py, `judge_calibration`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.errors import InputError
from evalpipe.spec import Label, Spec
from evalpipe.tables import column_values

__all__ = ["label_values", "read_label_file"]

LABELS = pa.schema([("record_id", pa.string()), ("value", pa.float64())])


def read_label_file(path: Path, id_field: str, value_field: str) -> list[tuple[str, Any]]:
    """(record id, raw label) pairs of a CSV, JSON-array or JSON Lines file.

    Raises:
        InputError: the file cannot be read or lacks the fields.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), f"cannot read the label file ({exc.strerror})") from None
    rows: list[Any]
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    else:
        try:
            doc = orjson.loads(raw)
            rows = doc if isinstance(doc, list) else [doc]
        except orjson.JSONDecodeError:
            try:
                rows = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
            except orjson.JSONDecodeError:
                raise InputError(str(path), "not CSV, JSON or JSON Lines") from None
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or id_field not in row or value_field not in row:
            raise InputError(
                str(path),
                f"row {i + 1} has no `{id_field}` and `{value_field}`",
                "Set the label's id_field and value_field.",
            )
        out.append((str(row[id_field]), row[value_field]))
    return out


def _number(raw: Any, label: Label) -> float | None:
    if raw is None or raw == "":
        return None
    key = str(raw).strip()
    if key in label.values:
        value = label.values[key]
    else:
        try:
            value = float(key)
        except ValueError:
            return None
    if label.range is not None:
        lo, hi = label.range
        value = (value - lo) / (hi - lo)
    return value


def label_values(name: str, label: Label, records: pa.Table, spec: Spec) -> pa.Table:
    """(record_id, value) of every record of `records` with a usable label `name`.

    Unreadable values are dropped (and counted in the log); the records keep their order.
    """
    ids = records["record_id"]
    if label.path is not None:
        pairs = dict(
            read_label_file(spec.resolve_input(label.path), label.id_field, label.value_field)
        )
        raw: list[Any] = [pairs.get(r) for r in ids.to_pylist()]
    else:
        assert label.column is not None
        raw = column_values(records, label.column).to_pylist()
    values = pa.array([_number(v, label) for v in raw], pa.float64())
    table = pa.table({"record_id": ids, "value": values}, schema=LABELS)
    return table.filter(pc.is_valid(table["value"]))
