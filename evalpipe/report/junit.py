"""junit.xml: one testsuite per candidate, one testcase per gated metric (and gated slice).

NO-GO is a `<failure>`, NOT-PROVEN a `<skipped>` with its reason, and every testcase of an
INVALID candidate an `<error>`: CI systems then show a regression as a failed test and an
evaluation that cannot be trusted as a broken one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.gate.verdict import GateResult

__all__ = ["render_junit"]

# XML 1.0 forbids most control characters even escaped; model text may carry them.
_INVALID_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: object) -> str:
    return _INVALID_XML.sub("\ufffd", str(value))


def _testcases(table: pa.Table, candidate: str) -> list[dict[str, object]]:
    mask = pc.and_(
        pc.equal(table["candidate"], candidate),
        pc.and_(pc.fill_null(table["gated"], False), pc.is_valid(table["verdict"])),
    )
    rows: list[dict[str, object]] = (
        table.filter(mask)
        .select(["metric", "slice_col", "slice_value", "verdict", "reason", "n"])
        .to_pylist()
    )
    # Totals first, then gated slices, each in gate order.
    return sorted(rows, key=lambda r: r["slice_col"] is not None)


def render_junit(gate: GateResult, *, suite_name: str = "evalpipe") -> bytes:
    """The JUnit XML document (UTF-8, with declaration)."""
    root = ET.Element("testsuites", name=_text(suite_name))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for cv in gate.candidates:
        cases = _testcases(gate.table, cv.candidate)
        suite = ET.SubElement(root, "testsuite", name=_text(cv.candidate))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="verdict", value=cv.verdict)
        ET.SubElement(props, "property", name="reason", value=_text(cv.reason))
        ET.SubElement(props, "property", name="run_id", value=_text(gate.run_id))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if not cases:  # nothing gated could be computed: the candidate's verdict is the test
            cases = [
                {
                    "metric": "verdict",
                    "slice_col": None,
                    "slice_value": None,
                    "verdict": cv.verdict,
                    "reason": cv.reason,
                    "n": cv.n,
                }
            ]
        for case in cases:
            name = str(case["metric"])
            if case["slice_col"] is not None:
                name += f" [{case['slice_col']}={case['slice_value']}]"
            tc = ET.SubElement(
                suite,
                "testcase",
                name=_text(name),
                classname=_text(f"evalpipe.{cv.candidate}"),
                time="0",
            )
            reason = _text(case["reason"] or case["verdict"])
            counts["tests"] += 1
            if cv.verdict == "INVALID":
                err = ET.SubElement(tc, "error", message=_text(cv.reason), type="INVALID")
                err.text = _text("\n".join(cv.invalid_reasons) or cv.reason)
                counts["errors"] += 1
            elif case["verdict"] == "NO-GO":
                fail = ET.SubElement(tc, "failure", message=reason, type="NO-GO")
                fail.text = reason
                counts["failures"] += 1
            elif case["verdict"] == "NOT-PROVEN":
                ET.SubElement(tc, "skipped", message=reason)
                counts["skipped"] += 1
            out = ET.SubElement(tc, "system-out")
            out.text = reason
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", "0")
        out = ET.SubElement(suite, "system-out")
        out.text = _text(cv.reason)
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"
