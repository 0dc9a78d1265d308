"""ROUGE-N and sentence BLEU of whole text columns against their references.

Words are lower-cased runs between whitespace, punctuation and symbols. The rows with both texts
are reduced to their distinct (output, reference) pairs over the distinct texts of both sides;
each distinct text is cut into words once, each word gets an integer code (`dictionary_encode`),
each n-gram of a text a hash, and each (pair, side, n-gram) a 64-bit key laid out from the
hashes of its texts; one sort of the keys counts the clipped matches of every pair at once (a
pair of one text twice matches all its n-grams without it). No Python runs per row.

Texts in ASCII (most answers) are cut into words by a byte table over the column's data buffer
(NumPy); the table is probed from the Unicode rule (RE2 over the column, which the other texts
take), so both give the same words. `Words` are made once per pair of columns and shared by
every n-gram order and both figures (`rouge_n`, `bleu` take them through `words`)."""

from __future__ import annotations

import functools
from typing import Final, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evalpipe.tables import take_rows

__all__ = ["Counts", "Pairs", "Words", "bleu", "ngram_counts", "pairs_of", "rouge_n", "words_of"]

_SPLIT: Final = r"[\s\p{P}\p{S}]+"
_MULT: Final = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: mixes each code into the hash

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


class Words(NamedTuple):
    """The words of the distinct (output, reference) pairs of the rows where both are present.

    Each distinct text is cut into words once; the n-gram keys are laid out only for the pairs
    whose two texts differ (`kept`): a pair of one text twice matches all its n-grams."""

    codes: NDArray[np.uint64]
    """Code of each word of the distinct texts, from 1 (equal words, equal codes), text after
    text, in order within each."""
    room: I64
    """Per word of `codes`: words from it to the end of its text (itself included)."""
    at: I64
    """The laid-out words: the texts of each kept pair's output, then of their references,
    each word as its position in `codes`."""
    texts: I64
    """Text of each laid-out word: j for the output of kept pair j, m + j for its reference."""
    present: I64
    """Rows (of the whole columns) where both texts are present."""
    pair: I64
    """Which distinct (output, reference) pair each present row holds; k pairs."""
    n_rows: int
    """Rows of the whole columns."""
    base: NDArray[np.uint64]
    """Each word's part of an n-gram key: its kept pair (of m) in the top bits, its side (1 for
    the reference) in the last bit; `shift` places the pair."""
    shift: int
    kept: I64
    """The distinct pairs (of k) whose output and reference differ, in `texts` order (m)."""
    out_words: I64
    """Words of each distinct pair's output (k)."""
    ref_words: I64
    """Words of each distinct pair's reference (k)."""
    same: NDArray[np.bool_]
    """Whether each distinct pair's output is its reference (k)."""


class Counts(NamedTuple):
    """Per row of the whole columns, for one n-gram order."""

    matches: F64
    """Clipped matches: n-grams of the output found in the reference, each at most as often
    as the reference has it."""
    output: F64
    """n-grams of the output."""
    reference: F64
    """n-grams of the reference."""


def _chunk(a: pa.ChunkedArray | pa.Array) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _present(out: pa.ChunkedArray | pa.Array, ref: pa.ChunkedArray | pa.Array) -> pa.Array:
    return _chunk(pc.and_(pc.is_valid(out), pc.is_valid(ref)))


def _unicode_words(texts: pa.Array) -> tuple[pa.Array, I64]:
    """(each word, text of each word) by the Unicode rule: RE2 over the column."""
    spaced = pc.replace_substring_regex(pc.utf8_lower(texts), _SPLIT, " ")
    parts = _chunk(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(spaced)))
    rows = np.asarray(pc.list_parent_indices(parts), dtype=np.int64)
    flat = pc.list_flatten(parts)
    word = pc.not_equal(flat, "")  # an empty text splits into one empty string
    return flat.filter(word), rows[np.asarray(word, dtype=bool)]


@functools.cache
def _byte_table() -> bytes:
    """Each ASCII byte's replacement: a space where the Unicode rule ends a word, else its
    lower case (probed with that rule, so both rules cut the same words)."""
    probe = pa.array(["a" + chr(b) + "a" for b in range(128)], pa.string())
    _, texts = _unicode_words(probe)
    per_byte = np.bincount(texts, minlength=128)
    assert set(per_byte.tolist()) <= {1, 2}
    return bytes(
        [ord(" ") if per_byte[b] == 2 else ord(chr(b).lower()) for b in range(128)]
        + list(range(128, 256))  # never reached: only ASCII texts take the table
    )


def _bytes(texts: pa.Array) -> tuple[NDArray[np.uint8], NDArray[np.int32]]:
    """The bytes of a string array's values and where each value starts in them (n + 1)."""
    _, off_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(off_buf, np.int32)[texts.offset : texts.offset + len(texts) + 1]
    if data_buf is None:
        return np.zeros(0, np.uint8), offsets - offsets[0]
    data = np.frombuffer(data_buf, np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def _ascii_words(texts: pa.Array) -> tuple[pa.Array, I64]:
    """(each word, text of each word) of ASCII texts without nulls: one byte table, no regex."""
    data, offsets = _bytes(texts)
    spaced = pa.StringArray.from_buffers(
        len(texts), pa.py_buffer(offsets), pa.py_buffer(data.tobytes().translate(_byte_table()))
    )
    parts = pc.ascii_split_whitespace(spaced)
    rows = np.asarray(pc.list_parent_indices(parts), dtype=np.int64)
    flat = pc.list_flatten(parts)
    word = pc.not_equal(flat, "")  # a text that opens with a space splits off an empty string
    return flat.filter(word), rows[np.asarray(word, dtype=bool)]


class Pairs(NamedTuple):
    """The rows where output and reference are both present, their two texts, and the
    distinct (output, reference) pairs among them by the distinct texts of both sides."""

    rows: I64
    out: pa.Array
    ref: pa.Array
    n_rows: int
    texts: pa.Array
    """Each distinct text of either side once."""
    out_text: I64
    """Per distinct pair: its output (a position in `texts`)."""
    ref_text: I64
    """Per distinct pair: its reference (a position in `texts`)."""
    pair: I64
    """Per row of `rows`: its distinct pair."""


def pairs_of(out: pa.ChunkedArray | pa.Array, ref: pa.ChunkedArray | pa.Array) -> Pairs:
    """The rows with both texts, taken out of the columns once (several checks share them)."""
    rows = np.flatnonzero(np.asarray(_present(out, ref), dtype=bool))
    o, r = (take_rows(side, rows).cast(pa.string()) for side in (out, ref))
    encoded = pc.dictionary_encode(pa.concat_arrays([o, r]))
    ids = np.asarray(encoded.indices, np.int64)
    o_id, r_id = ids[: len(rows)], ids[len(rows) :]
    code = o_id * max(len(encoded.dictionary), 1) + r_id
    _, first, pair = np.unique(code, return_index=True, return_inverse=True)
    return Pairs(
        rows, o, r, len(out), encoded.dictionary, o_id[first], r_id[first], pair.reshape(-1)
    )


def words_of(
    out: pa.ChunkedArray | pa.Array,
    ref: pa.ChunkedArray | pa.Array,
    *,
    pairs: Pairs | None = None,
) -> Words:
    """The words of output and reference, in the rows where both are present: each distinct
    text is cut into words once. `pairs` (of `pairs_of`) saves taking the rows again."""
    p = pairs if pairs is not None else pairs_of(out, ref)
    t_codes, t_of_word = _text_words(p.texts)
    per_text = np.bincount(t_of_word, minlength=len(p.texts))
    t_start = np.concatenate([[0], np.cumsum(per_text)])
    same = p.out_text == p.ref_text
    kept = np.flatnonzero(~same)
    seq = np.concatenate([p.out_text[kept], p.ref_text[kept]])  # text of each laid-out text
    lens = per_text[seq]
    total = int(lens.sum())
    laid = np.cumsum(lens) - lens  # where each laid-out text starts
    at = np.repeat(t_start[seq] - laid, lens) + np.arange(total, dtype=np.int64)
    texts = np.repeat(np.arange(len(seq), dtype=np.int64), lens)
    m = len(kept)
    shift = 64 - max(m.bit_length(), 1)
    row = texts.copy()
    refs = int(np.searchsorted(texts, m))  # texts ascend: the outputs' words come first
    row[refs:] -= m
    base = row.astype(np.uint64) << np.uint64(shift)
    base[refs:] |= np.uint64(1)
    room = t_start[1:][t_of_word] - np.arange(len(t_codes), dtype=np.int64)
    return Words(
        t_codes,
        room,
        at,
        texts,
        p.rows,
        p.pair,
        p.n_rows,
        base,
        shift,
        kept,
        per_text[p.out_text],
        per_text[p.ref_text],
        same,
    )


def _text_words(texts: pa.Array) -> tuple[NDArray[np.uint64], I64]:
    """(code of each word from 1, text of each word) of distinct non-null texts, in order."""
    if len(texts) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    data, _ = _bytes(texts)
    if not np.any(data >= 128):
        words, of_text = _ascii_words(texts)
    else:
        ascii_ = np.asarray(pc.string_is_ascii(texts), dtype=bool)
        a_rows, u_rows = np.flatnonzero(ascii_), np.flatnonzero(~ascii_)
        a_words, a_texts = _ascii_words(texts.take(pa.array(a_rows)))
        u_words, u_texts = _unicode_words(texts.take(pa.array(u_rows)))
        of_text = np.concatenate([a_rows[a_texts], u_rows[u_texts]])
        order = np.argsort(of_text, kind="stable")  # words back in text order
        of_text = of_text[order]
        words = pa.concat_arrays([a_words, u_words.cast(pa.string())]).take(pa.array(order))
    codes = np.asarray(pc.dictionary_encode(words).indices, dtype=np.uint64) + np.uint64(1)
    return codes, of_text


def counts_of(words: Words, n: int) -> Counts:
    """Clipped n-gram matches and n-gram totals per row."""
    matches, c_total, r_total = _pair_counts(words, n)
    full = [np.zeros(words.n_rows) for _ in range(3)]
    for column, per_pair in zip(full, (matches, c_total, r_total), strict=True):
        column[words.present] = per_pair[words.pair]
    return Counts(*full)


def _pair_counts(words: Words, n: int) -> Counts:
    """Counts_of per distinct pair."""
    c_total = np.maximum(words.out_words - n + 1, 0).astype(np.float64)
    r_total = np.maximum(words.ref_words - n + 1, 0).astype(np.float64)
    matches = np.where(words.same, c_total, 0.0)  # one text twice: every n-gram matches
    if len(words.at) == 0:
        return Counts(matches, c_total, r_total)
    # One sortable key per (pair, n-gram, side): the pair in the top bits, the n-gram's hash
    # in the rest, the side in the last bit (a collision among a pair's few hundred n-grams
    # has probability below 1e-7). After one sort, a key of the output is followed by the
    # same key of the reference when the n-gram is in both. The hashes are made per distinct
    # text and laid out for the pairs.
    codes = words.codes
    h = codes.copy()  # codes count from one: no n-gram hashes to zero
    for j in range(1, n):
        h[:-j] *= _MULT
        h[:-j] ^= codes[j:]
    h &= np.uint64((1 << (words.shift - 1)) - 1)
    h <<= np.uint64(1)
    # an n-gram running past the end of its text: the largest key (its pair bits are never
    # all ones), on the reference side, so it never pairs
    h[words.room < n] = np.uint64(0xFFFFFFFFFFFFFFFF)
    shift = np.uint64(words.shift)
    one = np.uint64(1)
    h = h[words.at]
    h |= words.base
    key = h
    key.sort()
    step = key[1:] - key[:-1]
    pair = np.flatnonzero(step == one)
    pair = pair[(key[pair] & one) == 0]  # i: the last output key of an n-gram both sides have
    if pair.size:
        # the output's run of equal keys ends at i, the reference's starts at i + 1
        clipped = np.minimum(_run(step, pair - 1, -1), _run(step, pair + 1, 1))
        kept = (key[pair] >> shift).astype(np.int64)
        matches[words.kept] = np.bincount(kept, weights=clipped, minlength=len(words.kept))
    return Counts(matches, c_total, r_total)


def _run(step: NDArray[np.uint64], at: I64, direction: int) -> I64:
    """1 + how many zero steps follow each position of `at` going `direction` (the length of
    a run of equal sorted keys); a loop over the longest run, not over the rows."""
    length = np.ones(len(at), dtype=np.int64)
    active = np.arange(len(at))
    pos = at.copy()
    while active.size:
        p = pos[active]
        inside = (p >= 0) & (p < len(step))
        active, p = active[inside], p[inside]
        active = active[step[p] == 0]
        length[active] += 1
        pos[active] += direction
    return length


def ngram_counts(
    out: pa.ChunkedArray | pa.Array, ref: pa.ChunkedArray | pa.Array, ns: tuple[int, ...]
) -> dict[int, tuple[F64, F64, F64]]:
    """Per n: (clipped matches, n-grams of the output, n-grams of the reference) per row.

    Only rows where both texts are present are tokenised; the others count zero.
    """
    words = words_of(out, ref)
    return {n: tuple(counts_of(words, n)) for n in ns}  # type: ignore[misc]


def rouge_n(
    out: pa.ChunkedArray | pa.Array,
    ref: pa.ChunkedArray | pa.Array,
    n: int = 1,
    measure: Literal["recall", "precision", "f1"] = "f1",
    *,
    counts: Counts | None = None,
) -> pa.Array:
    """ROUGE-N of each output against its reference (0–1); null where either is missing or the
    reference has fewer than n words. `counts` (of `counts_of`) saves tokenising again."""
    m, c, r = counts if counts is not None else counts_of(words_of(out, ref), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(r > 0, m / r, np.nan)
        precision = np.where(c > 0, m / c, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    value = {"recall": recall, "precision": precision, "f1": f1}[measure]
    value = np.where(r > 0, value, np.nan)
    return _masked(value, _present(out, ref))


def bleu(
    out: pa.ChunkedArray | pa.Array,
    ref: pa.ChunkedArray | pa.Array,
    *,
    counts: dict[int, Counts] | None = None,
) -> pa.Array:
    """Sentence BLEU (Papineni et al. 2002) of each output against its one reference, 0–1.

    Geometric mean of the clipped 1–4-gram precisions times the brevity penalty
    `min(1, exp(1 − r/c))`; the 2–4-gram precisions are smoothed by adding one to matches and
    totals (Lin & Och 2004's BLEU+1), so a short answer is not scored 0 for missing 4-grams.
    An output with no unigram in common with the reference scores 0; null where either text is
    missing or the reference is empty. `counts` (n → `counts_of`) saves tokenising again.
    """
    if counts is None:
        words = words_of(out, ref)
        counts = {n: counts_of(words, n) for n in (1, 2, 3, 4)}
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
