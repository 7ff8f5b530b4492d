"""What every HTML report shares: bokeh imported with a one-sentence error, the page put
together as one self-contained file (bokeh's JavaScript inlined, no network), written
atomically, and the pieces every page uses (notes, boxes, number formats).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.plots.curves import ACCURACY_LABELS, LOSS_NAMES, LOSS_QUANTITY
from interp.plots.progress import LOSSES
from interp.plots.style import COLORS as QUANTITY_COLORS
from interp.plots.style import ORDER_STYLES, PRUNE_ORDERS, RUN_COLORS
from interp.store.atomic import write_text_atomic

#: The line colours of successive series: the style table's colour-blind-safe run colours.
COLORS = RUN_COLORS
#: The colour of each series the static figures draw too, by its label (the style table's).
LABEL_COLORS = ({label: QUANTITY_COLORS[k] for k, label in ACCURACY_LABELS.items()}
                | {label: QUANTITY_COLORS[LOSS_QUANTITY[k]] for k, label in LOSS_NAMES.items()}
                | {label: color for label, color, _ in LOSSES.values()})


def _own_color(label: str) -> str | None:
    """A quantity's colour by its label, also as ``ORDER: LABEL`` (a pruning curve)."""
    return LABEL_COLORS.get(label) or LABEL_COLORS.get(label.partition(": ")[2])


def series_colors(labels: Sequence[str], colors: Sequence[str] = COLORS) -> list[str]:
    """A colour per label: a quantity's own (:data:`LABEL_COLORS`), else the next of
    ``colors`` that no other label of the figure has."""
    taken = {_own_color(label) for label in labels}
    free = iter([c for c in colors if c not in taken] or list(colors))
    out = []
    for label in labels:
        out.append(_own_color(label) or next(free, colors[len(out) % len(colors)]))
    return out


def series_dash(label: str) -> str:
    """Bokeh's line dash of a series: a pruning order's style (``ORDER: LABEL``), else
    solid."""
    order = {name: key for key, name in PRUNE_ORDERS.items()}.get(label.partition(": ")[0])
    return {"-": "solid", "--": "dashed", ":": "dotted"}[ORDER_STYLES.get(order, "-")]
#: Tools of every figure: zoom, pan, reset and a picture of the figure.
TOOLS = "pan,box_zoom,wheel_zoom,reset,save"
#: Width of a wide figure, in pixels.
WIDE = 1000


def bokeh() -> Any:
    """The bokeh module, or an ImportError in one sentence naming the extra to install."""
    try:
        import bokeh as module
        import bokeh.embed  # noqa: F401
    except ImportError:
        raise ImportError("HTML reports need bokeh, which is not installed; install it with "
                          "pip install 'interp[report]'.") from None
    return module


def note(text: str, kind: str = "note") -> Any:
    """A paragraph of plain text (escaped), e.g. why a part of the report is missing;
    ``kind`` is its CSS class: note, missing or assumed."""
    from bokeh.models import Div

    return Div(text=f'<p class="{kind}">{html.escape(text)}</p>', width=WIDE,
               name=f"{kind}-note")


def heading(text: str, level: int = 2) -> Any:
    from bokeh.models import Div

    return Div(text=f"<h{level}>{html.escape(text)}</h{level}>", width=WIDE)


def box(title: str, lines: Mapping[str, Any], name: str, kind: str = "assumed") -> Any:
    """A visible box of ``name: value`` lines under a title (e.g. a foreign run's assumed
    fields); its Div is named ``name`` so a test can find it."""
    from bokeh.models import Div

    items = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>"
                    for k, v in lines.items())
    return Div(text=f'<div class="{kind}"><b>{html.escape(title)}</b><ul>{items}</ul></div>',
               width=WIDE, name=name)


def number(value: Any) -> str:
    """A number as the page shows it: 4 significant digits; None (JSON null) is n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{float(value):.4g}"


def finite(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``values`` as float64, None (JSON null) as NaN (bokeh draws a gap)."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


STYLE = """<style>
body { font-family: sans-serif; margin: 1em 2em; }
.assumed { border: 2px solid #d62728; background: #fff3f3; padding: 0.3em 1em; }
.missing { color: #8c564b; font-style: italic; }
.killed { border: 2px solid #ff7f0e; background: #fff8ee; padding: 0.3em 1em; }
</style>"""

# Bokeh names the page's elements (in its body) with random UUIDs and its models with a process-wide
# counter; both are renamed by order of first appearance, so one input gives one file.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MODEL_ID = re.compile(r'(?<=")p\d+(?=")')


def _renamed(pattern: re.Pattern, prefix: str, text: str) -> str:
    names: dict[str, str] = {}
    return pattern.sub(lambda m: names.setdefault(m.group(0), f"{prefix}{len(names)}"), text)


def _stable_ids(text: str) -> str:
    return _renamed(_MODEL_ID, "m", _renamed(_UUID, "u", text))


def page_html(title: str, layout: Any) -> str:
    """One self-contained HTML page of ``layout`` (bokeh's JavaScript and every datum
    inlined: it opens from a file:// URL with no network)."""
    bokeh()
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    # bokeh's inlined code holds "</head>" in strings: the page's own is the last one
    head, _, body = file_html(layout, resources=INLINE, title=title).rpartition("</head>")
    return head + STYLE + "\n</head>" + _stable_ids(body)  # bokeh's own code left as is


def write_page(path: str | os.PathLike, title: str, layout: Any) -> Path:
    """Write :func:`page_html` to ``path`` atomically (a failure leaves ``path`` as it
    was); returns the path."""
    return write_text_atomic(Path(path), page_html(title, layout))
