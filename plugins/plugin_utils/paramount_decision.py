# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Decision: price every candidate, apply the constraints, rank by the objective, find the Pareto
front, and work out which nodes to start, stop and keep against the current inventory.

It only needs something with ``predict(instance_type, nodes)`` (``paramount_model.ScalingModel``
or any replacement) and the catalog, so it can be tested and replaced on its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import (
    Objective,
    ParamountError,
    fmt_money,
    fmt_seconds,
    slug,
)

MIN_BILLED_SECONDS = 60.0  # the default rule: per-second billing with a one-minute minimum (EC2 Linux)
BILLING_INCREMENT_SECONDS = 1.0


@dataclass(frozen=True)
class BillingRule:
    """How a provider bills one node: its whole life (boot, setup, probe, job) is rounded up to a multiple of
    ``increment_seconds`` and billed at least ``minimum_seconds``. The catalog states it per type
    (``billing_increment_seconds``, ``billing_minimum_seconds``)."""

    increment_seconds: float = BILLING_INCREMENT_SECONDS
    minimum_seconds: float = MIN_BILLED_SECONDS

    @classmethod
    def of(cls, entry):
        """The rule of a catalog entry (the default rule for anything without one)."""
        return cls(float(getattr(entry, "billing_increment_seconds", BILLING_INCREMENT_SECONDS)),
                   float(getattr(entry, "billing_minimum_seconds", MIN_BILLED_SECONDS)))

    @classmethod
    def from_dict(cls, record):
        """The rule a billing record of plan.json states (``as_dict``, ``cluster_bill``); None when it states none."""
        if "increment_seconds" in record and "minimum_seconds" in record:
            return cls(float(record["increment_seconds"]), float(record["minimum_seconds"]))
        return None

    def billed(self, life_seconds: float) -> float:
        """Billed seconds of a node that lived ``life_seconds`` in all (0: it never started)."""
        if not life_seconds > 0:
            return 0.0
        inc = self.increment_seconds
        units = math.ceil(float(life_seconds) / inc - 1e-9)
        return max(self.minimum_seconds, units * inc)

    def added(self, lived_seconds: float, more_seconds: float) -> float:
        """Billed seconds that ``more_seconds`` add to a node that has lived ``lived_seconds`` already (its
        earlier life was billed before, e.g. in the search cost): a node past the minimum pays only what it adds."""
        return self.billed(lived_seconds + max(0.0, more_seconds)) - self.billed(lived_seconds)

    def as_dict(self):
        return {"increment_seconds": self.increment_seconds, "minimum_seconds": self.minimum_seconds}


DEFAULT_BILLING = BillingRule()


def cost_of(price_per_hour: float, node_seconds: float) -> float:
    """Money for ``node_seconds`` at an hourly price: the one conversion plan, ledger and timeline bill with."""
    return price_per_hour * node_seconds / 3600.0


def billed_seconds(seconds: float, setup_seconds: float = 0.0, rule: BillingRule = DEFAULT_BILLING) -> float:
    """Billed seconds of one new node for setup plus run time (default: per second, 60 s minimum)."""
    return rule.billed(setup_seconds + seconds)


def cluster_bill(nodes: int, seconds: float, setup_seconds: float = 0.0, rule: BillingRule = DEFAULT_BILLING,
                 kept_lives=()):
    """Billed node-seconds of a cluster that runs ``setup_seconds + seconds``.

    ``kept_lives``: how long each node kept from the current cluster (the probe) has lived already (at most
    ``nodes`` are used); those pay only the seconds they add, the other nodes are new and pay their whole life
    by the rule. Returns the record plan.json keeps per candidate.
    """
    wall = max(0.0, setup_seconds + seconds)
    kept = [float(x) for x in list(kept_lives)[:nodes]]
    new = nodes - len(kept)
    node_seconds = new * rule.billed(wall) + sum(rule.added(x, wall) for x in kept)
    out = rule.as_dict()
    out.update({"new_nodes": new, "kept_nodes": len(kept), "kept_lived_seconds": kept,
                "billed_node_seconds": node_seconds})
    return out


def cluster_cost(nodes: int, price_per_hour: float, seconds: float, setup_seconds: float = 0.0,
                 rule: BillingRule = DEFAULT_BILLING, kept_lives=()) -> float:
    """price x billed node-hours (every new node billed by the rule; kept nodes pay what they add)."""
    return cost_of(price_per_hour, cluster_bill(nodes, seconds, setup_seconds, rule, kept_lives)["billed_node_seconds"])


CPU_TOLERANCE = 1e-9  # shares adding up to exactly the capacity fit (5 x 0.30 in floating point)


@dataclass
class Constraints:
    objective: str = Objective.COST.value
    deadline: float | None = None  # seconds, applied to setup_seconds + predicted_seconds
    budget: float | None = None  # currency, applied to predicted_cost
    max_hourly_cost: float | None = None  # whole cluster, nodes x price
    max_nodes: int | None = None
    measured_only: bool = False
    setup_seconds: float = 0.0
    # emulated backends (local, sim): cores the cluster's CPU shares may take at once (None: no limit, real clouds)
    cpu_capacity: float | None = None

    def as_dict(self, node_counts, instance_types, epochs):
        return {
            "deadline": self.deadline,
            "budget": self.budget,
            "max_hourly_cost": self.max_hourly_cost,
            "max_nodes": self.max_nodes,
            "node_counts": list(node_counts),
            "instance_types": list(instance_types) if instance_types else None,
            "measured_only": self.measured_only,
            "setup_seconds": self.setup_seconds,
            "epochs": epochs,
            "cpu_capacity": self.cpu_capacity,
        }


@dataclass
class Candidate:
    instance_type: str
    nodes: int
    price_per_hour: float
    predicted: bool
    measured: bool
    predicted_seconds: float | None = None
    predicted_cost: float | None = None
    seconds_per_iteration: float | None = None
    iterations: int | None = None
    seconds_interval: list | None = None
    cost_interval: list | None = None
    seconds_per_iteration_by_phase: dict | None = None
    iterations_by_phase: dict | None = None
    init_seconds: float | None = None
    basis: str = ""
    notes: list = field(default_factory=list)
    violations: list = field(default_factory=list)  # (constraint, text, relative excess)
    feasible: bool = False
    reason: str = ""
    pareto: bool = False
    rank: int = 0
    node_limit: int | None = None  # the catalog's quota for the type
    cpu_share: float | None = None  # the catalog's share of one CPU of an emulated type (None: not emulated)
    billing: dict | None = None  # the billing rule and the billed node-seconds of the prediction

    @property
    def hourly_cost(self):
        return self.nodes * self.price_per_hour

    @property
    def cpu_cores(self):
        """Cores the cluster takes on an emulated backend (nodes x cpu_share), None for a type without a share."""
        return None if self.cpu_share is None else round(self.nodes * self.cpu_share, 9)

    def as_dict(self):
        return {
            "instance_type": self.instance_type,
            "nodes": self.nodes,
            "predicted_seconds": self.predicted_seconds,
            "predicted_cost": self.predicted_cost,
            "seconds_per_iteration": self.seconds_per_iteration,
            "iterations": self.iterations,
            "measured": self.measured,
            "feasible": self.feasible,
            "reason": self.reason,
            "rank": self.rank,
            "pareto": self.pareto,
            "hourly_cost": self.hourly_cost,
            "predicted_seconds_interval": self.seconds_interval,
            "predicted_cost_interval": self.cost_interval,
            "init_seconds": self.init_seconds,
            "seconds_per_iteration_by_phase": self.seconds_per_iteration_by_phase,
            "iterations_by_phase": self.iterations_by_phase,
            "basis": self.basis,
            "notes": list(self.notes),
            "billing": dict(self.billing) if self.billing else None,
            "node_limit": self.node_limit,
            "cpu_share": self.cpu_share,
            "cpu_cores": self.cpu_cores,
        }

    def chosen_dict(self):
        keys = ("instance_type", "nodes", "predicted_seconds", "predicted_cost", "seconds_per_iteration", "iterations")
        d = self.as_dict()
        out = {k: d[k] for k in keys}
        for k in ("predicted_seconds_interval", "predicted_cost_interval", "hourly_cost", "measured", "basis",
                  "seconds_per_iteration_by_phase", "iterations_by_phase", "init_seconds", "billing"):
            out[k] = d[k]
        return out


def build_candidates(model, catalog, types, node_counts, constraints: Constraints, type_reasons=None,
                     kept_lives=None):
    """Price and check every (type, count). Returns (candidates, excluded).

    ``type_reasons``: why a type has no usable measurement (e.g. all its probe runs failed).
    ``kept_lives``: {type: [seconds lived so far by each current node of that type, in the order
    ``plan_nodes`` keeps them]}: a candidate keeps the first of them, which pay only the time they add.
    """
    type_reasons = type_reasons or {}
    kept_lives = kept_lives or {}
    cands, excluded = [], []
    for t in types:
        entry = catalog.get(t)
        if entry is None:
            excluded.append({"instance_type": t, "reason": "not in the catalog, so it has no price"})
            continue
        if entry.price_per_hour is None:
            excluded.append({"instance_type": t, "reason": entry.price_problem or "no price in the catalog"})
            continue
        if t not in model.types():
            excluded.append({"instance_type": t, "reason": type_reasons.get(t)
                             or "no probe run measured it: cannot be predicted"})
            continue
        for n in node_counts:
            c = Candidate(t, n, entry.price_per_hour, predicted=False, measured=False,
                          node_limit=getattr(entry, "node_limit", None), cpu_share=getattr(entry, "cpu_share", None))
            try:
                pred = model.predict(t, n)
            except Exception as exc:  # Unpredictable, or any model failure for this one candidate
                c.reason = "cannot be predicted: %s" % exc
                c.measured = (t, n) in getattr(getattr(model, "m", None), "configs", {})
                cands.append(c)
                continue
            c.predicted = True
            c.measured = bool(pred.measured)
            c.predicted_seconds = float(pred.total_seconds[0])
            c.seconds_interval = [float(pred.total_seconds[1]), float(pred.total_seconds[2])]
            rule = BillingRule.of(entry)
            lives = kept_lives.get(t, ())
            c.billing = cluster_bill(n, c.predicted_seconds, constraints.setup_seconds, rule, lives)
            c.predicted_cost = cost_of(entry.price_per_hour, c.billing["billed_node_seconds"])
            c.cost_interval = [cluster_cost(n, entry.price_per_hour, s, constraints.setup_seconds, rule, lives)
                               for s in c.seconds_interval]
            c.iterations = pred.iterations_total
            c.seconds_per_iteration = pred.mean_seconds_per_iteration
            c.seconds_per_iteration_by_phase = {p: v[0] for p, v in pred.seconds_per_iteration.items()}
            c.iterations_by_phase = dict(pred.iterations)
            c.init_seconds = float(pred.init_seconds[0])
            c.basis = pred.basis
            c.notes = list(pred.notes)
            cands.append(c)
    for c in cands:
        check(c, constraints)
    return cands, excluded


def check(c: Candidate, k: Constraints):
    v = []
    if k.max_nodes is not None and c.nodes > k.max_nodes:
        v.append(("max_nodes", "%d nodes > max_nodes %d" % (c.nodes, k.max_nodes), c.nodes / k.max_nodes - 1))
    if c.node_limit is not None and c.nodes > c.node_limit:
        v.append(("node_limit", "%d nodes > node_limit %d of %s in the catalog (quota)"
                  % (c.nodes, c.node_limit, c.instance_type), c.nodes / c.node_limit - 1))
    if k.cpu_capacity is not None and c.cpu_cores is not None and c.cpu_cores > k.cpu_capacity + CPU_TOLERANCE:
        v.append(("cpu_capacity", "CPU shares %d x %g = %g cores > cpu_capacity %g cores of this machine"
                  % (c.nodes, c.cpu_share, c.cpu_cores, k.cpu_capacity),
                  c.cpu_cores / k.cpu_capacity - 1 if k.cpu_capacity > 0 else math.inf))
    if k.max_hourly_cost is not None and c.hourly_cost > k.max_hourly_cost * (1 + 1e-12):
        v.append(("max_hourly_cost", "cluster costs %s/h > max_hourly_cost %s/h"
                  % (fmt_money(c.hourly_cost), fmt_money(k.max_hourly_cost)),
                  c.hourly_cost / k.max_hourly_cost - 1 if k.max_hourly_cost > 0 else math.inf))
    if k.measured_only and not c.measured:
        v.append(("measured_only", "not probed (measured_only)", 1.0))
    if c.predicted:
        wall = c.predicted_seconds + k.setup_seconds
        if k.deadline is not None and wall > k.deadline:
            text = "predicted %s (setup included) > deadline %s" % (fmt_seconds(wall), fmt_seconds(k.deadline))
            v.append(("deadline", text, wall / k.deadline - 1 if k.deadline > 0 else math.inf))
        if k.budget is not None and c.predicted_cost > k.budget:
            v.append(("budget", "predicted %s > budget %s" % (fmt_money(c.predicted_cost), fmt_money(k.budget)),
                      c.predicted_cost / k.budget - 1 if k.budget > 0 else math.inf))
    c.violations = v
    c.feasible = c.predicted and not v
    if not c.predicted:
        pass  # reason already says why
    elif v:
        c.reason = "; ".join(item[1] for item in v)
    else:
        c.reason = "feasible"


def objective_key(c: Candidate, objective: str):
    if objective == Objective.TIME:
        return (c.predicted_seconds, c.predicted_cost, c.nodes, c.instance_type)
    return (c.predicted_cost, c.predicted_seconds, c.nodes, c.instance_type)


def pareto_front(cands):
    """Mark predicted candidates that no other predicted candidate beats on both time and cost."""
    pts = [c for c in cands if c.predicted]
    for c in pts:
        c.pareto = not any(
            (o.predicted_seconds <= c.predicted_seconds and o.predicted_cost <= c.predicted_cost)
            and (o.predicted_seconds < c.predicted_seconds or o.predicted_cost < c.predicted_cost)
            for o in pts)
    return [c for c in pts if c.pareto]


def violation_score(c: Candidate):
    if not c.predicted:
        return math.inf
    return sum(min(item[2], 1e6) for item in c.violations)


def objective_value(c: Candidate, objective: str, upper: bool = False):
    if objective == Objective.TIME:
        return c.seconds_interval[1] if upper and c.seconds_interval else c.predicted_seconds
    return c.cost_interval[1] if upper and c.cost_interval else c.predicted_cost


def rank(cands, objective, tie_tolerance=0.0):
    """Order: feasible by the objective, then infeasible by how far they miss, then unpredictable.

    Feasible candidates whose predicted objective is within ``tie_tolerance`` (relative) of the best
    are near-ties: among them the one with the lowest upper end of its 95% interval comes first, so
    a measured configuration is not given up for an extrapolated one that is only predicted to be
    marginally better.
    """
    feasible = sorted((c for c in cands if c.feasible), key=lambda c: objective_key(c, objective))
    if feasible and tie_tolerance > 0:
        best = objective_value(feasible[0], objective)
        near = [c for c in feasible if objective_value(c, objective) <= best * (1.0 + tie_tolerance)]
        rest = [c for c in feasible if c not in near]
        near.sort(key=lambda c: (objective_value(c, objective, upper=True),) + objective_key(c, objective))
        feasible = near + rest
    infeasible = sorted((c for c in cands if c.predicted and not c.feasible),
                        key=lambda c: (violation_score(c),) + objective_key(c, objective))
    unpredicted = sorted((c for c in cands if not c.predicted), key=lambda c: (c.instance_type, c.nodes))
    ordered = feasible + infeasible + unpredicted
    for i, c in enumerate(ordered, start=1):
        c.rank = i
    return ordered


def decide(ordered, objective):
    """(chosen candidate or None, failure message or None)."""
    for c in ordered:
        if c.feasible:
            c.reason = "chosen: %s within the constraints" % (
                "lowest predicted cost" if objective == Objective.COST else "shortest predicted time")
            return c, None
    closest = [c for c in ordered if c.predicted][:3]
    if not closest:
        reasons = sorted({c.reason for c in ordered})
        return None, "no candidate could be predicted: %s" % "; ".join(reasons[:4])
    parts = ["%s x%d (%s)" % (c.instance_type, c.nodes, c.reason) for c in closest]
    return None, "no configuration satisfies the constraints; closest: %s" % "; ".join(parts)


def _interval(c: Candidate, objective: str):
    iv = c.seconds_interval if objective == Objective.TIME else c.cost_interval
    value = objective_value(c, objective)
    return (iv[0], iv[1]) if iv else (value, value)


def runner_up(ordered, chosen, objective):
    """The best feasible candidate after the chosen one, whether the 95% intervals of their objective overlap,
    and, when they do, the probe that would separate them: the one of the two with the wider relative interval,
    probed at its own size (an extrapolated candidate), or probed again (a measured one: a repeated run narrows
    its between-run noise). None when there is no runner-up."""
    if chosen is None:
        return None
    other = next((c for c in ordered if c.feasible and c is not chosen), None)
    if other is None:
        return None
    (clo, chi), (olo, ohi) = _interval(chosen, objective), _interval(other, objective)
    overlap = bool(olo <= chi and clo <= ohi)
    out = {"instance_type": other.instance_type, "nodes": other.nodes, "predicted_seconds": other.predicted_seconds,
           "predicted_cost": other.predicted_cost, "measured": other.measured, "overlap": overlap,
           "separating_probe": None}
    if overlap:
        def width(c):
            lo, hi = _interval(c, objective)
            value = objective_value(c, objective)
            return (hi - lo) / value if value else math.inf
        wide = max((chosen, other), key=lambda c: (width(c), not c.measured))
        out["separating_probe"] = {
            "instance_type": wide.instance_type, "nodes": wide.nodes,
            "why": ("%s x%d is %s; its interval is the wider one (%.0f%% of its predicted %s)"
                    % (wide.instance_type, wide.nodes,
                       "measured: a repeated probe narrows its between-run noise" if wide.measured
                       else "extrapolated: a probe at that size measures it",
                       100 * width(wide), (Objective.TIME if objective == Objective.TIME else Objective.COST).value))}
    return out


# --------------------------------------------------------------------------------------------
# desired-state inventory and the start/stop/keep diff
# --------------------------------------------------------------------------------------------

GROUP = "paramount_train"
# a slot's name names its folder, tags and CLAP node: letters, digits, '.', '_' and '-', starting with a letter or digit
SLOT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NOTHING_STARTED = "Nothing was started."


def slot_name(run_name: str, instance_type: str, index: int) -> str:
    """Slot naming: ``<run_name>-<slug(instance_type)>-<index>``, index from 1, e.g.
    ``paramount-sim-medium-1``; slug lower-cases and turns every other character into '-'."""
    return "%s-%s-%d" % (slug(run_name), slug(instance_type), index)


def _slot_vars(group, source, lenient=False):
    """({slot: host variables over the group's vars}, hosts whose variables are not a mapping) of the group.
    ``lenient``: any empty value counts as no variables (the current inventory's reader), else only null."""
    gvars = group.get("vars") or {}
    if not isinstance(gvars, dict):
        raise ParamountError("%s: %s.vars must be a mapping" % (source, GROUP))
    hosts = group.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise ParamountError("%s: %s.hosts must be a mapping of slot names" % (source, GROUP))
    slots, bad = {}, []
    for name, hv in hosts.items():
        if hv is None or (lenient and not hv):
            hv = {}
        if isinstance(hv, dict):
            slots[str(name)] = {**gvars, **hv}
        else:
            bad.append(str(name))
    return slots, bad


def _instance_type(variables):
    """The slot's instance_type, None unless it is a non-empty string."""
    itype = variables.get("instance_type")
    return itype if isinstance(itype, str) and itype else None


def _rendezvous(slots):
    """The slots whose paramount_rendezvous is true (a host or group variable)."""
    return [name for name, variables in slots.items() if variables.get("paramount_rendezvous") is True]


def parse_inventory(data, source="current_inventory"):
    """Read a desired-state inventory (mapping) into ({slot: instance_type}, rendezvous slot or None)."""
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise ParamountError("%s: expected a YAML mapping with all.children.%s.hosts" % (source, GROUP))
    root = data.get("all", data) if "all" in data else data
    if root is None:
        root = {}
    if not isinstance(root, dict):
        raise ParamountError("%s: 'all' must be a mapping" % source)
    children = root.get("children") or {}
    if not isinstance(children, dict):
        raise ParamountError("%s: all.children must be a mapping" % source)
    group = children.get(GROUP)
    if group is None and GROUP in data:
        group = data[GROUP]
    if group is None:
        if children or root.get("hosts"):
            raise ParamountError("%s: no group %s under all.children" % (source, GROUP))
        return {}, None
    if not isinstance(group, dict):
        raise ParamountError("%s: group %s must be a mapping" % (source, GROUP))
    slots, bad = _slot_vars(group, source, lenient=True)
    if bad:
        raise ParamountError("%s: host %s: variables must be a mapping" % (source, bad[0]))
    types = {}
    for name, variables in slots.items():
        types[name] = _instance_type(variables)
        if types[name] is None:
            raise ParamountError("%s: host %s has no instance_type (host or group variable)" % (source, name))
    rdzv = _rendezvous(slots)
    if len(rdzv) > 1:
        raise ParamountError("%s: paramount_rendezvous is true on %d hosts (%s); exactly one is allowed"
                             % (source, len(rdzv), ", ".join(sorted(rdzv))))
    return types, (rdzv[0] if rdzv else None)


def _desired_group(data):
    """all.children.paramount_train of a desired state, None unless every level is a mapping and it has hosts."""
    node = data
    for key in ("all", "children", GROUP):
        node = node.get(key) if isinstance(node, dict) else None
    hosts = node.get("hosts") if isinstance(node, dict) else None
    return node if isinstance(hosts, dict) and hosts else None


def desired_slots(data, source, emulated=None, emulator="the backend"):
    """{slot: host variables over the group's vars} of the desired state the provision role makes real.

    Stricter than ``parse_inventory`` (a plan's current inventory): the group is under all.children with at least
    one host, every slot has an instance_type, exactly one slot has ``paramount_rendezvous: true``, every slot name
    is a ``SLOT_NAME_RE`` and, when ``emulated`` lists the types ``emulator`` (e.g. "the local backend") emulates,
    every type is one of them. Raises ParamountError with one message naming ``source`` and every bad host.
    """
    group = _desired_group(data)
    if group is None:
        raise ParamountError("%s: needs group %s under all.children with at least one host (one named slot per node, "
                             "see docs/optimize.md)." % (source, GROUP))
    slots, bad = _slot_vars(group, source)
    problems = []
    if bad:
        problems.append("the variables of host(s) %s must be a mapping (e.g. instance_type: sim.small), or empty"
                        % ", ".join(bad))
    typeless = [name for name, variables in slots.items() if _instance_type(variables) is None]
    if typeless:
        problems.append("host(s) %s have no instance_type (a host or group variable)" % ", ".join(typeless))
    rdzv = _rendezvous(slots)
    if len(rdzv) != 1:
        problems.append("paramount_rendezvous: true must be on exactly one host, it is on %s"
                        % (", ".join(rdzv) if rdzv else "none"))
    bad_names = [name for name in list(slots) + bad if not SLOT_NAME_RE.match(name)]
    if bad_names:
        problems.append("host name(s) %s may only hold letters, digits, ., _ and -" % ", ".join(bad_names))
    if emulated is not None:
        known = [str(t) for t in emulated]
        unknown = [(name, _instance_type(v)) for name, v in slots.items() if _instance_type(v) not in known + [None]]
        if unknown:
            problems.append("; ".join("host %s has instance_type %s" % item for item in unknown)
                            + "; %s emulates only %s" % (emulator, ", ".join(known)))
    if problems:
        raise ParamountError("%s: %s. %s" % (source, "; ".join(problems), NOTHING_STARTED))
    return slots


def keep_order(instance_type, current_slots, current_rdzv):
    """The current slots of a type in the order they are kept: the current rendezvous first, then by name."""
    same = sorted(s for s, t in current_slots.items() if t == instance_type)
    if current_rdzv in same:
        same.remove(current_rdzv)
        same.insert(0, current_rdzv)
    return same


def plan_nodes(instance_type, nodes, current_slots, current_rdzv, run_name="paramount"):
    """Which slots to keep, start and stop, and the rendezvous slot.

    Keep the current slots of the chosen type (the current rendezvous first, then by name) up to
    ``nodes``; stop every other current slot; start new slots named by ``slot_name`` with indexes
    not used by any current slot. The rendezvous is the kept current rendezvous, else the first
    kept slot, else the first new slot.
    """
    keep = keep_order(instance_type, current_slots, current_rdzv)[:nodes]
    stop = sorted(s for s in current_slots if s not in keep)
    used = set(current_slots)
    start = []
    index = 1
    while len(keep) + len(start) < nodes:
        name = slot_name(run_name, instance_type, index)
        if name not in used:
            start.append(name)
            used.add(name)
        index += 1
    if current_rdzv in keep:
        rdzv = current_rdzv
    elif keep:
        rdzv = keep[0]
    else:
        rdzv = start[0] if start else None
    return sorted(keep), start, stop, rdzv


def desired_inventory(instance_type, slots, rdzv):
    """The desired-state inventory of ``slots``: ``instance_type`` is the type of every slot, or a mapping
    {slot: type} (the autoscale controller's union of old and new slots while a change is made)."""
    hosts = {}
    for s in slots:
        hv = {"instance_type": instance_type[s] if isinstance(instance_type, dict) else instance_type}
        if s == rdzv:
            hv["paramount_rendezvous"] = True
        hosts[s] = hv
    return {"all": {"children": {GROUP: {"hosts": hosts}}}}
