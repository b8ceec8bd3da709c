"""Reading the params file: YAML with the line of every key, checked against the schema.

The file maps experiment function names to sections::

    experiment_ridge:
      params: {cv: 5}               # fixed values
      grid: {alpha: [0.1, 1.0]}     # axes, each a non-empty list
    experiment_svm:
      search: {lr: "loguniform(1e-4, 1e-1)"}   # an Optuna search (pytest_mlexp.search)
      trials: 20
      objective: val_loss:min       # and sampler:, seed:, pruner:, study:, as in the marker
      resources: {GPU: 1}           # what a cluster reserves per item (--mlexp-ray/-slurm)
    experiment_mlp:
      seed_budget: 20               # repeats=5 runs up to 20 seeds while the gate is undecided

Every mistake is a ``ParamsError`` naming ``file:line``, the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..settings.params import params_loader
from ..settings.params import parse_value as parse_value

if TYPE_CHECKING:
    import yaml

#: The sections of a function's entry.
FIXED, GRID, SEARCH, TRIALS, RESOURCES = "params", "grid", "search", "trials", "resources"
#: The metric picking a grid's best cell, and the metrics the gate judges, as the marker's.
BEST, JUDGE = "best", "judge"
#: The most seeds of a repeated cell the gate may ask for, as ``repeats=(5, 20)``'s 20.
SEED_BUDGET = "seed_budget"
#: A search's other settings, single values as the marker takes them (``search.declaration``).
SEARCH_OPTIONS = ("objective", "sampler", "seed", "pruner", "study")
SECTIONS = (FIXED, GRID, SEARCH, TRIALS, *SEARCH_OPTIONS, RESOURCES, BEST, JUDGE, SEED_BUDGET)

# YAML 1.2 reads 1e-3, 1.5e3 and .5e3 as numbers; PyYAML (YAML 1.1) wants a dot and a sign.


class ParamsError(pytest.Collector.CollectError):
    """A mistake in the params file or in ``--mlexp-set``, found at collection.

    Raised while a module is collected, so pytest reports it as that module's
    collection error, showing the message alone (no traceback), and stops the
    session before anything runs, under xdist too. (A ``UsageError`` raised
    there would become the same collection error, with pluggy's traceback.)
    """


@dataclass
class Entry:
    """One experiment function's section of the params file."""

    function: str
    #: Line of the function's key.
    line: int
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    #: ``search:`` and ``trials:``: a hyperparameter search (``search.collection``).
    search: dict[str, Any] | None = None
    trials: int | None = None
    #: The search's ``objective:``, ``sampler:``, ``seed:``, ``pruner:``, ``study:``.
    search_options: dict[str, Any] = field(default_factory=dict)
    #: ``resources:``: what a Ray cluster reserves for each of the function's items.
    resources: dict[str, Any] | None = None
    #: ``best:`` and ``judge:``, as ``@pytest.mark.mlexp(best=..., judge=...)`` takes them.
    marks: dict[str, Any] = field(default_factory=dict)
    #: ``seed_budget:``: the budget of the function's repeated cells (``repeats=(5, 20)``).
    seed_budget: int | None = None
    #: Line of every key: ``params.cv``, ``grid.alpha``, ``search``, ``trials``.
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, name: str) -> int:
        """The line of a param or axis (``cv``), or of a section (``search``)."""
        for key in (f"{FIXED}.{name}", f"{GRID}.{name}", name):
            if key in self.lines:
                return self.lines[key]
        return self.line


@dataclass(frozen=True)
class ParamsFile:
    """The params file, as loaded."""

    path: Path
    #: The path as messages show it (from the rootdir when under it).
    display: str
    #: The file's text, logged with each run as ``lineage/params.yaml``.
    text: str
    #: Function name -> its section, in file order.
    entries: dict[str, Entry]

    def where(self, line: int) -> str:
        return f"{self.display}:{line}"


def load_params_file(path: Path, display: str) -> ParamsFile:
    """Read and check the params file; ``ParamsError`` naming the line of any mistake."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{display}: cannot read the params file: {exc}") from None
    loader = params_loader()(text)
    try:
        return _read(loader, ParamsFile(path, display, text, {}))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ParamsError(
            f"{display}:{line}: not valid YAML: {problem}; fix the syntax on that line"
        ) from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{display}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def dump(data: Any) -> str:
    """YAML text of ``data``, keys in their order (the overridden params file)."""
    import yaml

    return yaml.dump(
        data,
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
    )


# -- internals ------------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _read(loader: Any, file: ParamsFile) -> ParamsFile:
    import yaml

    root = loader.get_single_node()
    if root is None or _is_null(root):
        return file
    if not isinstance(root, yaml.MappingNode):
        raise ParamsError(
            f"{file.where(_line(root))}: expected experiment functions at the top level "
            "(experiment_ridge: {params: ..., grid: ...}), got "
            f"{type(loader.construct_object(root, deep=True)).__name__}"
        )
    loader.flatten_mapping(root)
    for key_node, value_node in root.value:
        function = _name(loader, key_node, file, "an experiment function's name")
        if function in file.entries:
            raise ParamsError(
                f"{file.where(_line(key_node))}: {function} is given twice (first on line "
                f"{file.entries[function].line}); merge the two sections"
            )
        file.entries[function] = _entry(loader, function, key_node, value_node, file)
    return file


def _entry(loader: Any, function: str, key_node: Any, node: Any, file: ParamsFile) -> Entry:
    import yaml

    entry = Entry(function, _line(key_node))
    if _is_null(node):
        return entry
    if not isinstance(node, yaml.MappingNode):
        raise ParamsError(
            f"{file.where(_line(node))}: {function}: expected a mapping of "
            f"{', '.join(s + ':' for s in SECTIONS)}; e.g. "
            f"{function}: {{grid: {{alpha: [0.1, 1]}}}}"
        )
    loader.flatten_mapping(node)
    seen: set[str] = set()
    for section_node, value in node.value:
        section = _name(loader, section_node, file, f"a section of {function}")
        where = file.where(_line(section_node))
        if section not in SECTIONS:
            raise ParamsError(
                f"{where}: {function}.{section}: unknown section; accepted: "
                f"{', '.join(SECTIONS)} (put values under params: or grid:)"
            )
        if section in seen:
            raise ParamsError(f"{where}: {function}.{section} is given twice; merge them")
        seen.add(section)
        entry.lines[section] = _line(section_node)
        if section in (FIXED, GRID):
            _values(loader, entry, section, value, file)
        elif section == SEARCH:
            entry.search = _mapping(
                loader,
                value,
                f"{where}: {function}.search: expected a mapping of param to "
                'distribution, e.g. search: {lr: "loguniform(1e-4, 1e-1)"}',
            )
        elif section == RESOURCES:
            entry.resources = _mapping(
                loader,
                value,
                f"{where}: {function}.resources: expected a mapping of resource to "
                "amount, as @pytest.mark.mlexp(resources=...) takes it, e.g. "
                "resources: {GPU: 1, memory: 8GB}",
            )
        elif section == BEST:
            entry.marks[BEST] = _best(loader, value, f"{where}: {function}.best")
        elif section == JUDGE:
            entry.marks[JUDGE] = _judge(loader, value, f"{where}: {function}.judge")
        elif section == SEED_BUDGET:
            entry.seed_budget = _whole_number(
                loader,
                value,
                least=2,
                expected=f"{where}: {function}.seed_budget: expected the most seeds a "
                "repeated cell may run, e.g. seed_budget: 20",
            )
        elif section in SEARCH_OPTIONS:
            option = loader.construct_object(value, deep=True)
            if option is not None and not isinstance(option, str | int | float):
                raise ParamsError(
                    f"{where}: {function}.{section}: expected a single value, as "
                    f"@pytest.mark.mlexp({section}=...) takes it, got {option!r}"
                )
            entry.search_options[section] = option
        else:
            entry.trials = _whole_number(
                loader,
                value,
                least=1,
                expected=f"{where}: {function}.trials: expected a positive number of trials",
            )
    both = sorted(set(entry.fixed) & set(entry.grid))
    if both:
        raise ParamsError(
            f"{file.where(entry.lines[f'{GRID}.{both[0]}'])}: {function}.grid.{both[0]}: "
            f"{both[0]!r} is also a fixed value (line {entry.lines[f'{FIXED}.{both[0]}']}); "
            "keep it in params: or in grid:, not both"
        )
    return entry


def _best(loader: Any, node: Any, where: str) -> str:
    from ..directions import BestSpec

    value = loader.construct_object(node, deep=True)
    if not isinstance(value, str):
        raise ParamsError(
            f"{where}: expected a metric name, as @pytest.mark.mlexp(best=...) takes it, "
            f"e.g. best: accuracy or best: val_loss:min, got {value!r}"
        )
    try:
        BestSpec.parse(value)
    except ValueError as exc:
        raise ParamsError(f"{where}: {exc}") from None
    return value


def _judge(loader: Any, node: Any, where: str) -> list[str]:
    value = loader.construct_object(node, deep=True)
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ParamsError(
            f"{where}: expected metric names, e.g. judge: [accuracy, val_loss], got {value!r}"
        )
    return [name.strip() for name in names if name.strip()]


def _values(loader: Any, entry: Entry, section: str, node: Any, file: ParamsFile) -> None:
    import yaml

    function = entry.function
    if _is_null(node):
        return
    if not isinstance(node, yaml.MappingNode):
        example = "{alpha: [0.1, 1.0]}" if section == GRID else "{cv: 5}"
        raise ParamsError(
            f"{file.where(_line(node))}: {function}.{section}: expected a mapping of "
            f"name: value, e.g. {section}: {example}"
        )
    loader.flatten_mapping(node)
    target: dict[str, Any] = entry.fixed if section == FIXED else entry.grid
    for key_node, value_node in node.value:
        name = _name(loader, key_node, file, f"a name in {function}.{section}")
        key = f"{section}.{name}"
        where = file.where(_line(key_node))
        if name in target:
            raise ParamsError(
                f"{where}: {function}.{key} is given twice (first on line {entry.lines[key]})"
            )
        value = loader.construct_object(value_node, deep=True)
        if section == GRID and (not isinstance(value, list) or not value):
            raise ParamsError(
                f"{where}: {function}.grid.{name}: a grid axis must be a non-empty list of "
                f"values, got {value!r}; write {name}: [{_flow(value)}], or move it to "
                "params: for a fixed value"
            )
        target[name] = value
        entry.lines[key] = _line(key_node)


def _whole_number(loader: Any, node: Any, *, least: int, expected: str) -> int:
    """An integer of at least ``least`` (not a bool); else an error: ``expected``, got what."""
    value = loader.construct_object(node, deep=True)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ParamsError(f"{expected}, got {value!r}")
    return value


def _mapping(loader: Any, node: Any, error: str) -> dict[str, Any]:
    """The node as a non-empty mapping, or ``ParamsError(error)``."""
    value = loader.construct_object(node, deep=True)
    if not isinstance(value, dict) or not value:
        raise ParamsError(error)
    return value


def _name(loader: Any, node: Any, file: ParamsFile, what: str) -> str:
    value = loader.construct_object(node, deep=True)
    if not isinstance(value, str) or not value:
        raise ParamsError(
            f"{file.where(_line(node))}: expected {what}, got {value!r}; names are strings"
        )
    return value


def _is_null(node: Any) -> bool:
    return bool(node.tag == "tag:yaml.org,2002:null")


def _flow(value: Any) -> str:
    if value is None or value == []:
        return "..."
    return dump(value).strip().removesuffix("\n...").strip()
