"""ROUGE-N and BLEU counts against a per-row Python count: the byte table of ASCII texts cuts
the same words as the Unicode rule, and the vectorised clipped counts equal Counter's."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalpipe.score.textstats import _unicode_words, bleu, counts_of, rouge_n, words_of

# words from a small vocabulary (so n-grams repeat and match), glued by every kind of separator
_WORDS = ["the", "Cat", "sat", "ON", "mat", "é", "naïve", "x1", "a_b", "ß", "日本", "k"]
_GLUE = [" ", "  ", ", ", ".", "\t", "\n", "!?", "-", "'", "\u00a0", "\u2014", "$", "\x0b", "\x1f"]


@st.composite
def _text(draw: st.DrawFn, ascii_only: bool) -> str | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    words = [w for w in _WORDS if w.isascii()] if ascii_only else _WORDS
    glue = [g for g in _GLUE if g.isascii()] if ascii_only else _GLUE
    parts = draw(st.lists(st.tuples(st.sampled_from(words), st.sampled_from(glue)), max_size=12))
    lead = draw(st.sampled_from(["", " ", "(", "\u00a0"] if not ascii_only else ["", " ", "("]))
    return lead + "".join(w + g for w, g in parts)


def _tokens(text: str) -> list[str]:
    """The Unicode rule on one text (the RE2 path every non-ASCII text takes)."""
    words, _ = _unicode_words(pa.array([text], pa.string()))
    return [str(w) for w in words.to_pylist()]


def _by_hand(out: str, ref: str, n: int) -> tuple[float, float, float]:
    def grams(tokens: list[str]) -> Counter[tuple[str, ...]]:
        return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))

    o, r = grams(_tokens(out)), grams(_tokens(ref))
    return sum((o & r).values()), sum(o.values()), sum(r.values())


pairs = st.lists(
    st.one_of(
        st.tuples(_text(ascii_only=True), _text(ascii_only=True)),
        st.tuples(_text(ascii_only=False), _text(ascii_only=False)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=30, deadline=None)
@given(pairs, st.data())
def test_counts_equal_a_count_per_row(
    rows: list[tuple[str | None, str | None]], data: st.DataObject
) -> None:
    rows = rows + data.draw(st.lists(st.sampled_from(rows), max_size=5))  # repeated pairs
    outputs = [o for o, _ in rows]
    rows = rows + [(o, o) for o in data.draw(st.lists(st.sampled_from(outputs), max_size=5))]
    rows = rows + [(o, o.upper()) for o, _ in rows[:3] if o is not None]  # same words
    out = pa.array([o for o, _ in rows], pa.string())
    ref = pa.array([r for _, r in rows], pa.string())
    words = words_of(out, ref)
    for n in (1, 2, 3, 4):
        counts = counts_of(words, n)
        for i, (o, r) in enumerate(rows):
            got = (counts.matches[i], counts.output[i], counts.reference[i])
            assert got == (_by_hand(o, r, n) if o is not None and r is not None else (0, 0, 0))


@settings(max_examples=25, deadline=None)
@given(pairs)
def test_rouge_and_bleu_follow_the_counts(rows: list[tuple[str | None, str | None]]) -> None:
    out = pa.array([o for o, _ in rows], pa.string())
    ref = pa.array([r for _, r in rows], pa.string())
    recall = rouge_n(out, ref, 2, "recall").to_pylist()
    scores = bleu(out, ref).to_pylist()
    for i, (o, r) in enumerate(rows):
        if o is None or r is None or not _tokens(r):
            assert scores[i] is None
            continue
        m, _, total = _by_hand(o, r, 2)
        assert recall[i] == (m / total if total else None)
        m1, c1, r1 = _by_hand(o, r, 1)
        if m1 == 0:
            assert scores[i] == 0.0
            continue
        logs = math.log(m1 / c1) + sum(
            math.log((_by_hand(o, r, n)[0] + 1) / (_by_hand(o, r, n)[1] + 1)) for n in (2, 3, 4)
        )
        bp = 1.0 if c1 >= r1 else math.exp(1 - r1 / c1)
        assert scores[i] == pytest.approx(bp * math.exp(logs / 4), rel=1e-12)


def test_chunked_columns_and_no_pair() -> None:
    out = pa.chunked_array([["a b", None], ["b a", "c"]])
    ref = pa.chunked_array([["a b c"], [None, "b a", None]])
    assert rouge_n(out, ref, 1, "recall").to_pylist() == [2 / 3, None, 1.0, None]
    nothing = words_of(pa.array([None], pa.string()), pa.array(["a"]))
    assert np.array_equal(counts_of(nothing, 1).matches, [0.0])
