"""The collection's CLAP role `gan` with the real CLAP 0.2.3 (not the double): sim hosts registered in CLAP's node
repository through CLAP's own API, then `clapp role add gan`, `-a setup-gan`, `-a run-gan` (probe and train),
`-a fetch-result`; every record's instance type comes from CLAP's own node, and the optimizer plans from the
fetched logs. Skipped with the reason when CLAP's source is absent (see tests/clap_real/harness.py)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import validate_record
from tests.clap_real import harness
from tests.playbook_env import ansible_command, playbook_env

pytestmark = [pytest.mark.root]

PEERS = re.compile(r'"msg": "role gan: (\d+) nodes; rendezvous ([0-9a-f]{32}) at (\S+); run (\S+); node root (\S+)"')


def test_clapp_is_the_real_clap_from_its_source_folder(real_clapp):
    expected = Path(os.environ.get(harness.SOURCE_ENV) or harness.REPO.parent / "shared" / "clap").resolve()
    proc = real_clapp.clapp("node", "list-templates", check_rc=0, extra_env={"PYTHONVERBOSE": "1"})
    # Python's import trace names the file every module came from: CLAP's CLI, core and AWS provider
    for module in ("app/cli/cliapp.py", "clap/node_manager.py", "providers/provider_ansible_aws.py"):
        assert "# code object from %s/%s\n" % (expected, module) in proc.stderr, (module, proc.stderr[-2000:])
    assert "ansible_collections/paramount/cluster" not in real_clapp.clapp_path.as_posix()
    # the real CLAP read this test's CLAP home: the sim templates a user added to the installed instances.yaml
    for sim_type in ("sim.small", "sim.medium", "sim.large"):
        assert real_clapp.template(sim_type) in proc.stdout, proc.stdout[-2000:]
    assert real_clapp.clapp("node", "list", check_rc=0).stdout.strip().endswith("Listed 0 nodes")


def _records(path):
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        record = json.loads(line)
        problem = validate_record(record)
        assert problem is None, "%s line %d: %s" % (path, number, problem)
        records.append(record)
    return records


# Fewer paramount iterations than the default (3 + 10): enough for the optimizer, and CI time stays small.
PHASES = "paramount_probe_phases=warmup:2,adversarial:6"


def _run_gan(clap, run, node_ids, *extra):
    proc = clap.action("gan", "run-gan", "-e", "paramount_run=%s" % run, "-e", PHASES, *extra, timeout=600)
    (count, rdzv, address, run_seen, _root) = PEERS.search(proc.stdout).groups()
    assert int(count) == len(node_ids) and rdzv in node_ids and run_seen == run
    assert address.startswith("10.77.0."), "the rendezvous is the node's private address from facts: %s" % address
    return proc


def _check_probe_results(clap, run, nodes, moto):
    """Every node's .log and .out came back named by node id; valid v1 records whose type is moto's."""
    results = clap.workdir / "results" / run / "probe"
    assert sorted(p.name for p in results.iterdir()) == sorted("%s.%s" % (i, e) for i, _host in nodes for e in ("log", "out"))
    for node_id, launched in nodes:
        records = _records(results / ("%s.log" % node_id))
        assert records, "no record in %s.log" % node_id
        starts = [r for r in records if r["event"] == "start"]
        assert starts and {r["instance_type"] for r in starts} == {moto[launched["instance_id"]]["instance_type"]}, (
            node_id, [r["instance_type"] for r in starts])
        assert {r["world_size"] for r in starts} == {len(nodes)} and {r["host"] for r in records} == {node_id}
        assert any(r["event"] == "iteration" and r["phase"] == "adversarial" for r in records)
        assert "adversarial" in (results / ("%s.out" % node_id)).read_text()
    return results


def _optimize(results, tmp_path):
    """paramount.cluster.optimize (the project's Ansible, not CLAP's) on the fetched logs."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    playbook = tmp_path / "plan.yml"
    playbook.write_text(textwrap.dedent("""\
        - name: Plan from the logs real CLAP fetched
          hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: Optimize
              paramount.cluster.optimize:
                results_dir: %s
                catalog: %s
                output_dir: %s
                objective: cost
                plots: false
        """ % (results, harness.REPO / "catalogs" / "default.csv", tmp_path / "plan")))
    env = playbook_env(drop=("ANSIBLE_",), config=None)
    proc = subprocess.run([ansible_command("ansible-playbook"), "-i", "localhost,", str(playbook)],
                          env=env, capture_output=True, text=True, timeout=300, check=False, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads((tmp_path / "plan" / "plan.json").read_text())


def _stop(clap, node_ids):
    clap.unregister(node_ids)
    assert clap.clapp("node", "list", check_rc=0).stdout.strip().endswith("Listed 0 nodes")


@pytest.mark.timeout(1200)
def test_gan_role_on_two_nodes_of_one_type_and_three_of_three_types_probe_train_fetch_and_plan(real_clapp, tmp_path):
    """Four sim hosts in CLAP's repository: two sim.large (2 nodes of one type: probe, train, fetch-result, plan; a
    failing run-gan that clapp reports with exit 0) and sim.small + sim.medium + one sim.large (3 types: probe,
    plan). One role add and one setup-gan for all four, as a user with one CLAP home would do."""
    clap = real_clapp
    nodes = clap.start_hosts(["sim.large", "sim.large", "sim.small", "sim.medium"])
    ids = [node_id for node_id, _host in nodes]
    stored = clap.nodes()
    assert [stored[i]["configuration"]["instance"]["flavor"] for i in ids] == ["sim.large", "sim.large", "sim.small", "sim.medium"]
    clap.clapp("role", "add", "-n", ",".join(ids), "gan", check_rc=0)
    assert all(n["roles"] == ["gan"] for n in clap.nodes().values())
    clap.action("gan", "setup-gan", "-e", "paramount_run=setup")
    moto = harness.moto_instances(clap.cloud)

    two = nodes[:2]
    two_ids = ",".join(i for i, _host in two)
    _run_gan(clap, "two", [i for i, _host in two], "-n", two_ids)
    results = _check_probe_results(clap, "two", two, moto)
    # the whole job (one epoch, paramount-gan.yml): records of a training run, artifacts too
    _run_gan(clap, "two", [i for i, _host in two], "-n", two_ids, "-e", "paramount_mode=train")
    train = clap.workdir / "results" / "two" / "train"
    for node_id, launched in two:
        starts = [r for r in _records(train / ("%s.log" % node_id)) if r["event"] == "start"]
        assert starts and {r["instance_type"] for r in starts} == {moto[launched["instance_id"]]["instance_type"]}
        assert starts[0]["probe"] is False
    artifacts = clap.workdir / "results" / "two" / "artifacts"
    assert list(artifacts.rglob("generator.pt")), "the final model did not come back"
    # fetch-result brings back a file lost on the controller, named by node id
    (results / ("%s.out" % two[1][0])).unlink()
    clap.action("gan", "fetch-result", "-n", two_ids, "-e", "paramount_run=two")
    assert (results / ("%s.out" % two[1][0])).is_file()
    plan = _optimize(results, tmp_path / "two")
    assert [(r["instance_types"], r["nodes"], r["used"]) for r in plan["runs"]] == [(["sim.large"], 2, True)], plan["runs"]
    assert plan["chosen"]["instance_type"] == "sim.large"
    assert [c["nodes"] for c in plan["candidates"] if c["measured"]] == [2], "only the probed count is measured"

    # a run-gan whose nodes fail: the real clapp prints its error and still exits 0 (the backend checks the output)
    proc = clap.clapp("role", "action", "gan", "-a", "run-gan", "-n", two_ids, "-e", "paramount_run=broken",
                      "-e", "paramount_trainer_python=/nonexistent/python", timeout=300, check_rc=0)
    assert harness.SUCCESS.format(action="run-gan", role="gan") not in proc.stdout
    assert "ERROR Playbook for action run-gan of role gan did not executed successfully..." in proc.stderr, proc.stderr[-2000:]

    three = nodes[1:]
    _run_gan(clap, "three", [i for i, _host in three], "-n", ",".join(i for i, _host in three))
    results = _check_probe_results(clap, "three", three, moto)
    plan = _optimize(results, tmp_path / "three")
    # one heterogeneous run keyed by the three types CLAP's nodes have, each of them rated and priced
    assert [(sorted(r["instance_types"]), r["nodes"], r["used"]) for r in plan["runs"]] == [
        (["sim.large", "sim.medium", "sim.small"], 3, True)], plan["runs"]
    measured = {c["instance_type"] for c in plan["candidates"] if c["measured"]}
    assert measured == {"sim.small", "sim.medium", "sim.large"}, measured
    assert plan["chosen"]["instance_type"] in measured
    _stop(clap, ids)
