# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The decision of one round: triggers, guardrails, cooldown. Pure: unit-tested without a cluster.

The guardrails a plan passes are the planner's constraints (``decision.candidates.check``: max_nodes,
max_hourly_cost), so a plan and an operator's request are refused for the same reasons with the same words.
"""

from __future__ import annotations

import dataclasses
import math

from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import candidates
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import ARGUMENT_SPEC, DEFAULT_MAX_NODES
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import TRAINING_PHASES, ParamountError

OBJECTIVES = tuple(ARGUMENT_SPEC["objective"]["choices"])
# the phase a running training spends its remaining iterations in: the last one of the log contract
TRAINING_PHASE = TRAINING_PHASES[-1]
# decisions: wait, hold, replace, restore, refuse, finish; what acting did: changed, failed
QUIET_ACTIONS = ("wait", "hold")


class AutoscaleError(ParamountError):
    """A bad setting or input, or an action that failed: the message names it."""


@dataclasses.dataclass
class Guardrails:
    min_nodes: int = 1
    max_nodes: int = DEFAULT_MAX_NODES
    max_hourly_cost: float = None
    cooldown_seconds: float = 120.0

    def validate(self):
        if self.min_nodes < 1:
            raise AutoscaleError("min_nodes must be at least 1, got %s" % self.min_nodes)
        if self.max_nodes < self.min_nodes:
            raise AutoscaleError("max_nodes (%s) is below min_nodes (%s)" % (self.max_nodes, self.min_nodes))
        if self.max_hourly_cost is not None and self.max_hourly_cost <= 0:
            raise AutoscaleError("max_hourly_cost must be positive, got %s" % self.max_hourly_cost)
        if self.cooldown_seconds < 0:
            raise AutoscaleError("cooldown_seconds must be >= 0, got %s" % self.cooldown_seconds)
        return self

    def constraints(self):
        """The guardrails as the planner's constraints."""
        return candidates.Constraints(max_nodes=self.max_nodes, max_hourly_cost=self.max_hourly_cost)

    def plan_options(self):
        """The guardrails as options of the optimize plugin: it plans within them."""
        options = {"max_nodes": self.max_nodes, "node_counts": list(range(self.min_nodes, self.max_nodes + 1))}
        if self.max_hourly_cost is not None:
            options["max_hourly_cost"] = self.max_hourly_cost
        return options

    def violations(self, nodes, hourly_cost):
        """Why nodes at hourly_cost break the guardrails (the planner's check; min_nodes is autoscale's own)."""
        out = []
        if nodes < self.min_nodes:
            out.append("%d node(s) < min_nodes %d" % (nodes, self.min_nodes))
        cluster = candidates.Candidate("cluster", nodes, hourly_cost / max(1, nodes), predicted=False, measured=False)
        candidates.check(cluster, self.constraints())
        return out + [text for _name, text, _excess in cluster.violations]


@dataclasses.dataclass
class Policy:
    objective: str = "cost"
    threshold: float = 0.25  # measured seconds per iteration off the prediction by more than this share
    margin: float = 0.10  # another configuration better by more than this share of the remaining objective
    switch_seconds: float = 60.0  # what a change costs: joining, a restart, torch start-up
    min_iterations: int = 5  # steady iterations of a formation before it is judged

    def validate(self):
        if self.objective not in OBJECTIVES:
            raise AutoscaleError("objective must be %s, got %r" % (" or ".join(OBJECTIVES), self.objective))
        for name in ("threshold", "margin", "switch_seconds"):
            if getattr(self, name) < 0:
                raise AutoscaleError("%s must be >= 0, got %s" % (name, getattr(self, name)))
        if self.min_iterations < 1:
            raise AutoscaleError("min_iterations must be >= 1, got %s" % self.min_iterations)
        return self


@dataclasses.dataclass
class Decision:
    action: str
    reason: str
    target: dict = None  # {"instance_type", "nodes", "seconds_per_iteration", ...}
    figures: dict = dataclasses.field(default_factory=dict)

    def as_record(self, now):
        return {"time": now, "action": self.action, "reason": self.reason, "target": self.target,
                "measured": self.figures}


def _remaining(seconds_per_iteration, nodes, ranks_per_node, local_batch, remaining_samples, hourly):
    iterations = math.ceil(remaining_samples / float(max(1, nodes * ranks_per_node * local_batch)))
    seconds = iterations * seconds_per_iteration
    return seconds, hourly * seconds / 3600.0


def candidate_spi(candidate, phase=TRAINING_PHASE):
    by_phase = candidate.get("seconds_per_iteration_by_phase") or {}
    value = by_phase.get(phase)
    if value is None:
        value = candidate.get("seconds_per_iteration")
    return float(value) if value is not None else None


def decide(state, plan, desired, prices, guardrails, policy, now, last_change=None, expected=None,
           lost=(), request=None):
    """One round's decision.

    state: LiveState; plan: the plan of this round (or None); desired: {slot: type} the controller keeps;
    prices: {type: price per hour}; expected: the prediction acted on last ({"instance_type", "nodes",
    "seconds_per_iteration"}) or None; lost: slots of ``desired`` that no longer run an agent;
    request: an operator's {"instance_type", "nodes"} (checked against the guardrails like any plan).
    """
    form = state.current
    figures = {"samples_seen": state.samples_seen, "total_samples": state.total_samples,
               "nodes": dict(sorted(form.hosts.items())) if form else {}}
    if state.completed:
        return Decision("finish", "training completed (%d of %d samples)" % (state.samples_seen, state.total_samples),
                        figures=figures)
    if lost:
        return Decision("restore", "node(s) %s of the plan no longer run an agent: start them again (%d wanted)"
                        % (", ".join(sorted(lost)), len(desired)),
                        target=_target_of(desired, prices), figures=figures)
    if form is None:
        return Decision("wait", "no formation has logged yet", figures=figures)
    # the plan predicts the phase the remaining iterations run in: the formation is measured in that phase only
    spi = form.seconds_per_iteration(TRAINING_PHASE)
    steady = form.steady_iterations(TRAINING_PHASE)
    figures.update(seconds_per_iteration=spi, world_size=form.world_size,
                   hourly_cost=round(form.hourly_cost(prices), 6),
                   steady_iterations=steady, phase=TRAINING_PHASE)
    if form.ended:
        statuses = sorted({str(r.get("status")) for r in form.ended.values()})
        return Decision("wait", "the running group ended (%s): its agents re-form it" % ", ".join(statuses),
                        figures=figures)
    if set(form.hosts) != set(desired):
        return Decision("wait", "the group is re-forming (running %s, wanted %s)"
                        % (",".join(sorted(form.hosts)), ",".join(sorted(desired))), figures=figures)
    if spi is None or steady < policy.min_iterations:
        return Decision("wait", "measuring: %d steady %s iteration(s) of this formation, %d needed"
                        % (steady, TRAINING_PHASE, policy.min_iterations), figures=figures)
    ranks_per_node = max(1, form.world_size // max(1, len(form.hosts)))
    cur_seconds, cur_cost = _remaining(spi, len(form.hosts), ranks_per_node, form.local_batch,
                                       state.remaining_samples, form.hourly_cost(prices))
    figures.update(remaining_seconds=round(cur_seconds, 3), remaining_cost=round(cur_cost, 6))
    drift = None
    if expected and expected.get("seconds_per_iteration"):
        drift = spi / float(expected["seconds_per_iteration"]) - 1.0
        figures["drift"] = round(drift, 4)

    if request:
        target = _target_from(request, prices, plan)
        source = "requested %s x %d" % (target["instance_type"], target["nodes"])
    elif plan and plan.get("chosen"):
        target = _target_from(plan["chosen"], prices, plan)
        source = "plan %s x %d" % (target["instance_type"], target["nodes"])
    else:
        why = (plan or {}).get("message") or "no plan this round"
        return Decision("hold", "keep the current cluster: %s" % why, figures=figures)

    problems = guardrails.violations(target["nodes"], target["hourly_cost"])
    if problems:
        return Decision("refuse", "%s refused by the guardrails: %s; nothing changes"
                        % (source, "; ".join(problems)), target=target, figures=figures)
    current_type = form.homogeneous()
    if current_type == target["instance_type"] and len(form.hosts) == target["nodes"]:
        if drift is not None and abs(drift) > policy.threshold:
            why = ("measured %.3f s/iteration is %+.0f%% off the prediction %.3f s, but the %s still chooses the "
                   "running cluster" % (spi, 100 * drift, expected["seconds_per_iteration"], source))
            return Decision("hold", why, target=target, figures=figures)
        return Decision("hold", "the running cluster is the %s" % source, target=target, figures=figures)
    if target.get("seconds_per_iteration") is None:
        return Decision("hold", "%s has no predicted seconds per iteration" % source, target=target, figures=figures)
    new_seconds, new_cost = _remaining(target["seconds_per_iteration"], target["nodes"], ranks_per_node,
                                       form.local_batch, state.remaining_samples, target["hourly_cost"])
    # the change itself: the new nodes' start-up is billed, the old nodes run meanwhile
    new_seconds += policy.switch_seconds
    new_cost += (target["hourly_cost"] + form.hourly_cost(prices)) * policy.switch_seconds / 3600.0
    current_value = cur_cost if policy.objective == "cost" else cur_seconds
    new_value = new_cost if policy.objective == "cost" else new_seconds
    gain = 1.0 - new_value / current_value if current_value > 0 else 0.0
    figures.update(target_remaining_seconds=round(new_seconds, 3), target_remaining_cost=round(new_cost, 6),
                   gain=round(gain, 4))
    unit = "cost" if policy.objective == "cost" else "time"
    if last_change is not None and now - last_change < guardrails.cooldown_seconds:
        left = guardrails.cooldown_seconds - (now - last_change)
        why = ("%s would save %.0f%% of the remaining %s, but the cooldown of %.0f s since the last change has "
               "%.0f s left" % (source, 100 * gain, unit, guardrails.cooldown_seconds, left))
        return Decision("hold", why, target=target, figures=figures)
    drifted = drift is not None and abs(drift) > policy.threshold
    if gain > policy.margin or (drifted and gain > 0):
        why = ("saves %.0f%% of the remaining %s (margin %.0f%%)" % (100 * gain, unit, 100 * policy.margin)
               if gain > policy.margin else
               "measured %.3f s/iteration is %+.0f%% off the prediction and it saves %.0f%% of the remaining %s"
               % (spi, 100 * drift, 100 * gain, unit))
        return Decision("replace", "%s: %s" % (source, why), target=target, figures=figures)
    if gain <= 0:
        return Decision("hold", "%s would cost %.0f%% more of the remaining %s than the running cluster"
                        % (source, -100 * gain, unit), target=target, figures=figures)
    return Decision("hold", "%s would save only %.1f%% of the remaining %s (margin %.0f%%)"
                    % (source, 100 * gain, unit, 100 * policy.margin), target=target, figures=figures)


def _target_of(desired, prices):
    types = sorted(set(desired.values()))
    return {"instance_type": types[0] if len(types) == 1 else ",".join(types), "nodes": len(desired),
            "hourly_cost": sum(float(prices.get(t, 0.0)) for t in desired.values())}


def _target_from(choice, prices, plan):
    itype = str(choice.get("instance_type"))
    nodes = int(choice.get("nodes"))
    if nodes < 1:
        raise AutoscaleError("a plan or request for %s asks for %d nodes" % (itype, nodes))
    price = prices.get(itype)
    if price is None and choice.get("hourly_cost") is not None:
        price = float(choice["hourly_cost"]) / nodes
    target = {"instance_type": itype, "nodes": nodes, "hourly_cost": round(nodes * float(price or 0.0), 6)}
    match = choice
    if "seconds_per_iteration" not in choice and plan:
        match = next((c for c in plan.get("candidates") or []
                      if c.get("instance_type") == itype and int(c.get("nodes", 0)) == nodes), {})
    target["seconds_per_iteration"] = candidate_spi(match) if match else None
    if match and match.get("predicted_seconds") is not None:
        target["predicted_seconds"] = match.get("predicted_seconds")
    return target
