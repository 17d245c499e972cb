# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Decision stage, billing: how a provider bills a node (``BillingRule``, the catalog's increment and minimum per
type) and the one conversion of node-seconds into money (``cost_of``). The plan prices its candidates with it, the
cost ledger (playbooks/files/paramount_ledger.py) bills the trained job with it and the autoscale timeline bills
its formations with it, so the three agree. Stdlib only."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
