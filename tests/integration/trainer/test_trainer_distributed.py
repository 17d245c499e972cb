"""2-rank gloo runs of the tiny preset under real torchrun."""
import statistics

import pytest
import torch

from paramount_trainer.timing import WINDOW_MIN_STEPS
from paramount_trainer.train import parameter_digest
from paramount_trainer.models import Discriminator, GeneratorRRDB

pytestmark = pytest.mark.slow


def _by_rank(recs, event):
    out = {}
    for r in recs:
        if r["event"] == event:
            out.setdefault(r["rank"], []).append(r)
    return out


def test_two_rank_run_valid_records_and_identical_parameters(tmp_path, dataset_dir, run_torchrun, records,
                                                             schema_validator):
    out = tmp_path / "out"
    # 31 training images (1 held out), 2 ranks x batch 4: 4 iterations per epoch; 2 warm-up steps, then
    # adversarial ones; 2 epochs run to completion (8 steps), checkpoints every 3 steps
    proc = run_torchrun(["--data", dataset_dir, "--output-dir", out, "--node-name", "node-a", "--epochs", 2,
                         "--warmup-batches", 2, "--checkpoint-interval", 3, "--instance-type", "t2.test",
                         "--holdout", 1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recs = records(out, "node-a")
    for rec in recs:
        errors = [e.message for e in schema_validator.iter_errors(rec)]
        assert not errors, (rec, errors)
    assert {r["rank"] for r in recs} == {0, 1}
    assert len({r["run_id"] for r in recs}) == 1
    assert {r["host"] for r in recs} == {"node-a"}
    assert {r["attempt"] for r in recs} == {0}

    starts = _by_rank(recs, "start")
    for rank, (start,) in starts.items():
        assert start["world_size"] == 2 and start["nodes"] == 1 and start["local_rank"] == rank
        assert start["instance_type"] == "t2.test"
        assert start["samples_per_epoch"] == 31 and start["local_batch"] == 4
        assert start["iterations_per_epoch"] == 4 and start["epochs"] == 2 and start["warmup_iterations"] == 2
    assert starts[0][0]["workload"] == starts[1][0]["workload"]
    assert all(len(v) == 1 for v in _by_rank(recs, "init").values())

    iters = _by_rank(recs, "iteration")
    for rank in (0, 1):
        steps = [r["step"] for r in iters[rank]]
        assert steps == list(range(8))
        assert [r["phase"] for r in iters[rank]] == ["warmup"] * 2 + ["adversarial"] * 6
        assert [(r["epoch"], r["iteration"]) for r in iters[rank]] == [(e, i) for e in (0, 1) for i in range(4)]
        assert sum(r["samples"] for r in iters[rank]) == 2 * 16  # 31 padded to 32 per epoch, half per rank
        for r in iters[rank]:
            assert 0 <= r["compute_seconds"] <= r["seconds"]
    assert sorted(r["epoch"] for r in _by_rank(recs, "epoch")[0]) == [0, 1]

    ends = _by_rank(recs, "end")
    assert ends[0][0]["status"] == ends[1][0]["status"] == "completed"
    # parameters identical across ranks: each rank logs a digest of its own G and D parameters at the end
    assert ends[0][0]["param_digest"] == ends[1][0]["param_digest"]

    # ... and that digest is the one of the saved final model
    G = GeneratorRRDB(3, filters=16, num_res_blocks=1)
    D = Discriminator((3, 64, 64), widths=(16, 32, 64, 128))
    G.load_state_dict(torch.load(out / "generator.pt", weights_only=True))
    D.load_state_dict(torch.load(out / "discriminator.pt", weights_only=True))
    assert parameter_digest(G, D) == ends[0][0]["param_digest"]
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["ckpt-000000006.pt", "ckpt-000000008.pt"]  # interval 3 and 6, then the final; keep 2


def test_probe_window_under_ddp_times_each_rank_alone_and_changes_nothing(
        tmp_path, dataset_dir, run_torchrun, records, schema_validator):
    """The window keeps each rank's gradients local (no all-reduce: a slowed rank does not slow the other's window) and
    is undone: the same parameters as the probe without it, on both ranks."""
    digests = {}
    for window in (0, 1):
        out = tmp_path / str(window)
        proc = run_torchrun(["--data", dataset_dir, "--output-dir", out, "--node-name", "n",
                             "--probe-phases", "warmup:2,adversarial:2", "--probe-window", window,
                             "--debug-slow-rank", "1:1.0"])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        recs = records(out, "n")
        assert all(not list(schema_validator.iter_errors(r)) for r in recs)
        ends = _by_rank(recs, "end")
        assert ends[0][0]["param_digest"] == ends[1][0]["param_digest"]
        digests[window] = ends[0][0]["param_digest"]
        if window:
            iters = _by_rank(recs, "iteration")
            windows = {rank: [r["window_seconds"] for r in its if "window_seconds" in r]
                       for rank, its in iters.items()}
            assert len(windows[0]) == len(windows[1]) == 2  # after the first step of each phase
            assert all(len(w) >= WINDOW_MIN_STEPS for w in windows[0] + windows[1])
            # rank 1 sleeps 1 s a step; rank 0's own steps do not wait for it. Had they waited, every one of them
            # would take 1 s or more; on a loaded machine one of rank 0's own steps may come near (a CI run with
            # three pytest workers took 0.57 s for one), so its median counts.
            for fast, slow in zip(windows[0], windows[1]):
                assert statistics.median(fast[1:]) < 1.0 <= min(slow[1:]), (fast, slow)
    assert digests[0] == digests[1]


def test_slowed_rank_compute_seconds_exclude_allreduce_wait(tmp_path, dataset_dir, run_torchrun, records):
    """Rank 1 sleeps 0.4 s inside its own step: rank 0 then waits in the gradient all-reduce. Rank 0's
    compute_seconds must stay far below its seconds; rank 1's compute_seconds include its sleep."""
    out = tmp_path / "out"
    slow = 0.4
    proc = run_torchrun(["--data", dataset_dir, "--output-dir", out, "--node-name", "n", "--no-checkpoint",
                         "--probe-phases", "warmup:3,adversarial:3", "--debug-slow-rank", f"1:{slow}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    iters = _by_rank(records(out, "n"), "iteration")
    # step 0 includes DDP's first-iteration setup; from step 1 (the "2nd paramount iteration") on the split
    # must hold (DDP's one-time bucket-rebuild broadcast is done after the first backward, timed as a wait)
    fast = [r for r in iters[0] if r["step"] >= 1]
    slowr = [r for r in iters[1] if r["step"] >= 1]
    for r in fast:
        assert r["compute_seconds"] < r["seconds"] - 0.5 * slow, r
    assert {r["phase"] for r in fast} == {"warmup", "adversarial"}
    fast_sec = statistics.median(r["seconds"] for r in fast)
    fast_compute = statistics.median(r["compute_seconds"] for r in fast)
    slow_sec = statistics.median(r["seconds"] for r in slowr)
    slow_compute = statistics.median(r["compute_seconds"] for r in slowr)
    # both ranks are in lock step: same wall time per step
    assert fast_sec == pytest.approx(slow_sec, rel=0.2, abs=0.05)
    assert fast_sec > slow
    # the fast rank waited about `slow` seconds per step, and that wait is not compute
    assert fast_compute < 0.6 * fast_sec, (fast_compute, fast_sec)
    assert fast_sec - fast_compute > 0.7 * slow, (fast_compute, fast_sec)
    # the slow rank's own work includes the sleep; it hardly waits
    assert slow_compute > slow
    assert slow_compute > 0.85 * slow_sec, (slow_compute, slow_sec)
    assert slow_compute - fast_compute > 0.7 * slow


def test_sigterm_to_torchrun_stops_every_rank_after_the_same_step(tmp_path, dataset_dir, records, tiny_args,
                                                                  trainer_env):
    """The way an orchestrator stops a job: SIGTERM to torchrun, which forwards it to the workers. The ranks
    agree on the stop, write one checkpoint of the same step and end with `stopped`."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "out"
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "--max-restarts", "0", "-m",
           "paramount_trainer", "train", *tiny_args, "--data", str(dataset_dir), "--output-dir", str(out),
           "--node-name", "n", "--epochs", "50", "--debug-slow-rank", "0:0.2"]
    proc = subprocess.Popen(cmd, env=trainer_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log = out / "n.log"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.read_text().count('"event":"iteration"') >= 6:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the job ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        output, _unused_stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this test started: torchrun and its workers
            proc.wait()
    ends = {r["rank"]: r for r in records(out, "n") if r["event"] == "end"}
    assert sorted(ends) == [0, 1], output[-3000:]
    assert {e["status"] for e in ends.values()} == {"stopped"}
    assert {e["signal"] for e in ends.values()} == {"SIGTERM"}
    assert ends[0]["step"] == ends[1]["step"] >= 3
    assert ends[0]["param_digest"] == ends[1]["param_digest"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == [f"ckpt-{ends[0]['step']:09d}.pt"]
