"""The HTML page of a drift report (:meth:`mlport.handles.DriftReport.to_html`).

One self-contained file: inline CSS, one inline SVG chart per feature (reference and current
shares side by side per bin or category, with each bar's value in its tooltip), no script and
no external resource, so it opens offline, from an e-mail attachment or a CI artifact.
Standard library only.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlport.handles import DriftHistogram, DriftReport, FeatureDrift

__all__ = ["render"]

REFERENCE_COLOR = "#4c78a8"
CURRENT_COLOR = "#f58518"
WIDTH = 640
HEIGHT = 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 56

_CSS = f"""
body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}}
h1{{font-size:1.5em}}h2{{font-size:1.15em;margin-top:2em}}
table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}
tr.drift td{{background:#fde2e2}}.badge{{padding:1px 6px;border-radius:3px;font-size:.85em}}
.badge.drift{{background:#c62828;color:#fff}}.badge.ok{{background:#2e7d32;color:#fff}}
.note{{background:#fff8e1;border:1px solid #ffe082;padding:.5em 1em}}
.legend span{{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:-.1em}}
.ref{{background:{REFERENCE_COLOR}}}.cur{{background:{CURRENT_COLOR}}}
svg text{{font-size:10px;fill:#444}}
"""

TABLE_COLUMNS = (
    "feature",
    "kind",
    "statistic",
    "value",
    "threshold",
    "p-value",
    "drifted",
    "reference n",
    "current n",
)
"""The columns of a report's per-feature table (the page's and ``mlport monitor``'s)."""


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _row(feature: FeatureDrift) -> str:
    cells = [
        f'<a href="#f-{escape(feature.feature)}">{escape(feature.feature)}</a>',
        escape(feature.kind),
        escape(feature.statistic),
        _number(feature.value),
        _number(feature.threshold),
        _number(feature.p_value),
        "yes" if feature.drifted else "no",
        f"{feature.reference_size:,}",
        f"{feature.current_size:,}",
    ]
    kind = "drift" if feature.drifted else "ok"
    return f'<tr class="{kind}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _labels(histogram: DriftHistogram) -> list[str]:
    if histogram.categories is not None:
        return histogram.categories
    edges = histogram.edges or []
    return [f"{low:.3g} to {high:.3g}" for low, high in pairwise(edges)]


def _chart(feature: FeatureDrift) -> str:
    histogram = feature.histogram
    if histogram is None or not histogram.reference:
        return '<p class="note">No histogram data for this feature.</p>'
    labels = _labels(histogram)
    cells = len(histogram.reference)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    top = max([*histogram.reference, *histogram.current, 1e-12])
    step = plot_width / cells
    bar = max(step * 0.4, 0.5)
    parts = [
        f'<svg role="img" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
        f"<title>{escape(feature.feature)}: reference and current shares</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_height}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_height}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_height}" stroke="#999"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{top:.0%}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_height}" text-anchor="end">0%</text>',
    ]
    every = max(1, round(cells / 10))  # at most about ten labels under the axis
    for index in range(cells):
        x = LEFT + index * step + step * 0.1
        for offset, share, color, side in (
            (0.0, histogram.reference[index], REFERENCE_COLOR, "reference"),
            (bar, histogram.current[index], CURRENT_COLOR, "current"),
        ):
            height = plot_height * share / top
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{TOP + plot_height - height:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}" fill="{color}">'
                f"<title>{escape(labels[index])}: {side} {share:.1%}</title></rect>"
            )
        if index % every == 0:
            label = labels[index] if len(labels[index]) <= 18 else labels[index][:17] + "…"
            cx = LEFT + (index + 0.5) * step
            cy = TOP + plot_height + 12
            parts.append(
                f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" '
                f'transform="rotate(-30 {cx:.1f} {cy})">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _section(feature: FeatureDrift) -> str:
    badge = (
        '<span class="badge drift">drifted</span>'
        if feature.drifted
        else '<span class="badge ok">no drift</span>'
    )
    p_value = f", p-value {_number(feature.p_value)}" if feature.p_value is not None else ""
    return (
        f'<h2 id="f-{escape(feature.feature)}">{escape(feature.feature)} {badge}</h2>'
        f"<p>{escape(feature.kind)}; {escape(feature.statistic)} {_number(feature.value)}"
        f"{p_value}, threshold {_number(feature.threshold)}; "
        f"{feature.reference_size:,} reference and {feature.current_size:,} current values</p>"
        + _chart(feature)
    )


def render(report: DriftReport) -> str:
    """The report as one HTML page (see the module docstring)."""
    title = f"Drift report: {report.endpoint}"
    drifted = report.drifted_features
    if report.features:
        verdict = (
            f"{len(drifted)} of {len(report.features)} features drifted: " + ", ".join(drifted)
            if drifted
            else f"no drift in {len(report.features)} features"
        )
    else:
        verdict = "no features compared"
    notes = "".join(
        f'<p class="note">{escape(text)}</p>'
        for text in (report.message, f"alert: {report.alert}" if report.alert else "")
        if text
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        "<table>",
        f"<tr><th>window</th><td>{_moment(report.window_start)} to "
        f"{_moment(report.window_end)}</td></tr>",
        f"<tr><th>created</th><td>{_moment(report.created_at)}</td></tr>",
        f"<tr><th>rows</th><td>{report.current_size:,} current, {report.reference_size:,} "
        "reference</td></tr>",
        f"<tr><th>verdict</th><td>{escape(verdict)}</td></tr>",
        "</table>",
        notes,
    ]
    if report.features:
        header = "".join(f"<th>{name}</th>" for name in TABLE_COLUMNS)
        body.append(f"<table><tr>{header}</tr>")
        body.extend(_row(feature) for feature in report.features)
        body.append("</table>")
        body.append(
            '<p class="legend">Shares of values per bin:<span class="ref"></span>reference'
            '<span class="cur"></span>current</p>'
        )
        body.extend(_section(feature) for feature in report.features)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
