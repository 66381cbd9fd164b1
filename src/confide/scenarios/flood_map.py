"""The waterlogging risk map: one self-contained SVG of a city's district grid, coloured by risk.

Each district is a cell at its ``x, y`` grid position (:func:`confide.scenarios.flood_data.districts`),
filled from pale to dark red (ColorBrewer "Reds", interpolated in RGB) and labelled with its name and
the risk in percent. The colour follows the square root of the risk: the risks of a rare event are
mostly a few percent, and on a linear scale they would all look equally pale; the legend's ticks
show the real percentages, and darker always means riskier.

The SVG has no scripts, links or external fonts; text asks for a CJK-capable font (Noto Sans CJK SC,
WenQuanYi Micro Hei) and falls back to the viewer's sans-serif. All text is XML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pyarrow as pa

from .flood_data import City

__all__ = ["risk_colour", "risk_map_svg", "write_risk_map"]

_REDS = ("#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#a50f15", "#67000d")
_FONT = "'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', sans-serif"
_CELL_W, _CELL_H, _GAP, _MARGIN = 116, 80, 4, 24
_TOP = 78  # title and subtitle
_LEGEND_H, _LEGEND_STEPS = 64, 40
_TICKS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def risk_colour(risk: float) -> str:
    """The fill for ``risk`` in [0, 1]: ``#rrggbb``, darker for higher risk (square-root scale)."""
    pos = math.sqrt(min(max(risk, 0.0), 1.0)) * (len(_REDS) - 1)
    i = min(int(pos), len(_REDS) - 2)
    frac = pos - i
    lo, hi = _rgb(_REDS[i]), _rgb(_REDS[i + 1])
    r, g, b = (round(a + (b - a) * frac) for a, b in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _ink(fill: str) -> str:
    r, g, b = _rgb(fill)
    return "#ffffff" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 140 else "#3b0a0a"


def _percent(risk: float) -> str:
    return f"{risk * 100:.1f}%" if risk < 0.1 else f"{risk * 100:.0f}%"


def _checked(districts: pa.Table, risk: Mapping[str, float]) -> list[tuple[str, str, int, int, float]]:
    """(id, label, x, y, risk) per district; ``ValueError`` for a missing, unknown or invalid risk."""
    ids = [str(d) for d in districts.column("district").to_pylist()]
    names = districts.column("name").to_pylist() if "name" in districts.column_names else ids
    xs, ys = districts.column("x").to_pylist(), districts.column("y").to_pylist()
    missing = [d for d in ids if d not in risk]
    if missing:
        raise ValueError(f"no risk for districts {missing}")
    unknown = sorted(set(risk) - set(ids))
    if unknown:
        raise ValueError(f"risk given for districts not on the map: {unknown}")
    rows = []
    for d, name, x, y in zip(ids, names, xs, ys, strict=True):
        try:
            value = float(risk[d])
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"risk of {d} must be a finite number in [0, 1], got {risk[d]!r}")
        rows.append((d, str(name or d), int(x), int(y), value))
    return rows


def _cell(d: str, label: str, x: int, y: int, value: float) -> str:
    left, top = _MARGIN + x * (_CELL_W + _GAP), _TOP + y * (_CELL_H + _GAP)
    fill = risk_colour(value)
    ink, cx = _ink(fill), left + _CELL_W / 2
    return (
        f'<g class="district" data-district={quoteattr(d)} data-risk="{value:.4f}">'
        f"<title>{escape(f'{label} ({d}): {_percent(value)}')}</title>"
        f'<rect class="cell" x="{left}" y="{top}" width="{_CELL_W}" height="{_CELL_H}" rx="6" '
        f'fill="{fill}" stroke="#7f2704" stroke-opacity="0.25"/>'
        f'<text x="{cx}" y="{top + 30}" fill="{ink}" font-size="14">{escape(label)}</text>'
        f'<text x="{cx}" y="{top + 60}" fill="{ink}" font-size="22" font-weight="bold">'
        f"{escape(_percent(value))}</text></g>"
    )


def _legend(top: int, width: int) -> list[str]:
    bar_w = min(width - 2 * _MARGIN, 420)
    step = bar_w / _LEGEND_STEPS
    out = [f'<text x="{_MARGIN}" y="{top + 14}" text-anchor="start" font-size="12">风险 risk</text>']
    for k in range(_LEGEND_STEPS):  # the colour at the middle of each step, on the square-root axis
        colour = risk_colour(((k + 0.5) / _LEGEND_STEPS) ** 2)
        out.append(
            f'<rect class="legend" x="{_MARGIN + k * step:.2f}" y="{top + 22}" width="{step + 0.5:.2f}" '
            f'height="14" fill="{colour}"/>'
        )
    for t in _TICKS:
        tx = _MARGIN + math.sqrt(t) * bar_w
        out.append(f'<line x1="{tx:.2f}" y1="{top + 36}" x2="{tx:.2f}" y2="{top + 41}" stroke="#555"/>')
        out.append(f'<text x="{tx:.2f}" y="{top + 54}" font-size="11">{t * 100:g}%</text>')
    return out


def _heading(y: int, size: int, colour: str, text: str, *, bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text x="{_MARGIN}" y="{y}" text-anchor="start" font-size="{size}" fill="{colour}"{weight}>'
        f"{escape(text)}</text>"
    )


def risk_map_svg(
    city: City, districts: pa.Table, risk: Mapping[str, float], *, title: str, subtitle: str = ""
) -> str:
    """The map of ``risk`` (district id -> probability in [0, 1]) over ``districts``, as SVG text.

    ``districts`` needs ``district``, ``x`` and ``y`` (and uses ``name`` if present). Every district
    needs a finite risk in [0, 1] and ``risk`` may name no other district, else ``ValueError``.
    """
    rows = _checked(districts, risk)
    cols = max((r[2] for r in rows), default=0) + 1
    n_rows = max((r[3] for r in rows), default=0) + 1
    width = max(2 * _MARGIN + cols * (_CELL_W + _GAP) - _GAP, 480)
    grid_bottom = _TOP + n_rows * (_CELL_H + _GAP) - _GAP
    height = grid_bottom + 16 + _LEGEND_H
    caption = f"{city.name_zh} {city.name_en} · {len(rows)} districts"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{_FONT}" text-anchor="middle">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _heading(30, 20, "#000000", title, bold=True),
        _heading(52, 13, "#444444", subtitle),
        _heading(70, 11, "#777777", caption),
        *(_cell(*r) for r in rows),
        *_legend(grid_bottom + 16, width),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def write_risk_map(
    path: Path,
    city: City,
    districts: pa.Table,
    risk: Mapping[str, float],
    *,
    title: str,
    subtitle: str = "",
) -> Path:
    """Write :func:`risk_map_svg` to ``path`` (UTF-8, parent folders created); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(risk_map_svg(city, districts, risk, title=title, subtitle=subtitle), encoding="utf-8")
    return path
