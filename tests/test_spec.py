"""eval.yaml validation: the documented shape loads; mistakes fail with one line naming the path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from evalpipe.errors import SpecError
from evalpipe.spec import JsonSchemaCheck, MaxChars, load_spec, spec_from_dict
from tests.shared import DESIGN, absent

SPEC_MD = DESIGN / "SPEC.md"


def _minimal(tmp_path: Path) -> dict:
    (tmp_path / "traffic.jsonl").write_text("{}\n")
    return {
        "name": "t",
        "traffic": {"path": "traffic.jsonl"},
        "baseline": {"provider": "openai", "model": "gpt-4o-mini"},
        "candidates": [{"name": "c", "provider": "anthropic", "model": "claude-haiku-4-5"}],
    }


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "eval.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_documented_spec_loads(tmp_path: Path) -> None:
    if not SPEC_MD.exists():
        pytest.skip(absent(SPEC_MD, "the design SPEC.md"))
    text = SPEC_MD.read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block
    (tmp_path / "traffic.jsonl.gz").write_bytes(b"")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support_v7.md").write_text("v7")
    (tmp_path / "prompts" / "triage_v7.md").write_text("t7")
    p = tmp_path / "eval.yaml"
    p.write_text(block.group(1))
    spec = load_spec(p)
    assert [a.name for a in spec.arms()] == ["prod", "mini-next", "haiku", "mini-next-prompt-v7"]
    assert isinstance(spec.checks[3], MaxChars) and spec.checks[3].value == 1200
    assert isinstance(spec.checks[1], JsonSchemaCheck) and spec.checks[1].schema_ == "request"
    limit = spec.limit_for("gpt-4o-mini-2024-07-18")
    assert (limit.concurrency, limit.rpm, limit.max_retries) == (32, 5000, 6)
    assert spec.gate.gated_slices == ["feature"]


@pytest.mark.parametrize(
    ("mutate", "where", "fix"),
    [
        (
            lambda d: d["candidates"][0].update(modl="x"),
            "candidates[0].modl",
            "Did you mean `model`?",
        ),
        (lambda d: d.update(chekcs=[]), "chekcs", "Did you mean `checks`?"),
        (
            lambda d: d.update(checks=[{"name": "m", "type": "max_chars", "valu": 3}]),
            "checks[0].valu",
            "Did you mean `value`?",
        ),
        (
            lambda d: d["baseline"].update(model="gpt 4o"),
            "baseline.model",
            "not a valid model name",
        ),
        (
            lambda d: d.update(checks=[{"name": "m", "type": "max_char"}]),
            "checks[0].type",
            "unknown type",
        ),
        (lambda d: d["traffic"].update(path="nope.jsonl"), "traffic.path", "file not found"),
        (lambda d: d.pop("baseline"), "baseline", "needs a `baseline`"),
    ],
)
def test_mistakes_name_their_yaml_path(tmp_path: Path, mutate, where: str, fix: str) -> None:
    data = _minimal(tmp_path)
    mutate(data)
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, data))
    assert info.value.where == where
    assert fix in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "absent.yaml")


def test_inputs_resolve_against_the_spec_folder_and_env_expands(
    tmp_path: Path, monkeypatch
) -> None:
    sub = tmp_path / "sets"
    sub.mkdir()
    data = _minimal(sub)
    monkeypatch.setenv("EVALPIPE_TEST_MODEL", "gpt-4.1-mini")
    data["candidates"][0]["model"] = "${EVALPIPE_TEST_MODEL}"
    spec = load_spec(_write(sub, data))
    assert spec.resolve_input("traffic.jsonl") == (sub / "traffic.jsonl").resolve()
    assert spec.candidates[0].model == "gpt-4.1-mini"


def test_spec_hash_changes_with_the_traffic(tmp_path: Path) -> None:
    data = _minimal(tmp_path)
    spec = spec_from_dict(data, spec_dir=tmp_path)
    before = spec.spec_hash()
    (tmp_path / "traffic.jsonl").write_text('{"x": 1}\n')
    assert spec_from_dict(data, spec_dir=tmp_path).spec_hash() != before


def test_reserved_and_duplicate_names_are_rejected(tmp_path: Path) -> None:
    data = _minimal(tmp_path)
    data["candidates"][0]["name"] = "baseline"
    with pytest.raises(SpecError, match="reserved"):
        spec_from_dict(data, spec_dir=tmp_path)
    data = _minimal(tmp_path)
    data["candidates"].append(dict(data["candidates"][0]))
    with pytest.raises(SpecError, match="unique"):
        spec_from_dict(data, spec_dir=tmp_path)


def test_accepted_but_unused_keys_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _minimal(tmp_path)
    data["candidates"][0]["fallback"] = [{"provider": "openai", "model": "gpt-4o-mini"}]
    data["labels"] = {"thumbs": {"column": "attributes.thumbs_up"}}
    with caplog.at_level("WARNING", logger="evalpipe.spec"):
        spec_from_dict(data, spec_dir=tmp_path)
    text = caplog.text
    assert "candidates[0].fallback: not used yet" in text and "labels: not used yet" in text
