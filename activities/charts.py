"""Server-rendered SVG charts. Every series gets a colour AND a fill pattern, and every chart comes with
its numbers as a table, so nothing depends on telling colours apart."""

from dataclasses import dataclass

# Colour-blind-safe palette (Okabe-Ito) paired with a pattern per series.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
PATTERNS = ["solid", "stripes", "dots", "cross", "hstripes", "checks", "vstripes", "solid"]


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class StackedBars:
    width: int
    height: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    legend: list[tuple[int, str, str, str]]  # (index, label, colour, pattern)
    title: str
    plot_left: int
    plot_bottom: int


def stacked_bars(
    *, title: str, labels: list[str], series: dict[str, list[int]], width: int = 720, height: int = 260
) -> StackedBars:
    left, right, top, bottom = 44, 10, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    step = nice_step(max(totals or [0]))
    peak = step * max(1, -(-max(totals or [0]) // step))  # the axis ends on a tick
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.7, 1)
    bars: list[Bar] = []
    for i, label in enumerate(labels):
        y = top + plot_h
        for s_index, (name, values) in enumerate(series.items()):
            value = values[i]
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            bars.append(
                Bar(left + i * slot + (slot - bar_w) / 2, y, bar_w, h, s_index, f"{label} · {name}: {value}")
            )
    every = max(1, len(labels) // 8)
    x_ticks = [Tick(left + i * slot + slot / 2, labels[i]) for i in range(0, len(labels), every)]
    y_ticks = [Tick(top + plot_h - plot_h * v / peak, f"{v:,}") for v in range(0, peak + 1, step)]
    legend = [
        (i, name, PALETTE[i % len(PALETTE)], PATTERNS[i % len(PATTERNS)]) for i, name in enumerate(series)
    ]
    return StackedBars(width, height, bars, x_ticks, y_ticks, legend, title, left, top + plot_h)


def nice_step(peak: int, ticks: int = 4) -> int:
    """A round tick step (1, 2, 5 x 10^n) giving about `ticks` intervals up to peak."""
    if peak <= ticks:
        return 1
    raw = peak / ticks
    magnitude = 10 ** (len(str(int(raw))) - 1)
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude
