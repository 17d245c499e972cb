# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Print {node id: instance type} for the given CLAP node ids, read from CLAP's node repository.

CLAP's role-action inventory names each host by its node id and carries no instance type; the node's record in
$CLAP_PATH/storage/nodes.db (SqliteDict: table "node", key = node id, value = the node as JSON) holds the template
it was started from, whose ``flavor`` is the cloud's instance type. Run by prepare.yml on the controller with
Ansible's own Python: ``python clap_node_types.py NODES_DB ID [ID ...]``. Ids not in the repository are left out;
a missing repository prints {}.
"""
import json
import os
import sqlite3
import sys
from contextlib import closing


def node_types(db_path, node_ids):
    if not os.path.isfile(db_path):
        return {}
    found = {}
    # read-only: never create or lock CLAP's repository for writing
    with closing(sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=30)) as db:
        for node_id in node_ids:
            row = db.execute('SELECT value FROM "node" WHERE key = ?', (node_id,)).fetchone()
            if row is None:
                continue
            flavor = (json.loads(row[0]).get("configuration") or {}).get("instance", {}).get("flavor")
            if flavor:
                found[node_id] = flavor
    return found


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: clap_node_types.py NODES_DB NODE_ID [NODE_ID ...]\n")
        return 2
    try:
        print(json.dumps(node_types(argv[0], argv[1:]), sort_keys=True))
    except sqlite3.Error as exc:
        sys.stderr.write("cannot read CLAP's node repository %s: %s\n" % (argv[0], exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
