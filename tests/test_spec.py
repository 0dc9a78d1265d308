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
    assert "fallback" not in text  # fallback chains replay
    assert "labels.thumbs: no `judge`, so no judge is calibrated against it" in text


# --- YAML as users write it ---------------------------------------------------------------------


def _yaml_spec(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "traffic.jsonl").write_text("{}\n")
    p = tmp_path / "eval.yaml"
    p.write_text(
        "name: t\n"
        "traffic: {path: traffic.jsonl}\n"
        "baseline: {provider: openai, model: gpt-4o-mini}\n"
        "candidates: [{name: c, provider: openai, model: gpt-4.1-mini}]\n" + extra
    )
    return p


def test_cache_off_is_the_documented_word_not_a_boolean(tmp_path: Path) -> None:
    assert load_spec(_yaml_spec(tmp_path, "cache: off\n")).cache == "off"
    with pytest.raises(
        SpecError, match=r"`OFF` is not allowed\. Use 'read_write', 'write_only' or 'off'"
    ):
        load_spec(_yaml_spec(tmp_path, "cache: OFF\n"))


def test_yaml_11_words_stay_strings_where_the_spec_takes_words(tmp_path: Path) -> None:
    extra = (
        "checks: [{name: m, type: max_chars, value: 5, where: {consented: yes, region: no}}]\n"
        "gate: {arm_column: attributes.variant, control: on, treatment: off, slices: [y, n]}\n"
    )
    spec = load_spec(_yaml_spec(tmp_path, extra))
    assert spec.checks[0].where == {"consented": "yes", "region": "no"}
    assert (spec.gate.control, spec.gate.treatment, spec.gate.slices) == ("on", "off", ["y", "n"])


def test_booleans_still_read_as_booleans(tmp_path: Path) -> None:
    extra = (
        "traffic: {path: traffic.jsonl, dedupe: true}\n"
        "redact_pii: {judges: false, reports: yes, quarantine: off}\n"
        "replay: {params: {stream: false, logprobs: true}}\n"
    )
    text = _yaml_spec(tmp_path, "").read_text().replace("traffic: {path: traffic.jsonl}\n", "")
    (tmp_path / "eval.yaml").write_text(text + extra)
    spec = load_spec(tmp_path / "eval.yaml")
    assert spec.traffic.dedupe is True
    assert (spec.redact_pii.judges, spec.redact_pii.reports, spec.redact_pii.quarantine) == (
        False,
        True,
        False,
    )
    assert spec.replay.params == {"stream": False, "logprobs": True}


def test_alias_bomb_is_refused_quickly_in_one_line(tmp_path: Path) -> None:
    import time

    layers = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    layers += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    p = tmp_path / "eval.yaml"
    p.write_text("\n".join(layers) + "\nname: *a9\n")  # 10^10 nodes once expanded
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(p)
    assert time.perf_counter() - started < 2
    assert "expands to more than" in info.value.problem
    assert "\n" not in str(info.value)


def test_an_oversized_spec_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    p = tmp_path / "eval.yaml"
    p.write_text("# " + "x" * (2 << 20) + "\nname: t\n")
    with pytest.raises(SpecError, match=r"larger than a spec may be \(1,048,576 bytes\)"):
        load_spec(p)


def test_recursive_alias_is_a_spec_error(tmp_path: Path) -> None:
    p = _yaml_spec(tmp_path, "labels: &l {x: *l}\n")
    with pytest.raises(SpecError, match="refers to itself"):
        load_spec(p)


def test_modest_aliases_still_load(tmp_path: Path) -> None:
    extra = (
        "limits: {default: &lim {concurrency: 4, rpm: 60}, gpt-4o-mini: *lim}\n"
        "report: {title: 'a title'}\n"
    )
    spec = load_spec(_yaml_spec(tmp_path, extra))
    assert spec.limits["gpt-4o-mini"].rpm == 60


def test_limits_shared_defaults_to_off_and_is_set_per_model_or_by_default(tmp_path: Path) -> None:
    data = _minimal(tmp_path)
    spec = spec_from_dict(data, spec_dir=tmp_path)
    assert spec.limit_for("gpt-4o-mini").shared is False
    data["limits"] = {"default": {"rpm": 600, "shared": True}, "gpt-4o-mini": {"shared": False}}
    spec = spec_from_dict(data, spec_dir=tmp_path)
    assert spec.limit_for("claude-haiku-4-5").shared is True
    assert spec.limit_for("gpt-4o-mini").shared is False
    assert spec.limit_for("gpt-4o-mini").rpm == 600
    data["limits"] = {"default": {"rpm": 600, "share": True}}
    with pytest.raises(SpecError, match=r"limits\.default\.share"):
        spec_from_dict(data, spec_dir=tmp_path)
    data["limits"] = {"default": {"shared": "sometimes"}}
    with pytest.raises(SpecError, match=r"limits\.default\.shared"):
        spec_from_dict(data, spec_dir=tmp_path)
