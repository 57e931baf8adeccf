"""Draws the rounds of scripts/bench-vs-nginx as an SVG: requests/s and the proxy's CPU per
request, one group of bars a round, one bar a configuration, so that drift between rounds and
the gap between configurations are seen together.

    python3 benches/vs_nginx_chart.py ROUNDS.tsv OUT.svg

ROUNDS.tsv has the columns round, config, rps, p50, p99, proxy_us, … (with a header line), as
the script writes them. Standard library only. Not part of the tests.
"""

import csv
import sys
from xml.sax.saxutils import escape

NAMES = {
    "A": "A: rampart gateway → rampart nodes",
    "B": "B: nginx → the same rampart nodes",
    "C": "C: nginx → nginx backends",
}
COLOURS = {"A": "#c0392b", "B": "#2e86c1", "C": "#7f8c8d"}
PANEL_W, PANEL_H, MARGIN = 420, 260, 56


def panel(x0, title, unit, rounds, configs, values):
    """One bar chart at x0: a group of bars per round, its value above each bar."""
    top = max(values.values(), default=0.0) * 1.15 or 1.0
    out = [f'<text x="{x0 + PANEL_W / 2}" y="24" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    base = 40 + PANEL_H
    out.append(f'<line x1="{x0}" y1="{base}" x2="{x0 + PANEL_W}" y2="{base}" stroke="#333"/>')
    for i in range(5):
        v = top * i / 4
        y = base - PANEL_H * i / 4
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + PANEL_W}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end" font-size="11">{v:,.0f}</text>')
    out.append(
        f'<text x="{x0 - 44}" y="{40 + PANEL_H / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 {x0 - 44} {40 + PANEL_H / 2})">{escape(unit)}</text>'
    )
    group = PANEL_W / len(rounds)
    bar = group * 0.8 / len(configs)
    for gi, rnd in enumerate(rounds):
        gx = x0 + gi * group + group * 0.1
        for ci, c in enumerate(configs):
            v = values.get((rnd, c))
            if v is None:
                continue
            h = PANEL_H * v / top
            x = gx + ci * bar
            out.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{COLOURS.get(c, "#555")}"/>')
            label = f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.1f}"
            out.append(f'<text x="{x + bar / 2 - 1:.1f}" y="{base - h - 4:.1f}" text-anchor="middle" font-size="9">{label}</text>')
        out.append(f'<text x="{gx + group * 0.4:.1f}" y="{base + 16}" text-anchor="middle" font-size="11">round {rnd}</text>')
    return out


def main():
    rows_path, out_path = sys.argv[1], sys.argv[2]
    with open(rows_path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    rounds = sorted({r["round"] for r in rows}, key=int)
    configs = sorted({r["config"] for r in rows})

    def values(key):
        return {(r["round"], r["config"]): float(r[key]) for r in rows if r[key] not in ("", "-")}

    width = MARGIN * 2 + PANEL_W * 2 + 80
    height = 40 + PANEL_H + 40 + 24 * len(configs)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    svg += panel(MARGIN, "requests/s (higher is better)", "requests/s", rounds, configs, values("rps"))
    svg += panel(
        MARGIN * 2 + PANEL_W + 24,
        "proxy CPU per request (lower is better)",
        "µs (user + system)",
        rounds,
        configs,
        values("proxy_us"),
    )
    y = 40 + PANEL_H + 36
    for c in configs:
        svg.append(f'<rect x="{MARGIN}" y="{y - 10}" width="12" height="12" fill="{COLOURS.get(c, "#555")}"/>')
        svg.append(f'<text x="{MARGIN + 18}" y="{y}">{escape(NAMES.get(c, c))}</text>')
        y += 22
    svg.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(svg) + "\n")


main()
