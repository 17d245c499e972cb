import json
import multiprocessing
import os
import random
import time

import numpy as np
import pytest
import torch

from paramount_trainer import load_log_schema
from paramount_trainer import checkpoint as ckpt
from paramount_trainer.errors import CheckpointError
from paramount_trainer.logs import RunLogger, attempt_number, process_start_time, read_records
from paramount_trainer.timing import StepClock


def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(load_log_schema())


def test_schema_loads_from_the_package_and_is_valid():
    import jsonschema

    schema = load_log_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["event", "schema", "run_id", "host", "rank", "attempt", "time"]


def test_records_have_the_common_keys_and_validate(tmp_path):
    log = RunLogger(str(tmp_path), "node-1", "run-x", rank=3, attempt=2, local_rank=1, echo=False)
    log.record("init", seconds=1.5)
    log.record("iteration", epoch=0, iteration=0, step=0, phase="warmup", seconds=0.2, compute_seconds=0.1,
               samples=4, loss_g=float("nan"))
    log.record("end", status="failed", seconds=3.0, error="boom")
    log.close()
    recs = read_records(tmp_path / "node-1.log")
    v = _validator()
    for r in recs:
        assert not list(v.iter_errors(r)), r
        assert (r["schema"], r["run_id"], r["host"], r["rank"], r["attempt"]) == (1, "run-x", "node-1", 3, 2)
        assert abs(r["time"] - time.time()) < 60
    assert recs[1]["loss_g"] is None  # NaN is not JSON: written as null


def test_schema_rejects_records_missing_contract_keys():
    v = _validator()
    base = {"event": "iteration", "schema": 1, "run_id": "r", "host": "h", "rank": 0, "attempt": 0, "time": 1.0,
            "epoch": 0, "iteration": 0, "step": 0, "phase": "warmup", "seconds": 1.0, "compute_seconds": 0.5,
            "samples": 4}
    assert not list(v.iter_errors(base))
    for key in ("compute_seconds", "phase", "rank", "run_id"):
        assert list(v.iter_errors({k: x for k, x in base.items() if k != key})), key
    assert list(v.iter_errors(dict(base, phase="other")))


def _writer(path, rank, count):
    log = RunLogger(path, "shared", "run", rank=rank, local_rank=rank, echo=False)
    payload = "x" * (1000 + 300 * rank)
    for i in range(count):
        log.record("init", seconds=float(i), payload=payload)
    log.close()


def test_local_ranks_appending_to_one_log_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), r, 300)) for r in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    lines = (tmp_path / "shared.log").read_text().splitlines()
    assert len(lines) == 900
    recs = [json.loads(line) for line in lines]  # every line is one whole record
    assert sorted(r["rank"] for r in recs) == [0] * 300 + [1] * 300 + [2] * 300


def test_out_file_gets_progress_of_local_rank_zero_only(tmp_path):
    a = RunLogger(str(tmp_path), "n", "r", rank=0, local_rank=0, echo=False)
    b = RunLogger(str(tmp_path), "n", "r", rank=1, local_rank=1, echo=False)
    a.progress("hello from 0")
    b.progress("hello from 1")
    b.progress("error from 1", all_ranks=True)
    text = (tmp_path / "n.out").read_text()
    assert "hello from 0" in text and "hello from 1" not in text and "error from 1" in text


def test_process_start_time_and_attempt(monkeypatch):
    started = process_start_time()
    assert started <= time.time() and time.time() - started < 24 * 3600
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "3")
    assert attempt_number() == 3
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT")
    assert attempt_number() == 0


def _state(step):
    return {"format": ckpt.FORMAT, "version": ckpt.VERSION, "model": {"filters": 16}, "generator": {},
            "discriminator": {}, "optimizer_g": {}, "optimizer_d": {}, "epoch": 0, "step": step,
            "samples_seen": 4 * step, "samples_in_epoch": 4 * step, "world_size": 1, "rng": ckpt.rng_state()}


def test_checkpoints_are_atomic_listed_and_pruned(tmp_path):
    for step in (3, 10, 7, 12):
        ckpt.save_checkpoint(str(tmp_path), _state(step), keep=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000000010.pt", "ckpt-000000012.pt"]  # no temp files left
    assert ckpt.latest_checkpoint(str(tmp_path))[0] == 12
    assert ckpt.load_checkpoint(str(tmp_path / "ckpt-000000012.pt"))["samples_seen"] == 48
    assert ckpt.latest_checkpoint(str(tmp_path / "none")) == (None, None)


def test_corrupt_and_foreign_checkpoints_are_named(tmp_path):
    bad = tmp_path / "ckpt-000000001.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=f"corrupt checkpoint '{bad}'"):
        ckpt.load_checkpoint(str(bad))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="incompatible checkpoint.*not a paramount-trainer"):
        ckpt.load_checkpoint(str(foreign))
    old = dict(_state(1), version=99)
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        ckpt.load_checkpoint(str(tmp_path / "old.pt"))


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = ckpt.rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _FakeLoss:
    """backward(): own work, then the last bucket handed to the hook, then a wait for the all-reduce."""

    def __init__(self, clock, work, wait):
        self.clock, self.work, self.wait = clock, work, wait

    def backward(self):
        time.sleep(self.work)
        self.clock._ready = time.perf_counter()
        time.sleep(self.wait)


def test_step_clock_counts_the_time_after_the_last_bucket_as_wait():
    clock = StepClock(torch.device("cpu"))
    clock.start()
    time.sleep(0.02)  # forward
    clock.backward(_FakeLoss(clock, 0.02, 0.10))
    clock.backward(_FakeLoss(clock, 0.02, 0.05))
    clock.waited(lambda: time.sleep(0.03))
    seconds, compute, wait = clock.stop()
    assert seconds == pytest.approx(compute + wait)
    assert wait == pytest.approx(0.18, abs=0.03)
    assert compute == pytest.approx(0.06, abs=0.03)


def test_step_clock_without_ddp_has_no_wait():
    clock = StepClock(torch.device("cpu"))
    clock.start()
    x = torch.ones(3, requires_grad=True)
    clock.backward((x * 2).sum())
    seconds, compute, wait = clock.stop()
    assert wait == 0.0 and compute == seconds
