"""Draw PNG previews of the Grafana dashboards, laid out and formatted as Grafana draws them, from real scrapes.

Each dashboard JSON in charts/powertrain/dashboards is read as it is: every panel at its gridPos on Grafana's
24-column grid, with its title, type and fieldConfig unit. Every query is evaluated, as PromQL, over the scrapes
that tests/chart/preview_data.py recorded from the real exporters (tools/promql_replay.py), at every scrape
time: time series panels draw the range, stat panels show the last value as a big number over a sparkline,
bar gauges and tables the instant value at the end. Axes carry the panel's unit, the time axis wall-clock
labels. Variables: $level = rack, $node = All, $namespace/$job = default/llm-pretrain (else the job holding
most GPUs). A panel whose queries return nothing shows "No data", as Grafana does.

Each picture is labelled PREVIEW with where its data came from; it is not a Grafana screenshot.

Usage: .venv/bin/python tools/plot_dashboard_previews.py   (matplotlib: the `plot` extra, part of `dev`)
"""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import ticker
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql_replay import Evaluator, Labels, Store, Unsupported, Vector

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".tools" / "previews"
DASHBOARDS = REPO / "charts" / "powertrain" / "dashboards"
OUT = DASHBOARDS / "previews"
SOURCE = (
    "sandbox cluster (8 nodes x 8 simulated H200, 2 racks) running the repository's example jobs with the chart's "
    "operator and sim agents, plus one agent (node h200-replay) replaying the recorded H200 NVML trace; "
    "scraped every second (tests/chart/preview_data.py)"
)
RATE_INTERVAL_S = 15  # Grafana's $__rate_interval for 1 s scrapes at this width: a few scrapes per window

# Grafana's dark theme and its classic palette.
BG, PANEL, TEXT, MUTED, GRID = "#111217", "#181b1f", "#ccccdc", "#8e8e93", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d",
           "#fade2a", "#447ebc", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#6ed0e0"]  # fmt: skip
ROW_PX, WIDTH_IN = 30, 20.0
GAP_S = 5.0  # a series absent for this long (five 1 s scrapes) is drawn with a gap


# Units: what Grafana's value formatters print for the unit ids the dashboards use ---------------------------


def _scaled(value: float, steps: list[tuple[float, str]]) -> str:
    """The value in the largest unit it reaches, to three significant digits (as Grafana's formatters)."""
    if value == 0:
        return "0 " + next((suffix for factor, suffix in steps if factor == 1), steps[-1][1])
    factor, suffix = next(((f, u) for f, u in steps if abs(value) >= f), steps[-1])
    x = value / factor
    return f"{x:.3g} {suffix}" if abs(x) < 1000 else f"{x:.0f} {suffix}"


def fmt(value: float, unit: str | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    unit = unit or "short"
    if unit == "percent":
        return f"{value:.1f}%".replace(".0%", "%")
    if unit == "percentunit":
        return f"{value * 100:.1f}%".replace(".0%", "%")
    if unit == "watt":
        return _scaled(value, [(1e6, "MW"), (1e3, "kW"), (1, "W"), (1e-3, "mW")])
    if unit == "kwatth":
        return _scaled(value, [(1e3, "MWh"), (1, "kWh"), (1e-3, "Wh")])
    if unit == "bytes":
        return _scaled(value, [(2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")])
    if unit == "Bps":
        return _scaled(value, [(1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s"), (1, "B/s")])
    if unit == "hertz":
        return _scaled(value, [(1e9, "GHz"), (1e6, "MHz"), (1e3, "kHz"), (1, "Hz")])
    if unit == "celsius":
        return f"{value:.0f} °C"
    if unit == "s":
        if value == 0:
            return "0 s"
        return _scaled(value, [(3600, "hour"), (60, "min"), (1, "s"), (1e-3, "ms"), (1e-6, "µs")])
    if unit == "ops":
        return _scaled(value, [(1e6, "Mops/s"), (1e3, "kops/s"), (1, "ops/s"), (1e-3, "mops/s")])
    if abs(value) >= 1e3:  # short
        return _scaled(value, [(1e9, "Bil"), (1e6, "Mil"), (1e3, "K")])
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"


def legend(fmt_string: str, labels: Labels, fallback: str) -> str:
    if not fmt_string:
        shown = {k: v for k, v in labels if k != "__name__"}
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}" if shown else fallback
    got = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: got.get(m.group(1), ""), fmt_string)


# Queries ------------------------------------------------------------------------------------------------------


class Data:
    def __init__(self, store: Store, variables: dict[str, str], start_wall: float) -> None:
        self.store = store
        self.times = store.times
        self.range_s = self.times[-1] - self.times[0]
        self.evaluator = Evaluator(store)
        self.variables = variables
        self.start_wall = start_wall

    def expr(self, text: str) -> str:
        text = text.replace("$__rate_interval", f"{RATE_INTERVAL_S}s").replace("$__range", f"{int(self.range_s) + 1}s")
        text = text.replace("$__interval", "2s")
        for name, value in sorted(self.variables.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f"${name}", value)
        return text

    def instant(self, target: dict[str, Any]) -> Vector:
        value = self.evaluator.query(self.expr(target["expr"]), self.times[-1])
        return {frozenset(): value} if isinstance(value, float) else value

    def range(self, target: dict[str, Any]) -> dict[Labels, tuple[list[float], list[float]]]:
        out: dict[Labels, tuple[list[float], list[float]]] = {}
        query = self.expr(target["expr"])
        for t in self.times:
            value = self.evaluator.query(query, t)
            vector = {frozenset(): value} if isinstance(value, float) else value
            for key, v in vector.items():
                if math.isfinite(v):
                    ts, vs = out.setdefault(key, ([], []))
                    ts.append(t)
                    vs.append(v)
        return out

    def reduced(
        self, panel: dict[str, Any], target: dict[str, Any]
    ) -> list[tuple[Labels, float, list[float], list[float]]]:
        """What a stat or bar gauge shows per series: an instant query's value, or a range query reduced by the
        panel's calcs (lastNotNull by default), with the range for the sparkline."""
        calc = (panel.get("options", {}).get("reduceOptions", {}).get("calcs") or ["lastNotNull"])[0]
        if target.get("instant"):
            return [(key, value, [], []) for key, value in self.instant(target).items()]
        out = []
        for key, (ts, vs) in self.range(target).items():
            reduce = {"max": max, "min": min, "mean": lambda xs: sum(xs) / len(xs), "sum": sum}.get(calc)
            out.append((key, reduce(vs) if reduce else vs[-1], ts, vs))
        return out

    def wall(self, t: float) -> float:
        return self.start_wall + t


# Panels -----------------------------------------------------------------------------------------------------


def panel_box(fig: Any, grid: dict[str, int], total_rows: int) -> Any:
    pad_x, pad_y = 0.004, 0.006
    x0 = grid["x"] / 24 + pad_x
    w = grid["w"] / 24 - 2 * pad_x
    y_top = 1 - grid["y"] / total_rows
    h = grid["h"] / total_rows - 2 * pad_y
    return x0, y_top - pad_y - h, w, h


def frame(fig: Any, box: tuple[float, float, float, float], title: str) -> None:
    x, y, w, h = box
    fig.patches.append(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0,rounding_size=0.002", transform=fig.transFigure,
            facecolor=PANEL, edgecolor=GRID, linewidth=0.8, zorder=-1,
        )
    )  # fmt: skip
    fig.text(x + 0.006, y + h - 0.004, title, color=TEXT, fontsize=9, fontweight="bold", va="top", ha="left")


def inner(fig: Any, box: tuple[float, float, float, float], total_rows: int) -> Any:
    """The plotting area of a panel: below its title, room on the left for unit labels, below for the legend."""
    x, y, w, h = box
    title_h, legend_h, label_w = 1.1 / total_rows, 1.6 / total_rows, 0.035
    ax = fig.add_axes((x + label_w, y + legend_h, w - label_w - 0.006, h - title_h - legend_h))
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7, length=0)
    return ax


def no_data(fig: Any, box: tuple[float, float, float, float]) -> None:
    x, y, w, h = box
    fig.text(x + w / 2, y + h / 2 - 0.004, "No data", color=MUTED, fontsize=12, ha="center", va="center")


def time_axis(ax: Any, data: Data) -> None:
    short = data.range_s < 600

    def label(t: float, _pos: int) -> str:
        return datetime.fromtimestamp(data.wall(t)).strftime("%H:%M:%S" if short else "%H:%M")

    ax.xaxis.set_major_formatter(ticker.FuncFormatter(label))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(6))
    ax.set_xlim(data.times[0], data.times[-1])


def unit_axis(ax: Any, unit: str | None, defaults: dict[str, Any]) -> None:
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: fmt(v, unit)))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(4))
    lo, hi = ax.get_ylim()
    if ax.dataLim.y0 == ax.dataLim.y1 == 0:  # all zero: Grafana's axis runs 0 to 1
        lo, hi = 0, 1
    if "min" in defaults:
        lo = defaults["min"]
    elif lo > 0 and (unit or "short") != "hertz":
        lo = 0  # Grafana's soft minimum for non-negative data
    if "max" in defaults:
        hi = defaults["max"]
    if hi <= lo:
        hi = lo + 1
    ax.set_ylim(lo, hi)
    ax.grid(True, color=GRID, linewidth=0.6)


def with_gaps(ts: list[float], vs: list[float], gap: float = GAP_S) -> tuple[list[float], list[float]]:
    """Break the line where a series was absent, as Grafana does (no line drawn across missing data)."""
    out_t, out_v = [], []
    for i, (t, v) in enumerate(zip(ts, vs, strict=True)):
        if i and t - ts[i - 1] > gap:
            out_t.append((t + ts[i - 1]) / 2)
            out_v.append(math.nan)
        out_t.append(t)
        out_v.append(v)
    return out_t, out_v


def threshold_color(value: float, defaults: dict[str, Any]) -> str:
    """The color of the threshold step the value reaches (Grafana's default: green, red from 80)."""
    grafana_default = [{"value": None, "color": "green"}, {"value": 80, "color": "red"}]
    steps = defaults.get("thresholds", {}).get("steps") or grafana_default
    color = "green"
    for step in steps:
        if step.get("value") is None or value >= step["value"]:
            color = step.get("color", color)
    return {"green": PALETTE[0], "red": PALETTE[4], "yellow": PALETTE[1], "orange": PALETTE[3], "blue": PALETTE[5]}.get(
        color, color
    )


def draw_timeseries(fig: Any, box: Any, panel: dict[str, Any], data: Data, total_rows: int) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit")
    lines: list[tuple[str, list[float], list[float]]] = []
    for target in panel.get("targets", []):
        for key, (ts, vs) in data.range(target).items():
            lines.append((legend(target.get("legendFormat", ""), key, target["expr"][:40]), ts, vs))
    if not lines:
        no_data(fig, box)
        return
    x, y, w, h = box
    legend_right = panel.get("options", {}).get("legend", {}).get("placement") == "right" and w > 0.3
    plot_w = w * (0.72 if legend_right else 1.0)
    ax = inner(fig, (x, y, plot_w, h), total_rows)
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    lines.sort(key=lambda line: line[0])
    if stacked:
        ticks = sorted({t for _, ts, _ in lines for t in ts})
        ax.stackplot(
            ticks,
            [[dict(zip(ts, vs, strict=True)).get(t, 0.0) for t in ticks] for _, ts, vs in lines],
            colors=[PALETTE[i % len(PALETTE)] for i in range(len(lines))],
            alpha=0.7,
        )
    else:
        for i, (_name, ts, vs) in enumerate(lines):
            color = PALETTE[i % len(PALETTE)]
            gts, gvs = with_gaps(ts, vs)
            ax.plot(gts, gvs, color=color, linewidth=1.1)
            if defaults.get("custom", {}).get("fillOpacity"):
                ax.fill_between(gts, gvs, color=color, alpha=defaults["custom"]["fillOpacity"] / 100)
    time_axis(ax, data)
    unit_axis(ax, unit, defaults)
    shown = lines[:10]
    if legend_right:
        lx, ly = x + plot_w + 0.004, y + h - 1.4 / total_rows
        for i, (name, _ts, vs) in enumerate(shown):
            fig.text(lx, ly - i * 0.45 / total_rows, f"■ {name[:28]}  {fmt(vs[-1], unit)}", color=TEXT, fontsize=6.5,
                     va="top", ha="left").set_color(PALETTE[i % len(PALETTE)])  # fmt: skip
        if len(lines) > len(shown):
            fig.text(lx, ly - len(shown) * 0.45 / total_rows, f"… {len(lines) - len(shown)} more series",
                     color=MUTED, fontsize=6.5, va="top")  # fmt: skip
    else:
        handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], linewidth=2) for i in range(len(shown))]
        names = [n[:36] for n, _, _ in shown]
        if len(lines) > len(shown):
            handles.append(Line2D([], [], color=PANEL))
            names.append(f"… {len(lines) - len(shown)} more")
        ax.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(4, len(names)),
                  fontsize=6.5, frameon=False, labelcolor=TEXT, handlelength=1.2)  # fmt: skip


def draw_stat(fig: Any, box: Any, panel: dict[str, Any], data: Data, total_rows: int) -> None:
    """Grafana's stat: the last value as a big number in its threshold color, the range as a sparkline below."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit")
    text_mode = panel.get("options", {}).get("textMode", "auto")
    values: list[tuple[str, float, tuple[list[float], list[float]]]] = []
    for target in panel.get("targets", []):
        for key, value, ts, vs in data.reduced(panel, target):
            values.append((legend(target.get("legendFormat", ""), key, ""), value, (ts, vs)))
    if not values:
        no_data(fig, box)
        return
    x, y, w, h = box
    each = w / len(values)
    title_h = 1.1 / total_rows
    for i, (name, value, (ts, vs)) in enumerate(values):
        color = threshold_color(value, defaults)
        cx = x + each * (i + 0.5)
        if len(vs) > 1 and panel.get("options", {}).get("graphMode", "area") == "area":
            ax = fig.add_axes((x + each * i + 0.003, y + 0.003, each - 0.006, (h - title_h) * 0.42))
            gts, gvs = with_gaps(ts, vs)
            low = min(vs)
            ax.fill_between(gts, gvs, low, color=color, alpha=0.18)
            ax.plot(gts, gvs, color=color, linewidth=1.0, alpha=0.7)
            ax.set_xlim(data.times[0], data.times[-1])
            ax.set_ylim(low, max(vs) + (max(vs) - low) * 0.1 + 1e-9)
            ax.set_axis_off()
        big = name if text_mode == "name" else fmt(value, unit)
        room_pt = each * WIDTH_IN * 72 * 0.9
        size = max(11.0, min(34.0, room_pt / (0.62 * max(3, len(big)))))
        fig.text(cx, y + (h - title_h) * 0.62, big, color=color, fontsize=size, fontweight="bold", ha="center",
                 va="center", zorder=5)  # fmt: skip
        if name and text_mode != "name" and len(values) > 1:
            fig.text(cx, y + (h - title_h) * 0.95, name, color=TEXT, fontsize=7, ha="center", va="center")


def draw_bargauge(fig: Any, box: Any, panel: dict[str, Any], data: Data, total_rows: int) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit")
    bars: list[tuple[str, float]] = []
    for target in panel.get("targets", []):
        bars += [(legend(target.get("legendFormat", ""), k, ""), v) for k, v, _, _ in data.reduced(panel, target)]
    if not bars:
        no_data(fig, box)
        return
    if not any("sort_desc" in t["expr"] for t in panel.get("targets", [])):
        bars.sort(key=lambda b: b[0])
    x, y, w, h = box
    ax = fig.add_axes((x + 0.006, y + 0.006, w - 0.012, h - 1.3 / total_rows))
    ax.set_facecolor(PANEL)
    ax.set_axis_off()
    top = max(defaults.get("max", max(v for _, v in bars)), 1e-9)
    low = defaults.get("min", 0)
    n = min(len(bars), 12)
    for i, (name, value) in enumerate(bars[:n]):
        row = n - 1 - i
        ax.barh(row, 1.0, left=0, height=0.55, color="#22252b")
        frac = max(0.0, min(1.0, (value - low) / (top - low)))
        color = threshold_color(value, defaults)
        ax.barh(row, frac, left=0, height=0.55, color=color)
        ax.text(0, row + 0.42, name, color=TEXT, fontsize=7, va="bottom")
        ax.text(1.0, row + 0.42, fmt(value, unit), color=color, fontsize=8, fontweight="bold", va="bottom", ha="right")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(-0.6, n - 0.1 + 0.3)


def draw_table(fig: Any, box: Any, panel: dict[str, Any], data: Data, total_rows: int) -> None:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    rows: list[dict[str, str]] = []
    for target in panel.get("targets", []):
        for key, value in data.instant(target).items():
            rows.append({**{k: v for k, v in sorted(key) if k != "__name__"}, "Value": fmt(value, unit)})
    if not rows:
        no_data(fig, box)
        return
    columns = [c for c in rows[0] if len({r.get(c) for r in rows}) > 1 or c == "Value"][:7]
    x, y, _w, h = box
    lines = ["   ".join(f"{c[:14]:<14}" for c in columns)]
    lines += ["   ".join(f"{r.get(c, '')[:14]:<14}" for c in columns) for r in rows[: int(h * total_rows * 1.6) - 2]]
    fig.text(x + 0.006, y + h - 1.3 / total_rows, "\n".join(lines), color=TEXT, fontsize=6.5, family="monospace",
             va="top")  # fmt: skip


def draw_text(fig: Any, box: Any, panel: dict[str, Any], total_rows: int) -> None:
    content = panel.get("options", {}).get("content", "")
    plain = re.sub(r"[*`]", "", content).replace("  \n", "\n")
    x, y, w, h = box
    width = int(w * 230)
    wrapped = "\n".join(textwrap.fill(line, width) for line in plain.splitlines())
    fig.text(x + 0.006, y + h - 1.3 / total_rows, wrapped, color=TEXT, fontsize=7.5, va="top")


DRAW: dict[str, Callable[..., None]] = {
    "timeseries": draw_timeseries,
    "stat": draw_stat,
    "bargauge": draw_bargauge,
    "table": draw_table,
}


def render(dashboard: dict[str, Any], data: Data, name: str) -> None:
    panels = dashboard["panels"]
    total_rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + 3  # + header
    height_in = total_rows * ROW_PX / 72 * 1.1
    fig = plt.figure(figsize=(WIDTH_IN, height_in), facecolor=BG)
    header = "\n".join(textwrap.wrap(f"data: {SOURCE}", 200))
    variables = "  ".join(f"{k}={v if v != '.*' else 'All'}" for k, v in data.variables.items())
    fig.text(0.005, 1 - 0.3 / total_rows, f"PREVIEW — {dashboard['title']}", color=TEXT, fontsize=13, va="top",
             fontweight="bold")  # fmt: skip
    fig.text(0.005, 1 - 1.3 / total_rows, f"{variables}   |   {header}", color=MUTED, fontsize=7.5, va="top")
    shift = 3
    for panel in panels:
        grid = {**panel["gridPos"], "y": panel["gridPos"]["y"] + shift}
        title = panel.get("title", "").replace("$level", data.variables.get("level", "")).replace(
            "$job", data.variables.get("job", "")
        )
        if panel["type"] == "row":
            fig.text(0.005, 1 - (grid["y"] + 0.55) / total_rows, f"▾ {title}", color=TEXT, fontsize=11, va="center",
                     fontweight="bold")  # fmt: skip
            continue
        box = panel_box(fig, grid, total_rows)
        frame(fig, box, title)
        try:
            if panel["type"] == "text":
                draw_text(fig, box, panel, total_rows)
            elif panel["type"] in DRAW:
                DRAW[panel["type"]](fig, box, panel, data, total_rows)
            else:
                no_data(fig, box)
        except Unsupported as exc:
            x, y, w, h = box
            fig.text(x + w / 2, y + h / 2, f"not previewed: {exc}", color=MUTED, fontsize=8, ha="center")
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / name, dpi=72, facecolor=BG)
    plt.close(fig)
    print(f"wrote {OUT / name}")


def load(name: str) -> list[tuple[float, str, list[tuple[str, dict[str, str], float]]]]:
    rows = []
    for line in (DATA / f"{name}.jsonl").read_text().splitlines():
        d = json.loads(line)
        rows.append((d["t"], d["source"], [(s[0], s[1], s[2]) for s in d["samples"]]))
    return rows


def busiest_job(store: Store) -> str:
    held: dict[str, int] = {}
    for key in store.names.get("powertrain_gpu_info", []):
        job = dict(key).get("training_job")
        if job:
            held[job] = held.get(job, 0) + len(store.history[key][0])
    return max(held, key=held.__getitem__) if held else "none"


def main() -> None:
    scrapes = load("sandbox") + load("replay")
    store = Store.from_scrapes(scrapes)
    end_wall = (DATA / "sandbox.jsonl").stat().st_mtime
    start_wall = end_wall - store.times[-1]
    jobs = {dict(k).get("training_job") for k in store.names.get("powertrain_gpu_info", [])}
    job = "llm-pretrain" if "llm-pretrain" in jobs else busiest_job(store)
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        names = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
        variables = {"level": "rack", "node": ".*", "namespace": "default", "job": job}
        data = Data(store, {k: v for k, v in variables.items() if k in names}, start_wall)
        render(dashboard, data, path.with_suffix(".png").name)


if __name__ == "__main__":
    main()
