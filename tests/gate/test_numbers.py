"""Number wording: one home for the gate's sentences, the report's cells and the CLI."""

from __future__ import annotations

import math

from evalpipe.gate import numbers, reasons
from evalpipe.report import figures


def test_numbers_take_a_true_minus_and_say_when_missing() -> None:
    assert numbers.pct(-0.0123) == "−1.2%"
    assert numbers.signed(-7.66) == "−7.7" and numbers.signed(0.04) == "0.0"
    assert numbers.signed(0.8, 1, " pp") == "+0.8 pp"
    assert numbers.num(-1234.5) == "−1,234.50"
    assert numbers.pct(math.nan) == "n/a" and numbers.pct(None, missing="—") == "—"
    assert numbers.p_text(0.00391) == "p = 0.0039" and numbers.p_text(1e-6, "q") == "q < 0.0001"
    assert numbers.p_text(math.nan) == "p n/a"
    assert numbers.count(1, "loss", "losses") == "1 loss" and numbers.count(2, "loss", "losses")
    assert numbers.usd(7.95e-05) == "$0.0000795" and numbers.usd(True) == "—"


def test_sentences_and_cells_write_a_figure_alike() -> None:
    # a reason and a table cell of the same figure differ only in how a missing value reads
    for x in (-0.0771, 0.0, 0.914, -1.5):
        assert figures.pct(x) == reasons.pct(x) == numbers.pct(x)
        assert figures.signed(x * 100, 1) == reasons.signed(x * 100, 1)
    assert figures.p_text(0.0039) == "0.0039" and figures.pct(math.nan) == "—"
