"""Helpers for tests that drive the clapp test double (tests/clap_double/clapp): a private HOME and CLAP_PATH per test,
the collection's CLAP folder installed there with scripts/setup-clap, and the placeholders filled with test values.
Nothing touches the real ~/.clap."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from tests.playbook_env import BUILD_COLLECTIONS as COLLECTIONS, REPO, playbook_env

DOUBLE = REPO / "tests" / "clap_double" / "clapp"
SETUP_CLAP = REPO / "scripts" / "setup-clap"


def make_env(tmp_path, nodes="local", install=True, fill=True, **extra):
    """Environment of a private CLAP world under tmp_path; `clapp` on PATH is the double."""
    home = tmp_path / "home"
    bindir = tmp_path / "bin"
    for d in (home, bindir, tmp_path / "ansible-tmp"):
        d.mkdir(parents=True, exist_ok=True)
    if not (bindir / "clapp").exists():
        (bindir / "clapp").symlink_to(DOUBLE)
    env = playbook_env(
        COLLECTIONS, drop=("ANSIBLE_", "CLAP_", "PARAMOUNT_"), config=None, local_temp=tmp_path / "ansible-tmp",
        path=os.pathsep.join([str(bindir), os.environ.get("PATH", "")]),
        HOME=home, CLAP_PATH=home / ".clap", CLAP_DOUBLE_NODES=nodes,
        ANSIBLE_REMOTE_TMP=tmp_path / "ansible-tmp",
        # one absolute async folder: with a temporary HOME, `~` could mean two places to async and async_status
        ANSIBLE_ASYNC_DIR=tmp_path / "ansible-async",
        ANSIBLE_RETRY_FILES_ENABLED="0", PYTHONDONTWRITEBYTECODE="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    if install:
        subprocess.run([str(SETUP_CLAP)], env=env, check=True, capture_output=True, text=True, timeout=60)
        if fill:
            fill_placeholders(Path(env["CLAP_PATH"]))
    return env


def fill_placeholders(clap_path):
    """Test values for the REPLACE_ME placeholders (what a user does once by hand)."""
    cfg = Path(clap_path) / "configs"
    for name in ("instances.yaml", "logins.yaml", "providers.yaml"):
        path = cfg / name
        text = path.read_text()
        text = text.replace("REPLACE_ME-ami-id", "ami-0123456789abcdef0").replace("REPLACE_ME-", "test-")
        path.write_text(text)
    private = Path(clap_path) / "private"
    for key in ("test-key-pair.pem", "test-key-pair.pub", "test-aws-access-key-id.txt", "test-aws-secret-access-key.txt"):
        (private / key).write_text("not a real key\n")
        (private / key).chmod(0o400)


def clapp(env, *args, timeout=120, cwd=None, check_rc=None):
    """Run the double as `clapp ARGS` (through PATH, like a user); returns the CompletedProcess."""
    cwd = str(cwd or env["HOME"])
    env = dict(env, PWD=cwd)  # what a shell would set: the collection's playbooks put results under $PWD/results
    proc = subprocess.run(["clapp"] + [str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if check_rc is not None:
        why = "clapp %s: rc %d\n%s\n%s" % (" ".join(map(str, args)), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
        assert proc.returncode == check_rc, why
    return proc


def stored_nodes(env):
    """The node records as CLAP's SQLite store holds them (SELECT key, value FROM "node")."""
    db = Path(env["CLAP_PATH"]) / "storage" / "nodes.db"
    if not db.exists():
        return {}
    with closing(sqlite3.connect(str(db))) as conn:
        return {k: json.loads(v) for k, v in conn.execute('SELECT key, value FROM "node"')}


def write_yaml(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
