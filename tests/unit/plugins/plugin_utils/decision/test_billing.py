"""Decision, billing: the billing rule of a type, billed node-seconds and the one conversion into money."""
from __future__ import annotations

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import billing


def test_billing_is_per_second_with_a_minute_minimum():
    assert billing.billed_seconds(10) == 60
    assert billing.billed_seconds(59.2, 0.5) == 60
    assert billing.billed_seconds(100.2) == 101
    assert billing.billed_seconds(100, 30) == 130
    assert billing.cluster_cost(2, 3.6, 3600) == pytest.approx(7.2)


def test_billing_rule_rounds_the_whole_life_and_applies_the_minimum_once():
    rule = billing.BillingRule(1.0, 60.0)
    assert rule.billed(10) == 60 and rule.billed(100.2) == 101
    assert rule.added(0.0, 10) == 60  # a new node pays the minimum
    assert rule.added(90.0, 10) == 10  # a node past the minimum pays what it adds
    assert rule.added(45.0, 30) == 15  # 45 s lived (60 billed), 75 s in all
    hourly = billing.BillingRule(3600.0, 0.0)
    assert hourly.billed(1) == 3600 and hourly.billed(3601) == 7200 and hourly.billed(0) == 0
    prorata = billing.BillingRule(1.0, 0.0)
    assert prorata.billed(12.3) == 13 and prorata.added(0.0, 12.3) == 13
    bill = billing.cluster_bill(3, 20.0, 10.0, rule, kept_lives=[100.0, 200.0, 300.0, 400.0])
    assert bill["new_nodes"] == 0 and bill["kept_nodes"] == 3 and bill["billed_node_seconds"] == 90
    bill = billing.cluster_bill(3, 20.0, 10.0, rule, kept_lives=[100.0])
    assert (bill["new_nodes"], bill["kept_nodes"], bill["billed_node_seconds"]) == (2, 1, 2 * 60 + 30)
    assert billing.cluster_cost(3, 3.6, 20.0, 10.0, rule, [100.0]) == pytest.approx(3.6 * 150 / 3600)


def test_a_plans_billing_record_gives_back_its_rule_and_money_is_one_conversion():
    """The ledger and the timeline bill a plan's chosen cluster by the rule plan.json states (``from_dict``) and
    turn node-seconds into money the plan's way (``cost_of``)."""
    rule = billing.BillingRule(10.0, 120.0)
    assert billing.BillingRule.from_dict(billing.cluster_bill(2, 30.0, 0.0, rule)) == rule
    assert billing.BillingRule.from_dict({"billed_node_seconds": 60.0}) is None
    assert billing.cost_of(3.6, 100.0) == pytest.approx(0.1)
    assert billing.cluster_cost(2, 3.6, 30.0, 0.0, rule) == billing.cost_of(3.6, 240.0)
