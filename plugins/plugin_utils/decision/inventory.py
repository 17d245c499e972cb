# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Decision stage, the desired-state inventory contract: slot names, reading an inventory (``parse_inventory``),
which current slots a plan keeps, starts and stops (``keep_order``, ``plan_nodes``) and the inventory document it
writes (``desired_inventory``). The format is described in docs/optimize.md; the plan, the autoscale controller
and the provision role read and write it through these functions."""

from __future__ import annotations

import re

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError, slug

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
