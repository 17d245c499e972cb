"""The callback inside a real ansible-playbook run: a table after the recap and the JSON file."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]


def test_a_playbook_run_prints_and_saves_every_play(tmp_path):
    playbook = tmp_path / "two-plays.yml"
    playbook.write_text("""
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
""")
    collections = tmp_path / "collections" / "ansible_collections" / "paramount"
    collections.mkdir(parents=True)
    (collections / "cluster").symlink_to(REPO)
    out = tmp_path / "phases.json"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"),
               ANSIBLE_CALLBACKS_ENABLED="paramount.cluster.phases", PARAMOUNT_PHASES_FILE=str(out),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_CONFIG=str(tmp_path / "none.cfg"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           str(playbook)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PHASES" in proc.stdout
    assert "| First phase |" in proc.stdout and "| Second phase |" in proc.stdout
    saved = json.loads(out.read_text())
    assert [p["phase"] for p in saved["phases"]] == ["First phase", "Second phase"]
    assert saved["phases"][0]["seconds"] >= 1.0 > saved["phases"][1]["seconds"]
    assert saved["phases"][0]["hosts"] == ["localhost"]
    assert saved["total_seconds"] >= saved["phases"][0]["seconds"] + saved["phases"][1]["seconds"]
