# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The optimize task as plain Python: options in, plan (and files) out.

``optimize(args)`` wires the stages, one package each: measurement (``measurement.estimates.measure``), model
(``model.scaling``), decision (``decision.candidates``, billed by ``decision.billing``, slots by
``decision.inventory``), clap (``clap.cluster``) and outputs (``outputs.files``). It raises ParamountError for bad
input and returns a result dict in the shape the action plugin returns.
"""

from __future__ import annotations

import math
import os
from collections import Counter

from ansible_collections.paramount.cluster.plugins.plugin_utils.clap.cluster import (
    clap_cluster_config,
    clap_template_id,
    validate_clap_cluster,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import billing, candidates, inventory
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.estimates import measure
from ansible_collections.paramount.cluster.plugins.plugin_utils.model import scaling
from ansible_collections.paramount.cluster.plugins.plugin_utils.outputs.files import (
    PLAN_FILE,
    clean_json,
    write_outputs,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import (
    ARGUMENT_SPEC,
    DEFAULT_MAX_NODES,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import (
    default_catalog_path,
    load_catalog,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import (
    OBJECTIVES,
    ParamountError,
    fmt_money,
    fmt_seconds,
)

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

PLAN_SCHEMA_VERSION = 1

METHOD = (
    "Per run, attempt and phase the first iteration(s) (warmup_drop) are dropped; a warm-up drift "
    "m + a exp(-i/tau) is fitted and divided out when it is significant (else slower leading iterations "
    "are dropped); the rest are averaged with a winsorized mean (clipped at median +/- 3 robust sd, so "
    "stragglers count but one spike cannot dominate) and a Student-t 95% interval; the excess of the first "
    "iterations is added once per phase, never capped (a job shorter than the probe phase gets the excess of its first "
    "iterations). In a heterogeneous run each type is rated by its own ranks' "
    "compute_seconds plus the run's communication time (step time minus the slowest type's compute). "
    "Unmeasured node counts: non-negative least squares on the type's own node counts (ring all-reduce "
    "basis 2(n-1)/n, plus (n-1) and a multi-node step with more counts), or, for a type probed at one "
    "count, its measurement plus a communication curve fitted on all runs; with two counts whose step times differ "
    "by less than the between-run noise floor (1.96 sd; within-run error plus 3% per run, updated by repeated "
    "probes), that communication shape with a level pooled over both points instead of the measured slope. "
    "Intervals: parametric bootstrap (standard errors, between-run noise and the job's own run), widened by "
    "alternative scaling shapes where a shape is assumed. predicted_seconds = init + "
    "iterations x seconds per iteration (setup excluded); predicted_cost = price x billed node-seconds by the "
    "catalog's billing rule of the type (increment, minimum; default per second with a 60 s minimum) over each "
    "node's whole life: a new node is billed setup + predicted_seconds with the minimum, a node kept from the "
    "probe only the seconds it adds (its probe was billed in the search cost). See docs/optimize.md."
)


def _positive(args, name, allow_zero=False):
    v = args.get(name)
    if v is None:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        raise ParamountError("option %s must be a finite number, got %r" % (name, v))
    if v < 0 or (v == 0 and not allow_zero):
        raise ParamountError("option %s must be %s, got %r" % (name, ">= 0" if allow_zero else "> 0", v))
    return v


def normalize_args(args):
    """Fill defaults (for direct callers that bypass the argument spec) and check values."""
    out = {}
    for key, spec in ARGUMENT_SPEC.items():
        out[key] = args.get(key, spec.get("default"))
    unknown = sorted(set(args) - set(ARGUMENT_SPEC))
    if unknown:
        raise ParamountError("unsupported option(s): %s" % ", ".join(unknown))
    if not out["results_dir"]:
        raise ParamountError("option results_dir is required")
    if out["objective"] not in OBJECTIVES:
        raise ParamountError("option objective must be %s, got %r" % (" or ".join(OBJECTIVES), out["objective"]))
    for name in ("deadline", "budget", "max_hourly_cost"):
        _positive(out, name)
    _positive(out, "setup_seconds", allow_zero=True)
    _positive(out, "cpu_capacity", allow_zero=True)
    out["setup_seconds"] = float(out["setup_seconds"] or 0.0)
    for name in ("max_nodes", "epochs", "ranks_per_node"):
        if out[name] is not None and out[name] < 1:
            raise ParamountError("option %s must be >= 1, got %r" % (name, out[name]))
    if out["warmup_drop"] is None or out["warmup_drop"] < 1:
        raise ParamountError("option warmup_drop must be >= 1 (the first iteration of each attempt is always "
                             "dropped), got %r" % out["warmup_drop"])
    if out["tie_tolerance"] is None or not 0 <= out["tie_tolerance"] < 1:
        raise ParamountError("option tie_tolerance must be in [0, 1), got %r" % out["tie_tolerance"])
    if out["bootstrap"] is None or out["bootstrap"] < 0:
        raise ParamountError("option bootstrap must be >= 0")
    if out["node_counts"] is not None:
        bad = [n for n in out["node_counts"] if n < 1]
        if bad or not out["node_counts"]:
            raise ParamountError("option node_counts must be a non-empty list of integers >= 1, got %r"
                                 % (out["node_counts"],))
    if out["instance_types"] is not None and not out["instance_types"]:
        raise ParamountError("option instance_types must not be empty (leave it out to consider every type)")
    if not out["catalog"]:
        out["catalog"] = default_catalog_path()
    if not out["output_dir"]:
        out["output_dir"] = os.path.join(out["results_dir"], "plan")
    return out


def read_current_inventory(value):
    if value is None or value == "":
        return {}, None
    if isinstance(value, dict):
        return inventory.parse_inventory(value, "current_inventory")
    if not isinstance(value, str):
        raise ParamountError("option current_inventory must be a path to a YAML inventory or a mapping")
    try:
        with open(value, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ParamountError("current_inventory %s does not exist" % value) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamountError("current_inventory %s cannot be read (%s)" % (value, exc)) from None
    except yaml.YAMLError as exc:
        raise ParamountError("current_inventory %s is not valid YAML (%s)" % (value, str(exc).splitlines()[0])) \
            from None
    return inventory.parse_inventory(data, "current_inventory %s" % value)


def search_cost(measurement, catalog, setup_seconds):
    """(total, per-run rows, notes): every probe run billed per node, setup included."""
    total, rows, notes = 0.0, [], []
    for run in measurement.runs:
        row = run.as_dict()
        cost = 0.0
        known = True
        # nodes per type, counted (a start record's node count is the log's word: never expanded into a list)
        nodes_of = Counter(run.host_types.values())
        missing = max(0, run.nodes - sum(nodes_of.values()))
        if missing:
            if len(nodes_of) == 1:
                nodes_of[next(iter(nodes_of))] += missing
            else:
                known = False
                notes.append("run %s: %d node(s) without a log, not priced" % (run.run_id, missing))
        for t, count in sorted(nodes_of.items()):
            entry = catalog.get(t)
            if entry is None or entry.price_per_hour is None:
                known = False
                notes.append("run %s: type %s has no price, not counted in the search cost" % (run.run_id, t))
                continue
            # a probe node started, so it is billed (at least the minimum) even if its run logged no wall time
            cost += count * billing.cluster_cost(1, entry.price_per_hour, max(run.wall_seconds or 0.0, 1e-6),
                                                 setup_seconds, billing.BillingRule.of(entry))
        row["cost"] = cost
        row["cost_complete"] = known
        rows.append(row)
        total += cost
    return total, rows, sorted(set(notes))


def kept_lives(current_slots, current_rdzv, measurement, setup_seconds):
    """{type: [seconds each current node of the type has lived, in keep order]}.

    A current node lived its setup plus the wall time of every probe run whose logs name it as a host (the
    probe role names the log's host after the inventory slot); a node no probe log names is known to have
    lived its setup only. Its life so far was billed already (the search cost bills the probe runs), so a
    kept node pays only the time it adds: once past the billing minimum, no second minimum.
    """
    probed = {}
    for run in measurement.runs:
        for host in run.host_types:
            probed[host] = probed.get(host, 0.0) + float(run.wall_seconds or 0.0)
    out = {}
    for itype in sorted(set(current_slots.values())):
        out[itype] = [float(setup_seconds) + probed.get(slot, 0.0)
                      for slot in inventory.keep_order(itype, current_slots, current_rdzv)]
    return out


def optimize(args, check_mode=False):
    a = normalize_args(args)
    catalog = load_catalog(a["catalog"])
    current_slots, current_rdzv = read_current_inventory(a["current_inventory"])
    measurement = measure(a["results_dir"], exclude=[a["output_dir"]], drop_first=a["warmup_drop"],
                          ranks_per_node=a["ranks_per_node"],
                          cpu_bound_types={t for t, entry in catalog.items() if entry.cpu_share is not None})
    model = scaling.ScalingModel(measurement, epochs=a["epochs"], ranks_per_node=a["ranks_per_node"],
                                 n_boot=a["bootstrap"])
    if a["instance_types"]:
        types = list(dict.fromkeys(a["instance_types"]))
    else:
        types = sorted(set(catalog) | set(model.types()) | set(measurement.failed_types))
    if a["node_counts"]:
        counts = sorted(set(a["node_counts"]))
    else:
        counts = list(range(1, (a["max_nodes"] or DEFAULT_MAX_NODES) + 1))
    k = candidates.Constraints(objective=a["objective"], deadline=a["deadline"], budget=a["budget"],
                               max_hourly_cost=a["max_hourly_cost"], max_nodes=a["max_nodes"],
                               measured_only=a["measured_only"], setup_seconds=a["setup_seconds"],
                               cpu_capacity=a["cpu_capacity"])
    lives = kept_lives(current_slots, current_rdzv, measurement, a["setup_seconds"])
    cands, excluded = candidates.build_candidates(model, catalog, types, counts, k, measurement.failed_types, lives)
    candidates.pareto_front(cands)
    ordered = candidates.rank(cands, a["objective"], a["tie_tolerance"])
    chosen, failure = candidates.decide(ordered, a["objective"])
    s_total, s_rows, s_notes = search_cost(measurement, catalog, a["setup_seconds"])

    warnings = list(measurement.warnings) + s_notes
    if chosen is not None:
        keep, start, stop, rdzv = inventory.plan_nodes(chosen.instance_type, chosen.nodes, current_slots, current_rdzv,
                                                       a["run_name"])
        desired = inventory.desired_inventory(chosen.instance_type, sorted(keep + start), rdzv)
        clap_doc = clap_cluster_config(chosen.instance_type, chosen.nodes, a["run_name"],
                                       setups=a["clap_setups"], role=a["clap_role"],
                                       setup_action=a["clap_setup_action"])
        problems = validate_clap_cluster(clap_doc, known_setups=a["clap_setups"] or ())
        if problems:  # pragma: no cover - a bug, not a user error
            raise ParamountError("internal error: generated CLAP file is invalid: %s" % "; ".join(problems))
    else:
        keep, start, stop, rdzv, desired, clap_doc = [], [], [], None, None, None

    plan = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "objective": a["objective"],
        "constraints": k.as_dict(counts, a["instance_types"], a["epochs"]),
        "chosen": chosen.chosen_dict() if chosen else None,
        "candidates": [c.as_dict() for c in ordered],
        "excluded": excluded,
        "search_cost": s_total,
        "start": start,
        "stop": stop,
        "keep": keep,
        "rendezvous": rdzv,
        "desired_inventory": desired,
        "clap": ({"cluster": next(iter(clap_doc["clusters"])),
                  "template_ids": {chosen.instance_type: clap_template_id(chosen.instance_type)}}
                 if clap_doc else None),
        "workload": measurement.workload,
        "job": {"samples_per_epoch": measurement.job.samples_per_epoch, "local_batch": measurement.job.local_batch,
                "epochs": a["epochs"] or measurement.job.epochs,
                "warmup_iterations": measurement.job.warmup_iterations},
        "currency": "USD",
        "catalog": a["catalog"],
        "results_dir": a["results_dir"],
        "runs": s_rows,
        "warnings": warnings,
        "method": METHOD,
        # measured against predicted seconds per iteration at the probed configurations (the figure's points)
        "cross_check": [{key: row[key] for key in ("instance_type", "nodes", "phase", "measured", "predicted", "kind")}
                        for row in model.cross_check()],
    }
    plan["runner_up"] = candidates.runner_up(ordered, chosen, a["objective"])
    if failure:
        plan["message"] = failure
    plan = clean_json(plan)

    files, changed = [], []
    if not check_mode:
        files, changed = write_outputs(a["output_dir"], plan, measurement, ordered, chosen, clap_doc,
                                       plots=a["plots"])
    result = {
        "changed": bool(changed),
        "plan": plan,
        "ansible_facts": {"paramount_plan": plan},
        "files": files,
        "output_dir": a["output_dir"],
    }
    if chosen is not None:
        result["msg"] = ("chosen %s x%d: predicted %s, %s (search cost %s); start %d, stop %d, keep %d"
                         % (chosen.instance_type, chosen.nodes, fmt_seconds(chosen.predicted_seconds),
                            fmt_money(chosen.predicted_cost), fmt_money(s_total), len(start), len(stop), len(keep)))
    else:
        result["failed"] = True
        result["msg"] = "%s (plan written to %s)" % (failure, os.path.join(a["output_dir"], PLAN_FILE)) \
            if not check_mode else failure
    return result
