# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Outputs stage, the report of a plan: report.md (the choice, its billing, runner-up, candidates, measurements,
warnings, method) and its plots (time against cost with the Pareto front; the scaling model measured against
predicted, also drawn by the cost ledger for the trained job). Plots use matplotlib's object-oriented Agg API."""

from __future__ import annotations

import io

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import fmt_money, fmt_seconds, phase_order

PLOT_TIME_COST = "time_vs_cost.png"
PLOT_MEASURED = "measured_vs_predicted.png"


def render_plots(candidates, chosen, cross_check):
    """{file name: PNG bytes}. Uses the object-oriented Agg API (no global pyplot state). ``cross_check``: the
    plan's measured-against-predicted rows (plan.json ``cross_check``, computed once by the plan)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = {}
    pts = [c for c in candidates if c.predicted]
    fig = Figure(figsize=(7.5, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    types = sorted({c.instance_type for c in pts})
    markers = "osD^v<>phX*"
    for i, t in enumerate(types):
        sel = [c for c in pts if c.instance_type == t]
        feas = [c for c in sel if c.feasible]
        infe = [c for c in sel if not c.feasible]
        m = markers[i % len(markers)]
        color = "C%d" % (i % 10)
        if feas:
            ax.scatter([c.predicted_seconds for c in feas], [c.predicted_cost for c in feas], marker=m,
                       color=color, label=t, zorder=3)
        if infe:
            ax.scatter([c.predicted_seconds for c in infe], [c.predicted_cost for c in infe], marker=m,
                       facecolors="none", edgecolors=color, label=None if feas else t + " (infeasible)", zorder=3)
        for c in sel:
            ax.annotate(str(c.nodes), (c.predicted_seconds, c.predicted_cost), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    front = sorted((c for c in pts if c.pareto), key=lambda c: c.predicted_seconds)
    if front:
        ax.plot([c.predicted_seconds for c in front], [c.predicted_cost for c in front], "k--", lw=1,
                label="Pareto front", zorder=2)
    if chosen is not None:
        ax.scatter([chosen.predicted_seconds], [chosen.predicted_cost], marker="*", s=300, color="gold",
                   edgecolors="k", zorder=4, label="chosen: %s x%d" % (chosen.instance_type, chosen.nodes))
    if pts:
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no candidate could be predicted", ha="center", transform=ax.transAxes)
    ax.set_xlabel("predicted time, init + iterations (s)")
    ax.set_ylabel("predicted cost (USD)")
    ax.set_title("Candidates (numbers: nodes; hollow: infeasible)")
    ax.grid(True, which="both", alpha=0.3)
    if pts:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out[PLOT_TIME_COST] = _png(fig)

    out[PLOT_MEASURED] = render_measured_vs_predicted(cross_check)
    return out


# how each kind of point is drawn: (marker, legend label)
CROSS_CHECK_KINDS = {
    "probed": ("o", "probed (one node count: the model's value is the measurement)"),
    "fitted": ("s", "probed, fitted curve"),
    "leave-one-out": ("x", "probed, leave-one-out refit"),
    "trained": ("*", "trained job"),
}


def render_measured_vs_predicted(rows, title="Scaling model against the probes"):
    """PNG of measured against predicted seconds per iteration: the plan's cross-check rows (``probed``,
    ``fitted``, ``leave-one-out``) and, from the ledger, the trained job's (``trained``), one colour per phase."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    rows = [r for r in rows if r.get("measured") and r.get("predicted")]
    if rows:
        phases = sorted({r["phase"] for r in rows}, key=phase_order)
        for kind, (marker, label) in CROSS_CHECK_KINDS.items():
            for i, phase in enumerate(phases):
                sel = [r for r in rows if r["kind"] == kind and r["phase"] == phase]
                if sel:
                    edge = {} if marker == "x" else {"edgecolors": "k", "linewidths": 0.5}  # x has no edge
                    ax.scatter([r["measured"] for r in sel], [r["predicted"] for r in sel], marker=marker,
                               s=140 if kind == "trained" else 36, color="C%d" % i,
                               label="%s, %s" % (label, phase), zorder=3, **edge)
                    for r in sel:
                        ax.annotate("%s x%d" % (r["instance_type"], r["nodes"]), (r["measured"], r["predicted"]),
                                    fontsize=6, xytext=(3, 3), textcoords="offset points")
        lo = min(min(r["measured"], r["predicted"]) for r in rows)
        hi = max(max(r["measured"], r["predicted"]) for r in rows)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="y = x")
        ax.plot([lo, hi], [lo * 1.1, hi * 1.1], "k:", lw=0.6, label="+/- 10%")
        ax.plot([lo, hi], [lo / 1.1, hi / 1.1], "k:", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=6, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no measured configuration", ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xlabel("measured seconds per iteration")
    ax.set_ylabel("predicted seconds per iteration")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _md_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _header in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in r) + " |")
    return "\n".join(lines)


def render_report(plan, measurement, candidates, images):
    ch = plan.get("chosen")
    lines = ["# paramount.cluster plan", ""]
    lines.append("Workload `%s`, objective **%s**." % (plan.get("workload"), plan.get("objective")))
    lines.append("")
    if ch:
        lines.append("**Chosen: %s x %d** - predicted %s (95%% interval %s to %s), %s; %s per iteration over %d "
                     "iterations; cluster price %s/h; basis: %s." % (
                         ch["instance_type"], ch["nodes"], fmt_seconds(ch["predicted_seconds"]),
                         fmt_seconds(ch["predicted_seconds_interval"][0]),
                         fmt_seconds(ch["predicted_seconds_interval"][1]), fmt_money(ch["predicted_cost"]),
                         fmt_seconds(ch["seconds_per_iteration"]), ch["iterations"], fmt_money(ch["hourly_cost"]),
                         ch["basis"]))
        bill = ch.get("billing")
        if bill:
            lines.append("")
            lines.append("Billing of %s: per %s, minimum %s over a node's life; %d new node(s), %d kept from the probe "
                         "(they pay only the time they add); %s node-seconds billed." % (
                             ch["instance_type"], fmt_seconds(bill["increment_seconds"]),
                             fmt_seconds(bill["minimum_seconds"]), bill["new_nodes"], bill["kept_nodes"],
                             "%.0f" % bill["billed_node_seconds"]))
    else:
        lines.append("**Nothing feasible.** %s" % plan.get("message", ""))
    lines.append("")
    lines.append("Search cost (the probe runs): %s. Setup time per node: %s (billed, not in predicted time)."
                 % (fmt_money(plan.get("search_cost")), fmt_seconds(plan["constraints"].get("setup_seconds"))))
    lines.append("")
    cons = {k: v for k, v in plan["constraints"].items() if v not in (None, False, [])}
    lines.append("Constraints: " + (", ".join("%s=%s" % (k, v) for k, v in cons.items()) or "none"))
    lines.append("")
    ru = plan.get("runner_up")
    if ru:
        text = "Runner-up: %s x %d, predicted %s, %s." % (ru["instance_type"], ru["nodes"],
                                                          fmt_seconds(ru["predicted_seconds"]),
                                                          fmt_money(ru["predicted_cost"]))
        if ru.get("overlap"):
            probe = ru.get("separating_probe") or {}
            text += (" Its 95%% interval overlaps the chosen one's: the choice between them is not settled by the "
                     "probes. The probe that would separate them: %s x %d (%s)."
                     % (probe.get("instance_type"), probe.get("nodes") or 0, probe.get("why")))
        else:
            text += " The 95% intervals do not overlap."
        lines.append(text)
        lines.append("")
    lines.append("Nodes: start %s; stop %s; keep %s; rendezvous %s." % (
        plan.get("start") or "none", plan.get("stop") or "none", plan.get("keep") or "none",
        plan.get("rendezvous") or "none"))
    lines.append("")
    lines.append("## Candidates")
    lines.append("")
    rows = []
    for c in plan.get("candidates", [])[:25]:
        rows.append([c["rank"], c["instance_type"], c["nodes"], fmt_seconds(c["predicted_seconds"]),
                     fmt_money(c["predicted_cost"]), fmt_seconds(c["seconds_per_iteration"]),
                     c["iterations"] if c["iterations"] is not None else "n/a",
                     "yes" if c["measured"] else "no", "yes" if c.get("pareto") else "", c["reason"]])
    lines.append(_md_table(["rank", "type", "nodes", "time", "cost", "s/iter", "iterations", "measured",
                            "Pareto", "reason"], rows))
    if len(plan.get("candidates", [])) > 25:
        lines.append("")
        lines.append("(%d more in plan.json)" % (len(plan["candidates"]) - 25))
    if plan.get("excluded"):
        lines.append("")
        lines.append("## Excluded types")
        lines.append("")
        lines.append(_md_table(["type", "reason"], [[e["instance_type"], e["reason"]] for e in plan["excluded"]]))
    lines.append("")
    lines.append("## Probe runs")
    lines.append("")
    lines.append(_md_table(["run", "types", "nodes", "status", "used", "seconds", "cost"],
                           [[r["run_id"], ", ".join(r["instance_types"]), r["nodes"], r["status"],
                             "yes" if r["used"] else "no: " + r["reason"], fmt_seconds(r["seconds"]),
                             fmt_money(r.get("cost"))] for r in plan.get("runs", [])]))
    if measurement is not None:
        lines.append("")
        lines.append("## Measurements")
        lines.append("")
        mrows = []
        for (t, n), cm in sorted(measurement.configs.items()):
            for p, pm in sorted(cm.phases.items()):
                mrows.append([t, n, cm.basis, p, "%.4g" % pm.seconds.mean,
                              "%.4g to %.4g" % (pm.seconds.low, pm.seconds.high), pm.seconds.n, pm.dropped,
                              getattr(pm, "drift_corrected", 0), pm.seconds.clipped,
                              "%.4g" % pm.comm.mean if pm.comm else "n/a",
                              "%.3g" % cm.init.mean if cm.init else "n/a"])
        lines.append(_md_table(["type", "nodes", "basis", "phase", "s/iter", "95% CI", "samples", "warm-up dropped",
                                "drift fitted (attempts)", "clipped", "comm s", "init s"], mrows))
    if plan.get("warnings"):
        lines.append("")
        lines.append("## Warnings")
        lines.append("")
        for w in plan["warnings"]:
            lines.append("- " + w)
    lines.append("")
    lines.append("## Method")
    lines.append("")
    lines.append(plan.get("method", ""))
    if images:
        lines.append("")
        lines.append("## Plots")
        lines.append("")
        for name in sorted(images):
            lines.append("![%s](%s)" % (name, name))
    lines.append("")
    return "\n".join(lines)
