# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Argument spec of paramount.cluster.optimize (shared by the action plugin and the tests that keep
plugins/modules/optimize.py's DOCUMENTATION in step). No third-party imports."""

from __future__ import annotations

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import OBJECTIVES, Objective

ARGUMENT_SPEC = {
    "results_dir": {"type": "path", "required": True},
    "catalog": {"type": "path"},
    "objective": {"type": "str", "default": Objective.COST.value, "choices": list(OBJECTIVES)},
    "deadline": {"type": "float"},
    "budget": {"type": "float"},
    "instance_types": {"type": "list", "elements": "str"},
    "node_counts": {"type": "list", "elements": "int"},
    "max_nodes": {"type": "int"},
    "max_hourly_cost": {"type": "float"},
    "epochs": {"type": "int"},
    "measured_only": {"type": "bool", "default": False},
    "setup_seconds": {"type": "float", "default": 0.0},
    "output_dir": {"type": "path"},
    "current_inventory": {"type": "raw"},
    "ranks_per_node": {"type": "int"},
    "run_name": {"type": "str", "default": "paramount"},
    "warmup_drop": {"type": "int", "default": 1},
    "plots": {"type": "bool", "default": True},
    "clap_setups": {"type": "list", "elements": "str"},
    "clap_role": {"type": "str", "default": "gan"},
    "clap_setup_action": {"type": "str", "default": "setup-gan"},
    "bootstrap": {"type": "int", "default": 200},
    "tie_tolerance": {"type": "float", "default": 0.0},
    "cpu_capacity": {"type": "float"},
}

DEFAULT_MAX_NODES = 8
