"""The clap stage: CLAP template ids, the cluster file of a plan and its check against CLAP's schema."""
from __future__ import annotations

import yaml

from ansible_collections.paramount.cluster.plugins.plugin_utils.clap import cluster as clap_cluster


def test_clap_template_id_is_documented_and_stable():
    assert clap_cluster.clap_template_id("t2.small") == "paramount-t2-small"
    assert clap_cluster.clap_template_id("sim.medium") == "paramount-sim-medium"
    assert clap_cluster.clap_template_id("G4DN.xlarge") == "paramount-g4dn-xlarge"


def test_clap_cluster_is_valid_against_the_documented_schema():
    for n in (1, 4):
        doc = clap_cluster.clap_cluster_config("t2.small", n, "exp1")
        assert clap_cluster.validate_clap_cluster(yaml.safe_load(yaml.safe_dump(doc))) == []
        (name, cluster), = doc["clusters"].items()
        assert name == "exp1-t2-small-%dx" % n
        total = sum(spec["count"] for spec in cluster["nodes"].values())
        assert total == n
        assert cluster["options"]["ssh_to"] == "main"
        assert all(spec["type"] == "paramount-t2-small" for spec in cluster["nodes"].values())
        setup = doc["setups"][cluster["nodes"]["main"]["setups"][0]]
        assert setup["actions"] == [{"role": "gan", "action": "setup-gan"}]
    doc = clap_cluster.clap_cluster_config("t2.small", 2, setups=["gan-setup"])
    assert "setups" not in doc
    assert clap_cluster.validate_clap_cluster(doc, known_setups=["gan-setup"]) == []
    assert any("unknown setup gan-setup" in e for e in clap_cluster.validate_clap_cluster(doc))


def test_clap_validator_finds_schema_violations():
    bad = {"clusters": {"c": {"options": {"ssh_to": "nope"}, "before": ["s"],
                              "nodes": {"m": {"count": 1, "min_count": 2}, "w": {"type": "x", "count": -1}}}},
           "setups": {"s": {"roles": [{}], "actions": [{"playbook": "rel.yml"}, {"foo": 1}]}}, "other": 1}
    errs = " | ".join(clap_cluster.validate_clap_cluster(bad))
    for needle in ("unknown top-level key", "ssh_to", "type (an instance template id) is required",
                   "min_count 2 > count 1", "count must be an integer", "needs a name", "absolute path",
                   "role+action, playbook or command"):
        assert needle in errs
