"""Distributed set-up: torchrun's environment, the process group, control-plane collectives, DDP, stop requests
and torchrun elastic's exit convention. A process started without torchrun runs alone and all of it is a no-op."""
import contextlib
import dataclasses
import datetime
import inspect
import math
import os
import signal
import threading
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from .errors import ConfigError, TrainerError
from .logs import default_run_id, new_run_id

# Exit code of an elastic worker that stopped (checkpoint written) before the job was done.
EXIT_UNFINISHED = 3


@dataclasses.dataclass
class DistEnv:
    """This process's place in the job, from torchrun's environment variables."""
    distributed: bool
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    nodes: int = 1

    @classmethod
    def from_environ(cls, environ=None):
        env = os.environ if environ is None else environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return cls(distributed=False)
        world = int(env["WORLD_SIZE"])
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        nodes = int(env.get("GROUP_WORLD_SIZE", 0)) or max(1, math.ceil(world / max(1, local_world)))
        return cls(True, int(env["RANK"]), world, int(env.get("LOCAL_RANK", 0)), local_world, nodes)


class Collectives:
    """Control-plane collectives (agreement on stop, resume, errors). A gloo group, so that on NCCL the CPU
    flags never wait on GPU streams. Everything is a no-op in a single process."""

    def __init__(self, env):
        self.env = env
        self.group = None
        # wall time spent waiting for the other ranks: the blocking calls below, and what the caller adds (the
        # process group's forming, DDP's parameter broadcast); a rank's own init is its init less this
        self.waited_seconds = 0.0
        if env.distributed:
            self.group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD

    @property
    def active(self):
        return self.env.distributed

    def timed(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, its wall time counted in ``waited_seconds``."""
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.waited_seconds += time.perf_counter() - t

    def all_gather(self, obj):
        if not self.active:
            return [obj]
        out = [None] * self.env.world_size
        self.timed(dist.all_gather_object, out, obj, group=self.group)
        return out

    def broadcast(self, obj, src=0):
        if not self.active:
            return obj
        box = [obj]
        self.timed(dist.broadcast_object_list, box, src=src, group=self.group)
        return box[0]

    def agree(self, error):
        """Every rank passes its error message or None; raises on every rank if any rank failed."""
        errors = self.all_gather(error)
        bad = [(r, e) for r, e in enumerate(errors) if e]
        if bad:
            rank, message = bad[0]
            prefix = "" if rank == self.env.rank or not self.active else f"on rank {rank}: "
            raise TrainerError(prefix + message)

    def agreed(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on every rank; if it fails on any rank, every rank raises (none hangs)."""
        result, error = None, None
        try:
            result = fn(*args, **kwargs)
        except TrainerError as exc:
            error = str(exc)
        self.agree(error)
        return result

    def flag_start(self, value):
        """Start an async MAX all-reduce of an int flag; returns a callable that waits and gives the result."""
        if not self.active:
            return lambda: value
        tensor = torch.tensor([int(value)], dtype=torch.int64)
        work = dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.group, async_op=True)

        def finish():
            self.timed(work.wait)
            return int(tensor.item())
        return finish

    def all_reduce_sum(self, values):
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        self.timed(dist.all_reduce, tensor, group=self.group)
        return tensor.tolist()

    def barrier(self):
        if self.active:
            self.timed(dist.barrier, group=self.group)


def select_device(choice, env):
    """``--device``: CPU, or the CUDA device of this local rank (one GPU per local rank)."""
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        index = env.local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def init_distributed(env, device, backend="auto", timeout_seconds=1800.0):
    """Join torchrun's process group (gloo on CPU, nccl on CUDA unless ``backend`` says otherwise); returns the
    control-plane :class:`Collectives`, with the wait for the other ranks to start already counted."""
    group_seconds = 0.0
    if env.distributed:
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"backend": backend, "timeout": datetime.timedelta(seconds=timeout_seconds)}
        if device.type == "cuda":
            kwargs["device_id"] = device
        t_group = time.perf_counter()
        dist.init_process_group(**kwargs)  # waits until every rank has started
        group_seconds = time.perf_counter() - t_group
    coll = Collectives(env)
    coll.waited_seconds += group_seconds
    return coll


def shutdown_distributed(env):
    """Leave the process group together (after a normal end; a failed rank just exits, a peer may be gone)."""
    if env.distributed:
        dist.barrier()
        dist.destroy_process_group()


def agreed_run_id(option, env, coll):
    """``--run-id``, else $PARAMOUNT_RUN_ID, else torchrun's rendezvous id, else one made on rank 0 for all."""
    run_id = option or default_run_id()
    if env.distributed and not (option or os.environ.get("PARAMOUNT_RUN_ID")
                                or os.environ.get("TORCHELASTIC_RUN_ID", "none").lower() != "none"):
        run_id = coll.broadcast(new_run_id() if env.rank == 0 else None)
    return run_id


def ddp_kwargs():
    """Disable the per-forward buffer broadcast (D runs several forwards before a backward, which breaks with
    it on recent torch, pytorch#22095); the name of that option changed in torch 2.13."""
    params = inspect.signature(DDP.__init__).parameters
    if "forward_sync_buffers" in params:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def wrap_ddp(module, device, coll, clock):
    """``module`` in DDP with the step clock's communication hook; the module itself when running alone."""
    if not coll.active:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # DDP broadcasts rank 0's parameters: mostly a wait for the other ranks
    wrapped = coll.timed(DDP, module, device_ids=ids, **ddp_kwargs())
    clock.register(wrapped)
    return wrapped


def elastic_exit_code(config, status):
    """Under torchrun elastic an agent whose workers all exit 0 believes the job is done, leaves and closes the
    rendezvous for everyone: a stop before the job is done (not a probe's) must look like a failure, so the
    agents re-form the group and resume."""
    unfinished = config.elastic and status == "stopped" and not config.max_iterations and not config.probe_plan
    return EXIT_UNFINISHED if unfinished else 0


class StopRequest:
    """First SIGTERM/SIGINT: finish the step, checkpoint, end with ``stopped``. Second one: exit now. Under
    torchrun elastic the agent sends SIGTERM when the group's membership changes."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._previous = {}

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise SystemExit(128 + signum)
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def uninstall(self):
        for sig, handler in self._previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
        self._previous = {}
