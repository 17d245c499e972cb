"""CLAP 0.2.3's documented config schema (shared/reference/clap.md, section 2) as JSON schemas, and a checker for a
whole CLAP folder (configs/ and roles/). CLAP itself ignores unknown keys; these schemas reject them, so a typo in a
shipped file (a key CLAP would silently ignore) is caught. Cluster files are checked with the collection's own
``validate_clap_cluster``, plus the cross-references CLAP resolves at run time."""
from __future__ import annotations

import os

import jsonschema
import yaml

from ansible_collections.paramount.cluster.plugins.plugin_utils.clap.cluster import validate_clap_cluster

_STR = {"type": "string", "minLength": 1}
_FILE = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}  # a file name in $CLAP_PATH/private/

PROVIDER_AWS = {
    "type": "object",
    "required": ["region", "access_keyfile", "secret_access_keyfile"],
    "additionalProperties": False,
    "properties": {
        "provider": {"const": "aws"}, "region": _STR, "access_keyfile": _FILE, "secret_access_keyfile": _FILE,
        "vpc": {"type": ["string", "null"]}, "url": {"type": ["string", "null"]},
    },
}
LOGIN = {
    "type": "object",
    "required": ["user", "keypair_name", "keypair_public_file", "keypair_private_file"],
    "additionalProperties": False,
    "properties": {
        "user": _STR, "keypair_name": _STR, "keypair_public_file": _FILE, "keypair_private_file": _FILE,
        "ssh_port": {"type": "integer", "minimum": 1, "maximum": 65535}, "sudo": {"type": "boolean"},
        "sudo_user": _STR,
    },
}
INSTANCE_AWS = {
    "type": "object",
    # security_group is declared Optional but always rendered into the ec2 module's `group:`
    "required": ["provider", "login", "flavor", "image_id", "security_group"],
    "additionalProperties": False,
    "properties": {
        "provider": _STR, "login": _STR, "flavor": _STR, "image_id": _STR, "security_group": _STR,
        "boot_disk_size": {"type": "integer", "minimum": 1}, "boot_disk_device": _STR, "boot_disk_type": _STR,
        "boot_disk_iops": {"type": ["string", "integer"]}, "boot_disk_snapshot": _STR, "placement_group": _STR,
        "price": {"type": "number", "exclusiveMinimum": 0}, "timeout": {"type": "integer", "minimum": 1},
        "network_ids": {"type": "array", "items": _STR},
    },
}
ROLE_FILE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "actions": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["playbook"],
                "additionalProperties": False,
                "properties": {
                    "playbook": _STR,
                    "description": {"type": ["string", "null"]},
                    "vars": {"type": "array", "items": {
                        "type": "object", "required": ["name"], "additionalProperties": False,
                        "properties": {"name": _STR, "description": {"type": ["string", "null"]},
                                       "optional": {"type": "boolean"}}}},
                },
            },
        },
        "hosts": {"type": "array", "items": _STR},
    },
}


def _mapping_of(schema):
    return {"type": "object", "additionalProperties": schema}


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def schema_errors(doc, schema, where):
    validator = jsonschema.Draft202012Validator(schema)
    return ["%s: %s at %s" % (where, e.message, "/".join(str(p) for p in e.absolute_path) or "top level")
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]


def cluster_files(clap_dir):
    cdir = os.path.join(clap_dir, "configs", "clusters")
    return sorted(os.path.join(cdir, f) for f in os.listdir(cdir) if f.endswith((".yml", ".yaml")))


def role_files(clap_dir):
    adir = os.path.join(clap_dir, "roles", "actions.d")
    return sorted(os.path.join(adir, f) for f in os.listdir(adir) if f.endswith((".yml", ".yaml")))


def validate_clap_folder(clap_dir):
    """Every problem CLAP would hit (or silently drop) in a CLAP folder laid out like $CLAP_PATH."""
    cfg = os.path.join(clap_dir, "configs")
    problems = []
    providers = load(os.path.join(cfg, "providers.yaml")) or {}
    logins = load(os.path.join(cfg, "logins.yaml")) or {}
    instances = load(os.path.join(cfg, "instances.yaml")) or {}
    problems += schema_errors(providers, _mapping_of(PROVIDER_AWS), "providers.yaml")
    problems += schema_errors(logins, _mapping_of(LOGIN), "logins.yaml")
    problems += schema_errors(instances, _mapping_of(INSTANCE_AWS), "instances.yaml")
    for iid, inst in instances.items():
        if isinstance(inst, dict):
            if inst.get("provider") not in providers:
                problems.append("instances.yaml %s: provider %s is not in providers.yaml" % (iid, inst.get("provider")))
            if inst.get("login") not in logins:
                problems.append("instances.yaml %s: login %s is not in logins.yaml" % (iid, inst.get("login")))

    roles = {}
    for path in role_files(clap_dir):
        name = os.path.splitext(os.path.basename(path))[0]
        doc = load(path) or {}
        problems += schema_errors(doc, ROLE_FILE, os.path.relpath(path, clap_dir))
        roles[name] = doc
        for aname, action in (doc.get("actions") or {}).items():
            pb = os.path.join(clap_dir, "roles", str(action.get("playbook")))
            if os.path.isabs(str(action.get("playbook"))) or not os.path.isfile(pb):
                problems.append("role %s action %s: playbook %s is not a file under roles/" % (name, aname, action.get("playbook")))

    docs = {path: load(path) or {} for path in cluster_files(clap_dir)}
    setups, clusters = {}, {}
    for path, doc in docs.items():
        for kind, seen in (("setups", setups), ("clusters", clusters)):
            for key in (doc.get(kind) or {}) if isinstance(doc, dict) else {}:
                if key in seen:
                    problems.append("%s %s is defined in %s and %s (CLAP skips the second)" % (kind, key, seen[key], path))
                seen[key] = os.path.basename(path)
    all_setups = {}
    for doc in docs.values():
        all_setups.update((doc or {}).get("setups") or {})
    for path, doc in docs.items():
        found = validate_clap_cluster(doc, known_setups=all_setups)
        if isinstance(doc, dict) and "clusters" not in doc:
            # CLAP reads a file of setups only (clusters defaults to {}); validate_clap_cluster checks cluster files
            found = [p for p in found if p != "clusters must be a non-empty mapping"]
        problems += ["%s: %s" % (os.path.basename(path), p) for p in found]
        for cname, cluster in ((doc or {}).get("clusters") or {}).items():
            for ntype, spec in (cluster.get("nodes") or {}).items():
                if spec.get("type") not in instances:
                    problems.append("cluster %s node %s: instance template %s is not in instances.yaml" % (cname, ntype, spec.get("type")))
    for sname, setup in all_setups.items():
        for role in setup.get("roles") or []:
            if role.get("name", "").split("/")[0] not in roles:
                problems.append("setup %s adds role %s, which has no roles/actions.d file" % (sname, role.get("name")))
        for action in setup.get("actions") or []:
            if "role" in action:
                actions = (roles.get(action["role"]) or {}).get("actions") or {}
                if action.get("action") not in actions:
                    problems.append("setup %s runs %s/%s, which does not exist" % (sname, action["role"], action.get("action")))
    return problems
