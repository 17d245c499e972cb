"""The evaluation (PSNR pass) is timed like a step: on CUDA, from a synchronize to a synchronize, so its
`eval_seconds` covers the device's work and not only its queueing. No GPU here: a fake CUDA device whose
`torch.cuda.synchronize` is recorded and takes the time the queued work would."""
import time
from types import SimpleNamespace

import pytest
import torch

from paramount_trainer import timing
from paramount_trainer import trainer as trainer_mod

GPU_TAIL = 0.2  # seconds of device work still queued when the PSNR pass returns (the CPU ran ahead)


class _Log:
    def __init__(self):
        self.records = []

    def record(self, kind, **fields):
        self.records.append((kind, fields))

    def progress(self, _text):
        pass


def _trainer(device, calls):
    trainer = trainer_mod.Trainer.__new__(trainer_mod.Trainer)  # only what _finish_epoch uses
    trainer.device = device
    trainer.config = SimpleNamespace(probe_plan=())
    trainer.epoch, trainer.step, trainer.samples_in_epoch = 0, 10, 40
    trainer.last_psnr = None
    trainer.log = _Log()

    def evaluate():
        calls.append("evaluate")  # queues its work and returns at once, as on CUDA
        return 30.0, 25.0

    trainer.evaluate = evaluate
    return trainer


@pytest.fixture(name="calls")
def _fake_cuda_synchronize(monkeypatch):
    calls = []

    def synchronize(device=None):
        # the first call finds nothing queued; the one after the evaluation waits for its queued work
        calls.append(("synchronize", str(device)))
        if "evaluate" in calls:
            time.sleep(GPU_TAIL)

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    return calls


def test_on_cuda_the_evaluation_is_timed_between_two_synchronizes(calls):
    trainer = _trainer(torch.device("cuda", 0), calls)
    trainer._finish_epoch(time.perf_counter(), iterations=4)
    assert calls == [("synchronize", "cuda:0"), "evaluate", ("synchronize", "cuda:0")]
    (kind, epoch), = trainer.log.records
    assert kind == "epoch" and epoch["psnr"] == 30.0 and epoch["psnr_bicubic"] == 25.0
    # the device's work is in the evaluation's time (without the second synchronize it would be ~0)
    assert epoch["eval_seconds"] >= GPU_TAIL
    assert epoch["seconds"] >= epoch["eval_seconds"]


def test_on_the_cpu_nothing_is_synchronized(calls):
    trainer = _trainer(torch.device("cpu"), calls)
    trainer._finish_epoch(time.perf_counter(), iterations=4)
    assert calls == ["evaluate"]
    assert trainer.log.records[0][1]["eval_seconds"] < GPU_TAIL


def test_the_step_clock_synchronizes_the_same_device(calls):
    clock = timing.StepClock(torch.device("cuda", 0))
    clock.start()
    calls.append("evaluate")  # any work queued during the step
    seconds, compute, wait = clock.stop()
    assert calls == [("synchronize", "cuda:0"), "evaluate", ("synchronize", "cuda:0")]
    assert seconds >= GPU_TAIL and compute == seconds and wait == 0.0
