"""eval.yaml → strict pydantic models (SPEC.md).

Unknown keys are errors that name the YAML path and suggest the closest key; ``${ENV}`` in strings
is expanded; relative input paths resolve against the spec file's folder, outputs against the
working directory. ``load_spec`` is the only way in.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import typing
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evalpipe.errors import SpecError
from evalpipe.logfiles import list_files

__all__ = [
    "BUILTIN_FAKE",
    "CHECK_TYPES",
    "EVAL_SET_COLUMN",
    "REFERENCE_CHECKS",
    "Arm",
    "Baseline",
    "Candidate",
    "Check",
    "GateSpec",
    "Judge",
    "JudgeAnchors",
    "Label",
    "Limit",
    "LoggedMetric",
    "Schedule",
    "Spec",
    "eval_set_name",
    "load_spec",
    "parse_duration",
    "spec_from_dict",
]

log = logging.getLogger(__name__)

BUILTIN_FAKE: Final = "builtin:fake"
"""`base_url` value that starts the built-in fake provider (no keys, loopback only)."""

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVED_ARMS: Final = frozenset({"baseline", "logged"})


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True
    )

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields) | {
                f.alias for f in cls.model_fields.values() if f.alias is not None
            }
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                    hint = f"Did you mean `{close[0]}`?" if close else _known_hint(known)
                    raise PydanticCustomError(
                        "unknown_key", "unknown key", {"key": str(key), "hint": hint}
                    )
        return data


def _known_hint(known: set[str]) -> str:
    return "Known keys: " + ", ".join(sorted(known)) + "."


# --- traffic ---------------------------------------------------------------------------------


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")


def parse_duration(text: str) -> timedelta:
    """`24h`, `7d`, `1d12h`, `90m` → a timedelta.

    Raises:
        ValueError: not of that form, or zero.
    """
    m = _DURATION.fullmatch(text.strip())
    out = timedelta(0)
    if m is not None and any(m.groups()):
        days, hours, minutes = (int(g or 0) for g in m.groups())
        out = timedelta(days=days, hours=hours, minutes=minutes)
    if out <= timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration; write it as 24h, 7d, 1d12h or 90m")
    return out


class Window(_Strict):
    start: datetime | None = None
    """Earliest timestamp kept (inclusive). A date means its midnight UTC."""
    end: datetime | None = None
    """Latest timestamp kept (exclusive). A date means its midnight UTC."""
    last: timedelta | None = None
    """Nightly runs: keep the records of this long before the night's run (`24h`, `7d`);
    `start`/`end` are then set per night."""

    @field_validator("last", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _last_alone(self) -> Window:
        if self.last is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either `last` or `start`/`end`, not both")
        return self

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date_is_midnight_utc(cls, v: Any) -> Any:
        if isinstance(v, date) and not isinstance(v, datetime):
            return datetime.combine(v, time(0), tzinfo=UTC)
        return v

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v


class Sample(_Strict):
    n: int = Field(gt=0)
    """How many records to keep."""
    stratify: list[str] = Field(default_factory=list)
    """Columns to stratify the sample by (proportional allocation)."""


class Traffic(_Strict):
    path: str
    """File, folder or glob of logged traffic, relative to the spec's folder. May name the
    night's date for nightly runs: `logs/{date:%Y-%m-%d}/*.jsonl.gz`."""
    format: str = "auto"
    """Adapter name (FORMATS.md), or `auto` to detect it."""
    window: Window | None = None
    """Keep only records in this time window."""
    dedupe: bool = False
    """Drop repeated requests (same request_sha256); the count is reported."""
    sample: Sample | None = None
    """Replay a seeded sample instead of every record."""


# --- arms --------------------------------------------------------------------------------------


Provider = Literal["openai", "anthropic", "openai_compatible"]
Transport = Literal["online", "batch"]


class SystemPrompt(_Strict):
    replace: str | None = None
    """Path of a file whose text replaces the logged system prompt."""
    append: str | None = None
    """Text appended to the logged system prompt."""

    @model_validator(mode="after")
    def _one_of(self) -> SystemPrompt:
        if (self.replace is None) == (self.append is None):
            raise ValueError("give exactly one of `replace` or `append`")
        return self


class SystemPromptBy(_Strict):
    attribute: str
    """Record attribute whose value picks the file."""
    files: dict[str, str]
    """Attribute value → path of the system prompt that replaces the logged one."""


FallbackOn = Literal[
    "rate_limit",
    "overloaded",
    "server_error",
    "timeout",
    "connection",
    "invalid_body",
    "provider_down",
    "bad_request",
]
"""Failure classes of a request after its retries (`providers.calls.failure_class`)."""

DEFAULT_FALLBACK_ON: Final[tuple[FallbackOn, ...]] = (
    "rate_limit",
    "overloaded",
    "server_error",
    "timeout",
    "connection",
    "invalid_body",
    "provider_down",
)


class Fallback(_Strict):
    provider: Provider
    """openai | anthropic | openai_compatible."""
    model: str
    """Model to call when the one before it fails."""
    base_url: str | None = None
    """API root, as for an arm."""
    api_key_env: str | None = None
    """Environment variable holding the API key (default as for an arm)."""
    on: list[FallbackOn] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_ON))
    """Failure classes (after retries) of the model before it that send the request here:
    rate_limit, overloaded, server_error, timeout, connection, invalid_body, provider_down (the
    breaker ended it), bad_request (any other 4xx); default all but bad_request."""


class Arm(_Strict):
    name: str
    """Arm name, used in tables and reports."""
    provider: Provider
    """openai | anthropic | openai_compatible."""
    model: str
    """Model (snapshot) to call."""
    base_url: str | None = None
    """API root for OpenAI-compatible servers; `builtin:fake` starts the built-in fake provider."""
    api_key_env: str | None = None
    """Environment variable holding the API key (default OPENAI_API_KEY / ANTHROPIC_API_KEY)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Request parameter overrides for this arm only."""
    system_prompt: SystemPrompt | None = None
    """Replace or extend the logged system prompt."""
    system_prompt_by: SystemPromptBy | None = None
    """Per-attribute system prompt files."""
    fallback: list[Fallback] = Field(default_factory=list)
    """Tried in order when the primary fails after its retries, as production would: each on the
    failure classes it names (`on`); rows say `fallback_used` and the model that answered."""
    version: str | None = None
    """Free-text configuration version, shown in reports and stored with every row."""
    transport: Transport | None = None
    """How this arm's requests are sent: `online` or `batch` (default: `replay.transport`)."""

    @field_validator("model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        if not _MODEL_NAME.match(v):
            raise PydanticCustomError(
                "model_name",
                "`{value}` is not a valid model name (letters, digits and ._:/@+- only, no spaces)",
                {"value": v},
            )
        return v

    @field_validator("name")
    @classmethod
    def _arm_name(cls, v: str) -> str:
        if not _ARM_NAME.match(v):
            raise ValueError(f"`{v}` is not a valid name (letters, digits and ._- only)")
        return v

    def config_hash(self) -> str:
        """Short hash of everything that defines this arm's requests."""
        return _sha256(self.model_dump(mode="json", exclude={"name", "version", "transport"}))[:12]


class Baseline(Arm):
    name: str = "baseline"
    """Display name of the production arm; its rows are always stored under arm `baseline`."""
    repeats: int = Field(default=1, ge=1, le=5)
    """2 replays the baseline twice to measure its own noise floor (the gate uses repeat 0)."""
    compare_logged: bool = True
    """Also score what production served (arm `logged`), shown but never gated."""


class Candidate(Arm):
    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in _RESERVED_ARMS:
            raise ValueError(f"`{v}` is reserved for evalpipe's own arms; choose another name")
        return v


class Limit(_Strict):
    concurrency: int | None = Field(default=None, gt=0)
    """Requests in flight at once (the ceiling of the adaptive concurrency)."""
    concurrency_min: int | None = Field(default=None, gt=0)
    """Floor of the adaptive concurrency: it never goes below this on 429s and overloads."""
    adaptive: bool | None = None
    """Adapt the requests in flight to the provider (AIMD: halve on 429/503/529, +1 per window of
    successes); false keeps `concurrency` fixed."""
    rpm: int | None = Field(default=None, gt=0)
    """Requests per minute."""
    tpm: int | None = Field(default=None, gt=0)
    """Tokens per minute."""
    shared: bool | None = None
    """Keep rpm and tpm across every flow using this provider + base URL + model (a nightly and
    a CI gate on one API key), as Prefect global concurrency limits used as rate limits, when a
    Prefect API is configured (without one: a warning, and the run keeps its own)."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Timeout of one request attempt, in seconds."""
    max_retries: int | None = Field(default=None, ge=0)
    """Retries of a failed request (429, 5xx, connection, timeout): after the wait the server
    asks for, else exponential backoff with full jitter."""
    breaker_pause_s: float | None = Field(default=None, gt=0)
    """Pause of an arm whose provider keeps failing before its first probe (doubling; the arm
    ends after five failed probes)."""


DEFAULT_LIMIT: Final = Limit(
    concurrency=32,
    concurrency_min=1,
    adaptive=True,
    shared=False,
    timeout_s=60,
    max_retries=6,
    breaker_pause_s=1.0,
)


class Price(_Strict):
    input: float = Field(ge=0)
    """USD per 1M input tokens."""
    output: float = Field(ge=0)
    """USD per 1M output tokens."""
    cached_input: float | None = Field(default=None, ge=0)
    """USD per 1M cached input tokens (default: the input price)."""


# --- checks ------------------------------------------------------------------------------------

Where = dict[str, str | list[str]]


class _Check(_Strict):
    name: str
    """Metric name."""
    where: Where = Field(default_factory=dict)
    """Apply only to records whose column/attribute has this value (or one of these values)."""
    critical: bool = False
    """A critical check gates on any significant regression (margin 0.5 pp by default)."""
    margin: float | None = Field(default=None, gt=0, lt=1)
    """Non-inferiority margin for this check (default 2 pp, critical 0.5 pp)."""


class JsonValid(_Check):
    type: Literal["json_valid"]


class JsonSchemaCheck(_Check):
    type: Literal["json_schema"]
    schema_: str = Field(alias="schema")
    """`request` (the schema the logged request asked for) or a path to a JSON Schema file."""


class NotRefusal(_Check):
    type: Literal["not_refusal"]


class MaxChars(_Check):
    type: Literal["max_chars"]
    value: int = Field(gt=0)
    """Longest acceptable output, in characters."""


class NoPii(_Check):
    type: Literal["no_pii"]


class ToolCallValid(_Check):
    type: Literal["tool_call_valid"]


class FinishReasonNot(_Check):
    type: Literal["finish_reason_not"]
    values: list[str] = Field(default_factory=lambda: ["length", "content_filter"])
    """Finish reasons that fail the check."""


class Regex(_Check):
    type: Literal["regex"]
    pattern: str
    """Regular expression the output must match (search)."""


class _TextCheck(_Check):
    case_sensitive: bool = True
    """False compares lower-cased text (Unicode-aware)."""


class Contains(_TextCheck):
    type: Literal["contains"]
    value: str = Field(min_length=1)
    """Text the output must contain."""


class NotContains(_TextCheck):
    type: Literal["not_contains"]
    value: str = Field(min_length=1)
    """Text the output must not contain."""


class ContainsAny(_TextCheck):
    type: Literal["contains_any"]
    values: list[str] = Field(min_length=1)
    """The output must contain at least one of these."""


class ContainsAll(_TextCheck):
    type: Literal["contains_all"]
    values: list[str] = Field(min_length=1)
    """The output must contain every one of these."""


class StartsWith(_TextCheck):
    type: Literal["starts_with"]
    value: str = Field(min_length=1)
    """Text the output must start with (leading whitespace ignored)."""


class Equals(_TextCheck):
    type: Literal["equals"]
    value: str | None = None
    """Expected output; without it, the record's `reference` (not scorable where it has none)."""
    trim: bool = True
    """Ignore leading and trailing whitespace on both sides."""


class LevenshteinMax(_Check):
    type: Literal["levenshtein_max"]
    value: int = Field(ge=0)
    """Largest edit distance (characters) from the record's `reference`."""


class RougeNMin(_Check):
    type: Literal["rouge_n_min"]
    value: float = Field(ge=0, le=1)
    """Smallest acceptable ROUGE-N against the record's `reference`."""
    n: int = Field(default=1, ge=1, le=4)
    """n-gram length (words, lower-cased)."""
    measure: Literal["recall", "precision", "f1"] = "f1"
    """Which ROUGE-N figure: recall (Lin 2004's original), precision or their F1."""


class BleuMin(_Check):
    type: Literal["bleu_min"]
    value: float = Field(ge=0, le=1)
    """Smallest acceptable sentence BLEU (1–4-grams, brevity penalty, add-one smoothing of
    the 2–4-gram precisions) against the record's `reference`."""


class MinChars(_Check):
    type: Literal["min_chars"]
    value: int = Field(gt=0)
    """Shortest acceptable output, in characters."""


class MaxOutputTokens(_Check):
    type: Literal["max_output_tokens"]
    value: int = Field(gt=0)
    """Most output tokens (as the provider counted them; not scorable when unknown)."""


class LatencyMsMax(_Check):
    type: Literal["latency_ms_max"]
    value: float = Field(gt=0)
    """Slowest acceptable answer, in milliseconds."""


class CostUsdMax(_Check):
    type: Literal["cost_usd_max"]
    value: float = Field(gt=0)
    """Dearest acceptable answer, in USD (not scorable when the price is unknown)."""


class ToolCallF1(_Check):
    type: Literal["tool_call_f1"]
    value: float = Field(default=1.0, ge=0, le=1)
    """Smallest acceptable F1 of the output's tool calls against the reference calls."""


class ToolCallExact(_Check):
    type: Literal["tool_call_exact"]


class JsonPath(_Check):
    type: Literal["json_path"]
    path: str = Field(min_length=1)
    """JSONPath into the output's JSON (DuckDB's dialect: `$.a.b[0]`, or a JSON pointer `/a/b`)."""
    equals: Any = None
    """The value found must equal this JSON value."""
    matches: str | None = None
    """Or: the value found (as text) must match this regular expression (search)."""

    @model_validator(mode="after")
    def _one_test(self) -> JsonPath:
        if (self.equals is None) == (self.matches is None):
            raise ValueError("give exactly one of `equals` or `matches`")
        return self


class PythonCheck(_Check):
    type: Literal["python"]
    function: str = Field(min_length=1)
    """`module:function`, or the name of a scorer registered under the `evalpipe.scorers`
    entry point. It takes the scoring frame (a pyarrow Table) and returns one bool (or, with
    `min`, one number) per row; None is not scorable."""
    min: float | None = None
    """The function returns numbers: a row passes at this value or above."""


CHECK_TYPES: Final = (
    JsonValid,
    JsonSchemaCheck,
    NotRefusal,
    MaxChars,
    NoPii,
    ToolCallValid,
    FinishReasonNot,
    Regex,
    Contains,
    NotContains,
    ContainsAny,
    ContainsAll,
    StartsWith,
    Equals,
    LevenshteinMax,
    RougeNMin,
    BleuMin,
    MinChars,
    MaxOutputTokens,
    LatencyMsMax,
    CostUsdMax,
    ToolCallF1,
    ToolCallExact,
    JsonPath,
    PythonCheck,
)
"""Every check model, in the order SPEC.md and the README list them."""

REFERENCE_CHECKS: Final = frozenset(
    {"levenshtein_max", "rouge_n_min", "bleu_min", "tool_call_f1", "tool_call_exact"}
)
"""Check types scored against the record's `reference` (`equals` too, without a `value`)."""

Check = Annotated[
    JsonValid
    | JsonSchemaCheck
    | NotRefusal
    | MaxChars
    | NoPii
    | ToolCallValid
    | FinishReasonNot
    | Regex
    | Contains
    | NotContains
    | ContainsAny
    | ContainsAll
    | StartsWith
    | Equals
    | LevenshteinMax
    | RougeNMin
    | BleuMin
    | MinChars
    | MaxOutputTokens
    | LatencyMsMax
    | CostUsdMax
    | ToolCallF1
    | ToolCallExact
    | JsonPath
    | PythonCheck,
    Field(discriminator="type"),
]

Diff = Literal["exact", "similarity", "json_structure", "length_ratio", "tool_calls"]
_DEFAULT_DIFFS: Final[tuple[Diff, ...]] = ("exact", "similarity", "length_ratio")


class JudgeAnchors(_Strict):
    enabled: bool = True
    """Re-judge the frozen anchor set with every run (`anchors: false` turns it off)."""
    path: str | None = None
    """Anchor set (JSON Lines) of a judge with its own prompt file, relative to the spec's
    folder; default: the set shipped beside a packaged prompt (`<prompt>.anchors.jsonl`)."""
    min_agreement: float = Field(default=0.8, ge=0, le=1)
    """Below this share of the anchors' known verdicts the judge has changed: its metric is
    INVALID."""
    max_changed: float = Field(default=0.2, ge=0, le=1)
    """More than this share of the anchors answered differently from the previous run of the
    spec (same judge model and prompt) and the judge has changed: its metric is INVALID."""


class Judge(_Strict):
    name: str
    """Metric name."""
    type: Literal["pairwise", "pointwise", "reference"]
    """pairwise (candidate vs baseline) | pointwise (a score per output) | reference (a score per
    output against the record's `reference` answer)."""
    provider: Provider
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    prompt: str | None = None
    """Prompt name@version in evalpipe/score/prompts/, or a path."""
    sample: int | None = Field(default=None, gt=0)
    """Judge a seeded sample of this many records (stratified by the gate's slices)."""
    scale: tuple[int, int] = (1, 5)
    """Pointwise score range."""
    rubric: str | None = None
    """What the judge looks for."""
    where: Where = Field(default_factory=dict)
    margin: float | None = Field(default=None, gt=0, lt=1)
    """Non-inferiority margin (pairwise: below ½; pointwise: share of the scale range)."""
    anchors: JudgeAnchors = Field(default_factory=JudgeAnchors)
    """Judge drift: a frozen anchor set with known verdicts, re-judged with every run."""

    @field_validator("anchors", mode="before")
    @classmethod
    def _anchors_switch(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v

    _model_ok = field_validator("model")(Arm._model_name.__func__)  # type: ignore[attr-defined]


class Label(_Strict):
    column: str | None = None
    """Record column holding the label, e.g. attributes.thumbs_up or labels.thumbs."""
    kind: Literal["binary", "ordinal", "continuous", "preference"] = "binary"
    """binary (0/1: thumbs) | ordinal (a rating on the judge's scale) | continuous | preference
    (a pairwise verdict as the candidate's win share: 0 baseline wins, ½ tie, 1 candidate wins)."""
    path: str | None = None
    """Instead of `column`: a file of labels per record (CSV, JSON array or JSON Lines),
    relative to the spec's folder."""
    id_field: str = "record_id"
    """Field of the file naming the record."""
    value_field: str = "value"
    """Field of the file (or the column's values) holding the label."""
    values: dict[str, float] = Field(default_factory=dict)
    """Label text → number, tried first (e.g. {"up": 1, "down": 0}; AlpacaEval's legacy draw
    {"0": 1.5})."""
    range: tuple[float, float] | None = None
    """Map labels linearly from this range onto 0–1 (AlpacaEval's preferences: [1, 2])."""
    judge: str | None = None
    """The judge these labels calibrate: its agreement and Cohen's κ with them are reported."""
    arm: str | None = None
    """Whose answers were labelled: `logged` (default for pointwise and reference judges) or a
    candidate (default for a pairwise judge: the first candidate)."""
    min_kappa: float | None = Field(default=None, ge=-1, le=1)
    """Below this κ (quadratic-weighted for ordinal scales and preferences) the judge's metric
    cannot be trusted: every candidate is INVALID, with the figures in the reason."""

    @model_validator(mode="after")
    def _one_source(self) -> Label:
        if (self.column is None) == (self.path is None):
            raise ValueError("give exactly one of `column` or `path`")
        return self


class LoggedMetric(_Strict):
    name: str
    """Metric name in the scores table and the report."""
    column: str
    """Record column holding the value, e.g. labels.thumbs or attributes.csat (numbers)."""
    kind: Literal["binary", "continuous"] = "binary"
    """binary (0/1, a rate: thumbs up) | continuous (a mean: a 1–5 rating)."""
    margin: float | None = Field(default=None, gt=0)
    """Canary non-inferiority margin (binary: 2 pp by default; continuous: none, not gated)."""


class RampStep(_Strict):
    weight: float = Field(gt=0, le=1)
    until: datetime


class GateSpec(_Strict):
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """Two-sided level of every interval."""
    min_n: int = Field(default=50, ge=1)
    """Fewer usable paired records than this makes a candidate INVALID."""
    cluster: str | None = None
    """Column for clustered standard errors (session_id, tenant, …)."""
    slices: list[str] = Field(default_factory=list)
    """Columns whose values get their own estimates."""
    gated_slices: list[str] = Field(default_factory=list)
    """Slice columns that join the gate (Holm family)."""
    margins: dict[str, float] = Field(default_factory=dict)
    """Per-metric non-inferiority margins, overriding the defaults."""
    latency_p95_ratio_max: float | None = Field(default=None, gt=0)
    """Gate the candidate/baseline latency p95 ratio at this bound."""
    ttft_p95_ratio_max: float | None = Field(default=None, gt=0)
    """Gate the candidate/baseline time-to-first-token p95 ratio at this bound (streamed replay,
    `replay.stream: true`)."""
    cost_ratio_max: float | None = Field(default=None, gt=0)
    """Gate the candidate/baseline mean cost ratio at this bound."""
    arm_column: str | None = None
    control: str | None = None
    treatment: str | None = None
    unit: str | None = None
    ramp: list[RampStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _gated_are_slices(self) -> GateSpec:
        missing = [s for s in self.gated_slices if s not in self.slices]
        if missing:
            raise ValueError(f"gated_slices {missing} must also be listed in slices")
        return self


class ReportSpec(_Strict):
    title: str | None = None
    out: str = "reports"
    """Folder of the HTML reports, relative to the working directory."""
    top_examples: int = Field(default=10, ge=0, le=200)
    """Worst regressions shown side by side."""


class Alerts(_Strict):
    webhook_url: str | None = None
    """Slack-compatible incoming webhook for the nightly findings (`${ENV}` is expanded)."""
    retries: int = Field(default=3, ge=0, le=10)
    """Retries of a failed webhook POST (then the failure is logged; the night goes on)."""
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    """Seconds to wait for the webhook's (or the Pushgateway's) answer."""
    pushgateway_url: str | None = None
    """Prometheus Pushgateway to PUT each run's metrics.prom to (job `evalpipe`, by spec)."""


class Otel(_Strict):
    endpoint: str | None = None
    """OTLP/HTTP collector (`http://127.0.0.1:4318`) that receives a `gen_ai.evaluation.result`
    event per candidate and gated metric of each run (the `otel` extra)."""


class Schedule(_Strict):
    cron: str
    """When the nightly flow runs, a 5-field cron expression (`0 3 * * *`)."""
    timezone: str = "UTC"
    """IANA time zone of the cron expression and of the nights' dates (`Europe/Berlin`)."""

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(v, datetime(2026, 1, 1, tzinfo=UTC))
        except (CronSimError, ValueError) as exc:
            raise ValueError(f"{v!r} is not a cron expression ({exc})") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return v


class RedactPii(_Strict):
    judges: bool = True
    reports: bool = True
    quarantine: bool = True


class ReplaySpec(_Strict):
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameter overrides for every arm (default: the logged params)."""
    max_tokens_default: int = Field(default=1024, gt=0)
    """max_tokens sent to Anthropic when the logged request has none."""
    stream: bool = False
    """Stream every request (OpenAI SSE with usage, Anthropic message stream) and record the
    time to first token (`ttft_ms`), gated like latency p95."""
    transport: Transport = "online"
    """`online` sends each request as it is admitted; `batch` sends each arm's uncached requests
    as one OpenAI Batch / Anthropic Message Batch per partition, at half the list price, and
    polls it (resumable: the batch id is journaled). An arm's own `transport` overrides it."""
    batch_poll_seconds: float = Field(default=30.0, gt=0)
    """Seconds between two polls of a submitted batch."""
    batch_max_requests: int | None = Field(default=None, gt=0)
    """Most requests in one batch (default: the provider's limit, 50,000 on OpenAI and 100,000
    on Anthropic); more are split into several batches, as are files over the size limits."""


class Spec(_Strict):
    """A whole eval.yaml."""

    name: str
    """Used in run ids and reports."""
    mode: Literal["shadow", "canary"] = "shadow"
    seed: int = 0
    store: str = ".evalpipe"
    """Local path or fsspec URL of the store (relative to the working directory)."""
    cache: Literal["read_write", "write_only", "off"] = "read_write"
    redact_pii: RedactPii = Field(default_factory=RedactPii)
    replay: ReplaySpec = Field(default_factory=ReplaySpec)
    traffic: Traffic
    eval_sets: list[str] = Field(default_factory=list)
    """Curated cases replayed beside the traffic (`eval_sets/<name>/*.jsonl`: request, optional
    `reference`, tags): a name, found in `eval_sets/` beside the spec or in a folder above it, or
    a path. Their records carry the attribute `eval_set` = the name, are always judged, skip
    the traffic's window and sample, and each set is its own gated slice (`eval_set`)."""
    baseline: Baseline | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    limits: dict[str, Limit] = Field(default_factory=dict)
    budget_usd: float | None = Field(default=None, gt=0)
    """Hard cap on replay + judge spend."""
    prices: dict[str, Price] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    diffs: list[Diff] = Field(default_factory=lambda: list(_DEFAULT_DIFFS))
    judges: list[Judge] = Field(default_factory=list)
    metrics: list[LoggedMetric] = Field(default_factory=list)
    """Logged columns scored as metrics of what production served (arm `logged`): shown, and
    gated in canary mode."""
    labels: dict[str, Label] = Field(default_factory=dict)
    """Logged human feedback for judge agreement (accepted, not used yet: a warning says so)."""
    gate: GateSpec = Field(default_factory=GateSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    alerts: Alerts = Field(default_factory=Alerts)
    schedule: Schedule | None = None
    """When the nightly flow runs (`evalpipe serve-nightly`, prefect.yaml)."""
    otel: Otel = Field(default_factory=Otel)
    """OpenTelemetry GenAI evaluation events of each run."""

    _spec_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _spec_path: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", v):
            raise ValueError("use letters, digits and ._- only (it becomes part of run ids)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _eval_sets_are_slices(cls, data: Any) -> Any:
        """Each eval set is a gated slice of the column `eval_set` (added when not listed)."""
        if not isinstance(data, dict) or not data.get("eval_sets"):
            return data
        gate = data.get("gate")
        if gate is not None and not isinstance(gate, dict):
            return data  # the gate's own validation says what is wrong with it
        gate = dict(gate or {})
        for key in ("slices", "gated_slices"):
            listed = gate.get(key)
            listed = list(listed) if isinstance(listed, list) else listed
            if listed is None:
                listed = []
            if isinstance(listed, list) and EVAL_SET_COLUMN not in listed:
                listed.append(EVAL_SET_COLUMN)
            gate[key] = listed
        return {**data, "gate": gate}

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.mode == "shadow":
            if self.baseline is None:
                raise PydanticCustomError(
                    "missing_key", "a shadow run needs a `baseline`", {"key": "baseline"}
                )
            if not self.candidates:
                raise PydanticCustomError(
                    "missing_key",
                    "a shadow run needs at least one candidate",
                    {"key": "candidates"},
                )
        names = [c.name for c in self.candidates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"candidate names must be unique; repeated: {', '.join(dupes)}")
        metrics = (
            [c.name for c in self.checks]
            + [j.name for j in self.judges]
            + [m.name for m in self.metrics]
        )
        dupes = sorted({n for n in metrics if metrics.count(n) > 1})
        if dupes:
            raise ValueError(f"check and judge names must be unique; repeated: {', '.join(dupes)}")
        sets = [eval_set_name(e) for e in self.eval_sets]
        dupes = sorted({n for n in sets if sets.count(n) > 1})
        if dupes:
            raise ValueError(f"eval set names must be unique; repeated: {', '.join(dupes)}")
        if self.replay.stream and any(self.transport_of(a) == "batch" for a in self.arms()):
            raise ValueError(
                "replay.stream cannot be combined with transport `batch` "
                "(a batch is not streamed: set one arm's `transport: online` or drop `stream`)"
            )
        judges = {j.name: j for j in self.judges}
        for name, label in self.labels.items():
            if label.judge is None:
                continue
            judge = judges.get(label.judge)
            if judge is None:
                raise ValueError(
                    f"labels.{name}.judge: no judge named `{label.judge}` "
                    f"(judges: {', '.join(judges) or 'none'})"
                )
            if (label.kind == "preference") != (judge.type == "pairwise"):
                raise ValueError(
                    f"labels.{name}: kind `{label.kind}` cannot calibrate the {judge.type} judge "
                    f"`{judge.name}` (preferences go with pairwise judges, ratings with others)"
                )
        return self

    # --- resolved views -----------------------------------------------------------------------

    @property
    def spec_dir(self) -> Path:
        return self._spec_dir

    @property
    def spec_path(self) -> Path | None:
        return self._spec_path

    def resolve_input(self, path: str) -> Path:
        """An input path (traffic, prompts, schemas) resolved against the spec's folder."""
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else (self._spec_dir / p)

    def eval_set_paths(self) -> list[tuple[str, Path]]:
        """(name, folder or file) of each `eval_sets` entry; a name is looked for as
        `eval_sets/<name>` in the spec's folder and then in each folder above it.

        Raises:
            SpecError: an eval set that cannot be found.
        """
        out = []
        for i, entry in enumerate(self.eval_sets):
            name = eval_set_name(entry)
            if _looks_like_path(entry):
                tried = [self.resolve_input(entry)]
            else:
                tried = [d / "eval_sets" / entry for d in (self._spec_dir, *self._spec_dir.parents)]
            found = next((p for p in tried if p.exists()), None)
            if found is None:
                raise SpecError(
                    f"eval_sets[{i}]",
                    f"no eval set `{entry}` (looked for {tried[0]}"
                    + (" and in the folders above" if len(tried) > 1 else "")
                    + ")",
                    "Put its cases in eval_sets/<name>/*.jsonl beside the spec (or above it), "
                    "or give a path relative to the spec's folder.",
                )
            out.append((name, found))
        return out

    def arms(self) -> list[Arm]:
        """Baseline first, then the candidates (shadow mode)."""
        return ([self.baseline] if self.baseline else []) + list(self.candidates)

    def arm_named(self, arm: str) -> Arm:
        if arm == "baseline" and self.baseline is not None:
            return self.baseline
        for c in self.candidates:
            if c.name == arm:
                return c
        raise KeyError(arm)

    def transport_of(self, arm: Arm) -> Transport:
        """How the arm's requests are sent: its own `transport`, else `replay.transport`."""
        return arm.transport or self.replay.transport

    def limit_for(self, model: str) -> Limit:
        """The model's limits over the spec's `default` over evalpipe's defaults."""
        merged = DEFAULT_LIMIT.model_dump()
        for key in ("default", model):
            if key in self.limits:
                merged.update(self.limits[key].model_dump(exclude_none=True))
        return Limit(**merged)

    def spec_hash(self) -> str:
        """Hash of the resolved spec and of the traffic files it reads (see `_fingerprint`)."""
        body = self.model_dump(mode="json", by_alias=True)
        return _sha256({"spec": body, "traffic": _fingerprint(self)})[:16]


EVAL_SET_COLUMN: Final = "eval_set"
"""Record attribute naming the eval set a record came from (null for logged traffic)."""
_EVAL_SET_SUFFIXES: Final = (".jsonl.gz", ".jsonl", ".json.gz", ".json", ".parquet")


def _looks_like_path(entry: str) -> bool:
    return (
        "/" in entry
        or "\\" in entry
        or entry.startswith((".", "~"))
        or entry.endswith(_EVAL_SET_SUFFIXES)
    )


def eval_set_name(entry: str) -> str:
    """The name of an `eval_sets` entry: itself, or its folder's or file's name (no suffix)."""
    if not _looks_like_path(entry):
        return entry
    base = Path(entry.rstrip("/\\")).name
    for suffix in _EVAL_SET_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _sha256(obj: Any) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _fingerprint(spec: Spec) -> list[tuple[str, int, int]]:
    """(path from the spec's folder, size, mtime in ns) of each file ingest reads (`list_files`).

    A stat per file, cheap however large the logs: a log appended to, added, removed or rewritten
    changes it (as `make` and `rsync` tell files apart); a copy with new mtimes only reruns from
    the cache.
    """
    out = []
    files = list_files(spec.resolve_input(spec.traffic.path))
    for _, where in spec.eval_set_paths():
        files.extend(list_files(where))
    for f in files:
        stat = f.stat()
        out.append((os.path.relpath(f, spec.spec_dir), stat.st_size, stat.st_mtime_ns))
    return out


# --- loading -----------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    return value


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # Discriminated unions add the tag (e.g. "json_valid") and function validators their name.
    tags = {typing.get_args(cls.model_fields["type"].annotation)[0] for cls in CHECK_TYPES}
    return tuple(p for p in loc if not (isinstance(p, str) and (p in tags or "[" in p)))


def _spec_error(exc: ValidationError, path: str) -> SpecError:
    err = exc.errors()[0]
    loc = _clean_loc(tuple(err["loc"]))
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "unknown_key":
        return SpecError(_yaml_path((*loc, ctx["key"])), "unknown key", ctx["hint"], path=path)
    if kind == "missing_key":
        return SpecError(_yaml_path((*loc, ctx["key"])), err["msg"], "", path=path)
    if kind == "missing":
        return SpecError(_yaml_path(loc), "required key is missing", "Add it.", path=path)
    if kind == "union_tag_invalid":
        return SpecError(
            _yaml_path((*loc, "type")),
            f"unknown type `{ctx.get('tag')}`",
            f"Use one of {ctx.get('expected_tags')}.",
            path=path,
        )
    if kind == "literal_error":
        return SpecError(
            _yaml_path(loc),
            f"`{err.get('input')}` is not allowed",
            f"Use {ctx.get('expected')}.",
            path=path,
        )
    msg = err["msg"].removeprefix("Value error, ")
    return SpecError(_yaml_path(loc), msg, "", path=path)


def spec_from_dict(
    data: dict[str, Any], *, spec_dir: Path | None = None, path: str = "eval.yaml"
) -> Spec:
    """Validate a spec given as a dict (as parsed from YAML)."""
    if not isinstance(data, dict):
        raise SpecError(
            "", "the spec must be a YAML mapping", "See SPEC.md for the shape.", path=path
        )
    try:
        spec = Spec.model_validate(_expand_env(data))
    except ValidationError as exc:
        raise _spec_error(exc, path) from None
    spec._spec_dir = (spec_dir or Path.cwd()).resolve()
    _check_inputs(spec, path)
    _warn_unused(spec, path)
    return spec


def _warn_unused(spec: Spec, path: str) -> None:
    """Keys of the documented shape that this version accepts but does not act on yet."""
    for name, label in spec.labels.items():
        if label.judge is None:
            log.warning(
                "%s labels.%s: no `judge`, so no judge is calibrated against it "
                "(to show a logged column as a metric, list it under `metrics`)",
                path,
                name,
            )


MAX_SPEC_BYTES: Final = 1 << 20
"""Largest eval.yaml read; a spec is a page or two, so more is a mistake or an attack."""
MAX_SPEC_NODES: Final = 100_000
"""Most YAML nodes a spec may hold once its aliases are expanded (bounds an alias bomb)."""


class _SpecLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 booleans: only true/false are booleans.

    YAML 1.1 also reads yes/no/on/off as booleans, which turns the documented `cache: off` (and a
    `where:` value such as `yes`) into False; pydantic still reads those words into bool fields.
    """


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class _SelfReference(Exception):
    pass


def _expanded_nodes(root: yaml.Node) -> int:
    """How many nodes the document holds with every alias expanded, memoised per node (an alias
    shares its anchor's node), so counting costs the document's size, not the expansion's."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
        elif id(node) in open_nodes:
            raise _SelfReference  # met again below itself: an alias inside its own anchor
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _read_yaml(p: Path) -> Any:
    """The YAML document of `p`, bounded in bytes and in expanded nodes before it is built."""
    with p.open("rb") as fh:
        text = fh.read(MAX_SPEC_BYTES + 1)
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(
            "",
            f"the file is larger than a spec may be ({MAX_SPEC_BYTES:,} bytes)",
            "Is this the eval.yaml?",
            path=str(p),
        )
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            nodes = _expanded_nodes(node)
        except _SelfReference:
            raise SpecError(
                "", "an alias refers to itself (a recursive anchor)", "Remove it.", path=str(p)
            ) from None
        if nodes > MAX_SPEC_NODES:
            raise SpecError(
                "",
                f"the YAML expands to more than {MAX_SPEC_NODES:,} nodes through its aliases",
                "Write the spec without nested anchors.",
                path=str(p),
            )
        return loader.construct_document(node)
    except RecursionError:
        raise SpecError("", "the YAML is nested too deeply", "", path=str(p)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError("", f"not valid YAML ({problem})", "", path=str(p)) from None
    finally:
        loader.dispose()


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and validate an eval.yaml.

    Raises:
        SpecError: the file is missing, too large, is not YAML, or does not match the spec.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError("", "file not found", "Pass the path of an eval.yaml.", path=str(p))
    spec = spec_from_dict(_read_yaml(p), spec_dir=p.parent, path=str(p))
    spec._spec_path = p.resolve()
    return spec


def _check_inputs(spec: Spec, path: str) -> None:
    if "{" in spec.traffic.path:  # a nightly path pattern: its files exist per night
        try:
            spec.traffic.path.format(date=date(2026, 1, 31))
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(
                "traffic.path",
                f"the pattern {spec.traffic.path!r} cannot be filled ({exc!r})",
                "Only {date} may be named, e.g. logs/{date:%Y-%m-%d}/*.jsonl.gz.",
                path=path,
            ) from None
        return _check_arm_inputs(spec, path)
    traffic = spec.resolve_input(spec.traffic.path)
    if not any(ch in spec.traffic.path for ch in "*?[") and not traffic.exists():
        raise SpecError(
            "traffic.path",
            f"file not found: {traffic}",
            "Paths are relative to the spec's folder.",
            path=path,
        )
    _check_arm_inputs(spec, path)


def _check_arm_inputs(spec: Spec, path: str) -> None:
    for i, entry in enumerate(spec.eval_sets):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", eval_set_name(entry)):
            raise SpecError(
                f"eval_sets[{i}]",
                f"`{eval_set_name(entry)}` is not a valid eval set name",
                "Use letters, digits and ._- only (it names a slice).",
                path=path,
            )
    try:
        spec.eval_set_paths()
    except SpecError as exc:
        raise SpecError(exc.where, exc.problem, exc.fix, path=path) from None
    for i, arm in enumerate(spec.candidates):
        if arm.system_prompt and arm.system_prompt.replace:
            _must_exist(
                spec, arm.system_prompt.replace, f"candidates[{i}].system_prompt.replace", path
            )
        if arm.system_prompt_by:
            for value, f in arm.system_prompt_by.files.items():
                _must_exist(spec, f, f"candidates[{i}].system_prompt_by.files.{value}", path)
    for name, label in spec.labels.items():
        if label.path is not None:
            _must_exist(spec, label.path, f"labels.{name}.path", path)
    for i, judge in enumerate(spec.judges):
        if judge.anchors.enabled and judge.anchors.path is not None:
            _must_exist(spec, judge.anchors.path, f"judges[{i}].anchors.path", path)
    for i, check in enumerate(spec.checks):
        if isinstance(check, JsonSchemaCheck) and check.schema_ != "request":
            _must_exist(spec, check.schema_, f"checks[{i}].schema", path)
        if isinstance(check, PythonCheck):
            from evalpipe.score.custom import load_scorer  # imports the user's module

            try:
                load_scorer(check.function, where=f"checks[{i}].function")
            except SpecError as exc:
                raise SpecError(exc.where, exc.problem, exc.fix, path=path) from None


def _must_exist(spec: Spec, file: str, where: str, path: str) -> None:
    if not spec.resolve_input(file).is_file():
        raise SpecError(
            where,
            f"file not found: {spec.resolve_input(file)}",
            "Paths are relative to the spec's folder.",
            path=path,
        )
