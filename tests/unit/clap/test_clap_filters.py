"""The clap backend's filters: clapp output parsing (CLAP 0.2.3's formats) and the reconciliation of desired slots with
the run's CLAP nodes (make before break)."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.paramount.cluster.plugins.filter import paramount_clap as f

A, B, C, D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)


def node(nid, slot=None, flavor="t2.small", status="reachable", cluster="cluster-1", ntype="t2-small", created=1.0):
    tags = {"paramount_run": "r"}
    if slot:
        tags["paramount_slot"] = slot
    if cluster:
        tags[".cluster:" + cluster] = ntype
    return {"node_id": nid, "status": status, "ip": "203.0.113.9", "creation_time": created, "tags": tags,
            "configuration": {"instance": {"flavor": flavor, "instance_config_id": "paramount-" + flavor.replace(".", "-")},
                              "login": {"user": "ubuntu", "ssh_port": 22, "keypair_private_file": "k.pem"}},
            "extra": {"private_ip": "172.31.0.9"}}


def test_template_id_and_cluster_name():
    assert f.clap_template_id("t2.small") == "paramount-t2-small"
    assert f.clap_template_id("c5.2xlarge", "x-") == "x-c5-2xlarge"
    assert f.clap_cluster_name("Run_1") == "paramount-run-run-1"


def test_clap_nodes_parses_detailed_list_and_checks_the_count():
    text = "\n".join(json.dumps(n, sort_keys=True, indent=4) for n in (node(A, "s1"), node(B))) + "\nListed 2 nodes\n"
    assert [n["node_id"] for n in f.clap_nodes(text)] == [A, B]
    assert f.clap_nodes("Listed 0 nodes") == []
    with pytest.raises(AnsibleFilterError, match="listed 3 nodes but printed 2"):
        f.clap_nodes(text.replace("Listed 2", "Listed 3"))
    with pytest.raises(AnsibleFilterError, match="no 'Listed N nodes'"):
        f.clap_nodes("Traceback ...")


def test_clap_started_reads_cluster_start_and_grow():
    start = ("Starting cluster: x (perform setup: False)\nCluster cluster-0a1b successfully created\n"
             "* 1 nodes of type workers: %s\n* 2 nodes of type main: %s,%s\n" % (A, B, C))
    assert f.clap_started(start) == {"nodes": {"workers": [A], "main": [B, C]}, "cluster_id": "cluster-0a1b"}
    grow = "Started 2 of type t2-small: %s, %s\n" % (A, B)
    assert f.clap_started(grow) == {"nodes": {"t2-small": [A, B]}, "cluster_id": ""}
    assert f.clap_started("Traceback\nClusterError: Minimum number of nodes not reached") == {"nodes": {}, "cluster_id": ""}
    with pytest.raises(AnsibleFilterError):
        f.clap_started("Started 2 of type t2-small: %s\n" % A)


def test_alive_stopped_clusters_tail_and_extra_args():
    assert f.clap_alive("%s: alive\n%s: not alive\nChecked 2 nodes" % (A, B)) == {A: True, B: False}
    assert f.clap_stopped("Stopped: %s\nStopped 1 nodes" % A) == [A]
    listed = ("* Cluster: cluster-1, nickname: AmberFalcon, configuration: paramount-run-r, creation time: 01-01-24 00:00:00\n"
              "   Has 1 nodes:\n\nListed 1 clusters\n")
    assert f.clap_clusters(listed) == [{"cluster_id": "cluster-1", "nickname": "AmberFalcon", "configuration": "paramount-run-r"}]
    assert f.clap_tail("\n".join(str(i) for i in range(30)), "err", 3) == "28\n29\nerr"
    assert f.clap_extra_args({"b": True, "a": 1}) == ["-e", "a=1", "-e", "b=true"]


DESIRED = {"s1": {"instance_type": "t2.small", "paramount_rendezvous": True}, "s2": {"instance_type": "t2.small"},
           "m1": {"instance_type": "t3.medium"}}


def test_reconcile_from_nothing_starts_a_new_cluster():
    plan = f.clap_reconcile([], DESIRED, "r")
    assert plan["keep"] == {} and plan["stop"] == [] and plan["grow_cluster"] == ""
    assert plan["start"] == {"t2-small": ["s1", "s2"], "t3-medium": ["m1"]} and plan["new_count"] == 3
    assert plan["cluster_name"] == "paramount-run-r"
    assert plan["cluster_doc"] == {"clusters": {"paramount-run-r": {"nodes": {
        "t2-small": {"type": "paramount-t2-small", "count": 2, "min_count": 2},
        "t3-medium": {"type": "paramount-t3-medium", "count": 1, "min_count": 1}}}}}
    assert plan["grow_args"] == ["--node", "t2-small:2", "--node", "t3-medium:1"]


def test_reconcile_keeps_matching_nodes_grows_their_cluster_and_stops_the_rest_later():
    nodes = [node(A, "s1"), node(B, "old-x", flavor="c5.large", ntype="c5-large"), node(C, "s2", status="unreachable")]
    plan = f.clap_reconcile(nodes, DESIRED, "r")
    assert plan["keep"] == {"s1": A}
    assert plan["start"] == {"t2-small": ["s2"], "t3-medium": ["m1"]}
    assert plan["grow_cluster"] == "cluster-1" and plan["stop"] == sorted([B, C])
    assert plan["stop_clusters"] == [] and plan["stop_nodes"] == sorted([B, C])  # cluster-1 keeps A
    assert plan["grow_args"] == ["--node", "t2-small:1", "--node", "t3-medium:1"]


def test_reconcile_whole_old_cluster_is_stopped_as_a_cluster():
    nodes = [node(A, "p1", flavor="c5.large", cluster="cluster-old", ntype="c5-large"), node(B, "s1", cluster="cluster-new")]
    plan = f.clap_reconcile(nodes, {"s1": DESIRED["s1"]}, "r")
    assert plan["keep"] == {"s1": B} and plan["new_count"] == 0
    assert plan["stop_clusters"] == ["cluster-old"] and plan["stop_nodes"] == []


def test_reconcile_wrong_type_and_duplicate_slot_are_replaced():
    nodes = [node(A, "s1", flavor="t3.medium"), node(B, "s2", created=1.0), node(C, "s2", created=2.0)]
    plan = f.clap_reconcile(nodes, {k: DESIRED[k] for k in ("s1", "s2")}, "r")
    assert plan["keep"] == {"s2": B} and plan["start"] == {"t2-small": ["s1"]} and plan["stop"] == sorted([A, C])


def test_reconcile_rejects_an_empty_desired_state():
    with pytest.raises(AnsibleFilterError):
        f.clap_reconcile([], {}, "r")


def test_assign_gives_sorted_ids_to_sorted_slots_and_checks_counts():
    started = {"nodes": {"t2-small": [B, A]}, "cluster_id": ""}
    assert f.clap_assign(started, {"t2-small": ["s2", "s1"]}) == {"s1": A, "s2": B}
    with pytest.raises(AnsibleFilterError, match="started 2 nodes of type t2-small, 1 were asked"):
        f.clap_assign(started, {"t2-small": ["s1"]})
    with pytest.raises(AnsibleFilterError, match="not asked for"):
        f.clap_assign({"nodes": {"t2-small": [A], "x": [B]}}, {"t2-small": ["s1"]})


def test_host_vars_mirror_clap_inventory():
    hv = f.clap_host_vars(node(A), "/home/u/.clap/")
    assert hv == {"ansible_host": "203.0.113.9", "ansible_connection": "ssh", "ansible_user": "ubuntu", "ansible_port": 22,
                  "ansible_ssh_private_key_file": "/home/u/.clap/private/k.pem", "paramount_clap_node_id": A,
                  "paramount_private_address": "172.31.0.9"}


def test_template_problems_name_missing_templates_and_placeholders():
    instances = {"paramount-t2-small": {"provider": "p", "login": "l", "image_id": "REPLACE_ME-ami-id"}}
    logins = {"l": {"keypair_name": "REPLACE_ME-kp"}}
    problems = f.clap_template_problems(instances, {"t2-small": "paramount-t2-small", "c5-large": "paramount-c5-large"},
                                        logins, {})
    assert "instance template paramount-c5-large (for c5-large) is not in instances.yaml" in problems
    assert any("image_id is still a placeholder" in p for p in problems)
    assert any("logins.yaml l.keypair_name is still a placeholder" in p for p in problems)
    assert any("providers.yaml has no entry p" in p for p in problems)
    ok = {"paramount-t2-small": {"provider": "p", "login": "l", "image_id": "ami-1"}}
    assert f.clap_template_problems(ok, {"t2-small": "paramount-t2-small"}, {"l": {}}, {"p": {}}) == []


def test_clap_tail_shows_why_a_playbook_failed_not_its_recap():
    """A failed role action's output ends with PLAY RECAP and timings: the message needs the failed task instead."""
    stdout = "\n".join([
        "TASK [Gathering Facts] ***", "ok: [%s]" % A, "",
        "TASK [paramount.cluster.trainer : Explain a node that cannot run the trainer] ***",
        "[ERROR]: Task failed: Action failed: %s: /x/python cannot import the trainer" % A,
        "Origin: /home/u/.clap/roles/roles/gan/collections/.../main.yml:22:3", "",
        "fatal: [%s]: FAILED! => {\"changed\": false, \"msg\": \"cannot import the trainer\"}" % A, "",
        "PLAY RECAP ***", "%s : ok=5 changed=0 unreachable=0 failed=1" % A, "",
        "TASKS RECAP ***"] + ["task %d ---- 0.1s" % i for i in range(20)])
    stderr = "2024-01-01 00:00:00 host clap.app.cli.modules.role[42] ERROR Playbook for action setup-gan of role gan did not executed successfully..."
    tail = f.clap_tail(stdout, stderr).splitlines()
    assert tail == [
        "in task [paramount.cluster.trainer : Explain a node that cannot run the trainer]:",
        "[ERROR]: Task failed: Action failed: %s: /x/python cannot import the trainer" % A,
        "fatal: [%s]: FAILED! => {\"changed\": false, \"msg\": \"cannot import the trainer\"}" % A,
        stderr]
    assert f.clap_tail(stdout, stderr, 1) == stderr
    # a clapp that raised (rc 1): CLAP's error log line
    raised = "Traceback (most recent call last):\n  ...\nRuntimeError: x\n"
    err = "2024-01-01 00:00:00 host clap.app.cli.cliapp[7] ERROR ClusterError: Minimum number of nodes not reached"
    assert f.clap_tail(raised, err) == err
