"""The reference pages are checked against the code, so they cannot go stale.

The code blocks of README.md and docs/ run through Sybil (the repository's ``conftest.py``);
these tests check what prose cannot run: the settings table against ``Settings``, the
trigger option tables against the options each decorator accepts, the CLI page against the
command tree, and every relative link.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from eventlake import App, ValidationError
from eventlake.cli import cli
from eventlake.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
_ROW = re.compile(r"^\| `([^`]+)`(?: / `[^`]+`)? \| ([^|]*) \|", re.MULTILINE)


def _sections(path: Path) -> dict[str, str]:
    """A page's ``## `heading` `` sections, keyed by the heading's code text."""
    out: dict[str, str] = {}
    for part in re.split(r"^## ", path.read_text(), flags=re.MULTILINE)[1:]:
        title, _, body = part.partition("\n")
        m = re.match(r"`([^`]+)`", title)
        if m:
            out[m.group(1)] = body
    return out


def _rows(text: str) -> dict[str, str]:
    return {name: default.strip() for name, default in _ROW.findall(text)}


def test_settings_page_lists_every_setting_with_its_default() -> None:
    documented = _rows((DOCS / "reference" / "settings.md").read_text())
    actual = {f.name: f"`{f.default}`" for f in dataclasses.fields(Settings) if f.name != "extra"}
    assert documented == actual


def _accepted_options(declare: Any) -> set[str]:
    with pytest.raises(ValidationError) as info:
        declare(no_such_option=1)
    listed = re.search(r"valid options: (.*)$", str(info.value))
    assert listed, info.value
    return set(listed.group(1).split(", "))


def test_trigger_page_lists_exactly_the_options_each_decorator_accepts(tmp_path: Path) -> None:
    page = (DOCS / "reference" / "triggers.md").read_text()
    sections = _sections(DOCS / "reference" / "triggers.md")
    function_options = set(_rows(page.split("## Function options", 1)[1].split("\n## ", 1)[0]))
    assert function_options
    with App("docs", state_url=f"sqlite:///{tmp_path}/s.db", lake_url=f"file://{tmp_path}/lake") as app:
        stream = app.stream("s")
        table = app.table("t", key="id", stream="new_image")
        queue = app.queue("q")
        declarations = {
            "app.on_stream(stream, **options)": lambda **o: app.on_stream(stream, **o),
            "app.on_queue(queue, **options)": lambda **o: app.on_queue(queue, **o),
            'app.on_object(prefix="", suffix="", events=("ObjectCreated:*",), **options)': (
                lambda **o: app.on_object(**o)
            ),
            "app.on_schedule(expression, **options)": lambda **o: app.on_schedule("rate(1 minute)", **o),
        }
        for heading, declare in declarations.items():
            documented = set(_rows(sections[heading])) | function_options
            accepted = _accepted_options(declare)
            if heading.startswith("app.on_object"):
                accepted |= {"prefix", "suffix", "events"}  # named parameters, not **options
            assert documented == accepted, heading
        assert _accepted_options(lambda **o: app.on_table_stream(table, **o)) == _accepted_options(
            lambda **o: app.on_stream(stream, **o)
        )


def _commands(command: Any, path: tuple[str, ...]) -> dict[str, Any]:
    out = {" ".join(path): command}
    for name, sub in getattr(command, "commands", {}).items():
        out.update(_commands(sub, (*path, name)))
    return out


def test_cli_page_documents_every_command_and_option() -> None:
    sections = _sections(DOCS / "reference" / "cli.md")
    documented = {re.sub(r" [A-Z_]+$", "", title): body for title, body in sections.items()}
    commands = {
        path: command
        for path, command in _commands(typer.main.get_command(cli), ("eventlake",)).items()
        if not getattr(command, "commands", None)  # groups have no options of their own
    }
    assert set(documented) == set(commands)
    for path, command in commands.items():
        options = {o for p in command.params if p.name != "help" for o in p.opts if o.startswith("--")}
        assert options == set(_rows(documented[path])), path


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        assert resolved.exists(), f"{page.relative_to(ROOT)}: link to {target} leads nowhere"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", resolved.read_text(), flags=re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.relative_to(ROOT)}: no heading #{anchor} in {file}"


def test_api_page_documents_the_app_and_only_methods_that_exist() -> None:
    from eventlake.resources.lake import Lake
    from eventlake.resources.queue import Queue
    from eventlake.resources.stream import Stream
    from eventlake.resources.table import Table

    page = (DOCS / "reference" / "api.md").read_text()
    app_names = {n for n in vars(App) if not n.startswith("_")}
    assert set(re.findall(r"`app\.(\w+)", page)) == app_names
    sections = _sections(DOCS / "reference" / "api.md")
    for cls in (Stream, Table, Queue, Lake):
        rows = re.findall(r"^\| `(\w+)", sections[cls.__name__], flags=re.MULTILINE)
        rows += re.findall(
            r"`(\w+)`",
            "".join(re.findall(r"^\| ([^|]*, [^|]*) \|", sections[cls.__name__], flags=re.MULTILINE)),
        )
        missing = [name for name in rows if not hasattr(cls, name)]
        assert rows and not missing, f"{cls.__name__}: documented but not there: {missing}"


def _tree_paths() -> set[str]:
    """The paths the architecture page's module tree names (a folder without children covers
    everything under it)."""
    page = (DOCS / "architecture.md").read_text()
    block = page.split("## Module tree", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or not re.match(r"^\w+(\.py|/)$", m.group(2)):
            continue  # a continued description
        indent, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (stack[-1][1] if stack else "") + name
        paths.add(path)
        if name.endswith("/"):
            stack.append((indent, path))
    return paths


def test_architecture_module_tree_is_the_package_as_it_is() -> None:
    listed = _tree_paths()
    folders = {p for p in listed if p.endswith("/")}
    leaves = {p for p in folders if not any(q != p and q.startswith(p) for q in listed)}
    actual = {
        str(f.relative_to(ROOT)) for f in (ROOT / "eventlake").rglob("*.py") if "__pycache__" not in f.parts
    }
    missing = sorted(
        f
        for f in actual
        if f not in listed
        and not any(f.startswith(leaf) for leaf in leaves)
        and not (f.endswith("/__init__.py") and f.removesuffix("__init__.py") in folders)
    )
    gone = sorted(p for p in listed if not (ROOT / p).exists())
    assert not missing, f"add these modules to the module tree in docs/architecture.md: {missing}"
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
