"""The simulated cloud as a tool of the checkout (simcloud/ at the repository root): it runs by path from any folder,
without the collection on sys.path, and emulates exactly the catalog's sim.* types."""
import json
import os
import subprocess
import sys

import simcloud
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import default_catalog_path, load_catalog
from tests.playbook_env import REPO

PRINT_TYPES = "import json, simcloud; print(json.dumps({n: [t.cpu, t.memory_mib, t.vcpus, t.price_per_hour] for n, t in simcloud.SIM_TYPES.items()}))"


def _without_collection():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_sim_types_are_the_catalogs_sim_rows():
    catalog = load_catalog(default_catalog_path())
    sim_rows = {n: e for n, e in catalog.items() if n.startswith("sim.")}
    assert sorted(simcloud.SIM_TYPES) == sorted(sim_rows) and len(sim_rows) == 3
    for name, sim_type in simcloud.SIM_TYPES.items():
        row = sim_rows[name]
        assert (sim_type.cpu, sim_type.memory_mib, sim_type.vcpus, sim_type.price_per_hour) == (
            row.cpu_share, row.memory_gib * 1024, row.vcpus, row.price_per_hour)


def test_run_by_path_from_another_folder(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "simcloud"), "--help"], cwd=str(tmp_path), env=_without_collection(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    for command in ("up", "down", "exec", "status", "set-cpu"):
        assert command in proc.stdout


def test_imported_without_the_collection_it_loads_the_catalog_by_path(tmp_path):
    """The reconciler and the tool run outside Ansible: paramount_catalog comes from the checkout by its path."""
    proc = subprocess.run([sys.executable, "-c", PRINT_TYPES], cwd=str(tmp_path), capture_output=True, text=True, timeout=60,
                          check=False, env=dict(_without_collection(), PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {n: [t.cpu, t.memory_mib, t.vcpus, t.price_per_hour] for n, t in simcloud.SIM_TYPES.items()}
