"""playbooks/files/paramount_ledger.py, run by path as report.yml runs it: measured against predicted over the
same span (the trainer's process start to the end of its last iteration, as the plan's init + iterations), time
and cost both billed by the plan's rule, and per training phase. The logs are written here, with round figures:

    process start 1000.0, init logged at 1003.0 (3.0 s), 4 warm-up steps of 0.5 s, 6 adversarial steps of 1.0 s,
    an evaluation of 0.4 s after step 5 (epoch 0) and after step 9 (the last), the end record at 1012.8.

So the span is 11.4 s (init 3.0 + warm-up 2.0 + adversarial 6.0 + evaluation 0.4); the last evaluation and the
final save (1.4 s) come after it. The old ledger reported the first-to-last-record span (11.8 s here, without
init's first seconds before the `start` record) and billed it unrounded, without the minimum."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
LEDGER = REPO / "playbooks" / "files" / "paramount_ledger.py"
HEAD = ("instance_type,vcpus,memory_gib,gpus,price_per_hour,source,billing_increment_seconds,"
        "billing_minimum_seconds")
CATALOG = HEAD + "\nlocal.small,1,1,0,3.6,test,1,60\nlocal.large,1,1,0,7.2,test,10,120\n"


def _records(host, itype, rank=0):
    """One node's records, each complete by log contract v1 (the ledger reads through the planner's validating
    reader)."""
    common = {"schema": 1, "run_id": "r", "host": host, "rank": rank, "attempt": 0}
    out = [{"event": "start", "time": 1001.0, "instance_type": itype, "local_rank": 0, "world_size": 1, "nodes": 1,
            "local_batch": 4, "samples_per_epoch": 24, "iterations_per_epoch": 6, "epochs": 2,
            "warmup_iterations": 4, "workload": "w"},
           {"event": "init", "time": 1003.0, "seconds": 3.0}]
    t, step = 1003.0, 0
    for phase, seconds, count in (("warmup", 0.5, 4), ("adversarial", 1.0, 6)):
        for _i in range(count):
            t += seconds
            epoch = 0 if step <= 5 else 1
            out.append({"event": "iteration", "time": t, "step": step, "phase": phase, "seconds": seconds,
                        "epoch": epoch, "iteration": step - 6 * epoch, "compute_seconds": seconds, "samples": 4})
            if step in (5, 9):
                t += 0.4
                out.append({"event": "epoch", "time": t, "epoch": epoch, "eval_seconds": 0.4, "seconds": 6.0,
                            "iterations": 6})
            step += 1
    out.append({"event": "end", "time": 1012.8, "seconds": 12.8, "status": "completed"})
    return [dict(common, **r) for r in out]


def _results(tmp_path, chosen, setup_seconds=30.0, search_cost=0.0, probe=(), cross_check=None):
    results = tmp_path / "results"
    (results / "plan").mkdir(parents=True)
    (results / "train").mkdir()
    plan = {"chosen": chosen, "search_cost": search_cost, "constraints": {"setup_seconds": setup_seconds}}
    if cross_check is not None:
        plan["cross_check"] = cross_check
    (results / "plan" / "plan.json").write_text(json.dumps(plan))
    (results / "train" / "n1.log").write_text("".join(json.dumps(r) + "\n" for r in _records("n1", "local.small")))
    if probe:
        (results / "probe").mkdir()
        for host, itype in probe:
            (results / "probe" / (host + ".log")).write_text(
                "".join(json.dumps(r) + "\n" for r in _records(host, itype)))
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(CATALOG)
    return results, catalog


def _run(results, catalog):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # by path, no collection on sys.path
    proc = subprocess.run([sys.executable, str(LEDGER), str(results), str(catalog)], cwd=str(results.parent),
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads((results / "ledger.json").read_text()), proc.stdout


def _chosen(**billing):
    bill = {"increment_seconds": 1.0, "minimum_seconds": 60.0, "new_nodes": 1, "kept_nodes": 0,
            "kept_lived_seconds": [], "billed_node_seconds": 60.0}
    bill.update(billing)
    return {"instance_type": "local.small", "nodes": 1, "predicted_seconds": 12.0, "predicted_cost": 0.06,
            "init_seconds": 2.5, "seconds_per_iteration_by_phase": {"warmup": 0.5, "adversarial": 1.0},
            "iterations_by_phase": {"warmup": 4, "adversarial": 6}, "billing": bill}


def test_time_is_compared_over_the_span_the_plan_predicts_per_training_phase(tmp_path):
    ledger, printed = _run(*_results(tmp_path, _chosen()))
    train = ledger["comparison"]["train"]
    assert train["measured_seconds"] == pytest.approx(11.4)
    assert train["predicted_seconds"] == 12.0
    assert ledger["train_time_ratio"] == pytest.approx(11.4 / 12.0)
    assert train["after_span_seconds"] == pytest.approx(1.4)  # the last evaluation and the final save
    rows = {row["phase"].split(" (")[0]: row for row in train["by_phase"]}
    assert rows["init"]["measured_seconds"] == pytest.approx(3.0) and rows["init"]["predicted_seconds"] == 2.5
    assert rows["warmup"]["measured_seconds"] == pytest.approx(2.0) and rows["warmup"]["predicted_seconds"] == 2.0
    assert rows["warmup"]["measured_iterations"] == 4
    assert rows["adversarial"]["measured_seconds"] == pytest.approx(6.0)
    assert rows["adversarial"]["measured_seconds_per_iteration"] == pytest.approx(1.0)
    assert rows["evaluation"]["measured_seconds"] == pytest.approx(0.4)
    assert rows["evaluation"]["predicted_seconds"] is None
    # the model's start-up excess of the first iterations: predicted 12.0 - 2.5 - 8.0
    assert rows["first iterations' start-up excess"]["predicted_seconds"] == pytest.approx(1.5)
    assert "first trainer process start to the end of the last iteration" in ledger["span"]
    assert "| **span** | 11.4 | 12.0 | 0.95 |" in printed
    # the fields of earlier versions are still there
    phase = ledger["phases"][0]
    assert phase["phase"] == "train" and phase["statuses"] == ["completed"] and phase["types"] == ["local.small"]
    assert phase["wall_seconds"] == pytest.approx(11.8)


def test_the_figure_shows_the_probed_and_the_trained_points(tmp_path):
    probed = [{"instance_type": "local.medium", "nodes": 1, "phase": "adversarial", "measured": 0.7,
               "predicted": 0.7, "kind": "probed"}]
    ledger, printed = _run(*_results(tmp_path, _chosen(), cross_check=probed))
    figure = tmp_path / "results" / "measured_vs_predicted.png"
    assert ledger["figure"] == str(figure) and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trained = [p for p in ledger["figure_points"] if p["kind"] == "trained"]
    assert sorted((p["phase"], p["measured"], p["predicted"]) for p in trained) == [
        ("adversarial", pytest.approx(1.0), 1.0), ("warmup", pytest.approx(0.5), 0.5)]
    assert probed[0] in ledger["figure_points"]
    assert "Figure: %s" % figure in printed


def test_both_costs_are_billed_by_the_plans_rule(tmp_path):
    # 30 s setup + 11.4 s = 41.4 s: billed the 60 s minimum, as the prediction's 30 + 12 s; price 3.6/h
    ledger, _rest = _run(*_results(tmp_path, _chosen()))
    train = ledger["comparison"]["train"]
    assert train["billing"]["billed_node_seconds"] == 60.0
    assert train["measured_cost"] == pytest.approx(0.06) and train["predicted_cost"] == 0.06
    assert ledger["train_cost_ratio"] == pytest.approx(1.0)
    assert ledger["phases"][0]["billed_cost"] == pytest.approx(0.06)
    assert ledger["phases"][0]["cost"] == pytest.approx(11.8 * 3.6 / 3600)  # the unbilled logged span, as before


def test_a_node_kept_from_the_probe_pays_only_what_it_adds(tmp_path):
    # lived 50 s (billed in the search cost): 50 + 30 + 11.4 = 91.4 s -> 92 s billed, less the 60 s already billed
    chosen = _chosen(new_nodes=0, kept_nodes=1, kept_lived_seconds=[50.0], billed_node_seconds=32.0)
    chosen["predicted_cost"] = 32.0 * 3.6 / 3600
    ledger, _rest = _run(*_results(tmp_path, chosen))
    train = ledger["comparison"]["train"]
    assert train["billing"]["kept_nodes"] == 1
    assert train["billing"]["billed_node_seconds"] == pytest.approx(32.0)
    assert ledger["train_cost_ratio"] == pytest.approx(1.0)


def test_the_plans_rule_is_used_with_its_increment(tmp_path):
    # increment 10 s: 30 + 11.4 = 41.4 -> 50 s, minimum 0; the prediction 30 + 12 = 42 -> 50 s as well
    chosen = _chosen(increment_seconds=10.0, minimum_seconds=0.0, billed_node_seconds=50.0)
    chosen["predicted_cost"] = 50.0 * 3.6 / 3600
    ledger, _rest = _run(*_results(tmp_path, chosen))
    assert ledger["comparison"]["train"]["billing"]["billed_node_seconds"] == pytest.approx(50.0)
    assert ledger["train_cost_ratio"] == pytest.approx(1.0)


def test_probe_nodes_are_billed_by_their_types_rule_against_the_search_cost(tmp_path):
    # each probe node lived 12.8 s (process start to its end record) + 30 s setup = 42.8 s:
    # local.small (1 s, min 60) -> 60 s at 3.6/h; local.large (10 s, min 120) -> 120 s at 7.2/h
    expected = 60 * 3.6 / 3600 + 120 * 7.2 / 3600
    results, catalog = _results(tmp_path, _chosen(), search_cost=expected,
                                probe=[("p1", "local.small"), ("p2", "local.large")])
    ledger, printed = _run(results, catalog)
    probe = next(p for p in ledger["phases"] if p["phase"] == "probe")
    assert probe["billed_node_seconds"] == pytest.approx(180.0)
    assert ledger["comparison"]["probe"]["measured_cost"] == pytest.approx(expected)
    assert ledger["comparison"]["probe"]["cost_ratio"] == pytest.approx(1.0)
    assert "Probe: billed" in printed


def test_without_a_chosen_configuration_only_the_phases_are_listed(tmp_path):
    results, catalog = _results(tmp_path, None)
    ledger, _rest = _run(results, catalog)
    assert "train" not in ledger["comparison"] and "train_time_ratio" not in ledger
    assert ledger["phases"][0]["nodes"] == 1


def test_the_logs_are_read_by_the_planners_reader_torn_and_foreign_lines_cost_nothing(tmp_path):
    results, catalog = _results(tmp_path, _chosen())
    log = results / "train" / "n1.log"
    foreign = {"host": "n9", "time": 1.0, "event": "start", "instance_type": "local.large"}  # no contract keys
    log.write_text(log.read_text() + json.dumps(foreign) + "\n" + '{"schema": 1, "event": "iter')
    ledger, _rest = _run(results, catalog)
    phase = ledger["phases"][0]
    assert phase["nodes"] == 1 and phase["types"] == ["local.small"]
    assert ledger["comparison"]["train"]["measured_seconds"] == pytest.approx(11.4)
