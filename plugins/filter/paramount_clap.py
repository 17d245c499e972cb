# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Filters of the provision role's clap backend: CLAP template ids, parsing of ``clapp``'s output (which must be
read, since clapp exits 0 when a playbook fails) and the reconciliation of a desired-state inventory with the
run's CLAP nodes. Formats: CLAP 0.2.3 (https://github.com/lmcad-unicamp/CLAP), docs/clap.md."""

from __future__ import annotations

import json
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import slug
from ansible_collections.paramount.cluster.plugins.plugin_utils.clap.cluster import (
    CLAP_TEMPLATE_PREFIX,
    clap_template_id as _clap_template_id,
)

CLUSTER_TAG = ".cluster:"
RUN_TAG = "paramount_run"
SLOT_TAG = "paramount_slot"
NOT_KEEPABLE = ("paused", "stopped", "unreachable")
PLACEHOLDER = "REPLACE_ME"

_LISTED_RE = re.compile(r"^Listed (\d+) nodes$", re.M)
_START_TYPE_RE = re.compile(r"^\* (\d+) nodes of type (\S+): ?(.*)$", re.M)
_GROW_TYPE_RE = re.compile(r"^Started (\d+) of type (\S+): ?(.*)$", re.M)
_CREATED_RE = re.compile(r"^Cluster (cluster-[0-9a-f]+) successfully created$", re.M)
_CLUSTER_LINE_RE = re.compile(r"^\* Cluster: (\S+), nickname: (.*), configuration: (.*), creation time: (.*)$", re.M)
_ALIVE_RE = re.compile(r"^([0-9a-f]{32}): (alive|not alive)$", re.M)
_STOPPED_RE = re.compile(r"^Stopped: ([0-9a-f]{32})$", re.M)


def clap_template_id(instance_type, prefix=CLAP_TEMPLATE_PREFIX):
    """The CLAP instance template id of an instance type (``clap.cluster.clap_template_id`` of plugin_utils)."""
    return _clap_template_id(str(instance_type), prefix)


def clap_cluster_name(run, prefix="paramount-run-"):
    """Name of the CLAP cluster template the clap backend writes for a run."""
    return prefix + slug(run)


def clap_nodes(stdout):
    """Node records (dicts) printed by ``clapp node list -d`` (one indented JSON object per node, then
    ``Listed N nodes``)."""
    text = str(stdout)
    listed = _LISTED_RE.findall(text)
    if not listed:
        raise AnsibleFilterError("clapp node list printed no 'Listed N nodes' line: %s" % _tail(text))
    decoder = json.JSONDecoder()
    nodes, pos = [], 0
    for match in re.finditer(r"^\{", text, re.M):
        if match.start() < pos:
            continue
        try:
            obj, pos = decoder.raw_decode(text, match.start())
        except ValueError as exc:
            raise AnsibleFilterError("clapp node list -d printed a record that is not JSON (%s)" % exc) from None
        if isinstance(obj, dict) and "node_id" in obj:
            nodes.append(obj)
    if len(nodes) != int(listed[-1]):
        raise AnsibleFilterError("clapp node list -d listed %s nodes but printed %d records" % (listed[-1], len(nodes)))
    return nodes


def clap_started(stdout):
    """{cluster node type: [node ids]} from ``clapp cluster start`` (``* N nodes of type T: a,b``) or ``clapp cluster
    grow`` (``Started N of type T: a, b``) output, plus ``cluster_id`` when a cluster was created."""
    text = str(stdout)
    out = {}
    for regex in (_START_TYPE_RE, _GROW_TYPE_RE):
        for count, node_type, ids in regex.findall(text):
            found = [i for i in re.split(r"[,\s]+", ids.strip()) if i]
            if len(found) != int(count):
                raise AnsibleFilterError("clapp printed %s nodes of type %s but %d ids" % (count, node_type, len(found)))
            out.setdefault(node_type, []).extend(found)
    created = _CREATED_RE.findall(text)
    return {"nodes": out, "cluster_id": created[-1] if created else ""}


def clap_clusters(stdout):
    """[{cluster_id, nickname, configuration}] from ``clapp cluster list``."""
    return [{"cluster_id": c, "nickname": n, "configuration": cfg}
            for c, n, cfg, _created in _CLUSTER_LINE_RE.findall(str(stdout))]


def clap_alive(stdout):
    """{node id: bool} from ``clapp node alive``."""
    return {nid: state == "alive" for nid, state in _ALIVE_RE.findall(str(stdout))}


def clap_stopped(stdout):
    """Node ids printed as ``Stopped: <id>`` by ``clapp node stop``."""
    return _STOPPED_RE.findall(str(stdout))


def _tail(text, lines=15):
    return "\n".join(str(text).strip().splitlines()[-lines:])


_FAILURE_LINE_RE = re.compile(r"^(?:fatal: \[|failed: \[|\[ERROR\]: |ERROR! |\S.* clap\.\S+\[\d+\] ERROR )")
_TASK_LINE_RE = re.compile(r"^TASK \[(.*)\] \**$")


def clap_tail(stdout, stderr="", lines=15):
    """What went wrong in a clapp call, for error messages: when its output holds Ansible failures (``fatal: [..]``,
    ``[ERROR]: ..``, the task they happened in) or CLAP's error log lines, those (at most ``lines``, the last ones
    kept); otherwise the last ``lines`` lines of stdout and stderr. A playbook's output ends with its recap, which
    says nothing about why it failed."""
    text = "\n".join(str(x) for x in (stdout, stderr) if x)
    found, task = [], ""
    for line in text.splitlines():
        match = _TASK_LINE_RE.match(line)
        if match:
            task = "in task [%s]:" % match.group(1)
        elif _FAILURE_LINE_RE.match(line):
            if task and task not in found:
                found.append(task)
            if line.strip() not in found:
                found.append(line.strip())
    if found:
        return "\n".join(found[-int(lines):])
    return _tail(text, int(lines))


def _cluster_of(node):
    for key, value in sorted((node.get("tags") or {}).items()):
        if key.startswith(CLUSTER_TAG):
            return key[len(CLUSTER_TAG):], str(value).split(",")
    return "", []


def _flavor(node):
    return (((node.get("configuration") or {}).get("instance") or {}).get("flavor"))


def clap_reconcile(nodes, desired_slots, run, prefix=CLAP_TEMPLATE_PREFIX):
    """Compare the run's CLAP nodes with the desired slots (make before break: nothing here stops anything).

    A node is kept for a slot when it is tagged ``paramount_slot=<slot>``, its template's flavor is the slot's
    instance type and its status is not paused, stopped or unreachable; every other node of the run is to stop.
    New nodes are started in the CLAP cluster of a kept node (``cluster grow``) or, when no node is kept, in a new
    cluster started from the run's cluster template (``cluster start``); cluster node types are the instance types
    as slugs. Returns keep {slot: id}, start {node type: [slots]}, new_count, templates {node type: template},
    types {node type: instance type}, stop, stop_clusters (every node of the cluster stops), stop_nodes (the rest),
    grow_cluster, grow_args (``--node type:n`` for ``cluster grow``), cluster_name and cluster_doc (the run's CLAP cluster file)."""
    if not isinstance(desired_slots, dict) or not desired_slots:
        raise AnsibleFilterError("clap_reconcile: desired_slots must be a non-empty mapping of slot -> variables")
    nodes = list(nodes or [])
    keep, used = {}, set()
    for node in sorted(nodes, key=lambda n: (n.get("creation_time") or 0, n.get("node_id"))):
        slot = (node.get("tags") or {}).get(SLOT_TAG)
        want = desired_slots.get(slot) if slot is not None else None
        if (want is not None and slot not in keep and _flavor(node) == want.get("instance_type")
                and node.get("status") not in NOT_KEEPABLE):
            keep[slot] = node["node_id"]
            used.add(node["node_id"])
    start, types, templates = {}, {}, {}
    for slot in sorted(desired_slots):
        itype = str(desired_slots[slot].get("instance_type"))
        ntype = slug(itype)
        types[ntype] = itype
        templates[ntype] = clap_template_id(itype, prefix)
        if slot not in keep:
            start.setdefault(ntype, []).append(slot)
    stop = sorted(n["node_id"] for n in nodes if n["node_id"] not in used)
    members = {}
    for node in nodes:
        cid = _cluster_of(node)[0]
        if cid:
            members.setdefault(cid, []).append(node["node_id"])
    stop_clusters = sorted(cid for cid, ids in members.items() if all(i in stop for i in ids))
    in_stopped_clusters = {i for cid in stop_clusters for i in members[cid]}
    stop_nodes = [i for i in stop if i not in in_stopped_clusters]
    grow_cluster = ""
    for slot in sorted(keep):
        node = next(n for n in nodes if n["node_id"] == keep[slot])
        cid, node_types = _cluster_of(node)
        if cid:
            grow_cluster = cid
            for ntype in node_types:
                if ntype not in templates and _flavor(node):
                    templates[ntype] = ((node.get("configuration") or {}).get("instance") or {}).get(
                        "instance_config_id") or clap_template_id(_flavor(node), prefix)
                    types[ntype] = _flavor(node)
            break
    name = clap_cluster_name(run)
    node_section = {}
    for ntype in sorted(templates):
        count = len(start.get(ntype, []))
        node_section[ntype] = {"type": templates[ntype], "count": count, "min_count": count}
    cluster_doc = {"clusters": {name: {"nodes": node_section}}}
    return {
        "keep": keep,
        "start": start,
        "new_count": sum(len(v) for v in start.values()),
        "templates": templates,
        "types": types,
        "stop": stop,
        "stop_clusters": stop_clusters,
        "stop_nodes": stop_nodes,
        "grow_cluster": grow_cluster,
        "grow_args": [arg for ntype in sorted(start) for arg in ("--node", "%s:%d" % (ntype, len(start[ntype])))],
        "cluster_name": name,
        "cluster_doc": cluster_doc,
    }


def clap_assign(started, start):
    """{slot: node id}: the ids ``clap_started`` found for each cluster node type, given in sorted order to that
    type's new slots (``clap_reconcile``'s ``start``). Fails when clapp started another number of nodes."""
    nodes = (started or {}).get("nodes", started) or {}
    out = {}
    for ntype, slots in (start or {}).items():
        ids = sorted(nodes.get(ntype, []))
        if len(ids) != len(slots):
            raise AnsibleFilterError("clapp started %d nodes of type %s, %d were asked for" % (len(ids), ntype, len(slots)))
        out.update(zip(sorted(slots), ids))
    extra = set(nodes) - set(start or {})
    if extra:
        raise AnsibleFilterError("clapp started nodes of types that were not asked for: %s" % ", ".join(sorted(extra)))
    return out


def clap_extra_args(extra):
    """``-e name=value`` arguments for ``clapp role action`` from a mapping (CLAP passes every value as a string)."""
    out = []
    for key in sorted(extra or {}):
        value = extra[key]
        if isinstance(value, bool):
            value = "true" if value else "false"
        out += ["-e", "%s=%s" % (key, value)]
    return out


def clap_host_vars(node, clap_path, private_dir=""):
    """Connection variables of a CLAP node, as CLAP's own inventory has them (ansible_host = public ip,
    user, port and private key of its login), plus the node id, its instance type and, when CLAP knows it,
    its private address (the rendezvous address)."""
    login = ((node.get("configuration") or {}).get("login") or {})
    private = private_dir or (str(clap_path).rstrip("/") + "/private")
    out = {
        "ansible_host": node.get("ip"),
        "ansible_connection": "ssh",
        "ansible_user": login.get("user"),
        "ansible_port": login.get("ssh_port") or 22,
        "ansible_ssh_private_key_file": private.rstrip("/") + "/" + str(login.get("keypair_private_file")),
        "paramount_clap_node_id": node.get("node_id"),
    }
    private_ip = (node.get("extra") or {}).get("private_ip")
    if private_ip:
        out["paramount_private_address"] = private_ip
    return out


def clap_template_problems(instances, templates, logins=None, providers=None):
    """Why CLAP could not start the given templates ({cluster node type or instance type: template id}): templates
    missing from instances.yaml, and REPLACE_ME placeholders left in them or in the login and provider they use.
    Empty when all is well."""
    problems = []
    instances = instances if isinstance(instances, dict) else {}
    logins = logins if isinstance(logins, dict) else {}
    providers = providers if isinstance(providers, dict) else {}
    for key in sorted(templates or {}):
        tid = templates[key]
        inst = instances.get(tid)
        if not isinstance(inst, dict):
            problems.append("instance template %s (for %s) is not in instances.yaml" % (tid, key))
            continue
        for field, value in sorted(inst.items()):
            if PLACEHOLDER in str(value):
                problems.append("instances.yaml %s.%s is still a placeholder (%s)" % (tid, field, value))
        for fname, doc, ref in (("logins.yaml", logins, inst.get("login")), ("providers.yaml", providers, inst.get("provider"))):
            entry = doc.get(ref)
            if not isinstance(entry, dict):
                problems.append("%s has no entry %s (used by template %s)" % (fname, ref, tid))
                continue
            for field, value in sorted(entry.items()):
                if PLACEHOLDER in str(value):
                    problems.append("%s %s.%s is still a placeholder (%s)" % (fname, ref, field, value))
    return sorted(set(problems), key=problems.index)


class FilterModule:
    """paramount.cluster's CLAP filters."""

    def filters(self):
        return {
            "clap_template_id": clap_template_id,
            "clap_cluster_name": clap_cluster_name,
            "clap_nodes": clap_nodes,
            "clap_started": clap_started,
            "clap_clusters": clap_clusters,
            "clap_alive": clap_alive,
            "clap_stopped": clap_stopped,
            "clap_tail": clap_tail,
            "clap_reconcile": clap_reconcile,
            "clap_assign": clap_assign,
            "clap_extra_args": clap_extra_args,
            "clap_host_vars": clap_host_vars,
            "clap_template_problems": clap_template_problems,
        }
