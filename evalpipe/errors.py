"""The one error tree of evalpipe. Every error a user can cause carries its exit code.

    EvalpipeError (exit 4)
     ├── SpecError            eval.yaml is invalid: names the YAML path and the fix
     ├── InputError           a traffic/log file cannot be read, or holds nothing usable
     │    └── NoUsableRecordsError
     ├── ProviderError        the provider refused the run: auth, unknown model, unreachable
     ├── ScorerError          a custom scorer (`type: python`) raised or answered the wrong shape
     └── StoreError           the store cannot be read or written; an unknown run id

`cli.py` catches `EvalpipeError` once, prints its message as one line and exits with `exit_code`.
Row-level failures (a timeout, a 429 after retries, a bad log line) are never raised: they are rows.
"""

from __future__ import annotations

__all__ = [
    "EvalpipeError",
    "InputError",
    "NoUsableRecordsError",
    "ProviderError",
    "ScorerError",
    "SpecError",
    "StoreError",
]


class EvalpipeError(Exception):
    """Root of every error evalpipe raises on purpose."""

    exit_code: int = 4


class SpecError(EvalpipeError, ValueError):
    """The eval spec is invalid.

    Attributes:
        where: YAML path of the problem, e.g. ``checks[0].valu``.
        problem: what is wrong.
        fix: what to do about it.
    """

    def __init__(self, where: str, problem: str, fix: str = "", *, path: str = "eval.yaml") -> None:
        self.where, self.problem, self.fix, self.path = where, problem, fix, path
        location = f"{path} {where}" if where else path
        message = f"{location}: {problem}."
        if fix:
            message += f" {fix}"
        super().__init__(message)


class InputError(EvalpipeError, ValueError):
    """An input file is missing or unreadable.

    Attributes:
        path: the file concerned.
        problem: what is wrong.
    """

    def __init__(self, path: str, problem: str, fix: str = "") -> None:
        self.path, self.problem, self.fix = path, problem, fix
        message = f"{path}: {problem}."
        if fix:
            message += f" {fix}"
        super().__init__(message)


class NoUsableRecordsError(InputError):
    """Ingestion read the input but found no record it could use."""


class ProviderError(EvalpipeError):
    """The provider refused the run itself (auth, unknown model, unreachable endpoint).

    Attributes:
        arm: the arm (baseline or candidate name) whose requests failed.
        model: the model asked for.
        problem: the provider's answer, shortened.
    """

    def __init__(self, arm: str, model: str, problem: str, fix: str = "") -> None:
        self.arm, self.model, self.problem, self.fix = arm, model, problem, fix
        message = f"{arm} ({model}): {problem.rstrip('.')}."
        if fix:
            message += f" {fix}"
        super().__init__(message)


class StoreError(EvalpipeError):
    """The store cannot be read or written, or a run id is unknown."""


class ScorerError(EvalpipeError):
    """A custom scorer failed: it raised, or returned the wrong length or type.

    Scoring catches it and turns the check's rows into error rows (its message as `error`), so
    the run goes on and the gate says the check could not be computed.

    Attributes:
        check: the check's name in the spec.
        function: the scorer, `module:function` or its entry-point name.
        problem: what went wrong.
    """

    def __init__(self, check: str, function: str, problem: str) -> None:
        self.check, self.function, self.problem = check, function, problem
        super().__init__(f"check {check} (scorer {function}): {problem}")
