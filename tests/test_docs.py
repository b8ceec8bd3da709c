"""The documentation site: its generated reference is complete, and its examples run.

Every fenced code block of the site (``docs/**/*.md``) and of the README is
preceded by one of these HTML comments, which the pages do not show:

- ``<!-- example: NAME -->``: a part of the example project NAME. A block
  whose first line is ``# PATH`` is that file of the project; a ``console``
  block's ``$ `` lines are commands run in it (``pytest ...``, ``mlexp ...``,
  ``[cd DIR && ]python FILE``), in the order of the site's navigation.
  ``test_examples_run`` writes each project into a fresh folder and runs it.
- ``<!-- run by: PATH -->``: run by that test module (the Quick start, by
  ``tests/test_readme.py``); a copy on the site must equal the README's block.
- ``<!-- not run: REASON -->``: shown, not run, for the reason given (a CI
  workflow, a server command, an error message).
"""

from __future__ import annotations

import importlib.util
import re
import runpy
import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pytest_mlexp import cli, hookspecs
from pytest_mlexp.backend import tags as tag_names
from pytest_mlexp.runs.markers import MARKER_KWARGS
from pytest_mlexp.settings import options

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- (example|run by|not run): (.+?) -->$")


def load_reference():
    """``docs/hooks/reference.py``, the MkDocs hook that writes the reference."""
    spec = importlib.util.spec_from_file_location(
        "mlexp_docs_reference", DOCS / "hooks" / "reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


reference = load_reference()


# -- the generated reference ----------------------------------------------------------------


def declared_options() -> tuple[list[str], list[str]]:
    """The flags and ini keys the plugin declares, into a real pytest parser as plugin.py does."""
    parser = reference._new_parser()
    options.add_options(parser)
    flags = [name for option in parser.getgroup("mlexp").options for name in option.names()]
    return flags, list(reference._ini_of(parser))


def test_every_declared_setting_is_in_the_settings_reference():
    page = reference.settings_markdown()
    flags, ini_keys = declared_options()
    assert len(flags) > 30
    assert len(ini_keys) > 30
    for name in [*flags, *ini_keys]:
        assert f"`{name}" in page, f"{name} is declared but missing from the settings reference"
    for key in options.YAML_KEYS:
        assert f"`{key}`" in page, f"mlexp.yaml key {key} is missing from the settings reference"
    found = {var.name for var in reference.environment_variables()}
    # Read from the settings' source: the constants and MLflow's own variables alike.
    assert {
        "MLEXP_SESSION_ID",
        "MLEXP_REUSE",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
    } <= found
    for name in found:
        assert f"`{name}`" in page


def test_every_setting_states_its_meaning_and_its_default(pytester):
    """The reference's "what" column: a meaning and a default for every row; ini keys in --help."""
    from pytest_mlexp.settings.artifacts import DEFAULT_PATTERNS

    for feature in reference.features():
        for row in reference.settings_table(feature).splitlines()[2:]:
            what = row.rstrip(" |").rsplit(" | ", 1)[-1]
            assert len(what) > 15, f"no meaning: {row}"
            assert "default" in what.lower(), f"no default stated: {row}"
    page = reference.settings_markdown()
    assert all(pattern in page for pattern in DEFAULT_PATTERNS), "the default patterns, listed"

    shown = pytester.runpytest("--help").stdout.str()
    _, ini_keys = declared_options()
    for key in ini_keys:
        after = shown.split(f"  {key} (", 1)[1]
        described = after.split("):", 1)[1].split("\n  mlexp_", 1)[0]
        assert len(described.strip()) > 10, f"pytest --help shows {key} with no description"


def test_an_option_added_later_appears_without_touching_the_generator(monkeypatch):
    def add_later_options(group, parser):
        group.addoption("--mlexp-later", dest="mlexp_later", metavar="X", help="Added later.")
        parser.addini("mlexp_later", "Added later.")

    monkeypatch.setattr(options, "add_later_options", add_later_options, raising=False)
    monkeypatch.setattr(options, "LATER_KEYS", ("later",), raising=False)
    page = reference.settings_markdown()
    assert "| `--mlexp-later X` |  | `mlexp_later` | `later` | Added later. |" in page


def test_markers_tags_hooks_and_commands_are_in_the_reference():
    markers = reference.markers_markdown()
    for name, meaning in MARKER_KWARGS.items():
        assert meaning.strip(), f"marker argument {name}= has no meaning in runs/markers.py"
        assert f"| `{name}=` |" in markers

    tags = {tag.name: tag.meaning for tag in reference.tags()}
    for constant, value in vars(tag_names).items():
        if (
            constant.isupper()
            and isinstance(value, str)
            and value.startswith(("mlexp.", "mlflow."))
        ):
            shown = value + "<name>" if value.endswith(".") else value
            assert tags.get(shown), f"tag {value} ({constant}) has no #: comment in backend/tags.py"

    hooks = reference.hooks_markdown()
    for name in dir(hookspecs):
        if name.startswith("pytest_mlexp_"):
            assert f"### `{name}`" in hooks

    commands = reference.cli_markdown()
    names = list(reference.subcommands())
    assert {"report", "runs", "compare", "sync"} <= set(names)
    for name in names:
        assert f"### `mlexp {name}`" in commands
    assert cli.build_parser().prog == "mlexp"


def test_flag_spellings_in_tables_show_no_backslash():
    """``on|off`` inside a code span of a table cell: Python-Markdown keeps the pipe as is."""
    import markdown

    page = reference.settings_markdown()
    assert "`--mlexp-artifacts on|off`" in page
    html = markdown.markdown(page, extensions=["tables"])
    assert "<code>--mlexp-artifacts on|off</code>" in html
    for path in [*DOCS.rglob("*.md"), ROOT / "README.md"]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for span in re.findall(r"`[^`]+`", line):
                assert "\\|" not in span, f"{path.relative_to(ROOT)}:{number}: {span}"


def test_one_install_command_and_the_gitignore_the_docs_recommend():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = next(line for line in readme.splitlines() if "pip install" in line)
    for page in ("index.md", "getting-started.md"):
        installs = [
            line for line in (DOCS / page).read_text().splitlines() if "pip install" in line
        ]
        assert installs == [first], f"{page}: install with the README's first line"
    recommended = next(b for b in blocks(DOCS / "your-project.md") if b.lines[0] == "# .gitignore")
    ours = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    for line in recommended.lines:
        if line and not line.startswith("#"):
            assert line in ours, f"the repository's .gitignore lacks {line} (docs recommend it)"


def test_the_home_page_links_every_page_of_the_site():
    """ "Where to go next" leaves no guide out (reproduce was once missing)."""
    home = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in site_pages():
        if page.parent.is_relative_to(DOCS) and page.name != "index.md":
            link = f"]({page.relative_to(DOCS).as_posix()})"
            assert link in home, f"index.md does not link {page.name}"


# -- every code block: run, or marked not run -------------------------------------------------


@dataclass
class Block:
    page: Path
    line: int
    kind: str  # example, run by, not run
    value: str
    language: str
    lines: list[str] = field(default_factory=list)


def site_pages() -> list[Path]:
    """The site's pages in the order of its navigation, then the README."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def walk(nav) -> Iterator[str]:
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            if isinstance(value, list):
                yield from walk(value)
            else:
                yield value

    in_nav = [DOCS / page for page in walk(config["nav"])]
    others = sorted(set(DOCS.rglob("*.md")) - set(in_nav))
    return [*in_nav, *others, ROOT / "README.md"]


def blocks(page: Path) -> list[Block]:
    found = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            before = next((text for text in reversed(lines[:index]) if text.strip()), "")
            marker = MARKER.match(before)
            where = f"{page.relative_to(ROOT)}:{index + 1}"
            assert marker, (
                f"{where}: a code block with no marker before it; add "
                "<!-- example: NAME -->, <!-- run by: TEST --> or <!-- not run: REASON -->"
            )
            end = lines.index("```", index + 1)
            found.append(
                Block(
                    page, index + 1, marker[1], marker[2], line[3:].strip(), lines[index + 1 : end]
                )
            )
            index = end
        index += 1
    return found


def test_every_code_block_is_run_or_marked_not_run():
    readme_blocks = [b.lines for b in blocks(ROOT / "README.md") if b.kind == "run by"]
    examples = set()
    for page in site_pages():
        for block in blocks(page):
            if block.kind == "run by":
                assert (ROOT / block.value).is_file(), block
                # The site's copy of the Quick start is the README's, which the test runs.
                assert block.lines in readme_blocks, (
                    f"{block.page}:{block.line} differs from the README"
                )
            elif block.kind == "example":
                examples.add(block.value)
            else:
                assert len(block.value) > 5, f"{block.page}:{block.line}: say why it is not run"
    assert {"own", "models", "grids"} <= examples
    # The site's own pages hold no unmarked block, the generated reference included.
    for name, generate in reference.GENERATORS.items():
        text = generate()
        fences = [i for i, line in enumerate(text.splitlines()) if line.startswith("```")]
        assert text.count(reference.NOT_RUN) * 2 == len(fences), name


#: A line of a ``bash`` block starts with one of these programs (or a path to one), or is a comment.
PROGRAMS = ("python", "python3", "pip", "pytest", "mlexp", "mlflow", "cd", "git", "export")


def test_a_copied_shell_block_holds_commands_only():
    """What a block's copy button takes is commands, which a user can paste into a shell.

    A ``console`` block shows ``$ `` commands and their output: Pygments makes the
    prompt and each output line tokens of their own (``gp``, ``go``), which the
    site's stylesheet hides while Material copies the block's text. A ``bash``
    block is copied whole: it holds commands, no prompt and no output.
    """
    from pygments.lexers import get_lexer_by_name
    from pygments.token import Generic

    css = (DOCS / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    assert re.search(
        r"\[data-md-copying\] \.gp,\s*\[data-md-copying\] \.go \{\s*display: none", css
    )
    console = get_lexer_by_name("console")
    for page in site_pages():
        for block in blocks(page):
            where = f"{block.page.relative_to(ROOT)}:{block.line}"
            if block.language == "console" and page.parent.is_relative_to(DOCS):
                tokens = console.get_tokens("\n".join(block.lines) + "\n")
                copied = "".join(
                    text for kind, text in tokens if kind not in (Generic.Prompt, Generic.Output)
                )
                commands = [line[2:] for line in block.lines if line.startswith("$ ")]
                assert commands, f"{where}: output alone; mark it ```text, not ```console"
                assert copied.split("\n") == [*commands, ""], f"{where}: copies {copied!r}"
            elif block.language in ("bash", "sh", "shell"):
                for line in block.lines:
                    program = line.split(" ", 1)[0].rsplit("/", 1)[-1]
                    assert line.startswith("#") or program in PROGRAMS, (
                        f"{where}: {line!r} is copied with the commands; a prompt or output "
                        "goes in a ```console block ($ before each command)"
                    )


# -- the examples, in fresh projects -----------------------------------------------------------


def example_projects() -> dict[str, tuple[dict[str, str], list[str]]]:
    """Project name -> (its files by path, its commands in the site's order)."""
    projects: dict[str, tuple[dict[str, str], list[str]]] = {}
    for page in site_pages():
        for block in blocks(page):
            if block.kind != "example":
                continue
            files, commands = projects.setdefault(block.value, ({}, []))
            if block.language == "console":
                commands += [line[2:] for line in block.lines if line.startswith("$ ")]
                continue
            path = block.lines[0].lstrip("# ").split(":")[0].strip()
            text = "\n".join(block.lines) + "\n"
            assert files.get(path, text) == text, f"{block.value}: two versions of {path}"
            files[path] = text
    return projects


def run_command(command: str, project: Path, pytester, capsys, monkeypatch) -> str:
    """Run one ``$`` line of the site in ``project``, in this process; its output."""
    monkeypatch.chdir(project)
    if command.startswith("cd "):
        folder, command = command[3:].split(" && ", 1)
        monkeypatch.chdir(project / folder)
    args = shlex.split(command)
    if args[0] == "pytest":
        result = pytester.runpytest(*args[1:], "-p", "no:randomly")
        assert result.ret == 0, f"$ {command}\n{result.stdout.str()}"
        return result.stdout.str()
    capsys.readouterr()
    if args[0] == "mlexp":
        assert cli.main(args[1:]) == 0, command
    else:
        assert args[0] == "python", f"no way to run {command!r} here"
        runpy.run_path(args[1], run_name="__main__")
    return capsys.readouterr().out


def test_examples_run(pytester, capsys, monkeypatch, empty_store):
    """Every example project of the site, written into a fresh folder and run as shown."""
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # A script may point MLflow's fluent API at its project; undone at the end.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    printed = {}
    for name, (files, commands) in example_projects().items():
        project = pytester.path / name
        for path, text in files.items():
            (project / path).parent.mkdir(parents=True, exist_ok=True)
            (project / path).write_text(text, encoding="utf-8")
        if not {"pytest.ini", "pyproject.toml"} & set(files):
            (project / "pytest.ini").write_text("[pytest]\n")
        # The default store's tables made once for all (a copy): making them is MLflow's
        # work, not the page's, and costs seconds a project.
        shutil.copy(empty_store, project / "mlflow.db")
        printed[name] = [run_command(c, project, pytester, capsys, monkeypatch) for c in commands]
    for module in [m for m in sys.modules if m == "mylib" or m.startswith("mylib.")]:
        del sys.modules[module]

    # Your own project: helper modules imported, inputs declared, hooks, reuse, the gate.
    own = MlflowClient(f"sqlite:///{pytester.path / 'own' / 'mlflow.db'}")
    runs = own.search_runs([own.get_experiment_by_name("own").experiment_id], max_results=500)
    items = [run for run in runs if "mlexp.nodeid" in run.data.tags]
    assert {run.data.tags.get("team") for run in items} == {"vision"}
    assert any(run.data.tags.get("mlexp.outcome") == "reused" for run in items)
    assert any(run.inputs.dataset_inputs for run in items)
    assert "experiment_lasso" in printed["own"][0]
    assert "3 trials" in printed["own"][0]
    baseline = yaml.safe_load((pytester.path / "own" / "experiments" / "baseline.yaml").read_text())
    assert any("experiment_ridge" in test_id for test_id in baseline)

    # Grids from the params file, overridden on the command line.
    grids = printed["grids"][0]
    assert "experiment_ridge[0.5]" in grids
    assert "experiment_ridge_all[2]" in grids

    # Models: the forest is registered and loads from a subfolder.
    models = MlflowClient(f"sqlite:///{pytester.path / 'models' / 'mlflow.db'}")
    version = models.get_model_version_by_alias("cancer-clf", "candidate")
    assert str(version.version) == "1"
    assert re.search(r"\[[01] [01] [01] [01] [01]\]", printed["models"][-1])
    assert not (pytester.path / "models" / "scripts" / "mlflow.db").exists()
