"""The shipped CLAP folder (clap/) against CLAP's documented schema, the catalog, and the seed's lessons (no typed IP,
no vars_prompt, no action named `setup`, facts gathered first)."""
from __future__ import annotations

import copy
import csv
import os
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.paramount.cluster.plugins.plugin_utils.clap import cluster as clap_cluster
from ansible_collections.paramount.cluster.plugins.plugin_utils.outputs import files
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import slug

from .clap_schema import INSTANCE_AWS, load, schema_errors, validate_clap_folder

REPO = Path(__file__).resolve().parents[3]
CLAP = REPO / "clap"
GAN = CLAP / "roles" / "roles" / "gan"
IP_RE = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def aws_types():
    with open(REPO / "catalogs" / "default.csv", encoding="utf-8") as handle:
        return [r["instance_type"] for r in csv.DictReader(handle) if not r["instance_type"].startswith(("sim.", "local."))]


def test_shipped_folder_validates_against_clap_schema():
    assert validate_clap_folder(str(CLAP)) == []


def test_the_checker_catches_what_clap_would_drop_or_raise(tmp_path):
    """The schema check is not vacuous: each broken copy is reported."""
    import shutil

    def broken(edit):
        target = tmp_path / ("c%d" % len(list(tmp_path.iterdir())))
        shutil.copytree(CLAP, target)
        edit(target)
        return validate_clap_folder(str(target))

    def set_yaml(path, fn):
        doc = load(path)
        fn(doc)
        Path(path).write_text(yaml.safe_dump(doc))

    assert any("boot_disk_size" in p for p in broken(lambda t: set_yaml(
        t / "configs/instances.yaml", lambda d: d["paramount-t2-small"].update(boot_disk_size="16"))))
    assert any("flavour" in p for p in broken(lambda t: set_yaml(
        t / "configs/instances.yaml", lambda d: d["paramount-t2-small"].update(flavour="x"))))
    assert any("InvalidSetupError" in p for p in broken(lambda t: set_yaml(
        t / "configs/clusters/cluster-t2.small-2x.yml",
        lambda d: d["clusters"]["cluster-t2.small-2x"]["nodes"]["main"].update(setups=["nope"]))))
    assert any("NodeSizeError" in p for p in broken(lambda t: set_yaml(
        t / "configs/clusters/cluster-t2.small-2x.yml",
        lambda d: d["clusters"]["cluster-t2.small-2x"]["nodes"]["workers"].update(min_count=5))))
    assert any("gan/setup-gan" in p for p in broken(lambda t: set_yaml(
        t / "roles/actions.d/gan.yml", lambda d: d["actions"].pop("setup-gan"))))
    assert any("not a file under roles/" in p for p in broken(lambda t: (t / "roles/roles/gan/run-gan.yml").unlink()))


def test_instances_are_the_catalogs_aws_types_under_the_documented_ids():
    instances = load(CLAP / "configs" / "instances.yaml")
    expected = {clap_cluster.clap_template_id(t): t for t in aws_types()}
    assert {k: v["flavor"] for k, v in instances.items()} == expected
    assert clap_cluster.clap_template_id("t2.small") == "paramount-t2-small"


def test_account_specific_values_are_obvious_placeholders():
    instances = load(CLAP / "configs" / "instances.yaml")
    logins = load(CLAP / "configs" / "logins.yaml")
    providers = load(CLAP / "configs" / "providers.yaml")
    for inst in instances.values():
        assert inst["image_id"].startswith("REPLACE_ME") and inst["security_group"].startswith("REPLACE_ME")
    for login in logins.values():
        for key in ("keypair_name", "keypair_public_file", "keypair_private_file"):
            assert login[key].startswith("REPLACE_ME")
    for prov in providers.values():
        assert prov["access_keyfile"].startswith("REPLACE_ME") and prov["secret_access_keyfile"].startswith("REPLACE_ME")
    # one value per placeholder, the same in every template: one search and replace each
    assert {i["image_id"] for i in instances.values()} == {"REPLACE_ME-ami-id"}
    assert {i["security_group"] for i in instances.values()} == {"REPLACE_ME-security-group"}


def test_seed_clusters_and_probe_cluster():
    for n, workers in ((1, 0), (2, 1), (4, 3)):
        name = "cluster-t2.small-%dx" % n
        doc = load(CLAP / "configs" / "clusters" / (name + ".yml"))
        nodes = doc["clusters"][name]["nodes"]
        assert nodes["main"]["count"] == 1 and nodes["workers"]["count"] == workers
        assert nodes["workers"]["min_count"] == workers and nodes["main"]["min_count"] == 1
        assert {v["type"] for v in nodes.values()} == {"paramount-t2-small"}
        assert all(v["setups"] == ["paramount-gan"] for v in nodes.values())
    probe = load(CLAP / "configs" / "clusters" / "paramount-probe.yml")["clusters"]["paramount-probe"]["nodes"]
    assert {v["type"] for v in probe.values()} == {clap_cluster.clap_template_id(t) for t in aws_types()}
    assert all(v["count"] == 1 for v in probe.values())
    # the provision role's desired-state probe inventory has the same types
    inv = load(REPO / "inventories" / "clap" / "probe-cluster.yml")["all"]["children"]["paramount_train"]["hosts"]
    assert sorted(h["instance_type"] for h in inv.values()) == sorted(aws_types())
    assert sum(1 for h in inv.values() if h.get("paramount_rendezvous")) == 1


def test_no_action_named_setup_and_setup_gan_runs_once_per_node():
    role = load(CLAP / "roles" / "actions.d" / "gan.yml")
    assert set(role["actions"]) == {"setup-gan", "run-gan", "fetch-result"}
    assert "setup" not in role["actions"]  # CLAP would run it on every `role add`, and again from the setup
    setups = load(CLAP / "configs" / "clusters" / "paramount-setups.yml")["setups"]
    assert setups["paramount-gan"] == {"roles": [{"name": "gan"}], "actions": [{"role": "gan", "action": "setup-gan"}]}
    # no required variable: nothing has to be typed (the seed's run-gan required master_node_ip and worker_node_ips)
    assert all(v.get("optional") for a in role["actions"].values() for v in a.get("vars", []))


def _plays(path):
    return yaml.safe_load(Path(path).read_text())


@pytest.mark.parametrize("action", ["setup-gan", "run-gan", "fetch-result"])
def test_action_playbooks_gather_facts_first_and_use_the_collection_with_group_gan(action):
    plays = _plays(GAN / (action + ".yml"))
    assert plays[0] == {"name": "Prepare the nodes", "ansible.builtin.import_playbook": "prepare.yml"}
    imports = [p for p in plays if str(p.get("ansible.builtin.import_playbook", "")).startswith("paramount.cluster.")]
    assert imports and all(p["vars"]["paramount_group"] == "gan" for p in imports)
    for play in plays:
        if "hosts" in play:
            assert play["hosts"] == "gan"
    prepare = _plays(GAN / "prepare.yml")
    assert prepare[0]["hosts"] == "gan" and prepare[0]["gather_facts"] is True


def test_no_vars_prompt_and_no_typed_address_anywhere_in_the_clap_folder():
    for path in sorted(CLAP.rglob("*.y*ml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, list):  # a playbook
            assert all("vars_prompt" not in play and "pause" not in yaml.safe_dump(play) for play in doc), path
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        addresses = [a for a in IP_RE.findall(text) if not a.startswith("127.")]
        assert addresses == [], (path, addresses)
        assert "master_node_ip" not in text and "worker_node_ips" not in text


def test_run_gan_finds_the_rendezvous_in_groups_gan():
    probe_tasks = yaml.safe_load((REPO / "roles" / "probe" / "tasks" / "main.yml").read_text())
    (find,) = [t for t in probe_tasks if t.get("name", "").startswith("Find the rendezvous node")]
    text = yaml.safe_dump(find)
    assert "groups[paramount_group]" in text and "ansible_default_ipv4" in text
    assert "groups['gan']" in (GAN / "prepare.yml").read_text()


def test_optimizer_clap_files_validate_for_every_aws_type():
    setups = load(CLAP / "configs" / "clusters" / "paramount-setups.yml")["setups"]
    instances = load(CLAP / "configs" / "instances.yaml")
    for itype in aws_types():
        for nodes in (1, 2, 4):
            for kwargs in ({}, {"setups": ["paramount-gan"]}):
                doc = clap_cluster.clap_cluster_config(itype, nodes, "run1", **kwargs)
                assert clap_cluster.validate_clap_cluster(doc, known_setups=setups) == []
                cluster = next(iter(doc["clusters"].values()))
                assert {n["type"] for n in cluster["nodes"].values()} == {clap_cluster.clap_template_id(itype)}
                assert clap_cluster.clap_template_id(itype) in instances
                assert sum(n["count"] for n in cluster["nodes"].values()) == nodes
                if not kwargs:  # its own setup: adds gan and runs setup-gan, never an action named setup
                    (setup,) = doc["setups"].values()
                    assert setup["actions"] == [{"role": "gan", "action": "setup-gan"}]


def test_optimizer_clap_file_dumps_setup_names_given_as_str_subclasses():
    """Values from `-e` reach the optimizer as str subclasses (Ansible's tagged strings), which yaml.safe_dump
    rejects: `-e '{"paramount_plan_options": {"clap_setups": ["paramount-gan"]}}'` failed with RepresenterError."""
    class Tagged(str):
        pass

    doc = clap_cluster.clap_cluster_config("t2.small", 2, "run1", setups=[Tagged("paramount-gan")], role=Tagged("gan"))
    assert "paramount-gan" in yaml.safe_dump(doc)
    doc = clap_cluster.clap_cluster_config("t2.small", 1, "run1", role=Tagged("gan"), setup_action=Tagged("setup-gan"))
    assert "setup-gan" in yaml.safe_dump(doc)


def test_optimizer_writes_a_clap_cluster_file_that_fits_the_shipped_folder(tmp_path):
    from tests import loggen as lg
    from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize

    speed = {"t2.small": 0.15, "t3.medium": 0.3, "c5.large": 0.6}
    lg.sim_probe_tree(str(tmp_path / "probe"), types=tuple(speed), counts=(1, 2),
                      timing=lg.SimpleTiming(speed, seed=1), samples_per_epoch=4000, epochs=5, warmup_iterations=100)
    result = optimize({"results_dir": str(tmp_path / "probe"), "output_dir": str(tmp_path / "plan"), "objective": "time",
                       "bootstrap": 20, "plots": False, "instance_types": list(speed), "clap_setups": ["paramount-gan"]})
    assert not result.get("failed"), result
    doc = load(tmp_path / "plan" / files.CLAP_FILE)
    # dropped into a copy of the shipped folder, it validates with the shipped setups and templates
    import shutil

    folder = tmp_path / "clapcopy"
    shutil.copytree(CLAP, folder)
    shutil.copy(tmp_path / "plan" / files.CLAP_FILE, folder / "configs" / "clusters" / "optimized.yml")
    assert validate_clap_folder(str(folder)) == []
    chosen = result["plan"]["chosen"]
    (cluster,) = doc["clusters"].values()
    assert {n["type"] for n in cluster["nodes"].values()} == {clap_cluster.clap_template_id(chosen["instance_type"])}
    assert result["plan"]["clap"]["template_ids"] == {chosen["instance_type"]: clap_cluster.clap_template_id(chosen["instance_type"])}


def test_instance_schema_accepts_the_reference_example_and_rejects_a_wrong_type():
    example = {"provider": "aws-use1", "login": "ubuntu-login", "flavor": "t2.small",
               "image_id": "ami-0123456789abcdef0", "security_group": "my-sg", "boot_disk_size": 16}
    assert schema_errors(example, INSTANCE_AWS, "x") == []
    bad = copy.deepcopy(example)
    bad["network_ids"] = "subnet-1"  # must be a YAML list
    assert schema_errors(bad, INSTANCE_AWS, "x")


def test_type_slugs_are_the_probe_clusters_node_types():
    probe = load(CLAP / "configs" / "clusters" / "paramount-probe.yml")["clusters"]["paramount-probe"]["nodes"]
    assert sorted(probe) == sorted(slug(t) for t in aws_types())
    assert os.path.basename(clap_cluster.clap_template_id("g4dn.xlarge")) == "paramount-g4dn-xlarge"
