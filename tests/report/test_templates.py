"""The templates cannot mark data safe, and every one of them autoescapes."""

from __future__ import annotations

from importlib import resources

from evalpipe.report.html import environment


def test_no_template_marks_anything_safe() -> None:
    folder = resources.files("evalpipe.report").joinpath("templates")
    names = [p.name for p in folder.iterdir() if p.name.endswith(".j2")]
    assert "report.html.j2" in names and "runs.html.j2" in names
    for name in names:
        text = folder.joinpath(name).read_text()
        assert "|safe" not in text.replace(" ", ""), name
        assert "autoescape false" not in text, name
        assert "<script" not in text, name


def test_environment_escapes_html_j2() -> None:
    env = environment()
    assert env.autoescape is True
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
