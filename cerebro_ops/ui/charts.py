"""Chart geometry for the plugin's inline SVG: learning curves and the MOP Gantt chart.

Only numbers and the strings given are computed here; the templates escape every string they draw, and
nothing is fetched from anywhere (no chart library, no CDN).
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from cerebro_ops.ui.views import Curve

# Tableau-like colours, distinguishable on white; configs beyond 20 reuse them (the legend names each).
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]


def colours(model_ids: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(model_ids))}


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_label(v: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step)) + (1 if step / 10 ** math.floor(math.log10(step)) == 2.5 else 0))
    return f"{v:.{min(digits, 6)}f}"


# ---------------------------------------------------------------------------------------------- curves
@dataclass
class Series:
    model_id: str
    colour: str
    status: str
    points: str                  # "x,y x,y ..." for <polyline>
    dots: list[tuple[float, float, int, float]]   # (x, y, epoch, value)
    best: bool
    end: tuple[float, float] | None   # where a pruned or failed curve stops (drawn as a cross)
    end_label: str = ""


@dataclass
class LineChart:
    key: str
    title: str
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    series: list[Series]
    empty: bool = False


# shape: the data, its palette and highlight, then drawing sizes with defaults.
def line_chart(key: str, title: str, data: list[Curve], palette: dict[str, str], best: str | None,
               epochs: int, width: int = 1220, height: int = 340) -> LineChart:
    """Every config's curve of one metric over the epochs; the best config's drawn last (on top), thicker."""
    left, top, right, bottom = 64, 16, width - 16, height - 40
    chart = LineChart(key, title, width, height, left, top, right, bottom, [], [], [])
    values = [v for c in data for _, v in c.points]
    if not values:
        chart.empty = True
        return chart
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.06 or (abs(hi) * 0.05 or 0.5)
    lo, hi = lo - pad, hi + pad
    max_epoch = max([epochs] + [e for c in data for e, _ in c.points])

    def x(epoch: float) -> float:
        return left + (right - left) * ((epoch - 1) / (max_epoch - 1) if max_epoch > 1 else 0.5)

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - lo) / (hi - lo)

    ticks = nice_ticks(lo, hi)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    chart.y_ticks = [(round(y(t), 1), _tick_label(t, step)) for t in ticks]
    every = max(1, math.ceil(max_epoch / 20))
    chart.x_ticks = [(round(x(e), 1), str(e)) for e in range(1, max_epoch + 1) if e == 1 or e % every == 0]
    for c in sorted(data, key=lambda c: c.model_id == best):
        pts = [(round(x(e), 1), round(y(v), 1), e, v) for e, v in c.points]
        stopped = c.status in ("pruned", "failed")
        chart.series.append(Series(
            c.model_id, palette.get(c.model_id, PALETTE[0]), c.status, " ".join(f"{a},{b}" for a, b, _, _ in pts),
            pts, c.model_id == best, (pts[-1][0], pts[-1][1]) if stopped else None,
            f"{c.status} @{c.points[-1][0]}" if stopped else ""))
    return chart


# ---------------------------------------------------------------------------------------------- gantt
@dataclass
class Bar:
    x: float
    w: float
    lane: int
    model_id: str
    colour: str
    kind: str            # train | eval
    title: str
    eval_x: float | None = None   # a train hop that also evaluated: where its eval part starts
    eval_w: float = 0.0


@dataclass
class Gap:
    x: float
    w: float
    lane: int
    title: str


@dataclass
class EpochMark:
    x: float
    label: str
    gap_before: str      # real time between the previous epoch's last unit and this one's first ("" first)


@dataclass
class Gantt:
    width: int
    height: int
    left: int
    lane_h: int
    lanes: list[str]
    bars: list[Bar] = field(default_factory=list)
    idle: list[Gap] = field(default_factory=list)
    epochs: list[EpochMark] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    empty: bool = False


def _eval_s(r: dict) -> float:
    if r.get("kind") == "eval":
        return r["end"] - r["start"]
    v = r.get("eval_s")
    return float(v) if isinstance(v, (int, float)) and v > 0 else 0.0


# shape: the records and what colours and lanes them, then drawing options with defaults.
def gantt(records: list[dict], palette: dict[str, str], model_batch: dict[str, int], workers: int,
          width: int = 1220, lane_h: int = 34, equal_epochs: bool = False) -> Gantt:
    """Workers x time. The epochs (per TPE batch) are drawn side by side with the time between them cut out
    (and printed), so idle time inside an epoch stays visible at any run length. `equal_epochs`: every epoch
    gets the same width (its own time scale), so short epochs after a slow first one stay readable."""
    left, right_pad, cut = 84, 12, 14  # cut: the drawn width of the cut-out between two epochs, in pixels
    lanes_ids = sorted({int(r.get("worker", 0)) for r in records} | set(range(workers)))
    g = Gantt(width, 0, left, lane_h, [f"worker {w}" for w in lanes_ids])
    g.height = 28 + lane_h * len(lanes_ids) + 30
    if not records:
        g.empty = True
        return g
    groups: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for r in records:
        groups[(model_batch.get(r.get("model_id"), 0), int(r.get("epoch", 0)))].append(r)
    ordered = sorted(groups.items(), key=lambda kv: min(r["start"] for r in kv[1]))
    spans = [(min(r["start"] for r in rs), max(r["end"] for r in rs)) for _, rs in ordered]
    in_epochs = sum(b - a for a, b in spans)
    avail = width - left - right_pad - cut * (len(spans) - 1)
    lane_of = {w: i for i, w in enumerate(lanes_ids)}
    batches = len({k[0] for k, _ in ordered}) > 1
    x0, between = float(left), 0.0
    for i, ((key, rs), (a, b)) in enumerate(zip(ordered, spans)):
        gap = a - spans[i - 1][1] if i else 0.0
        between += max(gap, 0.0)
        span = max(b - a, 1e-9)
        w_px = avail / len(spans) if equal_epochs else avail * span / max(in_epochs, 1e-9)
        scale = w_px / span

        def px(t: float, a=a, x0=x0, scale=scale) -> float:
            return round(x0 + (t - a) * scale, 2)

        batch, epoch = key
        label = f"epoch {epoch}{f' (batch {batch + 1})' if batches else ''} · {_fmt_s(b - a)}"
        g.epochs.append(EpochMark(px(a), label if w_px >= 12 * len(label) * 0.55 else f"e{epoch}",
                                  (_fmt_s(gap) if w_px >= 70 else "") if i else ""))
        per_lane: dict[int, list[dict]] = defaultdict(list)
        for r in rs:
            per_lane[lane_of[int(r.get("worker", 0))]].append(r)
            g.bars.append(_bar(r, px, lane_of, palette))
        for lane in range(len(lanes_ids)):
            t = a
            for r in sorted(per_lane.get(lane, []), key=lambda r: r["start"]) + [{"start": b, "end": b}]:
                if r["start"] - t > 0 and (r["start"] - t) * scale >= 0.5:
                    g.idle.append(Gap(px(t), round((r["start"] - t) * scale, 2), lane,
                                      f"idle {_fmt_s(r['start'] - t)}"))
                t = max(t, r["end"])
        x0 += w_px + cut
    g.stats = hop_stats(records, len(lanes_ids), in_epochs, between)
    return g


def _bar(r: dict, px, lane_of: dict[int, int], palette: dict[str, str]) -> Bar:
    kind = "eval" if r.get("kind") == "eval" else "train"
    x0, x1 = px(r["start"]), px(r["end"])
    wall = r["end"] - r["start"]
    ev = _eval_s(r)
    parts = [f"{r.get('model_id')} · {kind} · epoch {r.get('epoch')} · partition {r.get('partition')}"
             + (f" · hop {r.get('hop')}" if kind == "train" else ""), f"{_fmt_s(wall)}"]
    if kind == "train":
        parts[-1] += f" (train {_fmt_s(r.get('train_s'))}" + (f", eval {_fmt_s(ev)}" if ev else "") + ")"
    bar = Bar(x0, max(round(x1 - x0, 2), 0.6), lane_of[int(r.get("worker", 0))], str(r.get("model_id")),
              palette.get(r.get("model_id"), PALETTE[0]), kind, "\n".join(parts))
    if kind == "train" and ev:
        bar.eval_x = px(r["end"] - ev)
        bar.eval_w = round(x1 - bar.eval_x, 2)
    return bar


def _fmt_s(s) -> str:
    if not isinstance(s, (int, float)):
        return "?"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s" if s < 60 else f"{s / 60:.1f} min"


def _mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def hop_stats(records: list[dict], workers: int, in_epochs: float, between: float) -> dict:
    """Busy fraction (units' wall time over workers x time inside epochs), the training share of it, and the
    mean per-hop overhead (a train hop's wall time that is neither training nor evaluation: checkpoint
    read/write, model load/save, the hop server round trip)."""
    train = [r for r in records if r.get("kind") != "eval"]
    busy = sum(r["end"] - r["start"] for r in records)
    trained = sum(float(r.get("train_s") or 0.0) for r in train)
    evals = sum(_eval_s(r) for r in records)
    capacity = workers * in_epochs
    overhead = [(r["end"] - r["start"]) - float(r.get("train_s") or 0.0) - _eval_s(r) for r in train]
    return {
        "workers": workers, "hops": len(train), "eval_units": len(records) - len(train),
        "in_epochs_s": in_epochs, "between_epochs_s": between,
        "busy_fraction": busy / capacity if capacity > 0 else None,
        "train_fraction": trained / capacity if capacity > 0 else None,
        "eval_fraction": evals / capacity if capacity > 0 else None,
        "idle_s": capacity - busy,
        "hop_wall_s": _mean([r["end"] - r["start"] for r in train]),
        "hop_train_s": _mean([float(r.get("train_s") or 0.0) for r in train]),
        "hop_overhead_s": _mean(overhead),
    }
