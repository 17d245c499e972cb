"""The provision role's clap backend against the clapp test double (local fake nodes): start, make before break, rc-0
failure detection, rollback, teardown. The backend runs `clapp` through PATH exactly as it would run CLAP's."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.paramount.cluster.plugins.filter import paramount_clap as f
from tests.clap_double.harness import clapp, make_env, write_yaml
from tests.role_specs import role_defaults, role_options

pytestmark = pytest.mark.timeout(300)

PLAYBOOK = """
- name: Provision
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the provision role
      ansible.builtin.include_role:
        name: paramount.cluster.provision
        tasks_from: "{{ entry | default('main') }}"
      vars:
        paramount_desired_inventory: "{{ desired }}"
    - name: Run it again in the same play with another desired state (as optimize.yml does)
      ansible.builtin.include_role:
        name: paramount.cluster.provision
      vars:
        paramount_desired_inventory: "{{ then_desired }}"
        paramount_target_group: paramount_then
      when: then_desired is defined
- name: The connectable inventory answers
  hosts: "{{ 'paramount_train' if ping | default(false) else 'none' }}"
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""
HOSTS = """
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def desired(path, slots):
    hosts = {}
    for i, (name, itype) in enumerate(slots):
        hosts[name] = {"instance_type": itype}
        if i == 0:
            hosts[name]["paramount_rendezvous"] = True
    return write_yaml(path, yaml.safe_dump({"all": {"children": {"paramount_train": {"hosts": hosts}}}}))


class Provisioner:
    def __init__(self, tmp_path, **env_extra):
        self.tmp = tmp_path
        self.calls = tmp_path / "calls.log"
        self.env = make_env(tmp_path, CLAP_DOUBLE_CALL_LOG=self.calls, **env_extra)
        self.playbook = write_yaml(tmp_path / "pb.yml", PLAYBOOK)
        self.hosts = write_yaml(tmp_path / "hosts.yml", HOSTS)

    def run(self, slots, run="r1", entry="main", env=None, check=False, **extra):
        inv = desired(self.tmp / ("desired-%s.yml" % "-".join(s for s, _t in slots)), slots) if slots else ""
        evars = {"paramount_backend": "clap", "desired": str(inv), "paramount_run": run,
                 "paramount_local_root": str(self.tmp / "runs"), "paramount_clap_setup_action": "", "entry": entry,
                 "paramount_clap_connection_tries": 1, "paramount_clap_retry_delay": 1,
                 "paramount_clap_host_vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}
        evars.update(extra)
        start = len(self.call_log())
        argv = ["ansible-playbook", "-i", str(self.hosts), str(self.playbook), "-e", json.dumps(evars)]
        proc = subprocess.run(argv + (["--check"] if check else []),
                              env=dict(self.env, PWD=str(self.tmp), **(env or {})), cwd=str(self.tmp), capture_output=True, text=True,
                              timeout=240, check=False)
        proc.calls = self.call_log()[start:]
        return proc

    def call_log(self):
        if not self.calls.exists():
            return []
        return [json.loads(line)["argv"] for line in self.calls.read_text().splitlines()]

    def run_nodes(self, run="r1"):
        """{slot: node record} of the run, as CLAP lists them."""
        out = clapp(self.env, "node", "list", "-d", "-t", "paramount_run=%s" % run, check_rc=0).stdout
        return {n["tags"]["paramount_slot"]: n for n in f.clap_nodes(out)}


def recap(proc, host="localhost"):
    match = re.search(r"^%s\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % host, proc.stdout, re.M)
    assert match, proc.stdout[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc


def test_start_keep_grow_stop_fail_roll_back_and_tear_down(tmp_path):
    p = Provisioner(tmp_path)
    # 1. the probe cluster: two types, one new CLAP cluster started without CLAP setups
    # (a node folder per node: paramount_clap_node_root may name the slot and the CLAP node id)
    node_root = "/srv/paramount/{slot}-{node_id}"
    proc = ok(p.run([("s1", "t2.small"), ("m1", "t3.medium")], ping=True, paramount_clap_node_root=node_root))
    assert ["cluster", "start", "paramount-run-r1", "--no-setup"] in proc.calls
    nodes = p.run_nodes()
    assert sorted(nodes) == ["m1", "s1"]
    assert nodes["s1"]["configuration"]["instance"]["instance_config_id"] == "paramount-t2-small"
    assert nodes["m1"]["configuration"]["instance"]["instance_config_id"] == "paramount-t3-medium"
    assert all(n["tags"]["paramount_run"] == "r1" and n["roles"] == ["gan"] for n in nodes.values())
    inv = yaml.safe_load((tmp_path / "runs" / "r1" / "inventory.yml").read_text())["all"]["children"]["paramount_train"]["hosts"]
    assert inv["s1"]["paramount_clap_node_id"] == nodes["s1"]["node_id"] and inv["s1"]["paramount_rendezvous"] is True
    assert inv["m1"]["instance_type"] == "t3.medium" and inv["m1"]["ansible_host"] == "127.0.0.1"
    assert inv["m1"]["ansible_ssh_private_key_file"] == str(Path(p.env["CLAP_PATH"]) / "private" / "test-key-pair.pem")
    assert inv["m1"]["paramount_node_root"] == "/srv/paramount/m1-" + nodes["m1"]["node_id"]
    assert inv["m1"]["paramount_private_address"] == "127.0.0.1"
    assert recap(proc, "s1")["failed"] == 0 and recap(proc, "m1")["failed"] == 0  # the inventory connects

    # 2. the same desired state again: nothing starts or stops, nothing changes
    proc = ok(p.run([("s1", "t2.small"), ("m1", "t3.medium")], paramount_clap_node_root=node_root))
    assert {tuple(c[:2]) for c in proc.calls} == {("node", "list")}
    assert recap(proc)["changed"] == 0
    assert {k: v["node_id"] for k, v in p.run_nodes().items()} == {k: v["node_id"] for k, v in nodes.items()}

    # 3. the chosen cluster: s1 kept, s2 new in the same CLAP cluster (grow, long forms), m1 stops after s2 answers;
    # --check first: it shows the plan and only lists
    proc = ok(p.run([("s1", "t2.small"), ("s2", "t2.small")], check=True))
    assert {tuple(c[:2]) for c in proc.calls} == {("node", "list")} and '"start: s2 (in CLAP cluster cluster-' in proc.stdout
    assert {k: v["node_id"] for k, v in p.run_nodes().items()} == {k: v["node_id"] for k, v in nodes.items()}
    cid = next(k for k in nodes["s1"]["tags"] if k.startswith(".cluster:"))[len(".cluster:"):]
    # (in one play after a provisioning that changed nothing, like optimize.yml's probe then chosen cluster)
    chosen = desired(tmp_path / "chosen.yml", [("s1", "t2.small"), ("s2", "t2.small")])
    proc = ok(p.run([("s1", "t2.small"), ("m1", "t3.medium")], then_desired=str(chosen)))
    verbs = [c[:2] for c in proc.calls]
    assert ["cluster", "grow", cid, "--node", "t2-small:1", "--no-setup"] in proc.calls
    assert not any(c[:2] == ["cluster", "start"] for c in proc.calls)
    assert verbs.index(["node", "alive"]) < verbs.index(["node", "stop"])  # make before break
    assert ["node", "stop", nodes["m1"]["node_id"]] in proc.calls
    now = p.run_nodes()
    assert sorted(now) == ["s1", "s2"] and now["s1"]["node_id"] == nodes["s1"]["node_id"]
    inv = yaml.safe_load((tmp_path / "runs" / "r1" / "inventory.yml").read_text())["all"]["children"]["paramount_train"]["hosts"]
    assert sorted(inv) == ["s1", "s2"] and inv["s2"]["paramount_clap_node_id"] == now["s2"]["node_id"]
    assert inv["s2"]["paramount_node_root"] == "/home/ubuntu/paramount"  # the default: setup-gan's, on the login's home

    # 4. the new node's CLAP setup action fails, but clapp exits 0: detected, the new node stops, the old ones run on
    root = Path(p.env["CLAP_PATH"])
    write_yaml(root / "roles" / "actions.d" / "boom.yml", "actions:\n  explode: {playbook: roles/boom/explode.yml}\n")
    write_yaml(root / "roles" / "roles" / "boom" / "explode.yml",
               "- hosts: boom\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail: {msg: exploded}\n")
    proc = p.run([("s1", "t2.small"), ("s2", "t2.small"), ("c1", "c5.large")], paramount_clap_role="boom",
                 paramount_clap_setup_action="explode")
    assert proc.returncode != 0
    action = next(c for c in proc.calls if c[:2] == ["role", "action"])
    assert action[2:5] == ["boom", "-a", "explode"]
    assert "CLAP action boom/explode failed on the new nodes c1: clapp exited 0 (clapp exits 0 when a playbook fails)" in proc.stdout
    assert "The new nodes were stopped" in proc.stdout and "were not touched" in proc.stdout
    after = p.run_nodes()
    assert {k: v["node_id"] for k, v in after.items()} == {k: v["node_id"] for k, v in now.items()}
    alive = clapp(p.env, "node", "alive", *[n["node_id"] for n in after.values()], check_rc=0).stdout
    assert set(f.clap_alive(alive).values()) == {True}
    assert len(f.clap_nodes(clapp(p.env, "node", "list", "-d", check_rc=0).stdout)) == 2  # nothing orphaned

    # 5. the cloud cannot start the new type (clapp raises, rc 1): a clear message, nothing else changes
    proc = p.run([("s1", "t2.small"), ("s2", "t2.small"), ("c1", "c5.large")],
                 env={"CLAP_DOUBLE_FAIL_TEMPLATES": "paramount-c5-large"})
    assert proc.returncode != 0 and "did not start the 1 new" in proc.stdout and "InsufficientInstanceCapacity" in proc.stdout
    assert {k: v["node_id"] for k, v in p.run_nodes().items()} == {k: v["node_id"] for k, v in now.items()}

    # 6. teardown: every cluster and node of the run, and its cluster template
    ok(p.run([], entry="clap-teardown"))
    assert p.run_nodes() == {}
    assert "Listed 0 clusters" in clapp(p.env, "cluster", "list", check_rc=0).stdout
    assert not (root / "configs" / "clusters" / "paramount-run-r1.yml").exists()


def test_placeholders_and_missing_templates_stop_before_anything_starts(tmp_path):
    p = Provisioner.__new__(Provisioner)
    p.tmp, p.calls = tmp_path, tmp_path / "calls.log"
    p.env = make_env(tmp_path, fill=False, CLAP_DOUBLE_CALL_LOG=p.calls)
    p.playbook = write_yaml(tmp_path / "pb.yml", PLAYBOOK)
    p.hosts = write_yaml(tmp_path / "hosts.yml", HOSTS)
    proc = p.run([("s1", "t2.small"), ("x1", "x9.huge")])
    assert proc.returncode != 0
    assert "instance template paramount-x9-huge (for x9-huge) is not in instances.yaml" in proc.stdout
    assert "instances.yaml paramount-t2-small.image_id is still a placeholder" in proc.stdout
    assert "nothing was started" in proc.stdout
    assert all(c[:2] == ["node", "list"] for c in proc.calls)
    # no CLAP folder at all
    proc = p.run([("s1", "t2.small")], env={"CLAP_PATH": str(tmp_path / "none")})
    assert proc.returncode != 0 and "scripts/setup-clap" in proc.stdout and proc.calls == []
    # the teardown of a run CLAP has no node of is fine (clapp's "No nodes match the criteria" is not an error)
    proc = ok(p.run([], entry="clap-teardown"))
    assert ["node", "stop", "-t", "paramount_run=r1"] in proc.calls


def test_argument_spec_accepts_clap_and_documents_its_variables():
    options = role_options("provision")
    assert "clap" in options["paramount_backend"]["choices"]
    defaults = role_defaults("provision")
    clap_vars = {k for k in defaults if k.startswith("paramount_clap_")}
    assert clap_vars and clap_vars <= set(options)
