"""A role's files as the tests read them: defaults, argument specs, tasks, and its defaults as Ansible renders them."""
import json
import subprocess
from pathlib import Path

import yaml

from tests.playbook_env import REPO, ansible_command, playbook_env


def read_yaml(path):
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def role_defaults(role):
    """defaults/main.yml of the collection's role, as written (templates unrendered)."""
    return read_yaml(REPO / "roles" / role / "defaults" / "main.yml")


def role_options(role, entry="main"):
    """The options of one entry point of the role's meta/argument_specs.yml."""
    return read_yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"][entry]["options"]


def role_task(role, name_start, file_name="main.yml"):
    """The one task of tasks/<file_name> whose name starts with ``name_start``."""
    found = [t for t in read_yaml(REPO / "roles" / role / "tasks" / file_name) if t["name"].startswith(name_start)]
    assert len(found) == 1, "%s: %d tasks named %r..." % (file_name, len(found), name_start)
    return found[0]


def rendered_defaults(role, names, collections_path, tmp_path):
    """{name: value} of the role's defaults ``names`` as Ansible renders them, lookups of this collection included
    (one `ansible localhost -m ansible.builtin.debug` with the defaults as extra vars)."""
    expression = "{{ {%s} }}" % ", ".join("%s: %s" % (json.dumps(name), name) for name in names)
    argv = [ansible_command("ansible"), "localhost", "-c", "local", "-e", "@%s" % (REPO / "roles" / role / "defaults" / "main.yml"),
            "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": expression})]
    env = playbook_env(collections_path, config=None, local_temp=tmp_path / "ansible-tmp", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
                       ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_LOCALHOST_WARNING="false",
                       ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_HOME=tmp_path / ".ansible")
    proc = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]


def write_desired(folder, hosts, group_vars=None):
    """Path (str) of ``folder``/desired.yml: a desired-state inventory of ``hosts`` ({name: variables}) in group
    paramount_train, with the group's ``vars`` when given."""
    group = {"hosts": hosts}
    if group_vars:
        group["vars"] = group_vars
    path = Path(folder) / "desired.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"paramount_train": group}}}), encoding="utf-8")
    return str(path)
