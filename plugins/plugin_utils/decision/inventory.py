# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Decision stage, the desired-state inventory contract: slot names, reading an inventory (``parse_inventory``),
which current slots a plan keeps, starts and stops (``keep_order``, ``plan_nodes``) and the inventory document it
writes (``desired_inventory``). The format is described in docs/optimize.md; the plan, the autoscale controller
and the provision role read and write it through these functions."""

from __future__ import annotations

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError, slug

GROUP = "paramount_train"


def slot_name(run_name: str, instance_type: str, index: int) -> str:
    """Slot naming: ``<run_name>-<slug(instance_type)>-<index>``, index from 1, e.g.
    ``paramount-sim-medium-1``; slug lower-cases and turns every other character into '-'."""
    return "%s-%s-%d" % (slug(run_name), slug(instance_type), index)


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
    gvars = group.get("vars") or {}
    if not isinstance(gvars, dict):
        raise ParamountError("%s: %s.vars must be a mapping" % (source, GROUP))
    hosts = group.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise ParamountError("%s: %s.hosts must be a mapping of slot names" % (source, GROUP))
    slots, rdzv = {}, []
    for name, hv in hosts.items():
        hv = hv or {}
        if not isinstance(hv, dict):
            raise ParamountError("%s: host %s: variables must be a mapping" % (source, name))
        itype = hv.get("instance_type", gvars.get("instance_type"))
        if not isinstance(itype, str) or not itype:
            raise ParamountError("%s: host %s has no instance_type (host or group variable)" % (source, name))
        slots[str(name)] = itype
        if hv.get("paramount_rendezvous", gvars.get("paramount_rendezvous")) is True:
            rdzv.append(str(name))
    if len(rdzv) > 1:
        raise ParamountError("%s: paramount_rendezvous is true on %d hosts (%s); exactly one is allowed"
                             % (source, len(rdzv), ", ".join(sorted(rdzv))))
    return slots, (rdzv[0] if rdzv else None)


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
