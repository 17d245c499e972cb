"""The clapp test double speaks CLAP 0.2.3's documented CLI (shared/reference/clap.md): config validation, node and
cluster records, output formats, role actions run for real with an inventory shaped like CLAP's, and exit 0 when a
playbook fails. Every test has its own HOME and CLAP_PATH."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.paramount.cluster.plugins.filter import paramount_clap as f
from tests.clap_double.harness import clapp, make_env, stored_nodes, write_yaml

pytestmark = pytest.mark.timeout(120)

ID = re.compile(r"^[0-9a-f]{32}$")

CONFIGS = {
    "providers.yaml": """
p1: {provider: aws, region: us-east-1, access_keyfile: ak, secret_access_keyfile: sk, colour: blue}
p-bad: {provider: aws, access_keyfile: ak, secret_access_keyfile: sk}
""",
    "logins.yaml": "l1: {user: ubuntu, keypair_name: kp, keypair_public_file: k.pub, keypair_private_file: k.pem}\n",
    "instances.yaml": """
small: {provider: p1, login: l1, flavor: t2.small, image_id: ami-1, security_group: sg, extra_key: ignored}
orphan: {provider: p-bad, login: l1, flavor: t2.small, image_id: ami-1, security_group: sg}
badtype: {provider: p1, login: l1, flavor: t2.small, image_id: ami-1, security_group: sg, boot_disk_size: big}
""",
}


@pytest.fixture
def world(tmp_path):
    env = make_env(tmp_path, install=False)
    cfg = Path(env["CLAP_PATH"]) / "configs"
    for name, text in CONFIGS.items():
        write_yaml(cfg / name, text)
    write_yaml(cfg / "clusters" / "c.yml", """
setups:
  noop: {actions: [{command: "true"}]}
clusters:
  c2:
    options: {ssh_to: main}
    nodes:
      main: {type: small, count: 1, setups: [noop]}
      workers: {type: small, count: 1, min_count: 1}
""")
    write_yaml(Path(env["CLAP_PATH"]) / "roles" / "actions.d" / "probe.yml", """
actions:
  dump: {playbook: roles/probe/dump.yml, description: write the inventory this playbook got}
  fail: {playbook: roles/probe/fail.yml}
  needs: {playbook: roles/probe/dump.yml, vars: [{name: must}]}
""")
    write_yaml(Path(env["CLAP_PATH"]) / "roles" / "roles" / "probe" / "dump.yml", """
- hosts: probe
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        src: "{{ inventory_file }}"
        dest: "{{ out }}/inventory.json"
        mode: "0644"
      run_once: true
    - ansible.builtin.copy:
        content: "{{ {'groups': groups, 'extra': extra | default(none)} | to_json }}"
        dest: "{{ out }}/seen.json"
        mode: "0644"
      run_once: true
""")
    write_yaml(Path(env["CLAP_PATH"]) / "roles" / "roles" / "probe" / "fail.yml", """
- hosts: probe
  gather_facts: false
  tasks:
    - ansible.builtin.fail: {msg: "boom on {{ inventory_hostname }}"}
""")
    return env


def test_configs_are_read_like_clap_unknown_keys_ignored_invalid_entries_dropped(world):
    proc = clapp(world, "node", "list-templates", check_rc=0)
    assert "* name: small" in proc.stdout and "Listed 1 instance templates" in proc.stdout
    err = proc.stderr
    assert "ERROR Dropping invalid provider configuration `p-bad`" in err and 'missing value for field "region"' in err
    assert "Dropping instance `orphan`: invalid provider configuration `p-bad`" in err
    assert "Dropping invalid instance configuration `badtype`" in err and "boot_disk_size" in err
    assert "colour" not in err and "extra_key" not in err  # unknown keys: silently ignored


def test_cluster_file_errors_raise_like_clap(world):
    cdir = Path(world["CLAP_PATH"]) / "configs" / "clusters"
    write_yaml(cdir / "bad-setup.yml", "clusters:\n  x: {nodes: {a: {type: small, count: 1, setups: [nope]}}}\n")
    proc = clapp(world, "cluster", "list-templates")
    assert proc.returncode == 1 and "InvalidSetupError: Invalid setup named nope in cluster x" in proc.stderr
    (cdir / "bad-setup.yml").unlink()
    write_yaml(cdir / "bad-size.yml", "clusters:\n  y: {nodes: {a: {type: small, count: 1, min_count: 2}}}\n")
    proc = clapp(world, "cluster", "start", "y", "--no-setup")
    assert proc.returncode == 1 and "NodeSizeError: In cluster y: a.min_count > a.count" in proc.stderr
    (cdir / "bad-size.yml").unlink()
    write_yaml(cdir / "wrong-type.yml", "clusters:\n  z: {nodes: {a: {type: small, count: two}}}\n")
    proc = clapp(world, "cluster", "list-templates", check_rc=0)
    assert "When parsing file %s" % (cdir / "wrong-type.yml") in proc.stderr
    assert "cluster name: c2" in proc.stdout and "cluster name: z" not in proc.stdout


def test_node_commands_output_and_sqlite_store(world):
    proc = clapp(world, "node", "start", "small:2", "-cr", "1", check_rc=0)
    ids = re.findall(r"^\* Node: ([0-9a-f]{32}), type: cloud, nickname: .+, status: reachable, ip: 127\.0\.0\.1, tags: \{\}, "
                     r"creation at: \d\d-\d\d-\d\d \d\d:\d\d:\d\d$", proc.stdout, re.M)
    assert len(ids) == 2 and proc.stdout.rstrip().endswith("Started 2 nodes")
    assert clapp(world, "node", "start", "nope", check_rc=1).stderr.count("Invalid configuration named nope") >= 1
    clapp(world, "node", "add-tag", ids[0], "-t", "paramount_run=r1", "-t", "paramount_slot=s1", check_rc=0)
    detailed = clapp(world, "node", "list", "-d", "-t", "paramount_run=r1", check_rc=0).stdout
    (rec,) = f.clap_nodes(detailed)
    assert rec["node_id"] == ids[0] and rec["tags"] == {"paramount_run": "r1", "paramount_slot": "s1"}
    assert rec["configuration"]["instance"]["instance_config_id"] == "small" and rec["extra"]["private_ip"] == "127.0.0.1"
    assert set(rec) >= {"node_id", "configuration", "nickname", "ip", "type", "cloud_instance_id", "cloud_lifecycle",
                        "status", "creation_time", "update_time", "roles", "tags", "extra"}
    assert stored_nodes(world)[ids[0]] == rec  # SELECT key, value FROM "node"
    # tag filters are a union, like CLAP's get_nodes
    assert sorted(clapp(world, "node", "list", "-q", "-t", "paramount_run=r1", ids[1]).stdout.split()) == sorted(ids)
    alive = clapp(world, "node", "alive", *ids, check_rc=0).stdout
    assert f.clap_alive(alive) == {ids[0]: True, ids[1]: True} and "Checked 2 nodes" in alive
    assert clapp(world, "node", "stop", check_rc=0).stdout.strip() == "Stopped 0 nodes"
    assert "No nodes match the criteria" in clapp(world, "node", "stop", "-t", "nope=1", check_rc=1).stderr
    out = clapp(world, "node", "stop", ids[0], check_rc=0).stdout
    assert f.clap_stopped(out) == [ids[0]] and "Stopped 1 nodes" in out
    assert list(stored_nodes(world)) == [ids[1]]


def test_offline_nodes_never_answer_and_cluster_start_fails_with_rc_1(world):
    env = dict(world, CLAP_DOUBLE_NODES="offline")
    proc = clapp(env, "node", "start", "small", "-cr", "1", check_rc=0)
    assert re.search(r"ip: 198\.51\.100\.\d+", proc.stdout)
    (nid,) = re.findall(r"Node: ([0-9a-f]{32})", proc.stdout)
    assert clapp(env, "node", "alive", nid, check_rc=0).stdout.startswith("%s: not alive" % nid)
    proc = clapp(env, "cluster", "start", "c2", "--no-setup", check_rc=1)
    assert "Could not start the minimum nodes of type main" in proc.stderr and "ClusterError" in proc.stderr
    assert list(stored_nodes(env)) == [nid]  # the cluster's unreachable nodes were stopped


def test_cluster_start_grow_short_n_trap_and_stop(world):
    proc = clapp(world, "cluster", "start", "c2", "--no-setup", check_rc=0)
    started = f.clap_started(proc.stdout)
    cid = started["cluster_id"]
    assert re.match(r"^cluster-[0-9a-f]{32}$", cid) and sorted(started["nodes"]) == ["main", "workers"]
    assert "Starting cluster: c2 (perform setup: False)" in proc.stdout
    listed = clapp(world, "cluster", "list", check_rc=0).stdout
    assert f.clap_clusters(listed)[0]["cluster_id"] == cid and "Has 2 nodes:" in listed and "Listed 1 clusters" in listed
    # `-n` is declared twice on `cluster grow`: -n type:N does not mean --node (documented CLAP bug)
    proc = clapp(world, "cluster", "grow", cid, "-n", "workers:1")
    assert proc.returncode == 2 and "Missing option" in proc.stderr and "--node" in proc.stderr
    proc = clapp(world, "cluster", "grow", cid, "--node", "workers:2", "--no-setup", check_rc=0)
    assert len(f.clap_started(proc.stdout)["nodes"]["workers"]) == 2
    assert "Invalid node of type 'nope'" in clapp(world, "cluster", "grow", cid, "--node", "nope:1", check_rc=1).stderr
    nodes = clapp(world, "cluster", "nodes", cid, "-q", check_rc=0).stdout.split()
    assert len(nodes) == 4 and all(ID.match(n) for n in nodes)
    assert "Cluster `%s` stopped!" % cid in clapp(world, "cluster", "stop", cid, check_rc=0).stdout
    assert stored_nodes(world) == {} and "Listed 0 clusters" in clapp(world, "cluster", "list", check_rc=0).stdout
    assert "Invalid cluster: %s" % cid in clapp(world, "cluster", "nodes", cid, check_rc=1).stderr


@pytest.mark.timeout(180)
def test_role_action_inventory_like_clap_and_exit_0_when_the_playbook_fails(world, tmp_path):
    ids = re.findall(r"Node: ([0-9a-f]{32})", clapp(world, "node", "start", "small:2", check_rc=0).stdout)
    assert "NodeRoleError" in clapp(world, "role", "action", "probe", "-a", "dump", "-n", ids[0], check_rc=1).stderr
    assert "2 nodes were added to role probe" in clapp(world, "role", "add", "probe", "-n", ",".join(ids), check_rc=0).stdout
    out = tmp_path / "out"
    out.mkdir()
    proc = clapp(world, "role", "action", "probe", "-a", "dump", "-e", "out=%s" % out, "-e", "extra=1", check_rc=0)
    assert "Action dump from role probe was successfully performed!" in proc.stdout
    inventory = json.loads((out / "inventory.json").read_text())
    hosts = inventory["all"]["children"]["probe"]["hosts"]
    assert sorted(hosts) == sorted(ids)  # host name = node id, group = role, no action ran on other nodes
    private = Path(world["CLAP_PATH"]) / "private" / "k.pem"
    for hv in hosts.values():
        assert hv == {"ansible_host": "127.0.0.1", "ansible_connection": "local", "ansible_user": "ubuntu",
                      "ansible_ssh_private_key_file": str(private), "ansible_port": 22,
                      "ansible_python_interpreter": hv["ansible_python_interpreter"]}  # the local-fake option
    seen = json.loads((out / "seen.json").read_text())
    assert sorted(seen["groups"]["probe"]) == sorted(ids) and seen["extra"] == "1"  # -e values are strings
    # a required action variable that is missing: an exception, rc 1
    assert "MissingActionVariableError" in clapp(world, "role", "action", "probe", "-a", "needs", check_rc=1).stderr
    # a failing playbook: CLAP logs the error and still exits 0
    proc = clapp(world, "role", "action", "probe", "-a", "fail", check_rc=0)
    assert "boom on" in proc.stdout and "successfully performed" not in proc.stdout
    assert "ERROR Playbook for action fail of role probe did not executed successfully..." in proc.stderr


@pytest.mark.timeout(180)
def test_an_action_named_setup_runs_on_role_add_and_again_from_a_setup(world, tmp_path):
    """The seed's double setup run, reproduced: why the collection's role has no action named `setup`."""
    marker = tmp_path / "ran"
    root = Path(world["CLAP_PATH"])
    write_yaml(root / "roles" / "actions.d" / "twice.yml", "actions:\n  setup: {playbook: roles/twice/setup.yml}\n")
    write_yaml(root / "roles" / "roles" / "twice" / "setup.yml", """
- hosts: twice
  gather_facts: false
  tasks:
    - ansible.builtin.shell: echo {{ inventory_hostname }} >> %s
      changed_when: true
""" % marker)
    write_yaml(root / "configs" / "clusters" / "twice.yml", """
setups:
  both: {roles: [{name: twice}], actions: [{role: twice, action: setup}]}
clusters:
  t1: {nodes: {one: {type: small, count: 1, setups: [both]}}}
""")
    proc = clapp(world, "cluster", "start", "t1", check_rc=0)
    assert "finished setup!" in proc.stdout
    lines = marker.read_text().split()
    assert len(lines) == 2 and len(set(lines)) == 1


@pytest.mark.timeout(180)
def test_cluster_setup_failure_exits_0_with_clap_message(world):
    root = Path(world["CLAP_PATH"])
    write_yaml(root / "configs" / "clusters" / "failing.yml", """
setups:
  boom: {roles: [{name: probe}], actions: [{role: probe, action: fail}]}
clusters:
  f1: {nodes: {one: {type: small, count: 1, setups: [boom]}}}
""")
    proc = clapp(world, "cluster", "start", "f1", check_rc=0)
    assert "Cluster not properly setup... You may wish perform the setup operation again" in proc.stdout
    assert "Error setting up cluster" in proc.stderr and "finished setup!" not in proc.stdout
    # the nodes stay (CLAP does not stop them), and are in the role
    assert [n["roles"] for n in stored_nodes(world).values()] == [["probe"]]
