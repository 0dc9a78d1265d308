"""How evalpipe writes a number for a reader: percentages, signed differences, p-values, dollars,
counts. The one home of that wording, for the gate's reasons, the report and the CLI.

Negative numbers take a true minus (−); a missing or non-finite value is `missing` ("n/a" in a
sentence, "—" in a table cell).
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["MINUS", "count", "finite", "num", "p_text", "p_value", "pct", "signed", "usd"]

MINUS: Final = "−"


def finite(x: Any) -> bool:
    """A real number (not a bool) that is finite."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _minus(text: str) -> str:
    return text.replace("-", MINUS)


def num(x: Any, digits: int = 2, *, missing: str = "n/a") -> str:
    """`1,234.50`, `−0.25`."""
    return _minus(f"{x:,.{digits}f}") if finite(x) else missing


def signed(x: Any, digits: int = 1, unit: str = "", *, missing: str = "n/a") -> str:
    """`+0.8`, `−7.7 pp`; `0.0` when the value rounds to zero."""
    if not finite(x):
        return missing
    if round(x, digits) == 0:
        return f"{0:.{digits}f}{unit}"
    return _minus(f"{x:+,.{digits}f}{unit}")


def pct(x: Any, digits: int = 1, *, missing: str = "n/a") -> str:
    """A share as a percentage: `91.4%`."""
    return _minus(f"{x * 100:.{digits}f}%") if finite(x) else missing


def p_value(p: Any, *, missing: str = "n/a") -> str:
    """`0.0039`, `< 0.0001`."""
    if not finite(p):
        return missing
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def p_text(p: Any, name: str = "p") -> str:
    """`p = 0.0039`, `q < 0.0001`, `p n/a`."""
    value = p_value(p)
    return f"{name} {value}" if value.startswith(("<", "n/a")) else f"{name} = {value}"


def usd(x: object) -> str:
    """Dollars a reader can read: cents above a cent, else three significant digits, never
    scientific notation ($0.0000795, not $7.95e-05); "—" for a missing or non-finite value."""
    if not finite(x):
        return "—"
    assert isinstance(x, int | float)
    if x == 0 or abs(x) >= 0.01:
        return f"${x:,.2f}"
    decimals = 2 - math.floor(math.log10(abs(x)))
    return f"${x:.{decimals}f}"


def count(n: int | None, word: str, plural: str | None = None) -> str:
    """`1 request`, `1,200 requests`, `2 losses` (with `plural`)."""
    k = n or 0
    return f"{k:,} " + (word if k == 1 else plural or word + "s")
