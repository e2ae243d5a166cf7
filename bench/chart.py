"""Draw bench/run.py's results as a PNG: capacity per core, per scenario and server.

Run by bench/run.py with the python of ``bench/.peers/tools`` (where
matplotlib is installed; it is no dependency of hospes)::

    bench/.peers/tools/bin/python bench/chart.py bench/results/latest.json out.png
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

COLORS = {
    "hospes": "#c0392b",
    "hospes-workers2": "#e67e22",
    "hospes-baseline": "#f1948a",
    "molly-brown": "#2c3e50",
    "jetforce": "#8e44ad",
    "reference-fd": "#27ae60",
    "reference-fd-noticket": "#16a085",
    "reference-bio": "#7f8c8d",
    "reference-bio-noticket": "#95a5a6",
}


def main(source: Path, target: Path) -> None:
    data = json.loads(source.read_text())
    scenarios = data["scenarios"]
    servers = data["servers"]
    width = 0.8 / max(1, len(servers))
    figure, axes = plt.subplots(figsize=(10, 5.5), dpi=110)
    for index, (name, samples) in enumerate(servers.items()):
        heights, lows, highs = [], [], []
        for scenario in scenarios:
            values = [s["capacity"] for s in samples.get(scenario["name"], [])]
            middle = statistics.median(values) if values else 0.0
            heights.append(middle)
            lows.append(middle - min(values) if values else 0.0)
            highs.append(max(values) - middle if values else 0.0)
        positions = [i + (index - (len(servers) - 1) / 2) * width for i in range(len(scenarios))]
        color = COLORS.get(name.partition("[")[0])
        bars = axes.bar(
            positions, heights, width, yerr=[lows, highs], capsize=2, label=name, color=color
        )
        axes.bar_label(bars, labels=[f"{h:,.0f}" for h in heights], fontsize=6, padding=2)
    axes.set_xticks(range(len(scenarios)), [s["label"] for s in scenarios], fontsize=8)
    axes.set_ylabel("capacity: responses per second of server CPU (one core)")
    meta = data["meta"]
    axes.set_title(
        f"Gemini servers, one core each, {meta['concurrency']} connections "
        f"(median of {meta['rounds']} rounds; bars: min-max)\n"
        f"{meta['date']}, gemload {meta['gemload']}, load average {meta['load_before']}",
        fontsize=9,
    )
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(target)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
