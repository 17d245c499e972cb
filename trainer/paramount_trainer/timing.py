"""Per-step timing that separates a rank's own work from its waits for collectives.

DDP overlaps the gradient all-reduce with the backward pass: buckets are handed to the communication hook, in
order, as soon as their gradients are ready, and ``backward()`` returns only after every all-reduce finished.
The hook below timestamps each bucket handed over; the last one marks the end of the rank's own backward work,
so ``wait = end_of_backward - last_bucket_ready`` is time spent waiting for the other ranks (and the wire).
A rank that is slower than its peers hands over its last bucket late and waits little; a fast rank waits for
the slow one. ``compute_seconds = seconds - waits``.

On CUDA the same marks are CUDA events on the current stream (the CPU runs ahead of the GPU), resolved once
per step after a synchronise.
"""
import math
import time

import torch
import torch.distributed as dist


def synchronize(device):
    """Wait for the device's queued work (CUDA runs asynchronously to the CPU); nothing to wait for elsewhere.
    Every wall-clock interval that covers device work starts and ends with it, else it times the queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# A probe's compute-only window (trainer.Trainer._run_compute_window): its rate is the mean of its steps after the
# first (the first starts the data iterator). It runs at least WINDOW_MIN_STEPS steps and the requested seconds, then goes on
# until that mean's 95% confidence interval is within WINDOW_RELATIVE_HALF_WIDTH of it, for at most
# WINDOW_MAX_FACTOR times the requested seconds, and never more than WINDOW_MAX_STEPS steps.
WINDOW_MIN_STEPS, WINDOW_MAX_STEPS = 4, 200
WINDOW_RELATIVE_HALF_WIDTH = 0.04
WINDOW_MAX_FACTOR = 3.0
# Student's t, two-sided 95%, by degrees of freedom (a standard deviation from a few steps is itself uncertain:
# with the normal 1.96 instead, three even steps by chance would end a window whose steps vary by whole periods)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def t_quantile_975(degrees_of_freedom):
    """Two-sided 95% quantile of Student's t (the table's nearest entry at or below; 1.96 past it)."""
    if degrees_of_freedom > 60:
        return 1.96
    return _T975[max(k for k in _T975 if k <= degrees_of_freedom)]


def window_complete(step_seconds, elapsed, seconds):
    """Whether a compute-only window of ``seconds`` that took ``step_seconds`` so far (``elapsed`` in all) may stop.

    Seconds alone do not make a precise rate: a type that takes 1.7 s per step fits two rated steps in 4 s, and
    one step's time under a CPU quota varies by whole throttle periods. A sequential rule (stop once the mean's
    confidence interval is narrow enough) spends extra time only where the steps are few and uneven; even steps
    (a GPU, a whole CPU) stop at the requested seconds."""
    n = len(step_seconds)
    if n >= WINDOW_MAX_STEPS:
        return True
    if n < WINDOW_MIN_STEPS or elapsed < seconds:
        return False
    if elapsed >= WINDOW_MAX_FACTOR * seconds:
        return True
    rated = step_seconds[1:]
    mean = sum(rated) / len(rated)
    variance = sum((t - mean) ** 2 for t in rated) / (len(rated) - 1)
    half_width = t_quantile_975(len(rated) - 1) * math.sqrt(variance / len(rated))
    return half_width <= WINDOW_RELATIVE_HALF_WIDTH * mean


class StepClock:
    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"
        self._ready = None      # last bucket-ready mark during the current backward
        self._pending = []      # CUDA: (bucket-ready event, backward-end event) pairs of this step
        self.wait = 0.0
        self.t0 = 0.0
        # True during a probe's compute-only window: each rank keeps its own gradients (no collective), while DDP
        # does the rest of a step's work (bucketing, the hook, copying back) as in a real step
        self.local_only = False

    # -- DDP communication hook -------------------------------------------------------------------------
    def comm_hook(self, state, bucket):
        """Average-allreduce (what DDP does without a hook), timestamping when the bucket became ready."""
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._ready = ev
        else:
            self._ready = time.perf_counter()
        tensor = bucket.buffer()
        if self.local_only:
            fut = torch.futures.Future()
            fut.set_result(tensor)
            return fut
        group = dist.group.WORLD
        tensor.div_(group.size())
        fut = dist.all_reduce(tensor, group=group, async_op=True).get_future()
        return fut.then(lambda f: f.value()[0])

    def register(self, ddp_module):
        ddp_module.register_comm_hook(None, self.comm_hook)

    # -- step ---------------------------------------------------------------------------------------------
    def start(self):
        synchronize(self.device)
        self.wait = 0.0
        self._pending = []
        self.t0 = time.perf_counter()

    def backward(self, loss):
        """``loss.backward()``; adds the all-reduce wait at its end to this step's waits."""
        self._ready = None
        t_begin = time.perf_counter()
        loss.backward()
        if self.cuda:
            if self._ready is not None:
                end = torch.cuda.Event(enable_timing=True)
                end.record()
                self._pending.append((self._ready, end))
        else:
            t_end = time.perf_counter()
            if self._ready is not None:
                self.wait += max(0.0, t_end - max(self._ready, t_begin))
        self._ready = None

    def waited(self, fn):
        """Run ``fn`` (a blocking wait on a collective) and count its duration as wait."""
        t = time.perf_counter()
        out = fn()
        self.wait += time.perf_counter() - t
        return out

    def stop(self):
        """(seconds, compute_seconds, wait_seconds) of the step."""
        synchronize(self.device)
        if self.cuda:
            for ready, end in self._pending:
                self.wait += max(0.0, ready.elapsed_time(end) / 1000.0)
            self._pending = []
        seconds = time.perf_counter() - self.t0
        wait = min(self.wait, seconds)
        return seconds, seconds - wait, wait
