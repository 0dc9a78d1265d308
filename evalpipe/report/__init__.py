"""The report: index.html for people, summary.md for CI comments, verdict.json and junit.xml for machines.

`write_report` writes a run's four files; `write_runs_index` the page that lists every run;
`write_trends` a spec's trends page over its nights;
`build_verdict` builds the verdict.json document, which `validate_verdict` checks against
`verdict.schema.json`.
"""

from evalpipe.report.document import build_verdict, validate_verdict, verdict_schema
from evalpipe.report.output import ReportPaths, write_report, write_runs_index, write_trends
from evalpipe.report.redact import redact_texts

__all__ = [
    "ReportPaths",
    "build_verdict",
    "redact_texts",
    "validate_verdict",
    "verdict_schema",
    "write_report",
    "write_runs_index",
    "write_trends",
]
