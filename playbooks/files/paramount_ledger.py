"""Cost ledger of a run: what each phase really took and cost, against the plan, like with like.

    paramount_ledger.py RESULTS_DIR CATALOG_CSV

Reads RESULTS_DIR/plan/plan.json and the nodes' logs under RESULTS_DIR/{probe,train}/*.log (contract v1, read
and validated by the planner's own log reader; a line it drops costs nothing),
writes RESULTS_DIR/ledger.json and RESULTS_DIR/ledger.md, and prints the tables. With a trained job it also
draws RESULTS_DIR/measured_vs_predicted.png: measured against predicted seconds per iteration at the probed
configurations (plan.json's `cross_check`) and, per training phase, the trained job's.

The span (the same on both sides): the plan predicts `predicted_seconds` = the trainer's init (from its process
start) + every iteration, setup excluded. So the measured training time is the job's span from the first trainer
process start (a record's `time` - `seconds` of `init` or `end`) to the end of its last iteration (the last
`iteration` record): init, the iterations and the evaluations between epochs (not predicted: shown on a line of
its own); the final save after the last iteration is shown apart, outside the span. Per training phase: init,
warm-up and adversarial iterations (each iteration's step-end to step-end, the evaluation taken out), evaluation.

Both costs are billed by the plan's rule: price x billed node-seconds, where a new node is billed its setup (the
plan's assumption, the same on both sides) + the span, rounded up to the type's billing increment and at least
its minimum, and a node kept from the probe pays only the seconds it adds (plan.json's `chosen.billing`; the
billing rule and functions are the plan's own, decision.billing's). The probe is billed the same way per node
(setup + its trainer's life) against the plan's `search_cost`.
`wall_seconds`, `node_seconds` and `cost` are the logged first-to-last-record figures of earlier versions
(unbilled), kept for readers of ledger.json.
"""
import importlib.abc
import importlib.machinery
import json
import math
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
SPAN = ("time: from the first trainer process start to the end of the last iteration (init + iterations + the "
        "evaluations between epochs), as the plan's predicted_seconds (init + iterations), setup excluded; cost: "
        "price x node-seconds billed by the plan's rule (increment, minimum) over setup (the plan's) + that span, "
        "kept nodes paying only what they add")
COLLECTION = "ansible_collections.paramount.cluster"


class _CollectionFromCheckout(importlib.abc.MetaPathFinder):
    """Makes `ansible_collections.paramount.cluster` this checkout (the script runs by path, outside Ansible's
    collection loader), so the plan's own modules import as they do in the plugin."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != COLLECTION and not COLLECTION.startswith(fullname + "."):
            return None
        spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = [str(CHECKOUT)] if fullname == COLLECTION else []
        return spec


def plan_module(name):
    """plugins/plugin_utils/<name>.py of this checkout, as the plugin imports it."""
    if not any(isinstance(finder, _CollectionFromCheckout) for finder in sys.meta_path):
        sys.meta_path.insert(0, _CollectionFromCheckout())
    return importlib.import_module("%s.plugins.plugin_utils.%s" % (COLLECTION, name))


def load_catalog(path):
    """The collection's one catalog loader (``paramount_catalog.load_catalog``), imported as the plan imports it."""
    catalog = plan_module("paramount_catalog")
    try:
        return catalog.load_catalog(path)
    except catalog.ParamountError as exc:  # names the file, line and column
        sys.exit("ledger: %s" % exc)


def read_nodes(folder):
    """{host: what its .log files say}: type, first/last record, end status, trainer process starts, and the
    records the timeline needs (init, iteration, epoch, end). The records are the planner's reader's: valid
    against the log contract, so every key an event requires is there."""
    read_log_file = plan_module("measurement.records").read_log_file
    nodes = {}
    for path in sorted(Path(folder).glob("*.log")):
        for record in read_log_file(str(path)).records:
            moment = float(record["time"])
            node = nodes.setdefault(record["host"], {"type": "unknown", "first": moment, "last": moment,
                                                     "status": None, "process_starts": [], "init": [],
                                                     "iterations": [], "epochs": [], "ends": []})
            node["first"], node["last"] = min(node["first"], moment), max(node["last"], moment)
            event = record["event"]
            if event == "start":
                node["type"] = record["instance_type"]
            elif event == "end":
                node["status"] = record["status"]
                node["ends"].append(moment)
            if event in ("init", "end"):
                node["process_starts"].append(moment - float(record["seconds"]))
            if event == "init":
                node["init"].append(moment)
            elif event == "iteration":
                node["iterations"].append((int(record["step"]), record["phase"], moment))
            elif event == "epoch" and isinstance(record.get("eval_seconds"), (int, float)):  # optional key
                node["epochs"].append((record["epoch"], float(record["eval_seconds"]), moment))
    return nodes


def job_timeline(nodes):
    """The job's span and its parts, in seconds, from all nodes' records (see the module's docstring), or None
    when no trainer process start or no iteration was logged."""
    starts = [t for n in nodes.values() for t in n["process_starts"]]
    steps = {}
    for n in nodes.values():
        for step, phase, moment in n["iterations"]:
            end, _phase = steps.get(step, (moment, phase))
            steps[step] = (max(end, moment), phase)  # a step ends when its slowest rank logs it
    if not starts or not steps:
        return None
    start = min(starts)
    inits = [t for n in nodes.values() for t in n["init"]]
    evals = {}
    for n in nodes.values():
        for epoch, seconds, moment in n["epochs"]:
            old = evals.get(epoch, (0.0, moment))
            evals[epoch] = (max(old[0], seconds), max(old[1], moment))
    ordered = sorted(steps.values())
    init_end = max([t for t in inits if t <= ordered[0][0]] or [start])
    parts = {"init": max(0.0, init_end - start), "evaluation": 0.0}
    iterations = {}
    previous = init_end
    for moment, phase in ordered:
        between = sum(s for s, at in evals.values() if previous < at <= moment)
        parts["evaluation"] += between
        parts[phase] = parts.get(phase, 0.0) + max(0.0, moment - previous - between)
        iterations[phase] = iterations.get(phase, 0) + 1
        previous = moment
    last_end = max([t for n in nodes.values() for t in n["ends"]] or [previous])
    return {"start": start, "span_seconds": previous - start, "parts": parts, "iterations": iterations,
            "after_span_seconds": max(0.0, last_end - previous)}


def _number(value):
    """A plan.json figure: a number, or [central, low, high]."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _ratio(measured, predicted):
    return measured / predicted if measured is not None and predicted else None


def compare_train(timeline, chosen, nodes, price, rule, setup_seconds, billing):
    """Measured against predicted over the same span: time and cost (both billed by the plan's rule), and per
    training phase."""
    span = timeline["span_seconds"]
    kept = (chosen.get("billing") or {}).get("kept_lived_seconds") or []
    bill = billing.cluster_bill(nodes, span, setup_seconds, rule, kept)
    predicted_seconds = _number(chosen.get("predicted_seconds"))
    predicted_cost = _number(chosen.get("predicted_cost"))
    predicted_bill = (chosen.get("billing") or {}).get("billed_node_seconds")
    if predicted_bill is None and predicted_seconds is not None:
        predicted_bill = billing.cluster_bill(int(chosen.get("nodes") or nodes), predicted_seconds, setup_seconds,
                                              rule, kept)["billed_node_seconds"]
    measured_cost = billing.cost_of(price, bill["billed_node_seconds"]) if price is not None else None
    spi = chosen.get("seconds_per_iteration_by_phase") or {}
    planned = chosen.get("iterations_by_phase") or {}
    rows = [{"phase": "init", "measured_seconds": timeline["parts"]["init"],
             "predicted_seconds": _number(chosen.get("init_seconds"))}]
    steady = 0.0
    in_running_order = plan_module("paramount_common").phase_order
    for phase in sorted(set(planned) | set(timeline["iterations"]), key=in_running_order):
        per_iteration = _number(spi.get(phase))
        count = planned.get(phase)
        predicted = per_iteration * count if per_iteration is not None and count is not None else None
        steady += predicted or 0.0
        done = timeline["iterations"].get(phase, 0)
        measured = timeline["parts"].get(phase, 0.0)
        rows.append({"phase": phase, "measured_seconds": measured, "predicted_seconds": predicted,
                     "measured_iterations": done, "predicted_iterations": count,
                     "measured_seconds_per_iteration": measured / done if done else None,
                     "predicted_seconds_per_iteration": per_iteration})
    if predicted_seconds is not None:
        rest = predicted_seconds - steady - (rows[0]["predicted_seconds"] or 0.0)
        if abs(rest) > 1e-6:  # the model's start-up excess of the first iterations (plan.json has no split by phase)
            rows.append({"phase": "first iterations' start-up excess (predicted, in the phases above measured)",
                         "measured_seconds": None, "predicted_seconds": rest})
    rows.append({"phase": "evaluation (between epochs; not predicted)",
                 "measured_seconds": timeline["parts"]["evaluation"], "predicted_seconds": None})
    for row in rows:
        row["ratio"] = _ratio(row["measured_seconds"], row["predicted_seconds"])
    return {
        "span": "first trainer process start to the end of the last iteration",
        "measured_seconds": span, "predicted_seconds": predicted_seconds,
        "time_ratio": _ratio(span, predicted_seconds),
        "after_span_seconds": timeline["after_span_seconds"],
        "setup_seconds": setup_seconds, "billing": bill,
        "predicted_billed_node_seconds": predicted_bill,
        "measured_cost": measured_cost, "predicted_cost": predicted_cost,
        "cost_ratio": _ratio(measured_cost, predicted_cost),
        "by_phase": rows,
    }


def trained_points(train, chosen):
    """The trained job's measured and predicted seconds per iteration, per training phase, as figure points."""
    return [{"instance_type": chosen.get("instance_type"), "nodes": int(chosen.get("nodes") or 0),
             "phase": row["phase"], "measured": row["measured_seconds_per_iteration"],
             "predicted": row["predicted_seconds_per_iteration"], "kind": "trained"}
            for row in train["by_phase"]
            if row.get("measured_seconds_per_iteration") and row.get("predicted_seconds_per_iteration")]


def bill_probe(nodes, prices, rules, setup_seconds, billing):
    """(billed node-seconds, cost) of the probe nodes: each by its type's rule over setup + its trainer's life
    (process start to last record), as the plan's search cost bills them; cost None if a type has no price."""
    billed, cost = 0.0, 0.0
    for n in nodes.values():
        life = n["last"] - min(n["process_starts"] or [n["first"]])
        seconds = billing.billed_seconds(max(life, 1e-6), setup_seconds, rules(n["type"]))
        billed += seconds
        price = prices.get(n["type"])
        cost = None if cost is None or price is None else cost + billing.cost_of(price, seconds)
    return billed, cost


def _fmt(value, digits=1):
    return "-" if value is None else "%.*f" % (digits, value)


def main(results_dir, catalog_csv):
    results = Path(results_dir)
    billing = plan_module("decision.billing")
    # a type with no usable price (an empty cell included) is priced like an unknown type: NaN
    catalog = load_catalog(catalog_csv)
    prices = {t: e.price_per_hour for t, e in catalog.items() if e.price_per_hour is not None}
    plan = json.loads((results / "plan" / "plan.json").read_text())
    chosen = plan.get("chosen") or {}
    setup_seconds = float((plan.get("constraints") or {}).get("setup_seconds") or 0.0)

    def rule_of(itype):  # an unknown type (no catalog entry) gets the default rule
        return billing.BillingRule.of(catalog.get(itype))

    run_phase = plan_module("paramount_phases").RunPhase
    phases, comparison = [], {}
    for phase in (run_phase.PROBE.value, run_phase.TRAIN.value):
        nodes = read_nodes(results / phase)
        if not nodes:
            continue
        spans = {host: (n["type"], n["first"], n["last"], n["status"]) for host, n in nodes.items()}
        start = min(s[1] for s in spans.values())
        end = max(s[2] for s in spans.values())
        node_seconds = sum(s[2] - s[1] for s in spans.values())
        cost = sum(billing.cost_of(prices.get(s[0], float("nan")), s[2] - s[1]) for s in spans.values())
        row = {
            "phase": phase, "nodes": len(spans), "types": sorted({s[0] for s in spans.values()}),
            "wall_seconds": round(end - start, 3), "node_seconds": round(node_seconds, 3), "cost": cost,
            "statuses": sorted({str(s[3]) for s in spans.values()}),
        }
        if phase == run_phase.PROBE:
            billed, billed_cost = bill_probe(nodes, prices, rule_of, setup_seconds, billing)
            row.update({"billed_node_seconds": billed, "billed_cost": billed_cost})
            comparison["probe"] = {"measured_cost": billed_cost, "search_cost": plan.get("search_cost"),
                                   "cost_ratio": _ratio(billed_cost, plan.get("search_cost"))}
        else:
            timeline = job_timeline(nodes)
            types = row["types"]
            itype = chosen.get("instance_type") if chosen.get("instance_type") in types else types[0]
            planned_billing = chosen.get("billing") or {}
            rule = billing.BillingRule.from_dict(planned_billing) or rule_of(itype)
            if timeline is not None and chosen:
                comparison["train"] = compare_train(timeline, chosen, len(nodes), prices.get(itype), rule,
                                                    setup_seconds, billing)
                row.update({"span_seconds": timeline["span_seconds"],
                            "billed_node_seconds": comparison["train"]["billing"]["billed_node_seconds"],
                            "billed_cost": comparison["train"]["measured_cost"]})
        phases.append(row)

    ledger = {"phases": phases, "predicted": {
        "probe_cost (search_cost)": plan.get("search_cost"),
        "train_seconds": chosen.get("predicted_seconds"), "train_cost": chosen.get("predicted_cost")},
        "span": SPAN, "comparison": comparison}
    lines = ["# Cost ledger", "", "| phase | nodes | types | logged s | billed node-s | billed cost | end status |",
             "|---|---|---|---|---|---|---|"]
    for p in phases:
        lines.append("| %s | %d | %s | %.1f | %s | %s | %s |" % (
            p["phase"], p["nodes"], ", ".join(p["types"]), p["wall_seconds"], _fmt(p.get("billed_node_seconds")),
            _fmt(p.get("billed_cost"), 6), ", ".join(p["statuses"])))
    probe = comparison.get("probe")
    if probe:
        lines += ["", "Probe: billed %s against the plan's search cost %s (x%s): setup %.0f s + each node's trainer "
                  "life, by its type's billing rule." % (_fmt(probe["measured_cost"], 6),
                                                         _fmt(probe["search_cost"], 6),
                                                         _fmt(probe["cost_ratio"], 2), setup_seconds)]
    train = comparison.get("train")
    if train:
        ledger["train_time_ratio"] = train["time_ratio"]
        ledger["train_cost_ratio"] = train["cost_ratio"]
        bill = train["billing"]
        lines += ["", "Chosen: %s x %s. Span (both sides): %s, setup excluded; predicted %s s, measured %s s "
                  "(time x%s). Cost (both sides billed by the plan's rule: setup %.0f s + the span per node, "
                  "increment %g s, minimum %g s, %d kept node(s) paying only what they add): predicted %s, "
                  "measured %s (cost x%s). After the span (the last evaluation, the final save): %.1f s." % (
                      chosen.get("nodes"), chosen.get("instance_type"), train["span"],
                      _fmt(train["predicted_seconds"]), _fmt(train["measured_seconds"]), _fmt(train["time_ratio"], 2),
                      setup_seconds, bill["increment_seconds"], bill["minimum_seconds"], bill["kept_nodes"],
                      _fmt(train["predicted_cost"], 6), _fmt(train["measured_cost"], 6), _fmt(train["cost_ratio"], 2),
                      train["after_span_seconds"]),
                  "", "| training phase | measured s | predicted s | measured/predicted | iterations "
                  "| s/iter measured | s/iter predicted |", "|---|---|---|---|---|---|---|"]
        for row in train["by_phase"]:
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                row["phase"], _fmt(row["measured_seconds"]), _fmt(row["predicted_seconds"]), _fmt(row["ratio"], 2),
                "-" if "measured_iterations" not in row else "%s / %s" % (row["measured_iterations"],
                                                                          row["predicted_iterations"]),
                _fmt(row.get("measured_seconds_per_iteration"), 4),
                _fmt(row.get("predicted_seconds_per_iteration"), 4)))
        lines.append("| **span** | %s | %s | %s | | | |" % (_fmt(train["measured_seconds"]),
                                                            _fmt(train["predicted_seconds"]),
                                                            _fmt(train["time_ratio"], 2)))
    if train:
        figure = results / "measured_vs_predicted.png"
        points = list(plan.get("cross_check") or []) + trained_points(train, chosen)
        figure.write_bytes(plan_module("outputs.report").render_measured_vs_predicted(
            points, title="Measured against predicted: probes and the trained job"))
        ledger["figure"] = str(figure)
        ledger["figure_points"] = points
        lines += ["", "Figure: %s (probed and trained points)" % figure]
    (results / "ledger.json").write_text(json.dumps(ledger, indent=2))
    (results / "ledger.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
