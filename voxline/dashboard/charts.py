"""Small inline SVG line charts, rendered on the server (no script, no external assets)."""

from __future__ import annotations

from html import escape

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563")


def line_chart(series: dict[str, dict[str, float]], days: list[str], *, unit: str, title: str,
               width: int = 560, height: int = 220, decimals: int = 0) -> str:
    """``series``: name -> {day: value}; one line per name over ``days`` (missing days: gaps)."""
    left, right, top, bottom = 56, 28, 28, 34
    w, h = width - left - right, height - top - bottom
    values = [v for s in series.values() for v in s.values() if v is not None]
    top_value = max(values) if values else 1.0
    top_value = top_value * 1.15 if top_value > 0 else 1.0
    n = max(1, len(days) - 1)

    def x(i: int) -> float:
        return left + w * i / n

    def y(v: float) -> float:
        return top + h - h * v / top_value

    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>']
    for k in range(5):
        v = top_value * k / 4
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="axis">'
                     f'{v:.{decimals}f}{escape(unit)}</text>')
    step = max(1, len(days) // 7)
    for i, day in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle" class="axis">'
                         f'{escape(day[5:])}</text>')
    for idx, (name, points) in enumerate(sorted(series.items())):
        color = PALETTE[idx % len(PALETTE)]
        path, pen = [], "M"
        for i, day in enumerate(days):
            v = points.get(day)
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{x(i):.1f},{y(v):.1f}")
            pen = "L"
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                         f'<title>{escape(name)} {escape(day)}: {v:.{decimals}f}{escape(unit)}</title></circle>')
        if path:
            parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<rect x="{left + 8 + idx * 130}" y="{top + 2}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{left + 22 + idx * 130}" y="{top + 11}" class="legend">{escape(name)}</text>')
    if not values:
        parts.append(f'<text x="{left + w / 2}" y="{top + h / 2}" text-anchor="middle" class="axis">'
                     'no calls yet</text>')
    parts.append("</svg>")
    return "".join(parts)
