"""The collection builds, and its dependencies are satisfied offline by the `ansible` package."""
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_collection_builds_without_the_work_tree_clutter(tmp_path):
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = tmp_path.glob("paramount-cluster-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    for wanted in ("MANIFEST.json", "plugins/action/optimize.py", "plugins/modules/optimize.py",
                   "roles/probe/tasks/main.yml", "playbooks/plan.yml", "catalogs/default.csv",
                   "trainer/paramount_trainer/schemas/log-record-v1.schema.json", "plugins/lookup/emulated_cpu_shares.py"):
        assert wanted in names, wanted
    assert not [n for n in names if n.split("/")[0] in (".venv", ".build", "results", "runs", ".hypothesis", ".pytest_cache")]
    # the simulated cloud is a tool of the checkout, not an Ansible plugin: it is not shipped
    assert not [n for n in names if n.split("/")[0] == "simcloud" or n.startswith("plugins/plugin_utils/simcloud")]
    assert not [n for n in names if "__pycache__" in n]


def test_collection_dependencies_need_no_galaxy():
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", str(REPO / "requirements.yml")],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Nothing to do" in proc.stdout
