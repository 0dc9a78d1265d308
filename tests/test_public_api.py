"""The front door: every name in evalpipe.__all__ resolves, and nothing else is advertised."""

from __future__ import annotations

import subprocess
import sys

import evalpipe


def test_every_exported_name_resolves() -> None:
    for name in evalpipe.__all__:
        assert getattr(evalpipe, name) is not None, name


def test_all_matches_the_lazy_table() -> None:
    assert set(evalpipe.__all__) == {"__version__", *evalpipe._EXPORTS}


def test_import_is_light() -> None:
    code = "import sys, evalpipe, evalpipe.errors; print(any(m in sys.modules for m in ('prefect', 'openai', 'pyarrow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_library_code_does_not_import_prefect_outside_flows() -> None:
    from pathlib import Path

    root = Path(evalpipe.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "flows" not in p.parts
        and any(
            line.lstrip().startswith(("import prefect", "from prefect"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_the_stages_never_import_the_flows() -> None:
    # flows wire the stages; a stage importing the flows points back up (only the CLI, the
    # package's front door and the flows themselves may)
    from pathlib import Path

    root = Path(evalpipe.__file__).parent
    allowed = {"cli.py", "__init__.py"}
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "flows" not in p.parts
        and str(p.relative_to(root)) not in allowed
        and any(
            line.lstrip().startswith(("import evalpipe.flows", "from evalpipe.flows"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []
