"""The HTML report: runs read back from the store, as tables and Plotly plots.

One code path serves both ``pytest --mlexp-html=PATH`` (this session's runs,
at session end) and ``mlexp report`` (any stored runs, after the fact):
``build_report`` reads runs from the store, ``render`` turns them into one
self-contained page (plotly.js inlined once, so it opens offline; or loaded
from plotly's CDN with ``--mlexp-figures cdn``).

Each experiment function gets its own table (its params only), runs in
natural order (``trial-2`` before ``trial-10``), the best member of each grid
or search marked; the run's name and the gate's verdict stay in view while a
wide table scrolls sideways, and plot legends sit beside the plots.

Importing this module is cheap: mlflow and plotly are imported when a report
is built.
"""

from __future__ import annotations

import datetime
import html
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..gate.verdicts import NO_BASELINE
from .words import counted

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from ..backend.client import Backend
    from .stored_runs import StoredRun

#: Most metrics plotted per experiment function (the table shows them all).
MAX_PLOTTED_METRICS = 8
#: Most hyperparameters given their own column of metric-vs-param plots.
MAX_PLOTTED_PARAMS = 4
#: A metric's y axis spans at least this fraction of its values' size (see ``_y_range``).
MIN_Y_SPAN = 0.05
#: Most runs drawn in one metric-history plot.
MAX_HISTORY_RUNS = 40

_STATUS_COLORS = {"FINISHED": "#2a9d8f", "FAILED": "#d62828", "KILLED": "#8d99ae"}


@dataclass
class Section:
    """One experiment of the report and its runs."""

    name: str
    experiment_id: str
    runs: list[StoredRun]
    url: str | None = None
    #: The parent runs of the searches among ``runs``, by group (``search.figures``).
    searches: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class Report:
    title: str
    scope: str
    store: str
    sections: list[Section] = field(default_factory=list)
    #: How the page loads plotly.js: ``inline`` (offline) or ``cdn``.
    figures: str = "inline"
    #: Run id of each grid's or search's best member -> why it is best (``best r2 (max)``).
    best: dict[str, str] = field(default_factory=dict)

    @property
    def run_count(self) -> int:
        return sum(len(s.runs) for s in self.sections)


# -- gathering runs from the store -----------------------------------------------------------


def build_report(
    backend: Backend,
    experiments: Sequence[Any],
    filter_string: str,
    scope: str,
    figures: str = "inline",
) -> Report:
    """Read the matching runs of ``experiments`` and their metric histories."""
    from .stored_runs import current_aliases, load_histories, search

    runs = search(backend, experiments, filter_string)
    load_histories(backend, runs)
    current_aliases(backend, runs)
    report = Report(
        title="pytest-mlexp report", scope=scope, store=backend.display_uri, figures=figures
    )
    report.best = best_members(backend, runs)
    for experiment in sorted(experiments, key=lambda e: str(e.name)):
        experiment_id = str(experiment.experiment_id)
        mine = [r for r in runs if r.experiment_id == experiment_id]
        if mine:
            mine.sort(key=lambda r: (natural_key(r.group), natural_key(r.name), r.start_time))
            url = backend.experiment_link(experiment_id)
            section = Section(str(experiment.name), experiment_id, mine, url)
            if any(T.TRIAL in r.tags for r in mine):
                from ..search.figures import search_parents

                section.searches = search_parents(backend, mine)
            report.sections.append(section)
    return report


def natural_key(text: str) -> tuple[Any, ...]:
    """Sorts ``trial-2`` before ``trial-10``: digit runs compare as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def best_members(backend: Backend, runs: Sequence[StoredRun]) -> dict[str, str]:
    """The best member of each grid or search that ``runs`` belong to: its run id -> why.

    Read from the parents (``mlexp.best_run_id``), whatever filter chose the runs.
    """
    from mlflow.exceptions import MlflowException

    best: dict[str, str] = {}
    for parent_id in sorted({r.tags[T.PARENT_RUN_ID] for r in runs if T.PARENT_RUN_ID in r.tags}):
        try:
            tags = backend.client.get_run(parent_id).data.tags
        except MlflowException:
            continue
        run_id = tags.get(T.BEST_RUN_ID)
        if not run_id or tags.get(T.KIND) not in (T.KIND_GRID, T.KIND_SEARCH):
            continue
        metric, how = tags.get(T.BEST_METRIC, ""), tags.get(T.BEST_DIRECTION, "")
        kind = "search" if tags.get(T.KIND) == T.KIND_SEARCH else "grid"
        best[run_id] = f"best of its {kind} by {metric}" + (f" ({how})" if how else "")
    return best


def write(report: Report, path: Path) -> Path:
    """Render ``report`` to ``path`` (parents created), atomically; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(report)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


# -- rendering -------------------------------------------------------------------------------


def render(report: Report) -> str:
    """The whole page: one copy of plotly.js (inline, or from its CDN), a section per experiment."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    plots = _Plots()
    body = [
        f"<header><h1>{_e(report.title)}</h1>",
        f"<p class='meta'>{_e(report.scope)} &middot; {counted(report.run_count, 'run')} in "
        f"{len(report.sections)} experiment{'s' if len(report.sections) != 1 else ''} "
        f"&middot; store <code>{_e(report.store)}</code> &middot; generated "
        f"{_e(datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'))}</p></header>",
    ]
    if not report.sections:
        body.append("<p class='empty'>No runs matched.</p>")
    for section in report.sections:
        body.append(_section(section, plots, report.best))
    if report.figures == "cdn":
        url = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
        script = f'<script src="{url}" charset="utf-8"></script>'
    else:
        script = f"<script>{get_plotlyjs()}</script>"
    return _PAGE.format(
        title=_e(f"{report.title}: {report.scope}"),
        style=_STYLE,
        plotlyjs=script,
        body="\n".join(body),
        sort_script=_SORT_SCRIPT,
    )


def _section(section: Section, plots: _Plots, best: dict[str, str]) -> str:
    # An attempt superseded by a rerun (pytest-rerunfailures) is listed, not counted nor plotted.
    final = [r for r in section.runs if r.outcome != T.OUTCOME_RERUN]
    superseded = len(section.runs) - len(final)
    statuses = Counter(r.status for r in final)
    counts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(statuses.items()))
    if superseded:
        counts += f"; {superseded} attempt{'s' if superseded != 1 else ''} superseded by a rerun"
    name = _e(section.name)
    heading = f"<a href='{_e(section.url)}'>{name}</a>" if section.url else name
    parts = [
        f"<section class='experiment'><h2>Experiment {heading}</h2>",
        f"<p class='meta'>{counted(len(final), 'run')}: {_e(counts)}</p>",
    ]
    # One table per experiment function: its own params, no empty columns of another's.
    listed: dict[str, list[StoredRun]] = {}
    for run in section.runs:
        listed.setdefault(run.group, []).append(run)
    for group, members in listed.items():
        runs = [r for r in members if r.outcome != T.OUTCOME_RERUN]
        parts.append(f"<h3 class='function'><code>{_e(group)}</code></h3>")
        parts.append(_usage(members))
        parts.append(_run_table(members, best))
        figures = _group_figures(runs, plots)
        if group in section.searches:
            from ..search.figures import search_figures

            figures += search_figures(runs, section.searches[group], plots.html)
        parts.extend(figures)
    parts.append("</section>")
    return "\n".join(parts)


def _run_table(runs: Sequence[StoredRun], best: dict[str, str] | None = None) -> str:
    best = best or {}
    params = sorted({k for r in runs for k in r.params}, key=natural_key)
    metrics = sorted({k for r in runs for k in r.metrics}, key=natural_key)
    sessions = len({r.session_id for r in runs}) > 1
    baseline = any(r.verdict for r in runs)
    models = any(r.models or r.registered for r in runs)
    head = ["run", "status"]
    if sessions:
        head.append("session")
    if models:
        head.append("logged model")
    # Metrics first: what a reader compares, in view without scrolling.
    head += [f"<span class='metric'>{_e(m)}</span>" for m in metrics]
    head += [f"<span class='param'>{_e(p)}</span>" for p in params]
    if baseline:
        head.append("<span title='the regression gate: its verdict, judged by what'>gate</span>")
    rows = []
    for run in runs:
        name = _e(run.name)
        link = f"<a href='{_e(run.url)}'>{name}</a>" if run.url else name
        why = best.get(run.run_id)
        if why:
            link += f" <span class='best-mark' title='{_e(why)}'>&#9733; best</span>"
        outcome = run.outcome
        status = run.status + (f" ({outcome})" if outcome not in ("", "passed", "failed") else "")
        reason = _e(run.tags.get(T.ERROR, ""))
        cells = [
            f"<td class='name' title='{_e(run.run_id)}'>{link}</td>",
            f"<td class='status {_e(run.status.lower())}' title='{reason}'>{_e(status)}</td>",
        ]
        if sessions:
            cells.append(f"<td>{_e(run.session_id)}</td>")
        if models:
            cells.append(_model_cell(run))
        cells += [_metric_cell(run.metrics.get(m)) for m in metrics]
        cells += [f"<td>{_e(run.params.get(p, ''))}</td>" for p in params]
        if baseline:
            cells.append(_baseline_cell(run))
        rows.append(("<tr class='best'>" if why else "<tr>") + "".join(cells) + "</tr>")
    header = "".join(f"<th aria-sort='none'>{h}</th>" for h in head)
    # The verdict is the last column: kept in view on the right (``.verdicts``).
    classes = "runs verdicts" if baseline else "runs"
    legend = (
        "<p class='legend'>Columns: <span class='metric'>metrics</span>, then "
        "<span class='param'>params</span>. Click a header to sort.</p>"
    )
    return (
        legend
        + f"<div class='table'><table class='{classes}'><thead><tr>"
        + header
        + "</tr></thead><tbody>"
        + "\n".join(rows)
        + "</tbody></table></div>"
    )


def _usage(runs: Sequence[StoredRun]) -> str:
    """What the function's runs used, in all: wall time, CPU time, GPU-hours."""
    from .usage import per_function, usage_text

    (total,) = per_function(("", r.usage, r.reused) for r in runs).values()
    # One session's runs: its reused runs cost nothing *this session*.
    session = len({r.session_id for r in runs}) <= 1
    title = "wall time, process CPU time and GPU-hours of the runs, rerun attempts included"
    return f"<p class='usage' title='{title}'>Used: {_e(usage_text(total, session=session))}</p>"


def _metric_cell(value: float | None) -> str:
    if value is None:
        return "<td></td>"
    return f"<td class='num' title='{value!r}'>{value:.4g}</td>"


def _baseline_cell(run: StoredRun) -> str:
    """The gate's verdict on the run, and the baseline it was judged against."""
    verdict = run.verdict
    if not verdict:
        return "<td></td>"
    shown = [f"<b class='verdict {_e(verdict.lower())}'>{_e(verdict)}</b>"]
    if run.baseline_source:
        shown.append(f"vs {_e(run.baseline_source)}")
    elif verdict != NO_BASELINE:
        # No baseline was given: the verdict is the run's own expect= bounds'.
        shown.append("by expect= bounds")
    # A repeated cell: the interval of the change and the seeds on each side, per metric.
    interval = run.tags.get(T.GATE_INTERVAL, "")
    if interval:
        rule = run.tags.get(T.GATE_RULE, "")
        shown += [
            f"<span class='interval' title='gate: {_e(rule)}'>{_e(part.strip())}</span>"
            for part in interval.split(";")
        ]
    return f"<td class='baseline'>{'<br>'.join(shown)}</td>"


def _model_cell(run: StoredRun) -> str:
    """Whether the run logged an MLflow model, and the registered version it became."""
    if not run.models and not run.registered:
        return "<td></td>"
    count = len(run.models)
    shown = []
    if count:
        label = f"{count} model{'s' if count > 1 else ''}"
        shown.append(f"<span title='{_e(', '.join(run.models))}'>{label}</span>")
    if run.registered:
        text = f"<b class='registered'>registered {_e(run.registered)}</b>"
        url = run.registered_url
        shown.append(f"<a href='{_e(url)}'>{text}</a>" if url else text)
    return f"<td class='model'>{'<br>'.join(shown)}</td>"


# -- plots -------------------------------------------------------------------------------------


class _Plots:
    """Renders figures as ``<div>``s with stable ids; plotly.js is in the page head."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, figure: Figure, css_class: str) -> str:
        import plotly.io as pio

        self.count += 1
        # Beside the plot, never over it: plotly widens the margin to fit the legend.
        figure.update_layout(
            legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"}
        )
        div = pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=False,
            div_id=f"mlexp-plot-{self.count}",
            config={"displaylogo": False, "responsive": True},
        )
        return f"<div class='plot {css_class}'>{div}</div>"


def _group_figures(runs: Sequence[StoredRun], plots: _Plots) -> list[str]:
    metrics = _plotted_metrics(runs)
    varying = _varying_params(runs)
    figures = []
    if len(runs) > 1 and varying and metrics:
        figures.append(plots.html(_metric_vs_params(runs, varying, metrics), "grid"))
    if len(varying) >= 2:
        figures.append(plots.html(_parallel_coordinates(runs, varying, metrics), "parcoords"))
    for metric in sorted({m for r in runs for m in r.step_metrics}):
        figures.append(plots.html(_history(runs, metric), "history"))
    return figures


def _plotted_metrics(runs: Sequence[StoredRun]) -> list[str]:
    keys = sorted({k for r in runs for k, v in r.metrics.items() if math.isfinite(v)})
    return keys[:MAX_PLOTTED_METRICS]


def _varying_params(runs: Sequence[StoredRun]) -> list[str]:
    keys = sorted({k for r in runs for k in r.params})
    return [k for k in keys if len({r.params.get(k) for r in runs}) > 1]


def _numeric(values: Iterable[str | None]) -> bool:
    present = [v for v in values if v is not None]
    try:
        numbers = [float(v) for v in present]
    except ValueError:
        return False
    return bool(numbers) and all(math.isfinite(n) for n in numbers)


def _log_spaced(values: Sequence[float]) -> bool:
    """Whether positive values are spaced by ratios (0.001, 0.01, 0.1) more than by steps.

    Two values a hundredfold apart or more; three or more spanning tenfold whose
    log-gaps are more even than their gaps (0.001, 0.01, 0.1; not 1, 2, 3).
    """
    distinct = sorted(set(values))
    if len(distinct) < 2 or distinct[0] <= 0:
        return False
    ratio = distinct[-1] / distinct[0]
    if len(distinct) == 2 or ratio >= 1000:
        return ratio >= 100
    if ratio < 10:
        return False
    logs = [math.log(v) for v in distinct]
    log_gaps = [b - a for a, b in itertools.pairwise(logs)]
    return _unevenness(log_gaps) < _unevenness([b - a for a, b in itertools.pairwise(distinct)])


def _unevenness(gaps: Sequence[float]) -> float:
    """How uneven gaps are: their spread over their mean (0 for equal gaps)."""
    mean = sum(gaps) / len(gaps)
    spread = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    return spread / mean if mean else math.inf


def _y_range(values: Sequence[float]) -> list[float] | None:
    """A y range no tighter than 5% of the values' size, so noise does not fill the plot.

    ``None`` (plotly's own range) when the values spread wider than that.
    """
    if not values:
        return None
    low, high = min(values), max(values)
    floor = MIN_Y_SPAN * max(abs(low), abs(high))
    if floor == 0 or high - low >= floor:
        return None
    middle = (low + high) / 2
    return [middle - 0.6 * floor, middle + 0.6 * floor]


def _axis_values(runs: Sequence[StoredRun], param: str) -> tuple[list[Any], dict[str, Any]]:
    """Values of ``param`` per run, and the x axis settings that show them best."""
    raw = [r.params.get(param) for r in runs]
    if _numeric(raw):
        values: list[Any] = [float(v) if v is not None else None for v in raw]
        if _log_spaced([v for v in values if v is not None]):
            return values, {"type": "log", "dtick": 1}
        return values, {}
    order = sorted({v for v in raw if v is not None})
    return raw, {"type": "category", "categoryorder": "array", "categoryarray": order}


def _metric_vs_params(
    runs: Sequence[StoredRun], varying: Sequence[str], metrics: Sequence[str]
) -> Figure:
    """A grid of small plots: one row per metric, one column per varying hyperparameter.

    Within a plot, runs that share the other hyperparameters are joined by a line.
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    shown = list(varying[:MAX_PLOTTED_PARAMS])
    figure = make_subplots(
        rows=len(metrics),
        cols=len(shown),
        shared_xaxes="columns",
        vertical_spacing=min(0.08, 0.3 / max(1, len(metrics) - 1)),
        horizontal_spacing=0.06,
    )
    palette = qualitative.Plotly
    colors: dict[str, str] = {}
    for col, param in enumerate(shown, start=1):
        x_values, axis = _axis_values(runs, param)
        others = [p for p in varying if p != param]
        lines: dict[str, list[tuple[Any, StoredRun]]] = {}
        for x, run in zip(x_values, runs, strict=True):
            label = ", ".join(f"{p}={run.params.get(p, '-')}" for p in others) or "runs"
            lines.setdefault(label, []).append((x, run))
        for row, metric in enumerate(metrics, start=1):
            for label, points in lines.items():
                points = [(x, r) for x, r in points if x is not None and metric in r.metrics]
                if axis.get("type") != "category":
                    points.sort(key=lambda p: p[0])
                if not points:
                    continue
                first = label not in colors
                color = colors.setdefault(label, palette[len(colors) % len(palette)])
                # Categories have no order between them: no line joins them.
                categorical = axis.get("type") == "category"
                figure.add_trace(
                    go.Scatter(
                        x=[x for x, _ in points],
                        y=[r.metrics[metric] for _, r in points],
                        mode="markers" if categorical else "lines+markers",
                        name=label,
                        legendgroup=label,
                        showlegend=first and len(lines) > 1,
                        line={"color": color},
                        marker={
                            "size": 8,
                            "line": {"width": 2, "color": [_status_color(r) for _, r in points]},
                        },
                        text=[r.name for _, r in points],
                        hovertemplate=f"%{{text}}<br>{_e(param)}=%{{x}}<br>{_e(metric)}=%{{y:.4g}}"
                        "<extra></extra>",
                    ),
                    row=row,
                    col=col,
                )
            figure.update_yaxes(title_text=metric, row=row, col=1)
            shown_range = _y_range([r.metrics[metric] for r in runs if metric in r.metrics])
            if shown_range is not None:
                for column in range(1, len(shown) + 1):
                    figure.update_yaxes(range=shown_range, row=row, col=column)
        figure.update_xaxes(title_text=param, row=len(metrics), col=col, **axis)
        for row in range(1, len(metrics)):
            figure.update_xaxes(row=row, col=col, **axis)
    figure.update_layout(
        title="Metrics by hyperparameter",
        height=140 + 230 * len(metrics),
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        template="plotly_white",
    )
    return figure


def _parallel_coordinates(
    runs: Sequence[StoredRun], varying: Sequence[str], metrics: Sequence[str]
) -> Figure:
    """One line per run through its hyperparameters and the metrics every run has."""
    import plotly.graph_objects as go

    complete = [m for m in metrics if all(m in r.metrics for r in runs)]
    dimensions: list[dict[str, Any]] = []
    for param in varying:
        raw = [r.params.get(param) for r in runs]
        if _numeric(raw):
            dimensions.append(
                {
                    "label": param,
                    "values": [float(v) if v is not None else 0.0 for v in raw],
                    "tickformat": ".4~g",
                }
            )
        else:
            order = sorted({v or "" for v in raw})
            dimensions.append(
                {
                    "label": param,
                    "values": [order.index(v or "") for v in raw],
                    "tickvals": list(range(len(order))),
                    "ticktext": order,
                }
            )
    for metric in complete:
        dimensions.append(
            {
                "label": metric,
                "values": [r.metrics[metric] for r in runs],
                # The axis ends too: 0.9973, not 0.9972746.
                "tickformat": ".4~g",
            }
        )
    line: dict[str, Any] = {"color": "#457b9d"}
    if complete:
        line = {
            "color": [r.metrics[complete[0]] for r in runs],
            "colorscale": "Viridis",
            "showscale": True,
            "colorbar": {"title": {"text": complete[0]}},
        }
    figure = go.Figure(go.Parcoords(line=line, dimensions=dimensions))
    figure.update_layout(
        title="Parallel coordinates",
        height=420,
        margin={"l": 70, "r": 70, "t": 90, "b": 40},
        template="plotly_white",
    )
    return figure


def _history(runs: Sequence[StoredRun], metric: str) -> Figure:
    """The metric per step, one line per run that logged it at several steps."""
    import plotly.graph_objects as go

    logged = [r for r in runs if len(r.histories.get(metric, ())) > 1]
    title = f"{metric} per step"
    if len(logged) > MAX_HISTORY_RUNS:
        title += f" (first {MAX_HISTORY_RUNS} of {len(logged)} runs)"
        logged = logged[:MAX_HISTORY_RUNS]
    figure = go.Figure()
    for run in logged:
        points = run.histories[metric]
        figure.add_trace(
            go.Scatter(
                x=[step for step, _ in points],
                y=[value for _, value in points],
                mode="lines+markers" if len(points) <= 50 else "lines",
                name=run.name,
            )
        )
    figure.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title=metric,
        height=380,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        template="plotly_white",
        showlegend=True,
    )
    return figure


def _status_color(run: StoredRun) -> str:
    return _STATUS_COLORS.get(run.status, "#8d99ae")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d3557; background: #f8f9fb; }
header, section { max-width: 1560px; margin: 0 auto; padding: 12px 24px; }
h1 { font-size: 1.5rem; margin: 16px 0 4px; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #e0e4ea; padding-bottom: 4px; }
h3 { font-size: 1rem; margin-top: 28px; }
a { color: #1d6fb8; }
.meta { color: #5c677d; margin: 4px 0 12px; }
.table { overflow-x: auto; background: white; border: 1px solid #e0e4ea; border-radius: 6px; }
table.runs { border-collapse: collapse; font-size: 0.85rem; width: 100%; }
.runs th, .runs td { padding: 5px 10px; border-bottom: 1px solid #eef0f4; text-align: left;
                     white-space: nowrap; }
.runs th { background: #f1f3f7; position: sticky; top: 0; font-weight: 600; }
.runs td:first-child, .runs th:first-child { position: sticky; left: 0; z-index: 2;
    background: white; box-shadow: inset -1px 0 0 #e0e4ea; }
.runs th:first-child { background: #f1f3f7; z-index: 3; }
.runs.verdicts td:last-child, .runs.verdicts th:last-child { position: sticky; right: 0;
    z-index: 2; background: white; box-shadow: inset 1px 0 0 #e0e4ea; }
.runs.verdicts th:last-child { background: #f1f3f7; z-index: 3; }
/* On a phone the run's name and its verdict would take the whole width and hide every
   column between them: there the table scrolls whole, nothing held in place. */
@media (max-width: 600px) {
  .runs td:first-child, .runs th:first-child, .runs.verdicts td:last-child,
  .runs.verdicts th:last-child { position: static; box-shadow: none; }
}
h3.function code { overflow-wrap: anywhere; }
.runs tr.best td { background: #fff8e1; }
.best-mark { color: #b7791f; font-weight: 600; font-size: 0.8em; }
.runs td.num { text-align: right; font-variant-numeric: tabular-nums; }
.runs th .param, .legend .param { color: #6a4c93; font-style: italic; }
.runs th .metric, .legend .metric { color: #1d6fb8; }
.legend { color: #5c677d; font-size: 0.8rem; margin: 4px 0; }
.usage { color: #5c677d; font-size: 0.85rem; margin: 4px 0; }
.runs th { cursor: pointer; user-select: none; }
.runs th[aria-sort='ascending']::after { content: " \\25B2"; }
.runs th[aria-sort='descending']::after { content: " \\25BC"; }
.status.finished { color: #2a9d8f; } .status.failed { color: #d62828; }
.status.killed { color: #8d99ae; }
.verdict.fail, .verdict.failed, .verdict.regressed { color: #d62828; }
.verdict.pass, .verdict.passed, .verdict.ok { color: #2a9d8f; }
.verdict.inconclusive { color: #b07d00; }
.plot { background: white; border: 1px solid #e0e4ea; border-radius: 6px; margin: 12px 0;
        padding: 4px; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pytest-mlexp">
<title>{title}</title>
<style>{style}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
{plotlyjs}
</head>
<body>
{body}
<script>{sort_script}</script>
</body>
</html>
"""

#: Sorts a run table by the header clicked: numbers by value (a metric cell's exact
#: value is its title), text in natural order; a second click reverses.
_SORT_SCRIPT = """
document.querySelectorAll('table.runs').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, column) {
    th.addEventListener('click', function () {
      var down = th.getAttribute('aria-sort') === 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.setAttribute('aria-sort', 'none'); });
      th.setAttribute('aria-sort', down ? 'descending' : 'ascending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        var text = cell.classList.contains('num') ? cell.title : cell.textContent.trim();
        var number = parseFloat(text);
        return text !== '' && isFinite(text) ? number : text;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === '' || y === '') { return (x === '') - (y === ''); }
        var order = typeof x === 'number' && typeof y === 'number' ? x - y
          : String(x).localeCompare(String(y), undefined, {numeric: true});
        return down ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
