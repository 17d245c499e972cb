"""scripts/setup-clap: installs clap/ into $CLAP_PATH like CLAP's install.sh (configs cp -n, roles overwritten),
idempotently, saying what it did; never touches the real ~/.clap (HOME and CLAP_PATH are temporary here)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "setup-clap"
SRC = REPO / "clap"


def run(env, *args):
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=True).stdout


def tree(root):
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        elif path.is_dir() and rel.count("/") < 4:
            out[rel] = "dir"
    return out


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return dict(os.environ, HOME=str(home), CLAP_PATH=str(tmp_path / "clap"))


def test_install_layout_like_clap(env):
    out = run(env)
    dest = Path(env["CLAP_PATH"])
    for d in ("configs", "configs/clusters", "roles", "private", "storage"):
        assert (dest / d).is_dir(), d
    assert oct((dest / "private").stat().st_mode & 0o777) == "0o700"
    for src in [p for d in ("configs", "roles") for p in (SRC / d).rglob("*")]:
        if src.is_file():
            assert (dest / src.relative_to(SRC)).read_bytes() == src.read_bytes(), src
    link = dest / "roles/roles/gan/collections/ansible_collections/paramount/cluster"
    assert link.is_symlink() and link.resolve() == REPO.resolve()
    assert "installed  %s/configs/instances.yaml" % dest in out
    assert "REPLACE_ME" in out and "to fill in before starting nodes" in out
    assert not (Path(env["HOME"]) / ".clap").exists()  # CLAP_PATH wins over ~/.clap


def test_second_run_changes_nothing_and_says_so(env):
    run(env)
    before = tree(env["CLAP_PATH"])
    out = run(env)
    assert tree(env["CLAP_PATH"]) == before
    assert "0 installed, 0 updated, 0 kept (yours)" in out
    assert "installed  " not in out and "updated  " not in out


def test_configs_are_never_overwritten_roles_always_are(env):
    run(env)
    dest = Path(env["CLAP_PATH"])
    mine = dest / "configs" / "instances.yaml"
    mine.write_text(mine.read_text().replace("REPLACE_ME-ami-id", "ami-0123456789abcdef0"))
    stale = dest / "roles" / "roles" / "gan" / "run-gan.yml"
    stale.write_text("# an old version\n")
    out = run(env)
    assert "ami-0123456789abcdef0" in mine.read_text()  # cp -n
    assert "kept       %s (yours" % mine in out
    assert stale.read_bytes() == (SRC / "roles" / "roles" / "gan" / "run-gan.yml").read_bytes()  # cp -r
    assert "updated    %s" % stale in out
    # a removed config comes back; yours stay
    (dest / "configs" / "clusters" / "cluster-t2.small-4x.yml").unlink()
    out = run(env)
    assert "installed  %s/configs/clusters/cluster-t2.small-4x.yml" % dest in out


def test_check_changes_nothing(env):
    out = run(env, "--check")
    assert "check only" in out and "installed  " in out
    assert not Path(env["CLAP_PATH"]).exists()


def test_default_is_home_dot_clap(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CLAP_PATH"}
    env["HOME"] = str(home)
    run(env)
    assert (home / ".clap" / "roles" / "actions.d" / "gan.yml").is_file()
