"""The bokeh pieces the reports share: curves against the step (linear and log step axis
in two tabs, stages marked, values in a hover), line figures and sortable tables.

Each function takes arrays and returns bokeh models; nothing here computes a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp.plots.html.page import COLORS, TOOLS, WIDE, finite, series_colors, series_dash
from interp.plots.style import BOUNDARIES, STAGES
from interp.plots.style import COLORS as QUANTITY_COLORS

#: A series: its label and (steps shape=(T,), values shape=(T,)).
Series = Mapping[str, tuple[Any, Any]]


def line_figure(series: Series, *, x_label: str, y_label: str, name: str,
                log_x: bool = False, title: str | None = None, x_range: Any = None,
                y_range: Any = None, height: int = 300) -> Any:
    """One line per series with a hover of its label, x and y; on a log x axis the points
    at x <= 0 are left out. Series without a finite value are not drawn."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    options = {"x_range": x_range} if x_range is not None else {}
    if y_range is not None:
        options["y_range"] = y_range
    fig = figure(width=WIDE, height=height, tools=TOOLS, x_axis_type="log" if log_x else
                 "linear", x_axis_label=x_label, y_axis_label=y_label, title=title,
                 name=name, **options)
    lines = []
    colors = series_colors(series, COLORS)
    for i, (label, (x, y)) in enumerate(series.items()):
        x, y = np.asarray(x, dtype=np.float64), finite(y)
        keep = x > 0 if log_x else np.ones(len(x), dtype=bool)
        if not np.isfinite(y[keep]).any():
            continue
        source = ColumnDataSource({"x": x[keep], "y": y[keep]})
        lines.append(fig.line("x", "y", source=source, legend_label=label, name=label,
                              color=colors[i], line_dash=series_dash(label),
                              line_width=2))
    if lines:
        fig.add_tools(HoverTool(renderers=lines, tooltips=[
            ("", "$name"), (x_label, "@x{0,0.[00]}"), (y_label, "@y{0.[0000]}")]))
    if fig.legend:  # beside the data, not over it; a click hides a series
        fig.legend.click_policy = "hide"
        fig.add_layout(fig.legend[0], "right")
    return fig


def mark(fig: Any, stages: Mapping[str, tuple[str, int | float | None]]) -> Any:
    """Vertical lines at ``{key: (label, x)}`` (None: not found, not drawn), labelled in
    the figure's legend."""
    from bokeh.models import Span

    for key, (label, x) in stages.items():
        if x is None:
            continue
        known = {**STAGES, **BOUNDARIES}  # the static figures' marker colours
        color = known[key][1] if key in known else QUANTITY_COLORS["reference"]
        fig.add_layout(Span(location=float(x), dimension="height", line_color=color,
                            line_dash="dashed", line_width=2))
        fig.line([float(x)], [0.0], color=color, line_dash="dashed", legend_label=label)
    return fig


def step_tabs(panels: Sequence[tuple[Series, str]], name: str,
              stages: Mapping[str, tuple[str, int | None]] | None = None) -> Any:
    """Curves against the step, one figure per ``(series, y_label)``, in two tabs: a linear
    and a log step axis (step 0 left out; no such tab for curves of step 0 alone), the
    stages marked on each; the figures of a tab share their step axis (zooming one zooms
    all)."""
    from bokeh.layouts import column
    from bokeh.models import TabPanel, Tabs

    tabs = []
    later = any(np.any(np.asarray(x) > 0) for series, _ in panels for x, _ in series.values())
    for log_x, title in ((False, "linear step"), (True, "log step"))[:2 if later else 1]:
        figs: list = []
        for series, y_label in panels:
            figs.append(mark(line_figure(
                series, x_label="step", y_label=y_label, log_x=log_x,
                name=f"{name}-{y_label}-{'log' if log_x else 'linear'}",
                x_range=figs[0].x_range if figs else None), stages or {}))
        tabs.append(TabPanel(child=column(*figs), title=title))
    return Tabs(tabs=tabs, name=name)


def table(columns: Mapping[str, Any], titles: Mapping[str, str], name: str,
          height: int = 280, width: int = WIDE) -> tuple[Any, Any]:
    """A sortable table of ``columns`` (equal-length sequences) headed by ``titles``;
    returns the table and its data source. Floats show 4 decimals, None (JSON null) is
    empty."""
    from bokeh.models import ColumnDataSource, DataTable, NumberFormatter, TableColumn

    data = {k: list(v) for k, v in columns.items()}
    cols = []
    for key, title in titles.items():
        options = {}
        if any(isinstance(v, float) for v in data[key]):  # None (null) shows as a blank
            data[key] = [np.nan if v is None else v for v in data[key]]
            options["formatter"] = NumberFormatter(format="0.0000", nan_format="")
        elif None in data[key]:
            data[key] = ["" if v is None else v for v in data[key]]
        cols.append(TableColumn(field=key, title=title, **options))
    source = ColumnDataSource(data, name=f"{name}-source")
    return DataTable(source=source, columns=cols, width=width, height=height,
                     sortable=True, reorderable=False, index_position=None, name=name), source
