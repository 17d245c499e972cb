"""Register running sim hosts in the real CLAP's node repository through CLAP's own API, the way `clapp node start`
leaves a started node (status reachable, the instance's template as its configuration).

Run with CLAP's venv Python and CLAP_PATH set:
  ``python register_nodes.py CLAP_SOURCE add JSON``: JSON is a list of ``{"template": <instance template id>,
  "instance_id": "i-...", "private_ip": "10.77.0.4"}``; prints the new node ids (JSON list, in input order);
  ``python register_nodes.py CLAP_SOURCE remove ID...``: removes those records (the instances are the test's to end).
Part of the tests, not of CLAP: it only calls CLAP's public helpers."""
import json
import sys
import time
import uuid


def main(source, command, args):
    sys.path.insert(0, source)
    # pylint: disable=import-outside-toplevel,import-error
    from app.cli.modules.node import get_config_db, get_node_manager
    from clap.node import NodeDescriptor, NodeLifecycle, NodeStatus, NodeType

    manager = get_node_manager()
    if command == "remove":
        for node_id in args:
            manager.remove_node(node_id)
        return
    templates = get_config_db().instance_descriptors
    ids = []
    for host in json.loads(args[0]):
        if host["template"] not in templates:
            raise SystemExit("instance template %r is not in CLAP's instances.yaml (known: %s)"
                             % (host["template"], ", ".join(sorted(templates))))
        now = time.time()
        node = NodeDescriptor(
            node_id=uuid.uuid4().hex, configuration=templates[host["template"]], nickname=host.get("name", ""),
            ip=host["private_ip"], type=NodeType.TYPE_CLOUD, cloud_instance_id=host["instance_id"],
            cloud_lifecycle=NodeLifecycle.NORMAL, status=NodeStatus.REACHABLE, creation_time=now, update_time=now,
            tags=dict(host.get("tags", {})),
            extra={"instance_id": host["instance_id"], "private_ip": host["private_ip"]},
        )
        manager.upsert_node(node)
        ids.append(node.node_id)
    print(json.dumps(ids))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
