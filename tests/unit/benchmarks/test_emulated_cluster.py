"""benchmarks/emulated_cluster.py's batching: which worlds run side by side, and what a deadline leaves out.
Nothing is started: the side-by-side run is replaced by a recorder."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(name="ec")
def emulated_cluster():
    spec = importlib.util.spec_from_file_location("emulated_cluster", REPO / "benchmarks" / "emulated_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worlds(ec, *shares_per_world):
    return [ec.World("w%d" % i, [("t", s) for s in shares], [], "w%d" % i)
            for i, shares in enumerate(shares_per_world)]


def test_pack_is_first_fit_decreasing_and_a_large_world_runs_alone(ec):
    batches = ec.pack(worlds(ec, [0.15], [0.6], [0.3, 0.3], [0.15, 0.15], [1.5]), 1.05)
    assert [[w.run_id for w in b] for b in batches] == [["w4"], ["w1", "w3", "w0"], ["w2"]]
    assert all(sum(w.share for w in b) <= 1.05 + 1e-9 for b in batches[1:])


def test_run_packed_runs_each_batch_once_and_leaves_out_what_starts_after_the_deadline(ec, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(ec, "run_side_by_side", lambda backend, batch, workdir, timeout: ran.append(
        [w.run_id for w in batch]))
    every = worlds(ec, [0.6], [0.6], [0.3])
    done, left_out = ec.run_packed("sim", every, Path("/nonexistent"), 0.9, 10)
    assert ran == [["w0", "w2"], ["w1"]] and {w.run_id for w in done} == {"w0", "w1", "w2"} and not left_out
    assert "[sim] batch 2/2" in capsys.readouterr().out
    ran.clear()
    done, left_out = ec.run_packed("sim", every, Path("/nonexistent"), 0.9, 10, deadline=0.0)
    assert ran == [] and not done and {w.run_id for w in left_out} == {"w0", "w1", "w2"}
