"""Checkpoint/resume equivalence.

Tolerance: on one CPU thread every kernel of this model is deterministic and a checkpoint restores the
models, both Adam states, the RNG states and the position in the epoch's sample order exactly, so an
interrupted and resumed run at the same world size must end with bit-identical parameters (tolerance 0).
Across world sizes (1 rank x batch 4 -> 2 ranks x batch 2, same global batches) only the summation order of
the gradient average changes, so the warm-up-only run is compared with atol 1e-5 (Adam steps are <= lr 2e-4;
float32 reordering moves them by ~1e-7 relative); the adversarial phase is not comparable across world sizes
at all (BatchNorm and the RaGAN batch means are per rank), so that case checks progress accounting only.
"""
import signal
import subprocess
import sys
import time

import pytest
import torch


pytestmark = pytest.mark.slow


def _state(out):
    return {**{f"G.{k}": v for k, v in torch.load(out / "generator.pt", weights_only=True).items()},
            **{f"D.{k}": v for k, v in torch.load(out / "discriminator.pt", weights_only=True).items()}}


def _assert_equal(a, b, atol=0.0):
    assert a.keys() == b.keys()
    worst = max((x.double() - b[k].double()).abs().max().item() for k, x in a.items())
    assert worst <= atol, f"max abs parameter difference {worst}"
    return worst


# 32 images, 1 held out -> 31 training images, batch 4 -> 8 iterations per epoch, 2 epochs = 16 steps,
# warm-up 3 steps then adversarial
COMMON = ["--epochs", 2, "--warmup-batches", 3, "--holdout", 1, "--checkpoint-interval", 0]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, dataset_dir, tiny_args, records):
    from paramount_trainer.cli import main

    read_log = records
    out = tmp_path_factory.mktemp("uninterrupted")
    assert main(["train", *tiny_args, *map(str, ["--data", dataset_dir, "--output-dir", out, "--node-name", "u",
                                                 *COMMON])]) == 0
    ends = [r for r in read_log(out, "u") if r["event"] == "end"]
    assert ends[-1]["status"] == "completed" and ends[-1]["step"] == 16
    return out


def test_resume_after_max_iterations_equals_uninterrupted(tmp_path, dataset_dir, uninterrupted, run_inprocess,
                                                          records):
    read_log = records
    out = tmp_path / "out"
    base = ["--data", dataset_dir, "--output-dir", out, "--node-name", "r", *COMMON]
    assert run_inprocess([*base, "--max-iterations", 5]) == 0  # stops mid epoch 0, in the adversarial phase
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["ckpt-000000005.pt"]
    assert not (out / "generator.pt").exists()
    assert run_inprocess(base) == 0
    recs = read_log(out, "r")
    ends = [r for r in recs if r["event"] == "end"]
    assert [e["status"] for e in ends] == ["stopped", "completed"]
    assert ends[0]["stop_reason"] == "max-iterations"
    steps = [r["step"] for r in recs if r["event"] == "iteration"]
    assert steps == list(range(16))  # the resumed run continues at step 5, epoch 0, iteration 5
    resumed_start = [r for r in recs if r["event"] == "start"][1]
    assert resumed_start["resume_step"] == 5 and resumed_start["resume_samples_seen"] == 20
    assert _assert_equal(_state(out), _state(uninterrupted)) == 0.0
    assert ends[1]["param_digest"] == [r for r in read_log(uninterrupted, "u") if r["event"] == "end"][0][
        "param_digest"]


def test_sigterm_checkpoints_and_resume_equals_uninterrupted(tmp_path, dataset_dir, uninterrupted,
                                                             run_inprocess, records, tiny_args, trainer_env):
    read_log = records
    out = tmp_path / "out"
    base = ["--data", dataset_dir, "--output-dir", out, "--node-name", "s", *COMMON]
    # slowed down (a sleep inside each step, no effect on the math) so the signal lands mid-run
    cmd = [sys.executable, "-m", "paramount_trainer", "train", *tiny_args, *map(str, base),
           "--debug-slow-rank", "0:0.25"]
    proc = subprocess.Popen(cmd, env=trainer_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log = out / "s.log"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.read_text().count('"event":"iteration"') >= 4:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGTERM)
        output, _unused_stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    recs = read_log(out, "s")
    end = [r for r in recs if r["event"] == "end"][0]
    assert end["status"] == "stopped" and end["signal"] == "SIGTERM" and end["stop_reason"] == "signal"
    stopped_at = end["step"]
    assert 4 <= stopped_at < 16
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"ckpt-{stopped_at:09d}.pt"]
    assert run_inprocess(base) == 0
    assert _assert_equal(_state(out), _state(uninterrupted)) == 0.0


def test_resume_at_another_world_size(tmp_path, dataset_dir, run_inprocess, run_torchrun, records):
    """1 rank x batch 4 for 3 steps, then 2 ranks x batch 2 to the end (same global batches); warm-up only,
    compared with an uninterrupted 1-rank run within atol 1e-5."""
    common = ["--data", dataset_dir, "--epochs", 1, "--warmup-batches", 100, "--holdout", 0,
              "--checkpoint-interval", 0]
    ref = tmp_path / "ref"
    assert run_inprocess([*common, "--output-dir", ref, "--node-name", "ref", "--batch-size", 4]) == 0
    out = tmp_path / "out"
    assert run_inprocess([*common, "--output-dir", out, "--node-name", "n", "--batch-size", 4,
                          "--max-iterations", 3]) == 0
    proc = run_torchrun([*common, "--output-dir", out, "--node-name", "n", "--batch-size", 2])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recs = records(out, "n")
    starts = [r for r in recs if r["event"] == "start"]
    assert [s["world_size"] for s in starts] == [1, 2, 2]
    assert all(s["resume_samples_seen"] == 12 for s in starts[1:])
    later = [r for r in recs if r["event"] == "iteration" and r["rank"] == 0][3:]
    assert [r["step"] for r in later] == [3, 4, 5, 6, 7]  # 32 images: 3 x 4 done, 20 left = 5 x (2 x 2)
    ends = [r for r in recs if r["event"] == "end"]
    assert [e["status"] for e in ends] == ["stopped", "completed", "completed"]
    assert ends[1]["samples_seen"] == ends[2]["samples_seen"] == 32
    worst = _assert_equal(_state(out), _state(ref), atol=1e-5)
    print(f"max abs parameter difference across world sizes: {worst:.3g}")
