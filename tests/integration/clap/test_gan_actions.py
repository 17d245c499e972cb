"""The CLAP role gan's actions through the clapp test double on local fake nodes: the seed's workflow
(`clapp cluster start cluster-t2.small-2x`, then `clapp role action gan -a run-gan`) with no IP typed anywhere; the
peers come from the play's own inventory (groups['gan']) and the rendezvous address from facts."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from ansible_collections.paramount.cluster.plugins.filter import paramount_clap as f
from tests.clap_double.harness import REPO, clapp, make_env, stored_nodes, write_yaml
from tests.clap_real import harness as harness_real

# Where the real CLAP runs, test_real_clap.py and test_real_clap_cluster.py run these paths against it.
REAL_CLAP_RUNS_THEM = pytest.mark.skipif(harness_real.runs_here(), reason="the real CLAP runs this path here: "
                                         "tests/integration/clap/test_real_clap.py, test_real_clap_cluster.py")

PEERS = re.compile(r'"msg": "role gan: (\d+) nodes; rendezvous ([0-9a-f]{32}) at (\S+); run (\S+); node root (\S+)"')


def has_default_route():
    try:
        with open("/proc/net/route", encoding="ascii") as handle:
            return any(line.split()[1] == "00000000" for line in handle.readlines()[1:] if line.split())
    except OSError:
        return False


def gan_world(tmp_path):
    """A CLAP folder whose gan settings suit fake nodes on this machine: the trainer from this checkout, one node
    folder per node id, one shared data set."""
    env = make_env(tmp_path)
    settings = [
        "gan_run: clap",
        "gan_trainer_install: existing",
        "gan_trainer_python: %s" % sys.executable,
        "gan_trainer_pythonpath: %s" % (REPO / "trainer"),
        'gan_node_root: "%s/nodes/{{ inventory_hostname }}"' % tmp_path,
        "gan_dataset_dir: %s/data" % tmp_path,
        "gan_dataset_shared: true",
        "paramount_poll_seconds: 1  # any collection variable can be set here, typed (a -e value is a string)",
    ]
    if not has_default_route():  # no ansible_default_ipv4 in the facts: the documented override
        settings += ["gan_private_address: 127.0.0.1", "gan_gloo_ifname: lo"]
    write_yaml(Path(env["CLAP_PATH"]) / "configs" / "paramount-gan.yml", "\n".join(settings) + "\n")
    return env


def no_trainer_left(tmp_path):
    for pidfile in (tmp_path / "nodes").glob("*/trainer.pid"):
        pid = int(pidfile.read_text().split()[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError("trainer %d of %s still runs" % (pid, pidfile.parent.name))


@REAL_CLAP_RUNS_THEM
@pytest.mark.timeout(120)
def test_run_gan_finds_its_peers_without_a_typed_ip_and_a_failure_still_exits_0(tmp_path):
    env = gan_world(tmp_path)
    started = clapp(env, "node", "start", "paramount-t2-small:2", "-cr", "1", check_rc=0).stdout
    ids = re.findall(r"^\* Node: ([0-9a-f]{32})", started, re.M)
    clapp(env, "role", "add", "gan", "-n", ",".join(ids), check_rc=0)
    # a trainer Python that does not exist: every node fails, the action fails, and clapp exits 0 all the same
    proc = clapp(env, "role", "action", "gan", "-a", "run-gan", "-e", "paramount_run=peers",
                 "-e", "paramount_trainer_python=%s/missing/python" % tmp_path, cwd=tmp_path, timeout=100, check_rc=0)
    (count, rdzv, address, run, root) = PEERS.search(proc.stdout).groups()
    assert int(count) == 2 and rdzv in ids and run == "peers" and root.startswith(str(tmp_path / "nodes"))
    assert address not in ("?", "") and re.match(r"^\d+\.\d+\.\d+\.\d+$", address)
    assert "Action run-gan from role gan was successfully performed!" not in proc.stdout
    assert "ERROR Playbook for action run-gan of role gan did not executed successfully..." in proc.stderr
    assert "did not finish" in proc.stdout
    clapp(env, "node", "stop", *ids, check_rc=0)
    no_trainer_left(tmp_path)


@REAL_CLAP_RUNS_THEM
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_seed_workflow_cluster_start_then_run_gan_trains_and_fetches_results_named_by_node(tmp_path):
    env = gan_world(tmp_path)
    proc = clapp(env, "cluster", "start", "cluster-t2.small-2x", cwd=tmp_path, timeout=200, check_rc=0)
    assert "finished setup!" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
    started = f.clap_started(proc.stdout)
    ids = sorted(i for v in started["nodes"].values() for i in v)
    assert sorted(started["nodes"]) == ["main", "workers"] and len(ids) == 2
    # setup-gan ran once per node: one run for each node type, one host each; role gan was added without a re-run
    recaps = proc.stdout.split("PLAY RECAP")[1:]
    assert len(recaps) == 2
    assert all(len(re.findall(r"^[0-9a-f]{32}\s+: ok=", r, re.M)) == 1 for r in recaps)
    assert proc.stdout.count("TASK [paramount.cluster.trainer : Check that the node's Python runs the trainer]") == 2
    assert all(n["roles"] == ["gan"] for n in stored_nodes(env).values())

    proc = clapp(env, "role", "action", "gan", "-a", "run-gan", "-e", "paramount_run=t2small-2x",
                 "-e", "paramount_probe_phases=warmup:1,adversarial:1", cwd=tmp_path, timeout=240)
    assert "Action run-gan from role gan was successfully performed!" in proc.stdout, proc.stdout[-6000:] + proc.stderr[-3000:]
    (count, rdzv, _address, _run, _root) = PEERS.search(proc.stdout).groups()
    assert int(count) == 2 and rdzv in ids
    results = tmp_path / "results" / "t2small-2x" / "probe"
    assert sorted(p.name for p in results.iterdir()) == sorted("%s.%s" % (i, e) for i in ids for e in ("log", "out"))
    for nid in ids:
        out = (results / ("%s.out" % nid)).read_text()
        assert "world size 2 on 2 node(s)" in out and "adversarial" in out
    # fetch-result fetches again (a missing file comes back), named by node id
    (results / ("%s.out" % ids[0])).unlink()
    proc = clapp(env, "role", "action", "gan", "-a", "fetch-result", "-e", "paramount_run=t2small-2x", cwd=tmp_path,
                 timeout=120, check_rc=0)
    assert "Action fetch-result from role gan was successfully performed!" in proc.stdout
    assert (results / ("%s.out" % ids[0])).is_file()
    clapp(env, "cluster", "stop", started["cluster_id"], check_rc=0)
    assert stored_nodes(env) == {}
    no_trainer_left(tmp_path)
