"""Outputs: CLAP mapping and schema, JSON cleaning, idempotent writes."""
from __future__ import annotations

import math

import yaml

from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_outputs as out


def test_clap_template_id_is_documented_and_stable():
    assert out.clap_template_id("t2.small") == "paramount-t2-small"
    assert out.clap_template_id("sim.medium") == "paramount-sim-medium"
    assert out.clap_template_id("G4DN.xlarge") == "paramount-g4dn-xlarge"


def test_clap_cluster_is_valid_against_the_documented_schema():
    for n in (1, 4):
        doc = out.clap_cluster_config("t2.small", n, "exp1")
        assert out.validate_clap_cluster(yaml.safe_load(yaml.safe_dump(doc))) == []
        (name, cluster), = doc["clusters"].items()
        assert name == "exp1-t2-small-%dx" % n
        total = sum(spec["count"] for spec in cluster["nodes"].values())
        assert total == n
        assert cluster["options"]["ssh_to"] == "main"
        assert all(spec["type"] == "paramount-t2-small" for spec in cluster["nodes"].values())
        setup = doc["setups"][cluster["nodes"]["main"]["setups"][0]]
        assert setup["actions"] == [{"role": "gan", "action": "setup-gan"}]
    doc = out.clap_cluster_config("t2.small", 2, setups=["gan-setup"])
    assert "setups" not in doc
    assert out.validate_clap_cluster(doc, known_setups=["gan-setup"]) == []
    assert any("unknown setup gan-setup" in e for e in out.validate_clap_cluster(doc))


def test_clap_validator_finds_schema_violations():
    bad = {"clusters": {"c": {"options": {"ssh_to": "nope"}, "before": ["s"],
                              "nodes": {"m": {"count": 1, "min_count": 2}, "w": {"type": "x", "count": -1}}}},
           "setups": {"s": {"roles": [{}], "actions": [{"playbook": "rel.yml"}, {"foo": 1}]}}, "other": 1}
    errs = " | ".join(out.validate_clap_cluster(bad))
    for needle in ("unknown top-level key", "ssh_to", "type (an instance template id) is required",
                   "min_count 2 > count 1", "count must be an integer", "needs a name", "absolute path",
                   "role+action, playbook or command"):
        assert needle in errs


def test_clean_json_removes_non_finite_values():
    import numpy as np
    cleaned = out.clean_json({"a": float("nan"), "b": [math.inf, np.float64(1.23456789), np.int64(3)], "c": (1,)})
    assert cleaned == {"a": None, "b": [None, 1.23457, 3], "c": [1]}


def test_writes_only_when_content_changes(tmp_path):
    changed = []
    p = str(tmp_path / "f")
    out._write_if_changed(p, b"x", changed)
    out._write_if_changed(p, b"x", changed)
    out._write_if_changed(p, b"y", changed)
    assert changed == [p, p]
