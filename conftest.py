"""Every code block of the README and of docs/ runs in the test suite, through Sybil.

Python blocks of one page run in order in one namespace, inside a temporary directory of
their own (an ``App("shop")`` there makes ``.eventlake/`` and ``lake/`` in that directory,
never in the repository), with no ``EVENTLAKE_*`` variables from the caller's environment.
Apps a page leaves open are closed when the page is done.

A block that cannot run here (a shell command, a configuration file, code that needs a
server) carries Sybil's skip directive, ``<!-- skip: next "why" -->``, just above it. A
shell, TOML, SQL, JSON or YAML block without one fails, so no block is left untested
without saying so. Diagrams and sample output are fenced as ``text`` or ``mermaid``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

NOT_RUNNABLE = ("bash", "sh", "shell", "console", "toml", "sql", "json", "yaml", "ini")


def _needs_skip(example: Example) -> None:
    raise AssertionError(
        f"{example.path}, line {example.line}: this block cannot run in the test suite; put "
        '<!-- skip: next "the reason" --> on the line before it (or make it a python block)'
    )


def _setup(namespace: dict[str, Any]) -> None:
    saved = {k: v for k, v in os.environ.items() if k.startswith("EVENTLAKE_")}
    for k in saved:
        del os.environ[k]
    namespace["_docs_env"] = saved
    namespace["__name__"] = "__main__"  # a page's blocks run as one script, `if __name__ ...` included
    namespace["_docs_cwd"] = os.getcwd()
    namespace["_docs_tmp"] = tempfile.mkdtemp(prefix="eventlake-docs-")
    os.chdir(namespace["_docs_tmp"])


def _teardown(namespace: dict[str, Any]) -> None:
    from eventlake import App

    try:
        for value in list(namespace.values()):
            if isinstance(value, App):
                value.close()
    finally:
        os.chdir(namespace["_docs_cwd"])
        shutil.rmtree(namespace["_docs_tmp"], ignore_errors=True)
        os.environ.update(namespace["_docs_env"])


pytest_collect_file = Sybil(
    parsers=[
        SkipParser(),
        PythonCodeBlockParser(),
        *(CodeBlockParser(language, _needs_skip) for language in NOT_RUNNABLE),
    ],
    patterns=["README.md", "docs/*.md", "docs/*/*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
