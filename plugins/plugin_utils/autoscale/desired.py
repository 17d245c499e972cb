# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The desired state autoscale keeps, through the planner's functions: slot names and which slots stay
(``decision.inventory.plan_nodes``), the inventory document (``desired_inventory``), reading one
(``paramount_plan.read_current_inventory``) and the catalog's prices (``paramount_catalog.load_catalog``)."""

from __future__ import annotations

import json
import os

from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import inventory
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import load_catalog
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import read_current_inventory
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.policy import AutoscaleError


def target_slots(instance_type, nodes, desired, run):
    """Slots for nodes x instance_type: the desired slots of that type are kept (their agents keep running),
    new ones get the planner's slot names not used by a desired slot."""
    keep, start, _stop, _rdzv = inventory.plan_nodes(instance_type, nodes, desired, None, run)
    return {slot: instance_type for slot in keep + start}


def inventory_doc(slots):
    """Desired-state inventory of {slot: type} (docs/optimize.md); the rendezvous flag is on the first slot
    (under elastic training the store runs apart, so it only satisfies the format)."""
    ordered = sorted(slots)
    return inventory.desired_inventory(dict(slots), ordered, ordered[0] if ordered else None)


def read_inventory_slots(path):
    """{slot: instance_type} of a desired-state inventory file (YAML or JSON)."""
    if not os.path.isfile(path):
        raise AutoscaleError("the inventory %s does not exist" % path)
    try:
        slots, _rdzv = read_current_inventory(path)
    except ParamountError as exc:
        raise AutoscaleError(str(exc)) from None
    if not slots:
        raise AutoscaleError("%s: group %s has no hosts" % (path, inventory.GROUP))
    return slots


def read_prices(catalog_path):
    """{instance_type: price_per_hour} of a catalog; a type whose row has no usable price is left out (a
    desired type without one is refused by the caller)."""
    try:
        catalog = load_catalog(catalog_path)
    except ParamountError as exc:
        raise AutoscaleError(str(exc)) from None  # names the file, line and column
    return {t: e.price_per_hour for t, e in catalog.items() if e.price_per_hour is not None}


def write_json(path, doc):
    """Write atomically: a reader (a playbook the controller started, a person) never sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
