"""Every molecule scenario under extensions/molecule, one pytest test each (CI reads pytest's closing line)."""
import os
import shutil

import pytest

from tests.playbook_env import REPO, ansible_settings

from .conftest import require_simcloud

SCENARIOS = sorted(p.parent.name for p in (REPO / "extensions" / "molecule").glob("*/molecule.yml"))


@pytest.mark.molecule
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, request, collections_path, tmp_path):
    # molecule keeps its own ansible.cfg; results/ and runs/ of the scenario's playbooks go to work/, not the checkout
    env = ansible_settings(collections_path, config=None, local_temp=tmp_path / "ansible-local", workdir=tmp_path / "work",
                           MOLECULE_GLOB="extensions/molecule/*/molecule.yml")
    (tmp_path / "work").mkdir()
    # A scenario that needs something built beforehand (an image archive, a wheel folder) names the fixtures
    # that build it in `requires-fixtures`, one per line; each fixture returns environment variables for molecule.
    needs = REPO / "extensions" / "molecule" / scenario / "requires-fixtures"
    if needs.exists():
        for name in needs.read_text(encoding="utf-8").split():
            env.update(request.getfixturevalue(name))
    argv = [shutil.which("molecule", path=env["PATH"]), "test", "-s", scenario]
    if (REPO / "extensions" / "molecule" / scenario / "requires-simcloud").exists():
        require_simcloud()
        cloud = request.getfixturevalue("sim_cloud")
        proc = cloud.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=880)
    else:
        import subprocess

        proc = subprocess.run(argv, cwd=REPO, env=dict(os.environ, **env), capture_output=True, text=True, timeout=880, check=False)
    output = proc.stdout + proc.stderr
    log = tmp_path / "molecule.log"  # the whole output: the assertion shows its end only
    log.write_text(output, encoding="utf-8")
    assert proc.returncode == 0, "%s\n[...]\n%s\n(whole output: %s)" % (failed_tasks(output), output[-6000:], log)
    assert "failed=0" in output.split("SCENARIO RECAP")[-1], output[-4000:]


def failed_tasks(output, lines_each=12):
    """The task header and result of each failed task (`fatal:` or `failed:`), which the output's tail often lacks."""
    lines = output.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("fatal: [", "failed: [")):
            header = next((lines[j] for j in range(i, -1, -1) if lines[j].startswith("TASK [")), "")
            found.append("\n".join([header] + lines[i:i + lines_each]))
    return "\n".join(found[:3]) or "(no failed task in the output)"
