"""The reference pages' generated parts, written from the code at every build.

An MkDocs hook (``hooks:`` in ``mkdocs.yml``): a page line such as
``<!-- generated: settings -->`` is replaced by what ``GENERATORS`` makes of
the package as it is (``<!-- generated: settings:reuse -->``: the settings of
``add_reuse_options`` only, for a guide), so the reference cannot drift from the code. Each
generator is a plain function returning markdown, tested in ``tests/test_docs.py``.

Two private APIs are read, each in one place: pytest's ``Parser._inidict``
(the ini keys a plugin declared; checked against pytest 8.4 to 9.2) and
argparse's ``ArgumentParser._actions`` (the ``mlexp`` subcommands).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_mlexp"
PLACEHOLDER = re.compile(r"^<!-- generated: ([a-z-]+)(?::([a-z_]+))? -->$", re.MULTILINE)
#: The marker before a generated code block: shown, not run (see tests/test_docs.py).
NOT_RUN = "<!-- not run: generated from the code -->"


# -- settings: flags, ini keys, mlexp.yaml keys, environment variables -----------------------


@dataclass
class Feature:
    """What one ``add_<name>_options`` function of ``settings/options.py`` declares."""

    name: str
    flags: list[dict[str, Any]] = field(default_factory=list)
    ini: list[tuple[str, str, str, Any]] = field(default_factory=list)
    yaml_keys: tuple[str, ...] = ()


def _new_parser() -> Any:
    import pytest
    from _pytest.config.argparsing import Parser

    try:
        return Parser(_ispytest=True)
    except TypeError:  # an older pytest without the keyword
        return pytest.Parser()


def _ini_of(parser: Any) -> dict[str, tuple[Any, ...]]:
    """Name -> (help, type, default) of the ini keys declared into ``parser``."""
    return dict(parser._inidict)


def features() -> list[Feature]:
    """Every feature's options, declared into a real pytest parser, one parser per feature."""
    from pytest_mlexp.settings import options

    found = []
    for name, add in inspect.getmembers(options, inspect.isfunction):
        match = re.fullmatch(r"add_(\w+)_options", name)
        if not match:
            continue
        parser = _new_parser()
        add(parser.getgroup("mlexp"), parser)
        feature = Feature(match.group(1))
        for option in parser.getgroup("mlexp").options:
            attrs = option.attrs()
            feature.flags.append({"names": option.names(), **attrs})
        for key, (text, kind, *default) in _ini_of(parser).items():
            feature.ini.append((key, text, kind, default[0] if default else None))
        feature.yaml_keys = getattr(options, f"{feature.name.upper()}_KEYS", ())
        found.append(feature)
    order = [add.__name__ for add in _declaration_order()]
    found.sort(
        key=lambda f: (
            order.index(f"add_{f.name}_options") if f"add_{f.name}_options" in order else 99
        )
    )
    return found


def _declaration_order() -> list[Callable[..., Any]]:
    """The ``add_*_options`` functions in the order ``add_options`` calls them."""
    from pytest_mlexp.settings import options

    tree = ast.parse(inspect.getsource(options.add_options))
    names = [node.id for node in ast.walk(tree) if isinstance(node, ast.Name)]
    return [getattr(options, n) for n in names if n.startswith("add_") and hasattr(options, n)]


@dataclass
class EnvVar:
    name: str
    module: str
    option: str | None = None
    key: str | None = None
    comment: str = ""


def environment_variables() -> list[EnvVar]:
    """Every environment variable the settings read: ``env=`` arguments and ``*_ENV`` constants.

    Found in the source of ``settings/*.py`` with ``ast``, not from a list.
    """
    found: dict[str, EnvVar] = {}
    for path in sorted((PACKAGE / "settings").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        comments = _doc_comments(source)
        constants: dict[str, str] = {}
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                constants[node.targets[0].id] = node.value.value
                if node.targets[0].id.endswith("_ENV"):
                    value = node.value.value
                    found.setdefault(value, EnvVar(value, path.stem))
                    found[value].comment = comments.get(node.lineno, "")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            if "env" not in keywords:
                continue
            env = _text(keywords["env"], constants)
            if env is None:
                continue
            var = found.setdefault(env, EnvVar(env, path.stem))
            args = [_text(a, constants) for a in node.args[1:]]
            var.option = _text(keywords.get("option"), constants) or (args[0] if args else None)
            var.key = _text(keywords.get("key"), constants) or (args[1] if len(args) > 1 else None)
    return sorted(found.values(), key=lambda v: v.name)


def _text(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _doc_comments(source: str) -> dict[int, str]:
    """Line number of an assignment -> the ``#:`` comment lines just above it, joined."""
    lines = source.splitlines()
    found: dict[int, str] = {}
    for number in range(1, len(lines) + 1):
        above = []
        index = number - 2
        while index >= 0 and lines[index].lstrip().startswith("#:"):
            above.insert(0, lines[index].lstrip()[2:].strip())
            index -= 1
        if above:
            found[number] = " ".join(above)
    return found


def _cell(text: Any) -> str:
    """Text fit for a table cell: one line, pipes escaped outside code, rST literals as code."""
    if text in (None, ""):
        return ""
    text = re.sub(r"``([^`]+)``", r"`\1`", str(text))
    # Outside code spans, <rootdir> is text, not an HTML tag.
    # Outside code spans a pipe is escaped; inside one, Python-Markdown's tables
    # already keep it (an escape there would show as a literal backslash).
    parts = text.split("`")
    parts[::2] = [
        part.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|") for part in parts[::2]
    ]
    return "`".join(parts).replace("\n", " ")


def _flag(option: dict[str, Any]) -> str:
    names = ", ".join(option["names"])
    metavar = option.get("metavar")
    return _cell(f"`{names} {metavar}`" if metavar else f"`{names}`")


def settings_table(feature: Feature) -> str:
    """One row per setting of ``feature``: its flag, variable, ini key and yaml key joined.

    A flag's ``dest``, an ini key and a yaml key name the same setting when
    they are equal once the ``mlexp_`` prefix is taken off (``mlexp_reuse``,
    ``reuse``), as ``settings/sources.py`` looks them up.
    """
    env_by_option = {v.option: v.name for v in environment_variables() if v.option}
    rows: dict[str, dict[str, str]] = {}

    def row(name: str) -> dict[str, str]:
        return rows.setdefault(name.removeprefix("mlexp_"), {})

    for option in feature.flags:
        found = row(option["dest"])
        found["flag"] = _flag(option)
        found["help"] = _cell((option.get("help") or "").replace("%%", "%"))
        env = env_by_option.get(option["dest"])
        found["env"] = f"`{env}`" if env else ""
    for key, text, kind, _default in feature.ini:
        found = row(key)
        found["ini"] = f"`{key}`" + (" (lines)" if kind == "linelist" else "")
        found.setdefault("help", _cell(text))
    for key in feature.yaml_keys:
        row(key)["yaml"] = f"`{key}`"
    out = [
        "| flag | environment | ini key | `mlexp.yaml` key | what |",
        "|---|---|---|---|---|",
    ]
    for found in rows.values():
        cells = [found.get(column, "") for column in ("flag", "env", "ini", "yaml", "help")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def feature_settings(name: str) -> str:
    """The settings table of one feature (``add_<name>_options``), for a guide."""
    for feature in features():
        if feature.name == name:
            return settings_table(feature)
    raise KeyError(f"no add_{name}_options in settings/options.py")


def settings_markdown() -> str:
    """Every flag, ini key and ``mlexp.yaml`` key per feature, then the environment variables."""
    out = [
        "Resolution, highest first: command-line flag, environment variable, ini key "
        "(`pytest.ini`, `[tool.pytest.ini_options]`, `tox.ini`, `setup.cfg`), "
        "`mlexp.yaml` key, default. Each feature's table is generated from "
        '`pytest_mlexp/settings/options.py`; "(lines)" marks an ini key that takes '
        "one value a line.",
        "",
    ]
    for feature in features():
        out += [f"### {feature.name.replace('_', ' ').capitalize()}", "", settings_table(feature)]
    out += [
        "### Environment variables",
        "",
        "Found in `pytest_mlexp/settings/` by reading its source.",
        "",
        "| variable | same as | what |",
        "|---|---|---|",
    ]
    for var in environment_variables():
        same = ", ".join(
            text
            for text in (
                f"`--{var.option.replace('_', '-')}`" if var.option else "",
                f"ini `{var.option}`" if var.option else "",
                f"`mlexp.yaml` `{var.key}`" if var.key else "",
            )
            if text
        )
        what = var.comment or "The same setting, from the environment."
        out.append(f"| `{var.name}` | {same} | {_cell(what)} |")
    return "\n".join(out) + "\n"


# -- the marker ------------------------------------------------------------------------------


def markers_markdown() -> str:
    """Every argument ``@pytest.mark.mlexp`` accepts, with its meaning."""
    from pytest_mlexp.runs.markers import MARKER_KWARGS

    meanings = MARKER_KWARGS if isinstance(MARKER_KWARGS, dict) else {}
    out = ["| argument | meaning |", "|---|---|"]
    for name in MARKER_KWARGS:
        out.append(f"| `{name}=` | {_cell(meanings.get(name, ''))} |")
    return "\n".join(out) + "\n"


# -- tags --------------------------------------------------------------------------------------


@dataclass
class Tag:
    name: str
    constant: str
    section: str
    meaning: str


def tags() -> list[Tag]:
    """Every tag name in ``backend/tags.py`` with its ``#:`` comment.

    A constant without a comment of its own shares the comment of the
    constant on the line just above it (a group such as ``HOST``/``PID``).
    """
    source = (PACKAGE / "backend" / "tags.py").read_text(encoding="utf-8")
    comments = _doc_comments(source)
    lines = source.splitlines()
    found = []
    section = ""
    previous: tuple[int, str] | None = None
    for node in ast.parse(source).body:
        if not (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            previous = None
            continue
        for line in reversed(lines[: node.lineno - 1]):
            header = re.match(r"# -- (.+?) -+$", line.strip())
            if header:
                section = header.group(1)
                break
        meaning = comments.get(node.lineno, "")
        if not meaning and previous and previous[0] == node.lineno - 1:
            meaning = previous[1]
        previous = (node.lineno, meaning)
        value = node.value.value
        if value.startswith(("mlexp.", "mlflow.")):
            shown = value + "<name>" if value.endswith(".") else value
            found.append(Tag(shown, node.targets[0].id, section, meaning))
    return found


def tags_markdown() -> str:
    """The tags by section; tags sharing one comment (a group) share a row."""
    out: list[str] = []
    section = None
    rows: list[tuple[list[str], str]] = []
    for tag in tags():
        if tag.section != section:
            out += _tag_rows(rows)
            rows = []
            section = tag.section
            title = section[0].upper() + section[1:]
            out += ["", f"### {title}", "", "| tag | meaning |", "|---|---|"]
        if rows and rows[-1][1] == tag.meaning:
            rows[-1][0].append(tag.name)
        else:
            rows.append(([tag.name], tag.meaning))
    out += _tag_rows(rows)
    return "\n".join(out).lstrip() + "\n"


def _tag_rows(rows: list[tuple[list[str], str]]) -> list[str]:
    shown = [(", ".join(f"`{name}`" for name in names), meaning) for names, meaning in rows]
    return [f"| {names} | {_cell(meaning)} |" for names, meaning in shown]


# -- hooks -----------------------------------------------------------------------------------


def hooks_markdown() -> str:
    """Each hook specification: its signature, and its docstring with examples as code."""
    from pytest_mlexp import hookspecs

    out = []
    specs = [
        (name, spec)
        for name, spec in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("pytest_mlexp_")
    ]
    specs.sort(key=lambda pair: pair[1].__code__.co_firstlineno)
    for name, spec in specs:
        options = getattr(spec, "pytest_spec", {}) or {}
        signature = str(inspect.signature(spec)).replace("'", "")
        out += [f"### `{name}`", "", NOT_RUN, "```python", f"def {name}{signature}: ...", "```", ""]
        if options.get("firstresult"):
            out += ["*firstresult*: the first implementation returning a value stops the call.", ""]
        out += [_docstring_markdown(inspect.getdoc(spec) or ""), ""]
    return "\n".join(out)


def _docstring_markdown(doc: str) -> str:
    """A docstring with its ``::`` literal blocks turned into fenced Python blocks."""
    out: list[str] = []
    block: list[str] | None = None

    def close() -> None:
        assert block is not None
        while block and not block[0].strip():
            block.pop(0)
        while block and not block[-1].strip():
            block.pop()
        out.extend(["", NOT_RUN, "```python", *block, "```", ""])

    for line in doc.splitlines():
        if block is not None:
            if line.strip() and not line.startswith("    "):
                close()
                block = None
            else:
                block.append(line[4:])
                continue
        line = re.sub(r"``([^`]+)``", r"`\1`", line)
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-1])
            block = []
        else:
            out.append(line)
    if block is not None:
        close()
    return "\n".join(out).strip()


# -- the mlexp command ---------------------------------------------------------------------------


@contextmanager
def _columns(width: int) -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """``mlexp``'s subcommands, from ``pytest_mlexp.cli.build_parser()``."""
    from pytest_mlexp import cli

    parser = cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_markdown() -> str:
    from pytest_mlexp import cli

    out = []
    with _columns(96):
        top = cli.build_parser().format_help()
        out += ["### `mlexp`", "", NOT_RUN, "```text", top.rstrip(), "```", ""]
        for name, sub in subcommands().items():
            out += [
                f"### `mlexp {name}`",
                "",
                NOT_RUN,
                "```text",
                sub.format_help().rstrip(),
                "```",
                "",
            ]
    return "\n".join(out)


GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings_markdown,
    "markers": markers_markdown,
    "tags": tags_markdown,
    "hooks": hooks_markdown,
    "cli": cli_markdown,
}


def render(markdown: str) -> str:
    """``markdown`` with each ``<!-- generated: NAME -->`` line replaced by its generator's."""

    def generate(match: re.Match[str]) -> str:
        if match.group(1) == "settings" and match.group(2):
            return feature_settings(match.group(2))
        return GENERATORS[match.group(1)]()

    return PLACEHOLDER.sub(generate, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs: fill in the generated parts of a page."""
    return render(markdown)


#: A paragraph ending in reST's ``::`` (it introduces a literal block), as
#: mkdocstrings renders a docstring written for Sphinx.
_REST_LITERAL_INTRO = re.compile(r"::</p>")


def on_page_content(html: str, **_: Any) -> str:
    """MkDocs: a docstring's ``text::`` reads ``text:``, as Sphinx shows it."""
    return _REST_LITERAL_INTRO.sub(":</p>", html)


if __name__ == "__main__":  # print one part: python docs/hooks/reference.py settings
    import sys

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        text = GENERATORS[sys.argv[1]]()
    print(text)
