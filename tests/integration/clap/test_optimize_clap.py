"""optimize.yml end to end on the clap backend, against the clapp test double (tests/clap_double/clapp).

CLAP's folder is installed with scripts/setup-clap into a temporary home, the double is first on PATH as `clapp`, and
`ansible-playbook optimize.yml -e @clap/optimize-vars.yml` runs as a CLAP user would run it. The double's nodes are
local fakes (CLAP_DOUBLE_NODES=local, the way test_gan_actions.py's run-gan gets hosts): every node is this machine,
with its own node folder (named by CLAP node id, for CLAP's setup-gan and the collection's plays alike), so the probe
and the training really run under torchrun. Nothing here is real CLAP or a cloud: see docs/clap.md."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.paramount.cluster.plugins.filter import paramount_clap as f
from tests.clap_real import harness as harness_real
from tests.clap_double.harness import REPO, clapp, make_env, stored_nodes, write_yaml
from tests.integration.clap.test_gan_actions import has_default_route

# the heterogeneous probe cluster: three candidate AWS types (inventories/clap/probe-cluster.yml has twelve)
PROBE = {"probe-t2-small-1": "t2.small", "probe-t3-medium-1": "t3.medium", "probe-c5-large-1": "c5.large"}


def optimize_world(tmp_path):
    """CLAP's folder as a user has it after scripts/setup-clap and filling in the placeholders, with gan settings for
    fake nodes on this machine (the trainer of this checkout; one node folder per CLAP node id; one data set)."""
    env = make_env(tmp_path, CLAP_DOUBLE_CALL_LOG=tmp_path / "calls.log")
    settings = [
        "gan_trainer_install: existing",
        "gan_trainer_python: %s" % sys.executable,
        "gan_trainer_pythonpath: %s" % (REPO / "trainer"),
        'gan_node_root: "%s/nodes/{{ inventory_hostname }}"' % tmp_path,
        "gan_dataset_dir: %s/data" % tmp_path,
        "gan_dataset_shared: true",
    ]
    if not has_default_route():  # no ansible_default_ipv4 in the facts: the documented override
        settings += ["gan_private_address: 127.0.0.1", "gan_gloo_ifname: lo"]
    write_yaml(Path(env["CLAP_PATH"]) / "configs" / "paramount-gan.yml", "\n".join(settings) + "\n")
    hosts = {slot: {"instance_type": itype} for slot, itype in PROBE.items()}
    hosts["probe-t3-medium-1"]["paramount_rendezvous"] = True
    write_yaml(tmp_path / "probe-cluster.yml", yaml.safe_dump({"all": {"children": {"paramount_train": {"hosts": hosts}}}}))
    return env


def free_port():
    """A TCP port nothing listens on now: the rendezvous port, so that a test running beside this one (the local
    backend and the gan actions use 29400 on 127.0.0.1 too) cannot join this run's torchrun job."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def extra_vars(tmp_path, run, **more):
    """What the test adds to clap/optimize-vars.yml: the node-side paths of fake nodes (instead of the Ubuntu AMI's),
    a local connection to them, and a short job (tiny preset, few paramount iterations, one epoch)."""
    evars = {
        "paramount_run": run,
        "paramount_probe_inventory": str(tmp_path / "probe-cluster.yml"),
        "paramount_trainer_python": sys.executable,
        "paramount_trainer_pythonpath": str(REPO / "trainer"),
        "paramount_dataset_dir": str(tmp_path / "data"),
        "paramount_dataset_shared": True,
        # the same folder as gan_node_root above: CLAP's setup-gan and the collection's plays share it
        "paramount_clap_node_root": "%s/nodes/{node_id}" % tmp_path,
        "paramount_clap_host_vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                     "paramount_gloo_ifname": "lo"},
        "paramount_clap_connection_tries": 1,
        "paramount_clap_retry_delay": 1,
        "paramount_trainer_preset": "tiny",
        "paramount_probe_phases": "warmup:2,adversarial:4",
        "paramount_train_epochs": 1,
        "paramount_poll_seconds": 1,
        "paramount_rdzv_port": free_port(),
        # two nodes of the type the plan chooses: one probe node is kept, one more is grown, the others stop
        "paramount_plan_options": {"node_counts": [2], "clap_setups": ["paramount-gan"], "plots": False},
    }
    evars.update(more)
    return evars


def optimize(env, tmp_path, run, timeout, **more):
    env = dict(env, PWD=str(REPO), PARAMOUNT_WORKDIR=str(tmp_path), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "optimize.yml", "-e", "@clap/optimize-vars.yml",
            "-e", json.dumps(extra_vars(tmp_path, run, **more))]
    return subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def calls(tmp_path):
    path = tmp_path / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def nothing_left(env, tmp_path, run):
    """The double lists no node and no cluster, the run's cluster template and node slots are gone, and no trainer
    of the run's nodes still runs."""
    assert stored_nodes(env) == {}
    assert "Listed 0 clusters" in clapp(env, "cluster", "list", check_rc=0).stdout
    assert not (Path(env["CLAP_PATH"]) / "configs" / "clusters" / ("paramount-run-%s.yml" % run)).exists()
    assert not (tmp_path / "runs" / run).exists()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "nodes")], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", "trainer processes outlived the run: " + leftover.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_optimize_on_the_clap_backend_probes_plans_grows_trains_and_tears_down(tmp_path):
    # The double stays only where the real CLAP cannot run: where it can, test_real_clap_optimize.py runs this path
    # against the real clapp (so does the failed setup of the chosen cluster; the probe cluster's still needs the
    # double).
    if harness_real.runs_here():
        pytest.skip("the real CLAP runs this path here: tests/integration/clap/test_real_clap_optimize.py")
    env = optimize_world(tmp_path)
    run = "clapopt"
    proc = optimize(env, tmp_path, run, 580)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    results = tmp_path / "results" / run
    log = calls(tmp_path)
    argvs = [c["argv"] for c in log]

    # 1. the probe cluster: one new CLAP cluster of the three candidate types, started through clapp without CLAP
    # setups; each node tagged with its slot, checked alive, added to role gan and set up once by gan/setup-gan
    start = next(i for i, a in enumerate(argvs) if a[:2] == ["cluster", "start"])
    assert argvs[start] == ["cluster", "start", "paramount-run-%s" % run, "--no-setup"]
    alive = next(i for i, a in enumerate(argvs) if a[:2] == ["node", "alive"])
    probe_state = log[alive]["nodes"]  # the store as `node alive` found it, after the tagging
    assert start < alive and sorted(n["tags"]["paramount_slot"] for n in probe_state.values()) == sorted(PROBE)
    assert sorted(n["template"] for n in probe_state.values()) == sorted(f.clap_template_id(t) for t in PROBE.values())
    setups = [a for a in argvs if a[:2] == ["role", "action"]]
    assert [a[:5] for a in setups] == [["role", "action", "gan", "-a", "setup-gan"]] * 2  # probe cluster, then grow
    assert sorted(setups[0][6].split(",")) == sorted(probe_state)

    # 2. every probe node's .log and .out, named by node (slot)
    def names(phase):
        return sorted(p.name for p in (results / phase).iterdir() if p.suffix in (".log", ".out"))

    assert names("probe") == sorted("%s.%s" % (slot, ext) for slot in PROBE for ext in ("log", "out"))
    assert all("world size 3 on 3 node(s)" in (results / "probe" / ("%s.out" % slot)).read_text() for slot in PROBE)

    # 3. the plan, and the CLAP cluster file it writes for the chosen type
    plan = json.loads((results / "plan" / "plan.json").read_text())
    chosen = plan["chosen"]
    assert chosen["nodes"] == 2 and chosen["instance_type"] in PROBE.values()
    assert sorted(plan["keep"] + plan["stop"]) == sorted(PROBE) and len(plan["keep"]) == 1 and len(plan["start"]) == 1
    clap_file = yaml.safe_load((results / "plan" / "clap-cluster.yml").read_text())
    (cluster,) = clap_file["clusters"].values()
    assert {n["type"] for n in cluster["nodes"].values()} == {f.clap_template_id(chosen["instance_type"])}
    assert sum(n["count"] for n in cluster["nodes"].values()) == 2
    assert all(n["setups"] == ["paramount-gan"] for n in cluster["nodes"].values())
    assert "chosen:" in proc.stdout

    # 4. the chosen cluster, started through clapp: the kept probe node's cluster grows by the new slot (long forms),
    # the new node answers and is set up before the probe nodes not chosen stop (make before break)
    grow = next(i for i, a in enumerate(argvs) if a[:2] == ["cluster", "grow"])
    assert argvs[grow][3:] == ["--node", "%s:1" % chosen["instance_type"].replace(".", "-"), "--no-setup"]
    stops = [i for i, a in enumerate(argvs) if a[:2] == ["node", "stop"] and "-t" not in a]
    assert stops and all(i > argvs.index(setups[1]) for i in stops)
    stopped = {n for i in stops for n in argvs[i][2:]}
    not_chosen = {nid for nid, n in probe_state.items() if n["tags"].get("paramount_slot") in plan["stop"]}
    assert stopped == not_chosen and len(not_chosen) == 2
    # the double's store just before the teardown (its first call lists the run's nodes): exactly the chosen nodes
    teardown = max(i for i, a in enumerate(argvs) if a[:3] == ["cluster", "list"]) - 1
    assert argvs[teardown][:2] == ["node", "list"]
    trained = log[teardown]["nodes"]
    assert len(trained) == chosen["nodes"]
    assert {n["template"] for n in trained.values()} == {f.clap_template_id(chosen["instance_type"])}
    assert {n["flavor"] for n in trained.values()} == {chosen["instance_type"]}
    kept = next(nid for nid, n in probe_state.items() if n["tags"].get("paramount_slot") == plan["keep"][0])
    assert kept in trained and all(n["status"] == "reachable" and n["roles"] == ["gan"] for n in trained.values())
    assert sorted(n["tags"]["paramount_slot"] for n in trained.values()) == sorted(plan["keep"] + plan["start"])

    # 5. the training: every chosen node's .log and .out, named by node; the report and the cost ledger
    assert names("train") == sorted("%s.%s" % (slot, ext) for slot in plan["keep"] + plan["start"] for ext in ("log", "out"))
    assert all("world size 2 on 2 node(s)" in (results / "train" / ("%s.out" % slot)).read_text()
               for slot in plan["keep"] + plan["start"])
    # every node had its own folder, named by CLAP node id (gan_node_root and paramount_clap_node_root agree)
    assert sorted(p.name for p in (tmp_path / "nodes").iterdir()) == sorted(set(probe_state) | set(trained))
    assert (results / "plan" / "report.md").is_file()
    ledger = json.loads((results / "ledger.json").read_text())
    train = next(p for p in ledger["phases"] if p["phase"] == "train")
    assert train["statuses"] == ["completed"] and train["nodes"] == 2 and train["types"] == [chosen["instance_type"]]
    assert (results / "ledger.md").is_file()
    assert list((results / "artifacts").rglob("generator.pt")), "the final model did not come back"

    # 6. teardown: no node, no cluster, no template, nothing running
    nothing_left(env, tmp_path, run)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_clap_setup_that_fails_under_rc_0_stops_optimize_naming_the_clapp_command_and_leaves_no_node(tmp_path):
    env = optimize_world(tmp_path)
    run = "clapfail"
    gan = Path(env["CLAP_PATH"]) / "configs" / "paramount-gan.yml"
    gan.write_text(gan.read_text().replace("gan_trainer_python: %s" % sys.executable,
                                           "gan_trainer_python: %s/missing/python" % tmp_path))
    proc = optimize(env, tmp_path, run, 280)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    argvs = [c["argv"] for c in calls(tmp_path)]
    action = next(a for a in argvs if a[:2] == ["role", "action"])
    assert action[:5] == ["role", "action", "gan", "-a", "setup-gan"]
    # CLAP's own error went to stderr, and clapp exited 0: the backend read the output
    assert "clapp role action gan -a setup-gan -n %s" % action[6] in proc.stdout, out[-6000:]
    assert "clapp exited 0 (clapp exits 0 when a playbook fails)" in proc.stdout
    assert "The new nodes were stopped" in proc.stdout
    assert not (tmp_path / "results" / run / "probe").exists() or not list((tmp_path / "results" / run / "probe").iterdir())
    nothing_left(env, tmp_path, run)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_failed_setup_of_the_chosen_cluster_keeps_the_probe_cluster_and_teardown_still_cleans_up(tmp_path):
    if harness_real.runs_here():
        pytest.skip("the real CLAP runs this path here: tests/integration/clap/test_real_clap_optimize.py")
    env = optimize_world(tmp_path)
    run = "clapregrow"
    # gan/setup-gan gets a trainer Python that does not exist, only when the chosen cluster is provisioned (the probe
    # cluster's setup works): the grown node's setup fails, and clapp exits 0
    missing = "%s/missing/python" % tmp_path
    extra = {"gan_trainer_python": "{{ '%s' if paramount_target_group == 'paramount_train' else '%s' }}" % (missing, sys.executable)}
    proc = optimize(env, tmp_path, run, 400, paramount_clap_action_extra=extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    log = calls(tmp_path)
    argvs = [c["argv"] for c in log]
    grow = next(i for i, a in enumerate(argvs) if a[:2] == ["cluster", "grow"])
    action = next(a for a in argvs[grow:] if a[:2] == ["role", "action"])
    assert "-e" in action and "gan_trainer_python=%s" % missing in action
    assert "The command was `clapp role action gan -a setup-gan -n %s " % action[6] in proc.stdout, out[-6000:]
    assert "clapp exited 0 (clapp exits 0 when a playbook fails)" in proc.stdout
    assert "cannot import the trainer" in proc.stdout  # why it failed, from clapp's output
    assert "The new nodes were stopped" in proc.stdout
    assert "PLAY [Train" not in proc.stdout
    # the probe cluster is what it was before the failed provisioning: three nodes, alive, in their CLAP cluster
    before = log[grow]["nodes"]
    now = stored_nodes(env)
    assert sorted(now) == sorted(before) and len(now) == len(PROBE)
    assert sorted(n["tags"]["paramount_slot"] for n in now.values()) == sorted(PROBE)
    assert action[6] not in now
    alive = clapp(env, "node", "alive", *now, check_rc=0).stdout
    assert set(f.clap_alive(alive).values()) == {True}
    assert "Listed 1 clusters" in clapp(env, "cluster", "list", check_rc=0).stdout

    # the run's teardown still finds and stops all of it
    env_td = dict(env, PWD=str(REPO), PARAMOUNT_WORKDIR=str(tmp_path), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    td = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/teardown.yml",
                         "-e", "@clap/optimize-vars.yml", "-e", "paramount_run=%s" % run],
                        cwd=str(REPO), env=env_td, capture_output=True, text=True, timeout=120, check=False)
    assert td.returncode == 0, (td.stdout + td.stderr)[-4000:]
    nothing_left(env, tmp_path, run)
