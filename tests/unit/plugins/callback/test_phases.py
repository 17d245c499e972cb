"""The callback inside a real ansible-playbook run: a table after the recap and the JSON file."""
import json
import subprocess

import pytest
import yaml

from ansible_collections.paramount.cluster.plugins.callback import phases as callback
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_phases import RUN_PHASES

from tests.playbook_env import REPO, ansible_command, link_collection, playbook_env


TWO_PLAYS = """
- name: First phase
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Wait a little
      ansible.builtin.pause:
        seconds: 1
- name: Second phase
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say something
      ansible.builtin.debug:
        msg: hello
"""


def _run(tmp_path, phases_file=None, **environment):
    """ansible-playbook of the two plays with the callback enabled; PARAMOUNT_PHASES_FILE as given (None: unset)."""
    playbook = tmp_path / "two-plays.yml"
    playbook.write_text(TWO_PLAYS)
    env = playbook_env(link_collection(tmp_path / "collections"), drop=("PARAMOUNT_PHASES_FILE",),
                       config=tmp_path / "none.cfg", local_temp=tmp_path / "tmp",
                       ANSIBLE_CALLBACKS_ENABLED="paramount.cluster.phases", PARAMOUNT_PHASES_FILE=phases_file, **environment)
    return subprocess.run([ansible_command("ansible-playbook"), "-i", "localhost,", "-c", "local",
                           str(playbook)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)


def test_a_playbook_run_prints_and_saves_every_play(tmp_path):
    out = tmp_path / "phases.json"
    proc = _run(tmp_path, str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr
    assert "PHASES" in proc.stdout
    assert "| First phase |" in proc.stdout and "| Second phase |" in proc.stdout
    saved = json.loads(out.read_text())
    assert [p["phase"] for p in saved["phases"]] == ["First phase", "Second phase"]
    assert saved["phases"][0]["seconds"] >= 1.0 > saved["phases"][1]["seconds"]
    assert saved["phases"][0]["hosts"] == ["localhost"]
    assert saved["total_seconds"] >= saved["phases"][0]["seconds"] + saved["phases"][1]["seconds"]


@pytest.mark.parametrize("phases_file", [None, ""], ids=["unset", "empty"])
def test_without_an_output_file_the_run_ends_without_a_warning(tmp_path, phases_file):
    # The empty default of a `type: path` option became the current folder: opening it for the JSON failed with
    # "[WARNING]: Callback dispatch 'v2_playbook_on_stats' failed for plugin ...phases: [Errno 21] Is a directory".
    proc = _run(tmp_path, phases_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| First phase |" in proc.stdout
    assert "WARNING" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collections", "tmp", "two-plays.yml"]


def test_the_output_file_may_start_with_the_home_folder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = _run(tmp_path, "~/results/phases.json", HOME=str(home))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr
    assert [p["phase"] for p in json.loads((home / "results" / "phases.json").read_text())["phases"]] == [
        "First phase", "Second phase"]


def test_the_documented_phases_are_optimize_yml_s_playbooks_in_order():
    """RunPhase names the phases once: optimize.yml imports one collection playbook per phase, in that order, and
    the callback's documentation lists the same."""
    plays = yaml.safe_load((REPO / "optimize.yml").read_text())
    imported = [play["ansible.builtin.import_playbook"].rsplit(".", 1)[-1] for play in plays
                if "ansible.builtin.import_playbook" in play]
    assert list(dict.fromkeys(imported)) == list(RUN_PHASES)
    assert "(%s)" % ", ".join(RUN_PHASES) in " ".join(yaml.safe_load(callback.DOCUMENTATION)["description"])
