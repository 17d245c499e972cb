"""Cost ledger of a run: what each phase really cost (node-seconds x price) against the plan.

    paramount_ledger.py RESULTS_DIR CATALOG_CSV

Reads RESULTS_DIR/plan/plan.json and the nodes' logs under RESULTS_DIR/{probe,train}/*.log (contract v1),
writes RESULTS_DIR/ledger.json and RESULTS_DIR/ledger.md, and prints the table. A node's billed seconds
are from its first record to its last (one node = one host of the log's `host`).
"""
import importlib.util
import json
import sys
from pathlib import Path


def load_catalog(path):
    """The collection's one catalog loader (plugins/plugin_utils/paramount_catalog.py, standard library only),
    loaded by its file path: this script runs by path, outside Ansible's collection loader."""
    spec = importlib.util.spec_from_file_location(
        "paramount_catalog", Path(__file__).resolve().parents[2] / "plugins" / "plugin_utils" / "paramount_catalog.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    try:
        return module.load_catalog(path)
    except module.ParamountError as exc:  # names the file, line and column
        sys.exit("ledger: %s" % exc)


def node_spans(folder):
    """{host: (instance_type, first_time, last_time, status)} from the .log files in folder."""
    spans = {}
    for path in sorted(Path(folder).glob("*.log")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    host, moment = record["host"], float(record["time"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn or foreign line costs nothing
                kind, first, last, status = spans.get(host, ("unknown", moment, moment, None))
                if record.get("event") == "start":
                    kind = record.get("instance_type", kind)
                if record.get("event") == "end":
                    status = record.get("status")
                spans[host] = (kind, min(first, moment), max(last, moment), status)
    return spans


def main(results_dir, catalog_csv):
    results = Path(results_dir)
    # a type with no usable price (an empty cell included) is priced like an unknown type: NaN
    prices = {t: e.price_per_hour for t, e in load_catalog(catalog_csv).items() if e.price_per_hour is not None}
    plan = json.loads((results / "plan" / "plan.json").read_text())
    chosen = plan.get("chosen") or {}
    phases = []
    for phase in ("probe", "train"):
        spans = node_spans(results / phase)
        if not spans:
            continue
        start = min(s[1] for s in spans.values())
        end = max(s[2] for s in spans.values())
        node_seconds = sum(s[2] - s[1] for s in spans.values())
        cost = sum((s[2] - s[1]) * prices.get(s[0], float("nan")) / 3600 for s in spans.values())
        phases.append({
            "phase": phase, "nodes": len(spans), "types": sorted({s[0] for s in spans.values()}),
            "wall_seconds": round(end - start, 3), "node_seconds": round(node_seconds, 3), "cost": cost,
            "statuses": sorted({str(s[3]) for s in spans.values()}),
        })
    ledger = {"phases": phases, "predicted": {
        "probe_cost (search_cost)": plan.get("search_cost"),
        "train_seconds": chosen.get("predicted_seconds"), "train_cost": chosen.get("predicted_cost")}}
    train = next((p for p in phases if p["phase"] == "train"), None)
    lines = ["# Cost ledger", "", "| phase | nodes | types | wall s | node-s | cost | end status |", "|---|---|---|---|---|---|---|"]
    for p in phases:
        lines.append("| %s | %d | %s | %.1f | %.1f | %.6f | %s |" % (
            p["phase"], p["nodes"], ", ".join(p["types"]), p["wall_seconds"], p["node_seconds"], p["cost"], ", ".join(p["statuses"])))
    if train and chosen:
        ledger["train_time_ratio"] = train["wall_seconds"] / chosen["predicted_seconds"] if chosen.get("predicted_seconds") else None
        ledger["train_cost_ratio"] = train["cost"] / chosen["predicted_cost"] if chosen.get("predicted_cost") else None
        lines += ["", "Chosen: %s x %s. Predicted %.1f s and %.6f; measured %.1f s and %.6f (time x%.2f, cost x%.2f; the"
                  " measured cost bills the nodes' logged span, the prediction adds setup and the 60 s minimum)." % (
                      chosen.get("nodes"), chosen.get("instance_type"), chosen["predicted_seconds"], chosen["predicted_cost"],
                      train["wall_seconds"], train["cost"], ledger["train_time_ratio"] or 0, ledger["train_cost_ratio"] or 0)]
    (results / "ledger.json").write_text(json.dumps(ledger, indent=2))
    (results / "ledger.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
