"""Labels from files and columns: AlpacaEval's judge preferences imported as labels reproduce
its published win rate, and κ between its two annotator columns matches a hand computation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from evalpipe.gate.agreement import agreement
from evalpipe.gate.paired import win_rate
from evalpipe.score.labels import label_values
from evalpipe.spec import Spec, spec_from_dict
from evalpipe.tables import RECORDS, from_rows
from tests.shared import DATA, absent

ALPACA = DATA / "alpaca_eval"
V2 = ALPACA / "claude-2.1_vs_gpt4_1106_preview.weighted_alpaca_eval_gpt4_turbo.annotations.json"
V1 = ALPACA / "alpaca-7b_vs_text_davinci_003.alpaca_eval_gpt4.annotations.json"
AS_LABELS = {
    "path": None,
    "kind": "preference",
    "id_field": "instruction",
    "value_field": "preference",
    "range": [1, 2],  # 1 baseline wins, 2 candidate wins → win share 0–1
    "values": {"0": 1.5},  # AlpacaEval's legacy draw code
}


def _alpaca() -> tuple[Spec, pa.Table]:
    for f in (V1, V2):
        if not f.is_file():
            pytest.skip(absent(f, "AlpacaEval annotations"))
    instructions = [r["instruction"] for r in json.loads(V2.read_text(encoding="utf-8"))]
    assert len(set(instructions)) == 805  # the instruction is each record's id
    records = from_rows([{"record_id": i, "attributes": []} for i in instructions], RECORDS)
    spec = spec_from_dict(
        {
            "name": "alpaca",
            "traffic": {"path": str(V2)},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "n"}],
            "labels": {
                "gpt4_turbo": {**AS_LABELS, "path": str(V2)},
                "gpt4": {**AS_LABELS, "path": str(V1)},
            },
        }
    )
    return spec, records


def test_alpaca_eval_preferences_as_labels_reproduce_the_published_win_rate() -> None:
    spec, records = _alpaca()
    labels = label_values("gpt4_turbo", spec.labels["gpt4_turbo"], records, spec)
    assert labels.num_rows == 805
    r = win_rate(np.asarray(labels["value"]))
    # leaderboard_AlpacaEval_2_weighted_alpaca_eval_gpt4_turbo.csv, row claude-2.1
    assert r.estimate * 100 == pytest.approx(15.733506736409938, rel=1e-9)
    assert r.se * 100 == pytest.approx(1.120315865445773, rel=1e-9)
    v1 = label_values("gpt4", spec.labels["gpt4"], records, spec)
    assert win_rate(np.asarray(v1["value"])).estimate * 100 == pytest.approx(26.459627329192543)


def _three(w: float) -> float:
    return 1.0 if w > 0.5 else 0.0 if w < 0.5 else 0.5


def test_kappa_between_the_two_annotator_columns_matches_a_hand_computation() -> None:
    spec, records = _alpaca()
    a = label_values("gpt4", spec.labels["gpt4"], records, spec)["value"].to_pylist()
    b = label_values("gpt4_turbo", spec.labels["gpt4_turbo"], records, spec)["value"].to_pylist()
    a3, b3 = [_three(x) for x in a], [_three(x) for x in b]
    got = agreement(a3, b3, [0.0, 0.5, 1.0])

    # by hand: observed agreement, chance agreement from the margins, κ = (po − pe)/(1 − pe)
    n = len(a3)
    pairs = Counter(zip(a3, b3, strict=True))
    po = sum(c for (x, y), c in pairs.items() if x == y) / n
    ma, mb = Counter(a3), Counter(b3)
    pe = sum(ma[k] * mb[k] for k in (0.0, 0.5, 1.0)) / n**2
    kappa = (po - pe) / (1 - pe)
    # quadratic weights: disagreement ((i − j)/2)² between categories 0, ½, 1
    idx = {0.0: 0, 0.5: 1, 1.0: 2}
    obs = sum(c * ((idx[x] - idx[y]) / 2) ** 2 for (x, y), c in pairs.items())
    exp = sum(ma[x] * mb[y] / n * ((idx[x] - idx[y]) / 2) ** 2 for x in idx for y in idx)
    assert got.n == 805
    assert got.agreement == pytest.approx(po)
    assert got.kappa == pytest.approx(kappa, rel=1e-12)
    assert got.weighted_kappa == pytest.approx(1 - obs / exp, rel=1e-12)
    assert got.confusion.sum() == 805 and got.confusion[0, 0] == pairs[(0.0, 0.0)]
    assert got.majority == pytest.approx(max(mb.values()) / n)


def test_labels_from_a_csv_with_words(tmp_path: Path) -> None:
    (tmp_path / "thumbs.csv").write_text("id,thumb\nr1,up\nr2,down\nr3,meh\nr9,up\n")
    (tmp_path / "t.jsonl").write_text("{}")
    spec = spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": "t.jsonl"},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "n"}],
            "labels": {
                "thumbs": {
                    "path": "thumbs.csv",
                    "id_field": "id",
                    "value_field": "thumb",
                    "values": {"up": 1, "down": 0},
                }
            },
        },
        spec_dir=tmp_path,
    )
    records = from_rows([{"record_id": f"r{i}", "attributes": []} for i in (1, 2, 3)], RECORDS)
    got = label_values("thumbs", spec.labels["thumbs"], records, spec).to_pylist()
    assert got == [{"record_id": "r1", "value": 1.0}, {"record_id": "r2", "value": 0.0}]
