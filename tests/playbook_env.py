"""The environment a test or benchmark gives ansible-playbook, ansible and molecule on this checkout.

One recipe: the venv's executables first on PATH, this checkout as the only paramount.cluster of the collections
path, the repository's ansible.cfg, no colour, and, as asked, a private local temp folder and the PARAMOUNT_*
settings of the playbooks (work folder, run id, backend). Standard library only: benchmarks import it too.
"""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BUILD_COLLECTIONS = REPO / ".build" / "collections"  # tests/conftest.py links this checkout there
ANSIBLE_CFG = REPO / "ansible.cfg"


def ansible_command(name):
    """Path of an Ansible executable (ansible-playbook, ansible, molecule) of the venv running this process."""
    return str(VENV_BIN / name)


def link_collection(root):
    """``root/ansible_collections/paramount/cluster`` -> this checkout; returns ``root`` (a collections path)."""
    link = Path(root) / "ansible_collections" / "paramount" / "cluster"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        try:
            link.symlink_to(REPO)
        except FileExistsError:  # another xdist worker or process made it first
            pass
    return Path(root)


def ansible_settings(collections_path=BUILD_COLLECTIONS, *, config=ANSIBLE_CFG, local_temp=None, workdir=None,
                     run=None, backend=None, bin_dir=VENV_BIN, path=None, **more):
    """The recipe's variables alone (to lay over an environment, or to hand to ``SimCloud.run``).

    ``config`` None leaves ANSIBLE_CONFIG out; PATH is ``bin_dir`` (the venv whose Ansible runs) then ``path``
    (default: this process's PATH); ``more`` adds or overrides variables (a value None drops one)."""
    env = {
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "") if path is None else path]),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
    }
    optional = {"ANSIBLE_CONFIG": config, "ANSIBLE_LOCAL_TEMP": local_temp, "PARAMOUNT_WORKDIR": workdir,
                "PARAMOUNT_RUN": run, "PARAMOUNT_BACKEND": backend}
    env.update({name: str(value) for name, value in {**optional, **more}.items() if value is not None})
    dropped = {name for name, value in more.items() if value is None}
    return {name: value for name, value in env.items() if name not in dropped}


def playbook_env(collections_path=BUILD_COLLECTIONS, *, drop=(), **settings):
    """This process's environment without the variables starting with any of ``drop``, with the recipe laid over
    it (``settings``: as ``ansible_settings``)."""
    base = {name: value for name, value in os.environ.items() if not (drop and name.startswith(tuple(drop)))}
    return {**base, **ansible_settings(collections_path, **settings)}
