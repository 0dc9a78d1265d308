"""The `evalpipe` command. It talks; the library logs.

Exit codes (ARCHITECTURE.md): 0 GO, 1 NO-GO, 2 NOT-PROVEN, 3 INVALID, 4 usage/configuration error.
Heavy modules (prefect, SDKs, pyarrow) are imported inside commands so `--help` and errors are fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import click
import typer
from rich.console import Console

from evalpipe.errors import EvalpipeError

if TYPE_CHECKING:
    from evalpipe.gate.verdict import GateResult
    from evalpipe.replay.engine import Progress
    from evalpipe.spec import Spec
    from evalpipe.store import Run

app = typer.Typer(
    name="evalpipe",
    help="Is it safe to change the model behind an AI feature? Replay, score, gate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_STATE = {"debug": False}
_COLOURS = {
    "GO": "bold green",
    "NO-GO": "bold red",
    "NOT-PROVEN": "bold yellow",
    "INVALID": "bold magenta",
}


def _quiet_prefect(debug: bool) -> None:
    # Ephemeral Prefect: no telemetry tracebacks offline, no INFO chatter; user settings win.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    if not debug:
        # A failed run is reported in one line by main(); Prefect's run loggers would repeat it
        # with a traceback. (logging.yml overrides: PREFECT_LOGGING_LOGGERS_<NAME>_LEVEL.)
        for name in ("FLOW_RUNS", "TASK_RUNS"):
            os.environ.setdefault(f"PREFECT_LOGGING_LOGGERS_PREFECT_{name}_LEVEL", "CRITICAL")


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        lowered = logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()})
        return super().format(lowered)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the library's log.")
    ] = False,
) -> None:
    _STATE["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    # The user reads "warning: …"; the logger's name only when they asked for the log.
    fmt = (
        "%(levelname)s %(name)s: %(message)s" if debug or verbose else "%(levelname)s: %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
    _quiet_prefect(debug)


class _ProgressView:
    """Rich progress bars per stage and arm on a TTY; a plain line per 25% otherwise."""

    def __init__(self) -> None:
        self.tty = out.is_terminal
        self._bars: dict[tuple[str, str], Any] = {}
        self._last: dict[tuple[str, str], int] = {}
        self._parts: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        self._sums: dict[tuple[str, str], tuple[int, int]] = {}  # (done, total) over partitions
        self._started: dict[tuple[str, str], float] = {}
        self._breakers: set[tuple[tuple[str, str], str]] = set()
        self._progress: Any = None

    def __enter__(self) -> _ProgressView:
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>5} req/s  run ${task.fields[spent]:.4f}"),
                TimeRemainingColumn(),
                console=out,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, ev: Progress) -> None:
        key = (ev.stage, ev.arm)
        # running sums (re-summing every partition per event was quadratic: 3,000 partitions
        # of a 1M-record run took a fifth of a warm replay's time)
        parts = self._parts.setdefault(key, {})
        was_done, was_total = parts.get(ev.part, (0, 0))
        parts[ev.part] = (ev.done, ev.total)
        done, total = self._sums.get(key, (0, 0))
        done, total = done + ev.done - was_done, total + ev.total - was_total
        self._sums[key] = (done, total)
        # the rate since this bar's first answer (not since start-up); spend is the run's total
        now = time.perf_counter()
        started = self._started.setdefault(key, now) if done else now
        rate = f"{done / (now - started):.0f}" if now - started > 0.5 else "…"
        trouble = _call_trouble(ev)
        if self._progress is not None:
            if key not in self._bars:
                self._bars[key] = self._progress.add_task(
                    f"{ev.stage} {ev.arm}", total=total, rate=rate, spent=ev.spent_usd
                )
            self._progress.update(
                self._bars[key],
                completed=done,
                total=total,
                rate=rate,
                spent=ev.spent_usd,
                description=f"{ev.stage} {ev.arm}{trouble}",
            )
            return
        quarter = 4 * done // max(total, 1)
        breaker = (key, ev.breaker)
        if done and (self._last.get(key, -1) < quarter or breaker not in self._breakers):
            self._last[key] = quarter
            self._breakers.add(breaker)
            out.print(f"{ev.stage} {ev.arm}: {done}/{total}{trouble}")


def _call_trouble(ev: Progress) -> str:
    """Retries, 429s and a breaker not closed, as a progress line's tail ('' when none)."""
    parts = [f"{ev.retries} retries"] if ev.retries else []
    if ev.throttled:
        parts.append(f"{ev.throttled} × 429")
    if ev.breaker != "closed":
        parts.append(f"breaker {ev.breaker}")
    return f" ({', '.join(parts)})" if parts else ""


def _print_verdicts(result: GateResult, spec: Spec, candidate: str | None = None) -> None:
    for c in result.candidates:
        if candidate and c.candidate != candidate:
            continue
        colour = _COLOURS.get(c.verdict, "bold")
        model = (
            spec.arm_named(c.candidate).model
            if c.candidate in {a.name for a in spec.candidates}
            else ""
        )
        out.print(f"[{colour}]{c.verdict:<10}[/] {c.candidate} ({model})")
        out.print(f"           {c.reason}", soft_wrap=True)


def _load(spec_path: Path, candidate: str | None = None) -> Spec:
    """The spec, parsed once per command; `--candidate` checked against it."""
    from evalpipe.spec import load_spec

    spec = load_spec(spec_path)
    names = [c.name for c in spec.candidates]
    if candidate is not None and candidate not in names:
        raise EvalpipeError(
            f"--candidate {candidate!r} is not in the spec; candidates: {', '.join(names)}"
        )
    return spec


def _execute(
    spec_path: Path,
    spec: Spec,
    *,
    run_id: str | None,
    store: str | None,
    reports: str | None,
    runner: Any = None,
) -> Run:
    """Run the shadow evaluation (starting the built-in fake provider if the spec asks).

    With a Prefect API configured it is a flow run recorded there; without one, the same steps
    run in this process and no Prefect server is started (evalpipe.flows.wiring). With a task
    runner (`--task-runner`), always a flow run, on Prefect's temporary API when none is
    configured: a task runner only applies to a flow's tasks.
    """
    from evalpipe.flows import prefect_api_configured, run_in_process
    from evalpipe.flows.wiring import WarmImports
    from evalpipe.pipeline import needs_fake_provider, progress_sink
    from evalpipe.store import open_run

    fake = needs_fake_provider(spec)
    if fake:  # (imported before the warm-up thread starts importing what it shares)
        from evalpipe.fake import builtin_fake
    orchestrated = runner is not None or prefect_api_configured()
    warming = None if orchestrated else WarmImports(spec)
    with contextlib.ExitStack() as stack:
        if fake:
            stack.enter_context(builtin_fake())
        view = stack.enter_context(_ProgressView())
        stack.enter_context(progress_sink(view))
        if orchestrated:
            from evalpipe.flows import shadow_eval

            if runner is not None:  # (its workers report to the same Prefect API)
                from evalpipe.flows.runners import api_for_workers

                stack.enter_context(api_for_workers())
            flow = shadow_eval if runner is None else shadow_eval.with_options(task_runner=runner)
            state = flow(str(spec_path), run_id=run_id, store=store, reports=reports)
            return open_run(spec, str(state["run_id"]), store=store)
        run = open_run(spec, run_id, store=store)
        run_in_process(run, reports=reports, warming=warming)
        return run


def _finished(run: Run) -> tuple[GateResult, Path, dict[str, Any]]:
    from evalpipe.pipeline import load_gate

    manifest = run.manifest()
    return load_gate(run), Path(manifest.get("report", "")), manifest


_SELECTION_DROPS: Final = (
    ("out_of_window", "outside the time window"),
    ("duplicates_dropped", "duplicates dropped"),
    ("sampled_out", "sampled out"),
)
"""The counts `ingest.select_rows` writes, as the CLI names them."""


def _selection_drops(counts: dict[str, Any]) -> list[str]:
    return [f"{int(counts[k]):,} {label}" for k, label in _SELECTION_DROPS if counts.get(k)]


def _print_run_facts(manifest: dict[str, Any]) -> None:
    """One line: what was read, replayed and spent (from the run's manifest)."""
    from evalpipe.gate.numbers import count, usd

    counts = manifest.get("counts") or {}
    coverage = {k: v for k, v in (manifest.get("coverage") or {}).items() if k != "logged"}
    if not counts:
        return
    quarantined = int(counts.get("quarantined") or 0)
    dropped = [f"{count(quarantined, 'input line')} quarantined"] if quarantined else []
    dropped += _selection_drops(counts)
    read = count(int(counts.get("records") or 0), "record")
    if dropped:
        read += f" ({', '.join(dropped)})"
    if not coverage or not counts.get("records"):
        out.print(f"{read}: nothing to replay.", soft_wrap=True)
        return
    keys = ("ok", "errored", "skipped", "cache_hits")
    total = {k: sum(int(c.get(k) or 0) for c in coverage.values()) for k in keys}
    answers = total["ok"] + total["errored"] + total["skipped"]
    parts = [f"{total['ok']:,} answered"]
    parts += [
        f"{total[k]:,} {label}"
        for k, label in (
            ("errored", "failed"),
            ("skipped", "skipped"),
            ("cache_hits", "from cache"),
        )
        if total[k]
    ]
    cost = manifest.get("cost_usd") or {}
    spent = f"; {usd(cost.get('total'))} at list prices" if cost.get("total") is not None else ""
    out.print(
        f"{read} × {count(len(coverage), 'arm')}: {answers:,} requests, {', '.join(parts)}{spent}.",
        soft_wrap=True,
    )
    _print_fidelity(manifest)
    _print_throughput(manifest)


def _print_throughput(manifest: dict[str, Any]) -> None:
    """One line: each arm's requests/s against the ceiling of its limits and the limit that binds
    it; retries, 429s, a cut window and the breaker when they happened."""
    arms = []
    for arm, t in (manifest.get("throughput") or {}).items():
        part = f"{arm} {t['achieved_rps'] or 0:.1f}/s"
        if t.get("ceiling_rps"):
            part += f" of {t['ceiling_rps']:.1f} ({t['bound_by']})"
        extra = [f"{t['retries']:,} retries"] if t.get("retries") else []
        if t.get("throttled"):
            extra.append(f"{t['throttled']:,} × 429")
        if t.get("concurrency_low", 0) < t.get("concurrency_ceiling", 0):
            extra.append(f"in flight cut to {t['concurrency_low']} of {t['concurrency_ceiling']}")
        if t.get("breaker_opened"):
            extra.append(f"breaker opened {t['breaker_opened']}×, {t['breaker']}")
        if t.get("breaker") == "down" and t.get("breaker_reason"):
            extra.append(f"arm ended: {t['breaker_reason']}")
        arms.append(part + (f" ({'; '.join(extra)})" if extra else ""))
    if arms:
        out.print(f"Throughput: {', '.join(arms)}.", soft_wrap=True)
    fired = [
        f"{arm}: {n:,} by {model}"
        for arm, models in (manifest.get("fallbacks") or {}).items()
        for model, n in models.items()
    ]
    if fired:
        out.print(f"Answered by a fallback: {'; '.join(fired)}.", soft_wrap=True)


_FACTS_SHOWN: Final = 6
"""Reasons a parameter was not sent that the run facts list; the report lists them all."""


def _print_fidelity(manifest: dict[str, Any]) -> None:
    """What the replay did not send as logged, and why requests were skipped (report/facts.py)."""
    from evalpipe.report.facts import not_sent, skipped

    lost = not_sent(manifest)
    if len(lost) > _FACTS_SHOWN:
        lost = [*lost[:_FACTS_SHOWN], f"{len(lost) - _FACTS_SHOWN} more in the report"]
    if lost:
        out.print("; ".join(lost) + ".", soft_wrap=True, markup=False)
    skips = skipped(manifest)
    if skips:
        out.print(f"Skipped — {'; '.join(skips)}.", soft_wrap=True, markup=False)


DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Print requests, tokens, cost, time and data needs; send nothing."
    ),
]


def _dry_run(spec: Spec) -> None:
    from rich.table import Table

    from evalpipe.gate.numbers import count, pct
    from evalpipe.gate.power import DRY_RUN_DISCORDANCE, DRY_RUN_PASS_RATE, GO_POWER
    from evalpipe.plan import plan_run

    plan = plan_run(spec)
    out.print(
        f"{plan.records:,} records would be replayed "
        f"({count(plan.quarantined, 'input line')} quarantined)."
    )
    header = ("arm", "model", "requests", "input tokens", "output tokens", "cost USD", "minutes")
    rows = [
        (
            a.name,
            a.model,
            f"{a.requests:,}",
            f"{a.input_tokens:,}",
            f"{a.output_tokens:,}",
            "price unknown" if a.cost_usd is None else f"{a.cost_usd:,.4f}",
            f"{a.minutes:.1f}",
        )
        for a in plan.arms
    ]
    if out.is_terminal:
        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    else:
        for row in rows:
            out.print(
                "  ".join(f"{k}={v}" for k, v in zip(header, row, strict=True)), soft_wrap=True
            )
    unlogged = (
        f"; {plan.unlogged_outputs:,} records without a logged answer counted at max_tokens "
        f"({spec.replay.max_tokens_default:,}), an upper bound"
        if plan.unlogged_outputs
        else ""
    )
    out.print(
        f"Estimated cost: ${plan.cost_usd:,.4f} (output tokens as logged{unlogged}; "
        "judges ~60 per verdict).",
        soft_wrap=True,
    )
    if plan.needs:
        first = plan.needs[0]
        out.print(
            f"Records for GO if the candidate is as good as the baseline "
            f"({pct(DRY_RUN_DISCORDANCE, 0)} of pairs disagree, {pct(DRY_RUN_PASS_RATE, 0)} pass, "
            f"records independent): each check gets a {pct(first.power)} chance, so that all "
            f"{count(first.gated, 'gated metric')} show GO together in {pct(GO_POWER, 0)} of "
            "runs if they are independent (more when they move together).",
            soft_wrap=True,
        )
    for need in plan.needs:
        short = need.records < need.needed
        verdict = f"need ~{need.needed - need.records:,} more records" if short else "enough"
        out.print(
            f"  {need.metric}: a {need.margin * 100:.1f} pp margin needs ≥ {need.needed:,} "
            f"records in scope; {need.records:,} available — {verdict}.",
            soft_wrap=True,
        )


SpecArg = Annotated[Path, typer.Argument(help="Path of the eval.yaml.", show_default=False)]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store path (default: the spec's).")]
RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="Resume or pin this run.")]
CandOpt = Annotated[str | None, typer.Option("--candidate", help="Decide for this candidate only.")]


SpecsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Path of the eval.yaml; several, or a folder of them, run each.", show_default=False
    ),
]
RunnerOpt = Annotated[
    str | None,
    typer.Option(
        "--task-runner",
        help="Run the partitioned stages (several specs: the runs) on a cluster: dask or ray "
        "(pip install 'evalpipe\\[dask]' or 'evalpipe\\[ray]'); a local one unless an address "
        "is given.",
    ),
]
DaskAddressOpt = Annotated[
    str | None,
    typer.Option("--dask-address", help="Scheduler of a running Dask cluster (tcp://host:8786)."),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="A running Ray cluster (ray://host:10001 or auto)."),
]

EXIT_SEVERITY: Final = (0, 2, 1, 3, 4)
"""Exit codes from best to worst: GO, NOT-PROVEN, NO-GO, INVALID, error (ARCHITECTURE.md)."""


def worst_exit(codes: list[int]) -> int:
    """The worst of several runs' exit codes (by severity, not the largest number)."""
    return max(codes, key=EXIT_SEVERITY.index, default=0)


def _spec_paths(paths: list[Path]) -> list[Path]:
    """The specs named: files as given, a folder's *.yaml / *.yml in name order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not found:
                raise EvalpipeError(f"{path}: no *.yaml spec in this folder")
            out += found
        else:
            out.append(path)
    return out


def _runner(name: str | None, dask_address: str | None, ray_address: str | None) -> Any:
    if name is None:
        if dask_address or ray_address:
            raise EvalpipeError("--dask-address / --ray-address need --task-runner dask / ray")
        return None
    # Without a configured API, the flow runs on Prefect's temporary server: give it longer
    # than its 20 s to start on a busy machine (before Prefect reads its settings).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not _STATE["debug"]:  # the cluster's own chatter (workers starting, closing)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # (read as it is imported)
        logging.getLogger("ray").setLevel(logging.ERROR)
    from evalpipe.flows.runners import task_runner

    if (name == "dask" and ray_address) or (name == "ray" and dask_address):
        raise EvalpipeError(f"--task-runner {name} takes --{name}-address")
    return task_runner(name, dask_address if name == "dask" else ray_address)


@app.command()
def run(
    spec: SpecsArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    candidate: CandOpt = None,
    reports: Annotated[str | None, typer.Option("--reports", help="Reports folder.")] = None,
    dry_run: DryRunOpt = False,
    task_runner: RunnerOpt = None,
    dask_address: DaskAddressOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Run the whole pipeline on SPEC and exit with the verdict (several: the worst)."""
    paths = _spec_paths(spec)
    if len(paths) > 1:
        if run_id or candidate or dry_run:
            raise EvalpipeError("--run-id, --candidate and --dry-run take one spec")
        runner = _runner(task_runner, dask_address, ray_address)
        raise typer.Exit(_run_many(paths, store=store, reports=reports, runner=runner))
    s = _load(paths[0], candidate)
    if dry_run:
        _dry_run(s)
        return
    runner = _runner(task_runner, dask_address, ray_address)
    result, report, manifest = _finished(
        _execute(paths[0], s, run_id=run_id, store=store, reports=reports, runner=runner)
    )
    _print_run_facts(manifest)
    _print_verdicts(result, s, candidate)
    out.print(f"Report: {report}", soft_wrap=True)
    code = result.for_candidate(candidate).exit_code if candidate else result.exit_code
    raise typer.Exit(code)


def _run_many(paths: list[Path], *, store: str | None, reports: str | None, runner: Any) -> int:
    """Each spec's run: in turn, or as tasks of `runner` (spread over its workers). Runs in one
    store share its cache. Returns the worst exit code."""
    from evalpipe.store import open_run

    specs = [_load(p) for p in paths]  # every spec checked before anything runs
    results: list[dict[str, Any]] = []
    if runner is None:
        for path, s in zip(paths, specs, strict=True):
            out.print(f"[bold]{path}[/]", soft_wrap=True)
            try:
                run = _execute(path, s, run_id=None, store=store, reports=reports)
            except EvalpipeError as exc:
                err.print(f"error: {path}: {exc}", soft_wrap=True, markup=False)
                results.append({"exit_code": exc.exit_code, "run_id": None})
                continue
            results.append(_report_one(run, s))
    else:
        from evalpipe.flows import shadow_eval_many
        from evalpipe.flows.runners import api_for_workers
        from evalpipe.pipeline import needs_fake_provider

        with contextlib.ExitStack() as stack:
            stack.enter_context(api_for_workers())
            if any(needs_fake_provider(s) for s in specs):
                from evalpipe.fake import builtin_fake

                stack.enter_context(builtin_fake())
            flow = shadow_eval_many.with_options(task_runner=runner)
            results = flow([str(p) for p in paths], store=store, reports=reports)
        for path, s, r in zip(paths, specs, results, strict=True):
            out.print(f"[bold]{path}[/]", soft_wrap=True)
            if r["error"]:
                err.print(f"error: {path}: {r['error']}", soft_wrap=True, markup=False)
                continue
            _report_one(open_run(s, str(r["run_id"]), store=store), s)
    return worst_exit([int(r["exit_code"]) for r in results])


def _report_one(run: Run, spec: Spec) -> dict[str, Any]:
    result, report, manifest = _finished(run)
    _print_run_facts(manifest)
    _print_verdicts(result, spec)
    out.print(f"Report: {report}", soft_wrap=True)
    return {"exit_code": result.exit_code, "run_id": run.run_id}


STEP_SUMMARY_MAX: Final = 1 << 20
"""GitHub's limit on one step's summary (1 MiB)."""


def _ci_outputs(report: Path, report_dir: str | None, junit: Path | None) -> Path:
    """Copy the run's report folder into `report_dir` and its junit.xml to `junit`; append
    summary.md to `$GITHUB_STEP_SUMMARY` when set. Returns the report folder used."""
    import shutil

    folder = report.parent
    if report_dir is not None:
        target = Path(report_dir).resolve() / folder.name
        if target != folder:
            shutil.copytree(folder, target, dirs_exist_ok=True)
        folder = target
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "junit.xml", junit)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path and (folder / "summary.md").is_file():
        target_file = Path(summary_path)
        room = STEP_SUMMARY_MAX - (target_file.stat().st_size if target_file.exists() else 0)
        text = (folder / "summary.md").read_bytes()
        if len(text) + 1 > room:
            note = b"\n\n(summary cut at GitHub's 1 MiB limit; the full report is an artifact)\n"
            text = text[: max(0, room - len(note) - 1)] + note if room > len(note) + 1 else b""
        with target_file.open("ab") as f:
            f.write(text + (b"\n" if text else b""))
    return folder


@app.command()
def gate(
    spec: SpecArg,
    candidate: CandOpt = None,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    dry_run: DryRunOpt = False,
    report_dir: Annotated[
        str | None,
        typer.Option("--report-dir", help="Write (or copy) the run's report folder here."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write the run's junit.xml to this path.")
    ] = None,
    baseline_run: Annotated[
        str | None,
        typer.Option(
            "--baseline-run",
            help="Reuse the baseline answers of this nightly run (an id, or `latest`) when its "
            "baseline configuration and traffic sample match; otherwise they are paid for.",
        ),
    ] = None,
) -> None:
    """Exit 0 GO / 1 NO-GO / 2 NOT-PROVEN / 3 INVALID for SPEC's newest complete run (or run it).

    In GitHub Actions (`GITHUB_STEP_SUMMARY` set) summary.md is appended to the step summary.
    """
    from evalpipe.store import latest_complete_run, open_run

    s = _load(spec, candidate)
    if dry_run:
        _dry_run(s)
        return
    if run_id is not None:
        run = open_run(s, run_id, store=store)
    else:
        found = latest_complete_run(s, store=store)
        if found is None and baseline_run is not None:
            from evalpipe.flows.reuse import find_baseline_run, reuse_baseline

            fresh = open_run(s, store=store)
            reuse = reuse_baseline(fresh, find_baseline_run(s, baseline_run, store=store))
            if reuse.reused:
                out.print(f"Baseline answers reused from nightly run {reuse.source}.")
            else:
                err.print(
                    f"warning: baseline answers of {reuse.source} not reused: {reuse.reason}; "
                    "the baseline is replayed",
                    soft_wrap=True,
                )
            found = _execute(spec, s, run_id=fresh.run_id, store=store, reports=report_dir)
        run = found or _execute(spec, s, run_id=None, store=store, reports=report_dir)
    result, report, _ = _finished(run)
    folder = _ci_outputs(report, report_dir, junit)
    _print_verdicts(result, s, candidate)
    out.print(f"Run {run.run_id}; report: {folder / 'index.html'}", soft_wrap=True)
    code = result.for_candidate(candidate).exit_code if candidate else result.exit_code
    raise typer.Exit(code)


NightOpt = Annotated[
    str | None,
    typer.Option(
        "--night",
        help="Run this night (YYYY-MM-DD): its window ends at the next midnight in the "
        "schedule's time zone. Default: now.",
    ),
]


def _night(value: str | None) -> Any:
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--night"
        ) from None


@app.command()
def nightly(
    spec: SpecArg,
    night: NightOpt = None,
    store: StoreOpt = None,
    reports: Annotated[str | None, typer.Option("--reports", help="Reports folder.")] = None,
) -> None:
    """Run one night of the drift watch on SPEC: replay, findings, alert, catalog.

    Exits 0 when the night ran or had no traffic, 4 when it failed (the status says why).
    """
    from evalpipe.pipeline import needs_fake_provider

    s = _load(spec)
    when = _night(night)
    with contextlib.ExitStack() as stack:
        if needs_fake_provider(s):
            from evalpipe.fake import builtin_fake
            from evalpipe.fake.behaviours import NIGHT_ENV

            if night:  # the built-in fake answers for the night being run (its drift aliases)
                os.environ.setdefault(NIGHT_ENV, night)
            stack.enter_context(builtin_fake())
        from evalpipe.flows import prefect_api_configured

        if prefect_api_configured():
            from evalpipe.flows import nightly_watch

            result = nightly_watch(str(spec), night=night, store=store, reports=reports)
        else:
            from evalpipe.flows.watch import nightly_steps
            from evalpipe.flows.wiring import IN_PROCESS

            result = nightly_steps(s, IN_PROCESS, night=when, store=store, reports=reports)
    out.print(
        f"Night {result['night']}: {result['status']}"
        + (f" (run {result['run_id']})" if result["run_id"] else ""),
        soft_wrap=True,
        markup=False,
    )
    for f in result["new"]:
        out.print(f"  new: {f['text']}", soft_wrap=True, markup=False)
    for f in result["cleared"]:
        out.print(f"  cleared: {f['text']}", soft_wrap=True, markup=False)
    if result["new"] or result["cleared"]:
        out.print(f"  alert: {result['alert']}", markup=False)
    raise typer.Exit(4 if str(result["status"]).startswith("failed") else 0)


@app.command()
def trends(spec: SpecArg, store: StoreOpt = None) -> None:
    """Per night of SPEC's nightly series: status, the baseline's snapshot, each arm's gated
    checks, and the night's findings."""
    from evalpipe.flows.watch import night_series
    from evalpipe.store import read_night_metrics, read_nights, store_root

    s = _load(spec)
    root = store_root(store or s.store)
    series = night_series(s)
    nights = read_nights(root, series=series)
    if not nights:
        out.print(f"No nights of {s.name} in {root}; `evalpipe nightly SPEC` runs one.")
        return
    values: dict[str, dict[tuple[str, str], float]] = {}
    for m in read_night_metrics(root, series):
        values.setdefault(m["night"], {})[(m["arm"], m["metric"])] = m["mean"]
    arms = ["baseline", *(c.name for c in s.candidates)]
    checks = [c.name for c in s.checks]
    header = ["night", "status", "baseline snapshot"]
    header += [f"{arm} {c}" for arm in arms for c in checks] + ["findings"]
    rows = []
    for n in nights:
        snap = n.snapshots.get("baseline", {})
        seen = ", ".join(snap.get("models", []) + snap.get("fingerprints", [])) or "-"
        cells = [n.night, n.status, seen]
        for arm in arms:
            for c in checks:
                v = values.get(n.night, {}).get((arm, c))
                cells.append("-" if v is None else f"{100 * v:.1f}%")
        cells.append(
            "; ".join(
                f["key"]
                + (f" (of the {f['evidence']['change']} change)" if f.get("follows") else "")
                for f in n.findings
            )
            or "-"
        )
        rows.append(cells)
    if out.is_terminal:
        from rich.table import Table

        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    else:
        for row in [header, *rows]:  # tab-separated, for cut/awk (rich would expand the tabs)
            typer.echo("\t".join(row))


@app.command()
def canary(
    spec: SpecArg,
    step: Annotated[
        int | None,
        typer.Option("--step", help="Decide this ramp step (1-based); default: walk the ramp."),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Decide the canary at a ramp step on the logs production served: exit 0 promote,
    1 roll back, 2 hold, 3 invalid, 4 error."""
    s = _load(spec)
    from evalpipe.flows import prefect_api_configured

    if prefect_api_configured():
        from evalpipe.flows import canary_ramp

        decisions = canary_ramp(str(spec), step=step, store=store)
    else:
        from evalpipe.flows.ramp import canary_steps
        from evalpipe.flows.wiring import IN_PROCESS

        decisions = canary_steps(s, IN_PROCESS, step=step, store=store)
    for d in decisions:
        out.print(
            f"step {d['step']} of {d['steps']} ({d['weight']:.0%}): {d['decision']} — {d['reason']}",
            soft_wrap=True,
            markup=False,
        )
    raise typer.Exit(int(decisions[-1]["exit_code"]))


@app.command("canary-status")
def canary_status(spec: SpecArg, store: StoreOpt = None) -> None:
    """Print the canary's newest decision as JSON, for an Argo Rollouts `web` metric or a
    Flagger webhook (README: "Canary ramps")."""
    import orjson

    from evalpipe.flows.ramp import canary_status as status

    typer.echo(orjson.dumps(status(_load(spec), store=store), option=orjson.OPT_INDENT_2))


@app.command("serve-nightly")
def serve_nightly(spec: SpecArg) -> None:
    """Serve SPEC's nightly drift watch on its `schedule:` (Prefect `flow.serve`, no work pool)
    until interrupted. Start `prefect server start` first to see the nights in its UI."""
    s = _load(spec)
    from evalpipe.flows import prefect_api_configured

    if not prefect_api_configured():
        err.print(
            "warning: no Prefect API configured (PREFECT_API_URL): serving against a temporary "
            "server that ends with this command; run `prefect server start` and `prefect config "
            "set PREFECT_API_URL=http://127.0.0.1:4200/api` to keep the nights.",
            soft_wrap=True,
        )
    when = f"{s.schedule.cron} ({s.schedule.timezone})" if s.schedule else "0 3 * * * (UTC)"
    out.print(f"Serving the nightly drift watch of {s.name} at {when}; Ctrl-C stops.")
    from evalpipe.flows.nightly import serve_nightly as serve

    serve(str(spec))


def _demo_spec() -> Path:
    here = Path.cwd() / "eval_sets" / "demo" / "eval.yaml"
    if here.is_file():
        return here
    src = Path(__file__).resolve().parents[1] / "eval_sets" / "demo" / "eval.yaml"
    if src.is_file():
        return src
    raise EvalpipeError(
        "the demo set eval_sets/demo/eval.yaml was not found; run from the repository"
    )


@app.command()
def demo(
    store: StoreOpt = None,
    reports: Annotated[str, typer.Option("--reports", help="Reports folder.")] = "reports",
) -> None:
    """Run the built-in demo (no API keys: a fake provider answers) and show both verdicts."""
    started = time.perf_counter()
    spec_path = _demo_spec()
    out.print(
        f"evalpipe demo: replaying {spec_path.parent / 'traffic.jsonl.gz'} against a local fake provider"
    )
    s = _load(spec_path)
    result, report, manifest = _finished(
        _execute(spec_path, s, run_id=None, store=store, reports=reports)
    )
    _print_run_facts(manifest)
    _print_verdicts(result, s)
    out.print(f"Report: {report}", soft_wrap=True)
    out.print(f"Done in {time.perf_counter() - started:.1f} s.")


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date or time; write it as 2026-11-01 or 2026-11-01T08:00:00Z",
            param_hint=option,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="Log file, folder or glob.", show_default=False)],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="openai_chat, openai_responses, openai_batch, anthropic_messages, "
            "anthropic_batch, otel_genai, langfuse, bfcl, canonical — or auto.",
        ),
    ] = "auto",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write records/part-*.parquet and quarantine.jsonl into.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Keep records logged at or after this time (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Keep records logged before this time (ISO 8601).")
    ] = None,
    dedupe: Annotated[
        bool, typer.Option("--dedupe", help="Keep the first of identical requests.")
    ] = False,
    sample: Annotated[
        int | None, typer.Option(help="Keep this many records, chosen by a seeded hash.", min=1)
    ] = None,
    stratify: Annotated[
        list[str] | None,
        typer.Option(
            help="Sample proportionally over this column (repeatable): tenant, "
            "attributes.feature, model …"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
) -> None:
    """Read logs into canonical records; report good and quarantined counts.

    Exits 0 when any record is usable (bad lines are quarantined, never lost), 4 when none is.
    """
    from evalpipe.gate.numbers import count
    from evalpipe.ingest import Selection, ingest_to_folder

    selection = Selection(
        window_start=_when(since, "--since"),
        window_end=_when(until, "--until"),
        dedupe=dedupe,
        sample_n=sample,
        stratify=tuple(stratify or ()),
        seed=seed,
    )
    # --out or not, records stream to Parquet parts (a scratch folder without --out): bounded
    # memory, however large the logs
    result = ingest_to_folder(path, out_dir, format=fmt, selection=selection)
    counts = result.counts
    kinds = ", ".join(f"{name} {n:,}" for name, n in sorted(result.records_by_format.items()))
    why = sorted(result.skipped_by_reason.items(), key=lambda item: (-item[1], item[0]))
    skipped = f"{counts['skipped']:,} skipped" + (
        f" ({', '.join(f'{reason} {n:,}' for reason, n in why)})" if why else ""
    )
    out.print(
        f"{count(counts['ingested'], 'record')} ingested from {count(len(result.formats), 'file')} "
        f"({kinds}), {counts['quarantined']:,} quarantined, {skipped}",
        soft_wrap=True,
    )
    if selection.active:
        said = _selection_drops(counts)
        out.print(
            f"{result.records:,} records selected" + (f" ({', '.join(said)})" if said else "")
        )
    quarantine = result.quarantine
    for row in quarantine.slice(0, 20).to_pylist():
        where = f"{row['file']}:{row['line']}: {row['field'] or '-'}"
        err.print(f"  {where}: {row['reason']}", soft_wrap=True, markup=False)
    if quarantine.num_rows > 20:
        err.print(f"  … and {quarantine.num_rows - 20:,} more")
    if result.written:
        out.print("Wrote " + " and ".join(str(p) for p in result.written))


@app.command("fake-provider")
def fake_provider(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8911,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Mean answer latency.")] = 20.0,
    jitter: Annotated[
        float,
        typer.Option(
            help="Each answer takes the mean × a factor in [1 − jitter, 1 + jitter).", min=0, max=1
        ),
    ] = 0.5,
    batch_polls: Annotated[
        int, typer.Option("--batch-polls", help="A batch ends at this poll (0: the first).", min=0)
    ] = 0,
) -> None:
    """Serve the fake OpenAI + Anthropic APIs (behaviours chosen by model name).

    `GET /_fake/traffic` reports per model the requests seen, the most in flight at once and
    their arrival times; `GET /_fake/batches` the batches (uploads, polls, requests per model).
    """
    from evalpipe.fake import run_server

    out.print(
        f"fake provider on http://{host}:{port} (OpenAI base_url …/v1, Anthropic base_url the root)"
    )
    run_server(host, port, latency_ms=latency_ms, jitter=jitter, batch_polls=batch_polls)


@app.command()
def runs(
    store: Annotated[str, typer.Option("--store", help="Store path.")] = ".evalpipe",
    spec_name: Annotated[
        str | None, typer.Option("--spec", help="Only runs of the spec with this name.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many.", min=1)] = 20,
) -> None:
    """List the store's finished runs, newest first: id, spec, date, verdicts, cost."""
    from rich.table import Column, Table

    from evalpipe.gate.numbers import usd
    from evalpipe.store import CatalogRun, list_runs, store_root, store_url

    root = store_root(store)
    found = list_runs(root, spec_name=spec_name, limit=limit)
    if not found:
        of = f" of spec {spec_name!r}" if spec_name else ""
        out.print(
            f"No finished runs{of} in {store_url(root)} (a run is listed once it finishes).",
            soft_wrap=True,
        )
        return
    tty = out.is_terminal

    def verdicts(r: CatalogRun) -> str:
        pairs = r.verdicts.items() or [("run", r.verdict or "no verdict")]
        if tty:  # one candidate a line in the table
            return "\n".join(f"{c} [{_COLOURS.get(v, 'bold')}]{v}[/]" for c, v in pairs)
        return ", ".join(f"{c} {v}" for c, v in pairs)

    rows = [
        (
            r.run_id,
            r.spec_name or "?",
            r.created[:16].replace("T", " ") if r.created else "?",
            verdicts(r),
            usd(r.cost_usd),
        )
        for r in found
    ]
    if tty:
        table = Table(
            Column("run id", no_wrap=True),  # whole, so it can be copied into --run-id
            "spec",
            "started (UTC)",
            "verdicts",
            Column("cost", no_wrap=True, justify="right"),
        )
        for row in rows:
            table.add_row(*row)
        out.print(table)
    else:
        for row in rows:
            out.print("  ".join(row), soft_wrap=True, markup=False)


@app.command()
def report(
    run_id: Annotated[
        str | None, typer.Argument(help="The run to re-render (`evalpipe runs` lists them).")
    ] = None,
    store: Annotated[str, typer.Option("--store", help="Store path.")] = ".evalpipe",
    out_dir: Annotated[
        str | None, typer.Option("--out", help="Reports folder (default: the spec's report.out).")
    ] = None,
    trends: Annotated[
        str | None,
        typer.Option(
            "--trends",
            help="Write reports/trends/<spec>.html from the store's runs (a spec file or name).",
        ),
    ] = None,
) -> None:
    """Re-render a finished run's report from its stored tables (no provider call), or a
    spec's trends page with --trends SPEC."""
    import orjson

    from evalpipe.errors import StoreError
    from evalpipe.pipeline import load_gate, report_run
    from evalpipe.report import write_runs_index, write_trends
    from evalpipe.spec import spec_from_dict
    from evalpipe.store import (
        Run,
        fetch_run,
        find_runs,
        refresh_catalog,
        store_root,
        store_url,
    )

    root = store_root(store)
    if trends is not None:
        if trends.endswith((".yaml", ".yml")) or Path(trends).is_file():  # a spec file
            spec_file = _load(Path(trends))
            trends = spec_file.name
            if store == ".evalpipe":  # (not given: the spec's own store and reports)
                root = store_root(spec_file.store)
                out_dir = out_dir or spec_file.report.out
        refresh_catalog(root)  # (a remote store's gate tables, for the trends to read)
        reports = Path(out_dir or "reports")
        page = write_trends(root, trends, reports)
        if page is None:
            raise StoreError(f"no finished run of spec {trends!r} in {root / 'runs'}")
        write_runs_index(reports, [m for m in find_runs(root) if m.get("verdict")])
        out.print(f"Trends: {page}", soft_wrap=True)
        if run_id is None:
            return
    if run_id is None:
        raise typer.BadParameter("give a RUN_ID to re-render, or --trends SPEC")
    manifest_path = root / "runs" / run_id / "manifest.json"
    if not fetch_run(root, run_id):
        raise StoreError(
            f"no run {run_id!r} in {store_url(root)}/runs; `evalpipe runs --store {store}` "
            "lists them"
        )
    manifest = orjson.loads(manifest_path.read_bytes())
    spec_path = manifest.get("spec_path")
    spec = spec_from_dict(
        manifest["spec"], spec_dir=Path(spec_path).parent if spec_path else Path.cwd()
    )
    run = Run(run_id, root, spec)
    if not run.path("gate.parquet").exists():
        raise StoreError(
            f"run {run_id!r} has not been gated yet; `evalpipe gate --run-id {run_id}` finishes it"
        )
    out.print(f"Report: {report_run(run, load_gate(run), out=out_dir)}", soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every failure becomes one line and exit 4 (never a traceback)."""
    try:
        code = app(args=argv, standalone_mode=False)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, click.exceptions.Abort):
        err.print("aborted")
        sys.exit(4)
    except (typer.TyperException, click.ClickException) as exc:
        # usage errors: typer ≥ 0.20 raises its own vendored click's, older typer click's
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        err.print(f"error: {message}", soft_wrap=True, markup=False)
        sys.exit(4)
    except EvalpipeError as exc:
        if _STATE["debug"]:
            err.print_exception()
        err.print(f"error: {exc}", soft_wrap=True, markup=False)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if _STATE["debug"]:
            err.print_exception()
        err.print(
            f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            soft_wrap=True,
            markup=False,
        )
        sys.exit(4)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
