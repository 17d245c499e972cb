# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The controller's one settings document (JSON or YAML), written by ``playbooks/autoscale.yml``: each setting is
the playbook's variable without its ``paramount_autoscale_`` or ``paramount_`` prefix.

Checked by an argument spec the way Ansible checks a task's arguments (types, choices, required keys), then by
range; every error names the setting. ``plan_options`` are options of the optimize plugin, checked by its own
argument spec (``paramount_args.ARGUMENT_SPEC``).
"""

from __future__ import annotations

import types

import yaml

from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.actions import PLAYBOOK_TIMEOUT_SECONDS
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.policy import (
    OBJECTIVES,
    AutoscaleError,
    Guardrails,
    Policy,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.replan import (
    check_arguments,
    check_plan_options,
)

DEFAULT_INTERVAL_SECONDS = 20.0
DEFAULT_MAX_SECONDS = 3600.0
DEFAULT_MAX_ROUNDS = 1000
DEFAULT_JOIN_TIMEOUT_SECONDS = 300.0
DEFAULT_STORE_PORT = 29400
MAX_PORT = 65535

SETTINGS_SPEC = {
    "run": {"type": "str", "required": True},
    "backend": {"type": "str", "required": True},
    "results_dir": {"type": "path", "required": True},
    "local_root": {"type": "path", "required": True},  # where provision writes runs/<run>/
    "extra_vars_file": {"type": "path", "required": True},  # variables every playbook gets (-e @file)
    "start_inventory": {"type": "path", "required": True},  # the desired-state inventory training starts on
    "catalog": {"type": "path", "required": True},
    "probe_dir": {"type": "path"},  # probe logs: types not running now are planned from them
    "objective": {"type": "str", "default": Policy.objective, "choices": list(OBJECTIVES)},
    "interval": {"type": "float", "default": DEFAULT_INTERVAL_SECONDS},
    "max_seconds": {"type": "float", "default": DEFAULT_MAX_SECONDS},
    "max_rounds": {"type": "int", "default": DEFAULT_MAX_ROUNDS},
    "join_timeout": {"type": "float", "default": DEFAULT_JOIN_TIMEOUT_SECONDS},
    "playbook_timeout": {"type": "float", "default": float(PLAYBOOK_TIMEOUT_SECONDS)},
    "threshold": {"type": "float", "default": Policy.threshold},
    "margin": {"type": "float", "default": Policy.margin},
    "switch_seconds": {"type": "float", "default": Policy.switch_seconds},
    "min_iterations": {"type": "int", "default": Policy.min_iterations},
    "min_nodes": {"type": "int", "default": Guardrails.min_nodes},
    "max_nodes": {"type": "int", "default": Guardrails.max_nodes},
    "max_hourly_cost": {"type": "float"},
    "cooldown": {"type": "float", "default": Guardrails.cooldown_seconds},
    "checkpoint_interval": {"type": "int"},
    "no_start": {"type": "bool", "default": False},  # training already runs: only control it
    "store_host": {"type": "str"},  # host the rendezvous store (this process's child) binds
    "store_port": {"type": "int", "default": DEFAULT_STORE_PORT},
    "plan_within_guardrails": {"type": "bool", "default": True},  # the guardrails are the planner's constraints
    "plan_options": {"type": "dict", "default": {}},
}

# name: (lowest value, whether the lowest is allowed)
_LOWER_BOUNDS = {
    "interval": (0, False),
    "max_seconds": (0, False),
    "max_rounds": (1, True),
    "join_timeout": (0, False),
    "playbook_timeout": (0, False),
    "checkpoint_interval": (1, True),
    "cooldown": (0, True),
    "store_port": (1, True),
}


def check_settings(doc, source="settings"):
    """The settings of a document (a mapping), defaults filled in, as an object with one attribute per setting;
    raises AutoscaleError naming the source and the setting."""
    if not isinstance(doc, dict):
        raise AutoscaleError("%s: expected a mapping of settings, got %s" % (source, type(doc).__name__))
    given = check_arguments({k: v for k, v in doc.items() if v is not None}, SETTINGS_SPEC, source)
    values = {name: spec.get("default") for name, spec in SETTINGS_SPEC.items()}
    values.update(given)
    for name, (low, inclusive) in _LOWER_BOUNDS.items():
        value = values[name]
        if value is not None and (value < low or (value == low and not inclusive)):
            raise AutoscaleError("%s: %s must be %s %s, got %s"
                                 % (source, name, ">=" if inclusive else ">", low, value))
    if values["store_port"] > MAX_PORT:
        raise AutoscaleError("%s: store_port must be <= %d, got %s" % (source, MAX_PORT, values["store_port"]))
    settings = types.SimpleNamespace(**values)
    try:
        settings.guardrails = Guardrails(settings.min_nodes, settings.max_nodes, settings.max_hourly_cost,
                                         settings.cooldown).validate()
        settings.policy = Policy(settings.objective, settings.threshold, settings.margin, settings.switch_seconds,
                                 settings.min_iterations).validate()
    except AutoscaleError as exc:
        raise AutoscaleError("%s: %s" % (source, exc)) from None
    settings.plan_options = check_plan_options(settings.plan_options, "%s: plan_options" % source)
    return settings


def load_settings(path):
    """check_settings of a JSON or YAML file."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except OSError as exc:
        raise AutoscaleError("cannot read the settings %s: %s" % (path, exc)) from None
    except yaml.YAMLError as exc:
        raise AutoscaleError("the settings %s are not JSON or YAML: %s" % (path, str(exc).splitlines()[0])) from None
    return check_settings(doc, "settings %s" % path)
