# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""What a controller run leaves for people: report.md and the timeline plot."""

from __future__ import annotations

from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.policy import QUIET_ACTIONS

# the decisions the plot marks: they changed the cluster or refused to
MARKED_ACTIONS = ("replace", "restore", "refuse")


def write_report(path, run, summary, decisions):
    """Markdown: outcome, the timeline plot, the formations and every decision that acted."""
    lines = ["# Autoscale report of run %s" % run, "",
             "Outcome: **%s** after %d round(s); %s of %s samples; %.1f s of training; cost %.6f."
             % (summary.get("outcome"), summary.get("rounds", 0), summary.get("samples_seen", "?"),
                summary.get("total_samples", "?"), summary.get("seconds", 0.0), summary.get("cost", 0.0)),
             "", "![timeline: nodes by type, throughput, accumulated cost](timeline.png)", "",
             "| formation | start (s) | nodes by type | samples/s | cost so far |", "|---|---|---|---|---|"]
    rows = summary.get("timeline") or []
    t0 = rows[0]["start"] if rows else 0.0
    for row in rows:
        nodes = ", ".join("%d x %s" % (n, t) for t, n in sorted(row["nodes_by_type"].items()))
        throughput = "%.2f" % row["throughput"] if row["throughput"] else "-"
        lines.append("| %s | %.0f | %s | %s | %.6f |"
                     % (row["formation"], row["start"] - t0, nodes, throughput, row["cost_so_far"]))
    lines += ["", "| round | action | reason |", "|---|---|---|"]
    for d in decisions:
        if d.get("action") not in QUIET_ACTIONS:
            lines.append("| %s | %s | %s |" % (d.get("round"), d.get("action"), str(d.get("reason")).replace("|", "/")))
    lost = summary.get("lost_progress") or []
    if lost:
        lines += ["", "Progress repeated at each change (samples, steps): "
                  + "; ".join("%s: %d, %.1f%s" % (x["formation"], x["repeated_samples"], x["repeated_steps"],
                                                  "" if x["within_interval"] else " (MORE than one interval)")
                              for x in lost)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def plot_timeline(path, rows, decisions):
    """PNG: nodes by type, throughput and accumulated cost over time, with the decisions that acted."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    if not rows:
        return None
    t0 = rows[0]["start"]
    types = sorted({t for r in rows for t in r["nodes_by_type"]})
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    bottoms = [0.0] * len(rows)
    for t in types:
        counts = [r["nodes_by_type"].get(t, 0) for r in rows]
        axes[0].bar([r["start"] - t0 for r in rows], counts, width=[max(1.0, r["end"] - r["start"]) for r in rows],
                    bottom=bottoms, align="edge", label=t, alpha=0.8)
        bottoms = [b + c for b, c in zip(bottoms, counts)]
    axes[0].set_ylabel("nodes")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].step([r["start"] - t0 for r in rows] + [rows[-1]["end"] - t0],
                 [r["throughput"] or 0 for r in rows] + [rows[-1]["throughput"] or 0], where="post")
    axes[1].set_ylabel("samples / s")
    axes[2].plot([0.0] + [r["end"] - t0 for r in rows], [0.0] + [r["cost_so_far"] for r in rows], marker="o")
    axes[2].set_ylabel("cost so far")
    axes[2].set_xlabel("seconds since training started")
    for d in decisions:
        if d.get("action") in MARKED_ACTIONS:
            for ax in axes:
                ax.axvline(float(d["time"]) - t0, color="grey", linestyle=":", linewidth=1)
            axes[0].annotate(d["action"], (float(d["time"]) - t0, max(bottoms) if bottoms else 1), fontsize=7,
                             rotation=90, va="top")
    fig.suptitle("paramount.cluster autoscale timeline")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
