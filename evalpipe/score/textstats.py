"""ROUGE-N and sentence BLEU of whole text columns against their references.

Words are lower-cased runs between whitespace, punctuation and symbols (RE2 over the column);
each word gets an integer code (`dictionary_encode` over both columns), each (row, side,
n-gram) a 64-bit key, and one sort of the keys (`np.unique`) counts the clipped matches of
every row at once. No Python runs per row.
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
_HASH_BITS: Final = np.uint64((1 << 39) - 1)
MAX_ROWS: Final = 1 << 24
"""Rows scored in one call (the key's row field); `ngram_counts` splits larger inputs."""

F64 = NDArray[np.float64]


def _words(texts: pa.ChunkedArray | pa.Array) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(code of each word, row of each word), words in order within each row."""
    spaced = pc.replace_substring_regex(pc.utf8_lower(pc.fill_null(texts, "")), _SPLIT, " ")
    parts = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(spaced))
    if isinstance(parts, pa.ChunkedArray):
        parts = parts.combine_chunks()
    rows = np.asarray(pc.list_parent_indices(parts), dtype=np.int64)
    flat = pc.list_flatten(parts)
    word = pc.not_equal(flat, "")  # an empty text splits into one empty string
    codes = np.asarray(pc.dictionary_encode(flat.filter(word)).indices, dtype=np.int64)
    return codes, rows[np.asarray(word, dtype=bool)]


def ngram_counts(
    out: pa.ChunkedArray | pa.Array, ref: pa.ChunkedArray | pa.Array, ns: tuple[int, ...]
) -> dict[int, tuple[F64, F64, F64]]:
    """Per n: (clipped matches, n-grams of the output, n-grams of the reference) per row.

    Only rows where both texts are present are tokenised; the others count zero.
    """
    n_rows = len(out)
    if n_rows > MAX_ROWS:
        parts = [
            ngram_counts(out[i : i + MAX_ROWS], ref[i : i + MAX_ROWS], ns)
            for i in range(0, n_rows, MAX_ROWS)
        ]
        return {n: tuple(np.concatenate([p[n][j] for p in parts]) for j in range(3)) for n in ns}  # type: ignore[misc]
    present = np.flatnonzero(np.asarray(_present(out, ref), dtype=bool))
    zeros = {n: (np.zeros(n_rows), np.zeros(n_rows), np.zeros(n_rows)) for n in ns}
    if present.size == 0:
        return zeros
    take = pa.array(present)
    k = len(present)
    both = pa.concat_arrays(
        [_chunk(out).take(take).cast(pa.string()), _chunk(ref).take(take).cast(pa.string())]
    )
    codes, rows = _words(both)
    side = rows >= k
    rows = rows % k
    out_stats = {}
    for n in ns:
        m = len(codes) - n + 1
        if m <= 0:
            continue
        same = (rows[:m] == rows[n - 1 :]) & (side[:m] == side[n - 1 :])
        h = codes[:m].astype(np.uint64) + np.uint64(1)
        for j in range(1, n):
            h = h * _MULT ^ (codes[j : j + m].astype(np.uint64) + np.uint64(1))
        r, s = rows[:m][same], side[:m][same]
        # One sortable key per (row, side, n-gram): row in the top 24 bits, 39 bits of the
        # n-gram's hash, the side in the last bit; a collision among a row's few hundred
        # n-grams has probability ~1e-7. Sorting once counts both sides: a key of the output
        # is followed by the same key of the reference when the n-gram is in both.
        key = (
            (r.astype(np.uint64) << np.uint64(40))
            | ((h[same] & _HASH_BITS) << np.uint64(1))
            | s.astype(np.uint64)
        )
        u, c = np.unique(key, return_counts=True)
        pair = ((u[:-1] >> np.uint64(1)) == (u[1:] >> np.uint64(1))) & ((u[:-1] & 1) == 0)
        hit = np.flatnonzero(pair)
        matches = np.zeros(n_rows)
        matches[present] = np.bincount(
            (u[hit] >> np.uint64(40)).astype(np.int64),
            weights=np.minimum(c[hit], c[hit + 1]),
            minlength=k,
        )
        c_total, r_total = np.zeros(n_rows), np.zeros(n_rows)
        c_total[present] = np.bincount(r[~s], minlength=k)
        r_total[present] = np.bincount(r[s], minlength=k)
        out_stats[n] = (matches, c_total, r_total)
    return {n: out_stats.get(n, zeros[n]) for n in ns}


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
