"""Custom scorers (`type: python`): user functions over the whole scoring frame.

A scorer takes the scoring frame (a pyarrow Table: the responses with their records' columns,
`scoring_frame`) and returns one value per row, in row order: a bool (pass/fail), or a number
when the check sets `min`; None means not scorable. Any sequence works (a pyarrow array, a NumPy
array, a list). For a scorer that is simpler to write for one row at a time, `per_row` wraps a
function of one row (a dict) into one of the frame::

    # my_checks.py
    import pyarrow.compute as pc
    from evalpipe.score.custom import per_row

    def polite(frame):                       # vectorised: the contract
        return pc.match_substring_regex(frame["output_text"], "(?i)please|thank")

    @per_row
    def mentions_order(row):                 # one row at a time
        return row["output_text"] is not None and "order" in row["output_text"]

Third-party packages register scorers by name under the `evalpipe.scorers` entry point::

    [project.entry-points."evalpipe.scorers"]
    polite = "my_checks:polite"

and a spec then says `function: polite`. A scorer that raises, or returns the wrong length or
type, is a `ScorerError` naming it: its rows become error rows and the run goes on.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Final, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.errors import ScorerError, SpecError
from evalpipe.spec import PythonCheck

__all__ = ["ENTRY_POINT_GROUP", "Scorer", "load_scorer", "per_row", "run_scorer"]

ENTRY_POINT_GROUP: Final = "evalpipe.scorers"

Scorer = Callable[[pa.Table], Any]
"""A function of the scoring frame returning one bool or number per row."""


def per_row(fn: Callable[[dict[str, Any]], bool | float | None]) -> Scorer:
    """Wrap a function of one row (a dict of the frame's columns) into a scorer of the frame."""

    @functools.wraps(fn)
    def scorer(frame: pa.Table) -> list[bool | float | None]:
        return [fn(row) for row in frame.to_pylist()]

    return scorer


def load_scorer(function: str, *, where: str = "checks.function") -> Scorer:
    """The scorer `module:attr`, or the one registered under that name at `evalpipe.scorers`.

    Raises:
        SpecError: the module, attribute or entry point does not exist, or is not callable.
    """
    if ":" in function:
        module_name, _, attr = function.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SpecError(
                where,
                f"cannot import module `{module_name}` ({exc})",
                "Is it on PYTHONPATH or installed?",
            ) from None
        fn: Any = module
        for part in attr.split("."):
            fn = getattr(fn, part, None)
            if fn is None:
                raise SpecError(
                    where,
                    f"module `{module_name}` has no `{attr}`",
                    "Use module:function.",
                )
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == function]
        if not found:
            names = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
            known = f"Registered: {', '.join(names)}." if names else "None is registered."
            raise SpecError(
                where,
                f"no scorer `{function}` at the `{ENTRY_POINT_GROUP}` entry point",
                f"Use module:function, or install the package that registers it. {known}",
            )
        try:
            fn = found[0].load()
        except Exception as exc:
            raise SpecError(
                where, f"the entry point `{function}` failed to load ({exc})", ""
            ) from None
    if not callable(fn):
        raise SpecError(where, f"`{function}` is not a function", "")
    return cast(Scorer, fn)


def _as_array(result: Any) -> pa.Array:
    if isinstance(result, pa.ChunkedArray):
        return result.combine_chunks()
    if isinstance(result, pa.Array):
        return result
    if isinstance(result, np.ndarray):
        return pa.array(result)
    return pa.array(list(result))


def run_scorer(frame: pa.Table, check: PythonCheck, scorer: Scorer | None = None) -> pa.Array:
    """The check's pass/fail per row of `frame` from its scorer.

    Raises:
        ScorerError: the scorer raised, or returned a value that is not one bool (or one number
            with `min`) per row.
    """
    fn = scorer or load_scorer(check.function)
    try:
        result = fn(frame)
    except Exception as exc:
        raise ScorerError(
            check.name, check.function, f"raised {type(exc).__name__}: {exc}"
        ) from exc
    try:
        values = _as_array(result)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise ScorerError(
            check.name,
            check.function,
            f"returned {type(result).__name__}, not one value per row ({exc})",
        ) from None
    if len(values) != frame.num_rows:
        raise ScorerError(
            check.name,
            check.function,
            f"returned {len(values):,} values for {frame.num_rows:,} rows",
        )
    kind = values.type
    if pa.types.is_null(kind):
        return pa.nulls(frame.num_rows, pa.bool_())
    if check.min is not None:
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise ScorerError(check.name, check.function, f"returned {kind}, not numbers")
        numbers = pc.cast(values, pa.float64())
        return pc.greater_equal(pc.if_else(pc.is_nan(numbers), None, numbers), check.min)
    if not pa.types.is_boolean(kind):
        raise ScorerError(
            check.name,
            check.function,
            f"returned {kind}, not booleans (give `min:` to compare numbers with it)",
        )
    return values
