"""Filter paramount.cluster.plan_settings_problems: the provision role's check of paramount_objective and
paramount_plan_options by the Objective enum and the optimize plugin's own argument spec
(paramount_args.plan_settings_problems); every problem a sentence naming the variable, '' when there is none."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.paramount.cluster.plugins.filter import paramount_settings as f
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import plan_settings_problems
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import OBJECTIVES
from tests.role_specs import role_options

REPO = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("objective", [None] + list(OBJECTIVES))
@pytest.mark.parametrize("options", [None, {}, {"max_nodes": 3, "node_counts": [1, 2], "deadline": 60.5,
                                                "plots": False, "objective": "time"},
                                     {"max_nodes": "3", "node_counts": ["2"]}, {"unknown_option": 1},
                                     {"max_nodes": None}])
def test_good_settings_have_no_problem(objective, options):
    assert f.plan_settings_problems_text(objective, options) == ""


def test_the_objective_comes_from_the_enum():
    assert plan_settings_problems("cheapest") == ["paramount_objective must be cost or time, got cheapest."]
    assert " or ".join(OBJECTIVES) == "cost or time"


@pytest.mark.parametrize("options,problem", [
    ({"max_nodes": -2}, "paramount_plan_options.max_nodes must be an integer >= 1, got -2."),
    ({"max_nodes": 0}, "paramount_plan_options.max_nodes must be an integer >= 1, got 0."),
    ({"max_nodes": "many"}, "paramount_plan_options.max_nodes must be an integer >= 1, got many."),
    ({"max_nodes": True}, "paramount_plan_options.max_nodes must be an integer >= 1, got True."),
    ({"node_counts": [2, -1]}, "paramount_plan_options.node_counts must be a non-empty list of integers >= 1, got [2, -1]."),
    ({"node_counts": []}, "paramount_plan_options.node_counts must be a non-empty list of integers >= 1, got []."),
    ({"node_counts": ["x"]}, "paramount_plan_options.node_counts must be a non-empty list of integers >= 1, got ['x']."),
    ([1, 2], "paramount_plan_options must be a mapping of paramount.cluster.optimize options, got [1, 2]."),
    ("max_nodes=2", "paramount_plan_options must be a mapping of paramount.cluster.optimize options, got max_nodes=2."),
])
def test_each_bad_option_is_named_with_its_value(options, problem):
    assert plan_settings_problems(None, options) == [problem]


def test_other_options_are_checked_by_the_plugins_argument_spec():
    problems = plan_settings_problems(None, {"deadline": "soon", "objective": "cheapest", "plots": "maybe"})
    assert len(problems) == 3
    assert problems[0].startswith("paramount_plan_options.deadline: ") and "float" in problems[0]
    assert problems[1].startswith("paramount_plan_options.objective: ") and "cost, time" in problems[1]
    assert problems[2].startswith("paramount_plan_options.plots: ") and "bool" in problems[2]


def test_every_problem_is_in_the_one_message():
    msg = f.plan_settings_problems_text("cheapest", {"max_nodes": -2, "node_counts": [0]})
    assert msg == ("paramount_objective must be cost or time, got cheapest. "
                   "paramount_plan_options.max_nodes must be an integer >= 1, got -2. "
                   "paramount_plan_options.node_counts must be a non-empty list of integers >= 1, got [0].")


def test_the_filter_is_registered_and_documented():
    assert f.FilterModule().filters() == {"plan_settings_problems": f.plan_settings_problems_text}
    doc = yaml.safe_load((REPO / "plugins" / "filter" / "plan_settings_problems.yml").read_text(encoding="utf-8"))
    assert doc["DOCUMENTATION"]["name"] == "plan_settings_problems"
    assert set(doc["DOCUMENTATION"]["options"]) == {"_input", "options"}


def test_the_roles_argument_spec_offers_the_enums_objectives():
    """meta/argument_specs.yml cannot import the enum: its choices are kept equal to it here."""
    assert role_options("provision")["paramount_objective"]["choices"] == list(OBJECTIVES)
