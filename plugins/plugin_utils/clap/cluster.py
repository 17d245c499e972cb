# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The CLAP cluster document of a plan: instance template ids (``clap_template_id``, shared with the clap
backend's filters), the cluster file of a homogeneous cluster (``clap_cluster_config``) and its check against
CLAP's documented schema (``validate_clap_cluster``). Format: CLAP 0.2.3 (https://github.com/lmcad-unicamp/CLAP),
docs/clap.md and docs/optimize.md."""

from __future__ import annotations

import os

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import slug

CLAP_TEMPLATE_PREFIX = "paramount-"


def clap_template_id(instance_type: str, prefix: str = CLAP_TEMPLATE_PREFIX) -> str:
    """CLAP instance template id (a key of CLAP's ``configs/instances.yaml``) of an instance type:
    ``prefix + slug(instance_type)``, e.g. ``clap_template_id('t2.small') == 'paramount-t2-small'``,
    ``clap_template_id('sim.medium') == 'paramount-sim-medium'``. The template's ``flavor`` is the
    instance type itself."""
    return prefix + slug(instance_type)


def clap_cluster_name(run_name, instance_type, nodes):
    return "%s-%s-%dx" % (slug(run_name), slug(instance_type), nodes)


def clap_cluster_config(instance_type, nodes, run_name="paramount", setups=None, role="gan",
                        setup_action="setup-gan", template_prefix=CLAP_TEMPLATE_PREFIX):
    """A CLAP cluster file (``~/.clap/configs/clusters/*.yml``) for a homogeneous cluster.

    Node type ``main`` (1 node, the rendezvous and ``ssh_to``) plus ``workers`` (nodes - 1). With
    ``setups`` (names of setups that already exist in CLAP's cluster files, e.g. the collection's
    CLAP folder) the nodes use those; otherwise the file defines one setup that adds ``role``
    and runs its ``setup_action`` (defaults: the collection's CLAP role ``gan``, action ``setup-gan``;
    not named ``setup``, so CLAP does not run it twice).
    """
    name = clap_cluster_name(run_name, instance_type, nodes)
    # plain str: values from Ansible (-e) are str subclasses that yaml.safe_dump cannot represent
    role, setup_action = str(role), str(setup_action)
    doc = {}
    if setups:
        setup_names = [str(s) for s in setups]
    else:
        setup_name = "%s-setup" % name
        doc["setups"] = {setup_name: {"roles": [{"name": role}], "actions": [{"role": role, "action": setup_action}]}}
        setup_names = [setup_name]
    template = clap_template_id(instance_type, template_prefix)
    node_types = {"main": {"type": template, "count": 1, "min_count": 1, "setups": list(setup_names)}}
    if nodes > 1:
        node_types["workers"] = {"type": template, "count": nodes - 1, "min_count": nodes - 1,
                                 "setups": list(setup_names)}
    doc["clusters"] = {name: {"options": {"ssh_to": "main"}, "nodes": node_types}}
    return doc


def validate_clap_cluster(doc, known_setups=()):
    """Check a CLAP cluster file against CLAP's documented schema (``clap/cluster_manager.py``).
    Returns a list of problems (empty when valid)."""
    errors = []
    if not isinstance(doc, dict):
        return ["top level must be a mapping"]
    for key in doc:
        if key not in ("setups", "clusters"):
            errors.append("unknown top-level key %r (CLAP reads setups and clusters)" % key)
    setups = doc.get("setups") or {}
    if not isinstance(setups, dict):
        errors.append("setups must be a mapping")
        setups = {}
    for sname, setup in setups.items():
        if not isinstance(setup, dict):
            errors.append("setup %s must be a mapping" % sname)
            continue
        for role in setup.get("roles") or []:
            if not isinstance(role, dict) or not isinstance(role.get("name"), str) or not role["name"]:
                errors.append("setup %s: each role needs a name" % sname)
            elif "extra" in role and not isinstance(role["extra"], dict):
                errors.append("setup %s: role extra must be a mapping" % sname)
        for action in setup.get("actions") or []:
            if not isinstance(action, dict):
                errors.append("setup %s: each action must be a mapping" % sname)
            elif "role" in action:
                if not isinstance(action.get("action"), str):
                    errors.append("setup %s: a role action needs 'action'" % sname)
            elif "playbook" in action:
                if not os.path.isabs(str(action["playbook"])):
                    errors.append("setup %s: playbook must be an absolute path" % sname)
            elif "command" not in action:
                errors.append("setup %s: action must have role+action, playbook or command" % sname)
    names = set(setups) | set(known_setups)
    clusters = doc.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        errors.append("clusters must be a non-empty mapping")
        return errors
    for cname, cluster in clusters.items():
        if not isinstance(cluster, dict):
            errors.append("cluster %s must be a mapping" % cname)
            continue
        nodes = cluster.get("nodes")
        if not isinstance(nodes, dict) or not nodes:
            errors.append("cluster %s: nodes must be a non-empty mapping" % cname)
            continue
        for stage in ("before_all", "before", "after", "after_all"):
            for s in cluster.get(stage) or []:
                if s not in names:
                    errors.append("cluster %s: %s names unknown setup %s" % (cname, stage, s))
        opts = cluster.get("options") or {}
        if not isinstance(opts, dict):
            errors.append("cluster %s: options must be a mapping" % cname)
        elif "ssh_to" in opts and opts["ssh_to"] not in nodes:
            errors.append("cluster %s: options.ssh_to %r is not a node type" % (cname, opts["ssh_to"]))
        for ntype, spec in nodes.items():
            if not isinstance(spec, dict):
                errors.append("cluster %s node %s must be a mapping" % (cname, ntype))
                continue
            if not isinstance(spec.get("type"), str) or not spec["type"]:
                errors.append("cluster %s node %s: type (an instance template id) is required" % (cname, ntype))
            count = spec.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                errors.append("cluster %s node %s: count must be an integer >= 0" % (cname, ntype))
                continue
            mc = spec.get("min_count", count)
            if isinstance(mc, bool) or not isinstance(mc, int) or mc < 0:
                errors.append("cluster %s node %s: min_count must be an integer >= 0" % (cname, ntype))
            elif mc > count:
                errors.append("cluster %s node %s: min_count %d > count %d (NodeSizeError)" % (cname, ntype, mc, count))
            for s in spec.get("setups") or []:
                if s not in names:
                    errors.append("cluster %s node %s: unknown setup %s (InvalidSetupError)" % (cname, ntype, s))
    return errors
