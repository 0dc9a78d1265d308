"""ROUGE-N and sentence BLEU of whole text columns against their references.

Words are lower-cased runs between whitespace, punctuation and symbols (RE2 over the column);
each word gets an integer code (`dictionary_encode` over both columns), each n-gram a 64-bit
hash of its codes (NumPy over the flat word array), and DuckDB counts the clipped matches of
every row in one grouped join. No Python runs per row.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

__all__ = ["bleu", "ngram_counts", "rouge_n"]

_SPLIT: Final = r"[\s\p{P}\p{S}]+"
_MULT: Final = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: mixes each code into the hash

F64 = NDArray[np.float64]


def _words(texts: pa.ChunkedArray | pa.Array) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(code of each word, row of each word), words in order within each row."""
    parts = pc.split_pattern_regex(pc.utf8_lower(pc.fill_null(texts, "")), _SPLIT)
    if isinstance(parts, pa.ChunkedArray):
        parts = parts.combine_chunks()
    rows = np.asarray(pc.list_parent_indices(parts), dtype=np.int64)
    flat = pc.list_flatten(parts)
    keep = pc.not_equal(flat, "")
    flat, rows = flat.filter(keep), rows[np.asarray(keep, dtype=bool)]
    codes = np.asarray(pc.dictionary_encode(flat).indices, dtype=np.int64)
    return codes, rows


def ngram_counts(
    out: pa.ChunkedArray | pa.Array, ref: pa.ChunkedArray | pa.Array, ns: tuple[int, ...]
) -> dict[int, tuple[F64, F64, F64]]:
    """Per n: (clipped matches, n-grams of the output, n-grams of the reference) per row."""
    import duckdb

    n_rows = len(out)
    both = pa.concat_arrays([_chunk(out).cast(pa.string()), _chunk(ref).cast(pa.string())])
    codes, rows = _words(both)
    side = (rows >= n_rows).astype(np.int8)
    rows = rows % max(n_rows, 1)
    parts = []
    totals: dict[int, tuple[F64, F64]] = {}
    for n in ns:
        m = len(codes) - n + 1
        if m <= 0:
            totals[n] = (np.zeros(n_rows), np.zeros(n_rows))
            continue
        same = (rows[:m] == rows[n - 1 :]) & (side[:m] == side[n - 1 :])
        h = codes[:m].astype(np.uint64) + np.uint64(1)
        for j in range(1, n):
            h = h * _MULT ^ (codes[j : j + m].astype(np.uint64) + np.uint64(1))
        r, s, h = rows[:m][same], side[:m][same], h[same]
        totals[n] = (
            np.bincount(r[s == 0], minlength=n_rows).astype(np.float64),
            np.bincount(r[s == 1], minlength=n_rows).astype(np.float64),
        )
        parts.append(pa.table({"n": np.full(len(h), n, np.int8), "row": r, "side": s, "h": h}))
    matches = {n: np.zeros(n_rows) for n in ns}
    if parts:
        grams = pa.concat_tables(parts)
        with duckdb.connect() as con:
            con.register("g", grams)
            got = con.sql(
                """
                WITH c AS (SELECT n, row, h, count(*) AS k FROM g WHERE side = 0 GROUP BY ALL),
                     r AS (SELECT n, row, h, count(*) AS k FROM g WHERE side = 1 GROUP BY ALL)
                SELECT n, row, sum(least(c.k, r.k))::DOUBLE AS m
                FROM c JOIN r USING (n, row, h) GROUP BY ALL ORDER BY n, row
                """
            ).to_arrow_table()
        gn = np.asarray(got["n"], dtype=np.int64)
        grow = np.asarray(got["row"], dtype=np.int64)
        gm = np.asarray(got["m"], dtype=np.float64)
        for n in ns:
            sel = gn == n
            matches[n][grow[sel]] = gm[sel]
    return {n: (matches[n], *totals[n]) for n in ns}


def _chunk(a: pa.ChunkedArray | pa.Array) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _present(out: pa.ChunkedArray | pa.Array, ref: pa.ChunkedArray | pa.Array) -> pa.Array:
    return _chunk(pc.and_(pc.is_valid(out), pc.is_valid(ref)))


def rouge_n(
    out: pa.ChunkedArray | pa.Array,
    ref: pa.ChunkedArray | pa.Array,
    n: int = 1,
    measure: Literal["recall", "precision", "f1"] = "f1",
) -> pa.Array:
    """ROUGE-N of each output against its reference (0–1); null where either is missing or the
    reference has fewer than n words."""
    m, c, r = ngram_counts(out, ref, (n,))[n]
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(r > 0, m / r, np.nan)
        precision = np.where(c > 0, m / c, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    value = {"recall": recall, "precision": precision, "f1": f1}[measure]
    value = np.where(r > 0, value, np.nan)
    return _masked(value, _present(out, ref))


def bleu(out: pa.ChunkedArray | pa.Array, ref: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Sentence BLEU (Papineni et al. 2002) of each output against its one reference, 0–1.

    Geometric mean of the clipped 1–4-gram precisions times the brevity penalty
    `min(1, exp(1 − r/c))`; the 2–4-gram precisions are smoothed by adding one to matches and
    totals (Lin & Och 2004's BLEU+1), so a short answer is not scored 0 for missing 4-grams. An output with no unigram in common with the reference scores 0; null where either
    text is missing or the reference is empty.
    """
    counts = ngram_counts(out, ref, (1, 2, 3, 4))
    m1, c1, r1 = counts[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(c1 > 0, m1 / c1, 0.0))
        for n in (2, 3, 4):
            m, c, _ = counts[n]
            logs = logs + np.log((m + 1) / (c + 1))
        bp = np.where(c1 >= r1, 1.0, np.exp(1 - r1 / np.maximum(c1, 1)))
        value = np.where((m1 > 0) & (c1 > 0), bp * np.exp(logs / 4), 0.0)
    value = np.where(r1 > 0, value, np.nan)
    return _masked(value, _present(out, ref))


def _masked(value: F64, present: pa.Array) -> pa.Array:
    arr = pa.array(value, pa.float64(), from_pandas=True)  # nan → null
    return pc.if_else(present, arr, pa.scalar(None, pa.float64()))
