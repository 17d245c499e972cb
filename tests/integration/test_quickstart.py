"""optimize.yml end to end on the embedded local backend: no root, no cloud (what scripts/quickstart runs)."""
import json
import subprocess

import pytest
import yaml

from tests.playbook_env import REPO, ansible_command, playbook_env


def _ansible_playbook(args, workdir, collections_path, timeout):
    env = playbook_env(collections_path, workdir=workdir, run="quickstart-test")
    return subprocess.run([ansible_command("ansible-playbook"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_optimize_playbook_on_the_local_backend(tmp_path, collections_path):
    proc = _ansible_playbook(["optimize.yml"], tmp_path, collections_path, 880)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    results = tmp_path / "results" / "quickstart-test"

    # Every probe node's .log and .out came back, named by node.
    probe_nodes = yaml.safe_load((REPO / "inventories/local/probe-cluster.yml").read_text())["all"]["children"]["paramount_train"]["hosts"]
    assert sorted(p.name for p in (results / "probe").iterdir()) == sorted(f"{n}.{ext}" for n in probe_nodes for ext in ("log", "out"))

    # The whole output is free of warnings (ansible-core's and the callbacks').
    output = proc.stdout + proc.stderr
    assert "[WARNING]" not in output and "DEPRECATION WARNING" not in output, [
        line for line in output.splitlines() if "WARNING" in line]

    plan = json.loads((results / "plan" / "plan.json").read_text())
    chosen = plan["chosen"]
    assert chosen and chosen["instance_type"].startswith("local.")
    # The mixed probe rates the three types in the order of their CPU shares (0.15, 0.30, 0.60), each at its own
    # speed, so the cheapest per unit of work (local.medium) can beat the cheapest per hour (local.small).
    one_node = {c["instance_type"]: c for c in plan["candidates"] if c["nodes"] == 1}
    for phase in ("warmup", "adversarial"):
        rated = [one_node[t]["seconds_per_iteration_by_phase"][phase]
                 for t in ("local.small", "local.medium", "local.large")]
        assert rated[0] > rated[1] > rated[2], (phase, rated)
    assert chosen["instance_type"] != "local.small", "the cheapest per hour won: the ratings did not separate"
    assert {p["kind"] for p in plan["cross_check"]} == {"probed"}
    assert sorted(plan["keep"] + plan["stop"]) == sorted(probe_nodes)
    assert "chosen:" in proc.stdout and chosen["instance_type"] in proc.stdout

    ledger = json.loads((results / "ledger.json").read_text())
    train = next(p for p in ledger["phases"] if p["phase"] == "train")
    assert train["statuses"] == ["completed"] and train["nodes"] == chosen["nodes"]
    assert train["types"] == [chosen["instance_type"]]
    assert list((results / "artifacts").rglob("generator.pt")), "the final model did not come back"
    # the ledger's figure shows the probed points and the trained job's
    assert (results / "measured_vs_predicted.png").is_file()
    assert {p["kind"] for p in ledger["figure_points"]} == {"probed", "trained"}
    assert ledger["train_time_ratio"] > 0 and ledger["train_cost_ratio"] > 0

    # Teardown: the run's node slots are gone and none of its trainers still runs.
    assert not (tmp_path / "runs" / "quickstart-test").exists()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "runs")], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", "trainer processes outlived the run: " + leftover.stdout

    # --check starts nothing and shows the plan from the results already collected.
    check = _ansible_playbook(["optimize.yml", "--check"], tmp_path, collections_path, 300)
    assert check.returncode == 0, (check.stdout + check.stderr)[-4000:]
    assert "chosen:" in check.stdout
    assert not (tmp_path / "runs" / "quickstart-test").exists()
