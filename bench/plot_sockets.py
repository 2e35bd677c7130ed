"""Plot opening latency and drop:new feed lag against the number of viewers,
from the JSON files bench/socket_bench.py writes (mixed runs).

    python bench/plot_sockets.py bench/results/sockets-*-after-*.json /tmp/before/...json \\
        --label-prefix after before -o bench/sockets-latency.png

Each file's runs are labelled "<target>" (cyberhub, node), prefixed by the
matching --label-prefix when given (one per file) so before/after can share a plot.
The Node reference is taken from the first file only (each run measures it again).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--label-prefix", nargs="*", default=[])
    p.add_argument("-o", "--out", default="bench/sockets-latency.png")
    args = p.parse_args()
    series: dict[str, list[tuple[int, float, dict]]] = defaultdict(list)
    for i, path in enumerate(args.files):
        prefix = args.label_prefix[i] if i < len(args.label_prefix) else ""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for run in data["runs"]:
            if run["kind"] != "mixed" or (run["target"] == "node" and i > 0):
                continue
            target = "Node reference" if run["target"] == "node" else f"CyberHub {prefix}".strip()
            series[target].append((run["clients"], run["rate"], run["mixed"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"Node reference": "tab:green", "CyberHub after": "tab:blue", "CyberHub before": "tab:red",
              "CyberHub start of session": "tab:orange"}
    for name, points in sorted(series.items()):
        points.sort(key=lambda x: (x[1], x[0]))
        color = styles.get(name)
        for rate in sorted({r for _, r, _ in points}):
            pts = [(v, m) for v, r, m in points if r == rate]
            xs = [v for v, _ in pts]
            label = f"{name}, {rate:g} openings/s"
            marker = "o" if rate <= 10 else "s"
            ax1.plot(xs, [m["latencyP99"] for _, m in pts], marker=marker, color=color, label=f"{label} p99")
            ax1.plot(xs, [m["latencyP50"] for _, m in pts], marker=marker, color=color, linestyle="--",
                     alpha=0.6, label=f"{label} p50")
            ax2.plot(xs, [max(1.0, m["feedLagP99"]) for _, m in pts], marker=marker, color=color,
                     label=f"{label} p99")
    for ax, title in ((ax1, "POST /api/cases/open latency from due time (ms)"),
                      (ax2, "drop:new lag at a viewer after the opening's answer, p99 (ms; ≤1 shown as 1)")):
        ax.set_xlabel("websocket viewers")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=6)
    ax2.legend(fontsize=6)
    fig.suptitle("Open loop, 20 s per point, load generator (Node socket.io-client) on the same 2-core machine",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
