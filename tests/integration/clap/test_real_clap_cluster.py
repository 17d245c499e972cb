"""The seed's CLAP experiment with the real clapp and nodes CLAP starts itself: `clapp cluster start` of the shipped
cluster-t2.small-{1x,2x,4x} files against the simulated cloud (moto as EC2 through CLAP's legacy `ec2` plays, boto 2;
a sim type stands in for t2.small in the installed template), `clapp role action gan -a run-gan` per cluster with no
IP typed anywhere, results per cluster, a plan from them, and `clapp cluster stop` leaving no node in CLAP or moto."""
from __future__ import annotations

import json

import pytest

from ansible_collections.paramount.cluster.plugins.filter import paramount_clap as f
from tests.clap_real import harness

from .test_real_clap import PHASES, _optimize, _records

pytestmark = [pytest.mark.root]

STAND_IN = "sim.medium"  # for t2.small (1 vCPU, 2 GiB): 0.3 of a core, 3 GiB


@pytest.mark.timeout(1200)
def test_seed_experiment_clusters_started_by_clap_1x_2x_4x_run_gan_and_plan(real_clapp, tmp_path):
    clap = real_clapp
    clap.stand_in("paramount-t2-small", STAND_IN)
    clusters = {}
    for size in ("1x", "2x", "4x"):
        proc = clap.clapp("cluster", "start", "cluster-t2.small-%s" % size, timeout=600, check_rc=0)
        started = f.clap_started(proc.stdout)
        assert started["cluster_id"] and "ERROR" not in proc.stderr.replace("ERROR Error executing command", ""), (
            proc.stdout[-4000:] + proc.stderr[-3000:])
        ids = sorted(i for v in started["nodes"].values() for i in v)
        assert len(ids) == int(size[0]), started
        clusters[size] = (started["cluster_id"], ids)
    stored = clap.nodes()
    moto = harness.moto_instances(clap.cloud)
    hosts = {h["instance_id"]: h for h in clap.cloud.hosts()}
    for node_id, node in stored.items():
        instance = moto[node["cloud_instance_id"]]
        # CLAP records moto's public address; the sim cloud's host of that instance answers there
        assert node["ip"] == instance["public_ip"] == hosts[node["cloud_instance_id"]]["public_ip"], node
        assert instance["tags"].get("CreatedWith") == "CLAP" and instance["instance_type"] == STAND_IN
        assert node["roles"] == ["gan"], node  # the cluster's setup added role gan (and ran setup-gan)
    # what the clap backend of provision calls between start and setup: liveness, run tags, the tagged list
    all_ids = sorted(stored)
    alive = f.clap_alive(clap.clapp("node", "alive", *all_ids, "-cr", "1", "-rt", "1", check_rc=0).stdout)
    assert alive == {i: True for i in all_ids}, alive
    clap.clapp("node", "add-tag", *clusters["2x"][1], "-t", "paramount_run=seed", "-t", "paramount_slot=x", check_rc=0)
    tagged = f.clap_nodes(clap.clapp("node", "list", "-d", "-t", "paramount_run=seed", check_rc=0).stdout)
    assert sorted(n["node_id"] for n in tagged) == clusters["2x"][1]
    assert all(n["tags"]["paramount_run"] == "seed" and n["extra"]["private_ip"] for n in tagged)
    for size, (cluster_id, ids) in clusters.items():
        listed = clap.clapp("cluster", "nodes", cluster_id, "-q", check_rc=0).stdout.split()
        assert sorted(i for i in listed if len(i) == 32) == ids
        run = "t2small-%s" % size
        clap.action("gan", "run-gan", "-n", ",".join(ids), "-e", "paramount_run=%s" % run, "-e", PHASES,
                    timeout=600)
        results = clap.workdir / "results" / run / "probe"
        assert sorted(p.name for p in results.iterdir()) == sorted("%s.%s" % (i, e) for i in ids for e in ("log", "out"))
        for node_id in ids:
            starts = [r for r in _records(results / ("%s.log" % node_id)) if r["event"] == "start"]
            assert {r["instance_type"] for r in starts} == {moto[stored[node_id]["cloud_instance_id"]]["instance_type"]}
            assert {r["world_size"] for r in starts} == {len(ids)}
    plan = _optimize(clap.workdir / "results", tmp_path)
    measured = sorted({c["nodes"] for c in plan["candidates"] if c["instance_type"] == STAND_IN and c.get("measured")})
    assert plan["chosen"]["instance_type"] == STAND_IN, json.dumps(plan["chosen"])
    assert measured == [1, 2, 4], json.dumps(plan["candidates"][:4])
    # what the clap backend does to reach a chosen cluster and leave the old one: grow without setup, stop a node
    cluster_1x = clusters["1x"][0]
    grown = f.clap_started(clap.clapp("cluster", "grow", cluster_1x, "--node", "workers:1", "--no-setup",
                                      timeout=300, check_rc=0).stdout)["nodes"]
    assert list(grown) == ["workers"] and len(grown["workers"]) == 1, grown
    listed = clap.clapp("cluster", "nodes", cluster_1x, "-q", check_rc=0).stdout.split()
    assert grown["workers"][0] in listed
    dropped = clusters["4x"][1][-1]
    assert f.clap_stopped(clap.clapp("node", "stop", dropped, timeout=300, check_rc=0).stdout) == [dropped]
    assert dropped not in clap.nodes()
    assert harness.moto_instances(clap.cloud)[stored[dropped]["cloud_instance_id"]]["state"] == "terminated"
    for cluster_id, _ids in clusters.values():
        clap.clapp("cluster", "stop", cluster_id, timeout=300, check_rc=0)
    assert clap.nodes() == {}
    left = {i: v["state"] for i, v in harness.moto_instances(clap.cloud).items() if v["state"] != "terminated"}
    assert left == {}, left


@pytest.mark.timeout(300)
def test_security_group_is_a_name_an_id_starts_nothing(real_clapp):
    """docs/clap.md: CLAP renders `security_group` into the legacy `ec2` module's `group:`, which matches names."""
    clap = real_clapp
    clap.stand_in("paramount-t2-small", STAND_IN, security_group=clap.cloud.state["security_group_id"])
    proc = clap.clapp("node", "start", "paramount-t2-small", "-cr", "1", "-rt", "1", timeout=240)
    assert "The following group names are not valid: %s" % clap.cloud.state["security_group_id"] in proc.stdout + proc.stderr, (
        proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:])
    assert clap.nodes() == {}
    started = [i for i, v in harness.moto_instances(clap.cloud).items()
               if v["state"] != "terminated" and v["tags"].get("CreatedWith") == "CLAP"]
    assert started == []
