"""``train``: ESRGAN training under torchrun (or as a single process) with paramount-iteration logs."""
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import math
import os
import random
import signal
import sys
import time
import traceback
import uuid

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from . import checkpoint as ckpt
from . import config as config_mod
from .data import (ImageDataset, ResumableDistributedSampler, check_first_image, list_images, split_holdout,
                   unwrap_worker_error)
from .errors import CheckpointError, ConfigError, DataError, TrainerError
from .logs import RunLogger, attempt_number, default_node_name, default_run_id, new_run_id, process_start_time
from .models import Discriminator, GeneratorRRDB, denormalize, load_vgg_features
from .timing import StepClock, synchronize, window_complete

WARMUP, ADVERSARIAL = "warmup", "adversarial"


# --------------------------------------------------------------------------------------------------------
# distributed environment

@dataclasses.dataclass
class DistEnv:
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


def ddp_kwargs():
    """Disable the per-forward buffer broadcast (D runs several forwards before a backward, which breaks with
    it on recent torch, pytorch#22095); the name of that option changed in torch 2.13."""
    import inspect

    params = inspect.signature(DDP.__init__).parameters
    if "forward_sync_buffers" in params:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


# Exit code of an elastic worker that stopped (checkpoint written) before the job was done.
EXIT_UNFINISHED = 3


# --------------------------------------------------------------------------------------------------------
# stop requests

class StopRequest:
    """First SIGTERM/SIGINT: finish the step, checkpoint, end with ``stopped``. Second one: exit now."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._previous = {}

    def install(self):
        import threading

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


# --------------------------------------------------------------------------------------------------------
# helpers

def parse_probe_phases(text):
    """``"warmup:3,adversarial:10"`` -> [("warmup", 3), ("adversarial", 10)]."""
    plan = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        name, _sep, count = part.partition(":")
        name = name.strip()
        if name not in (WARMUP, ADVERSARIAL):
            raise ConfigError(f"--probe-phases: unknown phase {name!r} (use warmup and adversarial)")
        try:
            n = int(count)
        except ValueError:
            raise ConfigError(f"--probe-phases: {part!r} is not PHASE:COUNT") from None
        if n < 0:
            raise ConfigError(f"--probe-phases: negative count in {part!r}")
        plan.append((name, n))
    if sum(n for _phase, n in plan) < 1:
        raise ConfigError(f"--probe-phases {text!r} runs no step")
    return plan


def parse_debug_slow(text):
    if not text:
        return None
    rank, _sep, seconds = str(text).partition(":")
    try:
        return int(rank), float(seconds)
    except ValueError:
        raise ConfigError(f"--debug-slow-rank must be RANK:SECONDS, got {text!r}") from None


def parameter_digest(*modules):
    """sha256 over all parameters (not BN buffers, which are rank-local: see README), in a fixed order."""
    h = hashlib.sha256()
    for module in modules:
        for name, p in module.named_parameters():
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def psnr_batch(sr, hr):
    """Per-image PSNR (dB) of [0,1] images."""
    mse = ((sr - hr) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


def _fmt(x):
    return "-" if x is None else f"{x:.4f}"


# --------------------------------------------------------------------------------------------------------
# the trainer

class Trainer:
    def __init__(self, args, cfg, env, coll, logger, device, t_process, stop=None):
        self.args = args
        self.cfg = cfg
        self.env = env
        self.coll = coll
        self.log = logger
        self.device = device
        self.t_process = t_process
        self.output_dir = args.output_dir
        self.probe_plan = parse_probe_phases(args.probe_phases) if args.probe_phases else None
        self.max_iterations = args.max_iterations
        if self.probe_plan:
            total = sum(n for _phase, n in self.probe_plan)
            self.max_iterations = min(total, self.max_iterations) if self.max_iterations else total
        # a forced-phase probe is not real progress: it neither reads nor writes checkpoints
        self.checkpointing = not args.no_checkpoint and not self.probe_plan
        self.checkpoint_dir = args.checkpoint_dir or os.path.join(self.output_dir, "checkpoints")
        self.debug_slow = parse_debug_slow(args.debug_slow_rank)
        self.stop = stop or StopRequest()
        self.epoch = 0
        self.step = 0
        self.samples_seen = 0
        self.samples_in_epoch = 0
        self.last_checkpoint_step = None
        self.last_psnr = None
        self.iterations_done = 0
        self.stop_reason = None
        self.resumed_from = None
        self.window_seconds = getattr(args, "probe_window", 0.0) if self.probe_plan else 0.0
        # the first step of each probe phase is followed by a compute-only window (see compute_window)
        self.window_after = set()
        if self.probe_plan and self.window_seconds > 0:
            first = 0
            for _name, n in self.probe_plan:
                if n:
                    self.window_after.add(first)
                first += n

    # ---- setup -------------------------------------------------------------------------------------------
    def _stage(self, fn):
        """Run a setup stage on every rank; if it fails on any rank, every rank raises (none hangs)."""
        error = None
        try:
            fn()
        except TrainerError as exc:
            error = str(exc)
        self.coll.agree(error)

    def setup(self):
        self._stage(self._setup_data)
        self._stage(self._setup_models)
        self.resume()  # agrees internally
        env = self.env
        self.clock = StepClock(self.device)
        if env.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # DDP broadcasts rank 0's parameters: mostly a wait for the other ranks
            self.G_ddp = self.coll.timed(DDP, self.G, device_ids=ids, **ddp_kwargs())
            self.D_ddp = self.coll.timed(DDP, self.D, device_ids=ids, **ddp_kwargs())
            self.clock.register(self.G_ddp)
            self.clock.register(self.D_ddp)
            self._rebuild_pending = [self.G_ddp, self.D_ddp]
        else:
            self.G_ddp, self.D_ddp = self.G, self.D
            self._rebuild_pending = []

    def _setup_data(self):
        cfg, env = self.cfg, self.env
        files = list_images(self.args.data)
        train_files, holdout_files = split_holdout(files, self.args.holdout)
        self.train_set = ImageDataset(train_files, (cfg.hr_height, cfg.hr_width))
        self.holdout_set = ImageDataset(holdout_files, (cfg.hr_height, cfg.hr_width))
        check_first_image(self.train_set)
        self.sampler = ResumableDistributedSampler(self.train_set, env.world_size, env.rank, seed=self.args.seed)
        self.loader = DataLoader(
            self.train_set, batch_size=cfg.batch_size, sampler=self.sampler, num_workers=cfg.n_cpu,
            pin_memory=self.device.type == "cuda", drop_last=False,
        )

    def _setup_models(self):
        cfg, env = self.cfg, self.env
        # identical init on every rank (the VGG is not wrapped in DDP, so it must be built identically)
        torch.manual_seed(self.args.seed)
        self.G = GeneratorRRDB(cfg.channels, filters=cfg.filters, num_res_blocks=cfg.residual_blocks).to(self.device)
        self.D = Discriminator((cfg.channels, cfg.hr_height, cfg.hr_width), widths=cfg.d_widths).to(self.device)
        download_first = cfg.vgg_weights == "imagenet" and env.distributed
        vgg, error = None, None
        if download_first and env.local_rank != 0:
            self.coll.barrier()  # local rank 0 downloads the weights into the cache first
        try:
            vgg = load_vgg_features(cfg.vgg_layers, cfg.vgg_weights)
        except TrainerError as exc:
            error = exc
        if download_first and env.local_rank == 0:
            self.coll.barrier()
        if error is not None:
            raise error
        self.vgg = vgg.to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(cfg.b1, cfg.b2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(cfg.b1, cfg.b2))
        self.bce = nn.BCEWithLogitsLoss().to(self.device)
        self.l1 = nn.L1Loss().to(self.device)

    def resume(self):
        """Agree on the newest checkpoint any rank can see (node-private directories), load it everywhere."""
        env, coll = self.env, self.coll
        mode = self.args.resume
        if not self.checkpointing or mode == "never":
            return
        local_step, local_path, error = None, None, None
        if mode == "auto":
            try:
                local_step, local_path = ckpt.latest_checkpoint(self.checkpoint_dir)
            except OSError as exc:
                error = f"checkpoint folder {self.checkpoint_dir!r} cannot be read: {exc}"
        else:
            local_path = mode
            if not os.path.isfile(local_path):
                error = f"--resume: checkpoint {local_path!r} does not exist"
            local_step = -1  # known only after loading; an explicit path is given to every rank
        coll.agree(error)
        seen = coll.all_gather(local_step)
        candidates = [s for s in seen if s is not None]
        if not candidates:
            return
        best = max(candidates)
        state, error = None, None
        if local_step is not None and local_step == best:
            try:
                state = ckpt.load_checkpoint(local_path)
                ckpt.check_compatible(state, self.cfg.model, local_path)
            except TrainerError as exc:
                error = str(exc)
        coll.agree(error)
        have = coll.all_gather(state is not None)
        if not all(have):  # some node lacks the newest copy: send it from the first rank that has it
            src = have.index(True)
            state = coll.broadcast(state if env.rank == src else None, src=src)
            local_path = local_path or f"(rank {src}'s copy)"
        try:
            self.load_state(state, local_path)
            error = None
        except TrainerError as exc:
            error = str(exc)
        coll.agree(error)
        self.resumed_from = local_path

    def load_state(self, state, path):
        try:
            self.G.load_state_dict(state["generator"])
            self.D.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["optimizer_g"])
            self.opt_d.load_state_dict(state["optimizer_d"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"incompatible checkpoint {path!r}: {str(exc).splitlines()[0]}") from None
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.samples_seen = int(state["samples_seen"])
        self.samples_in_epoch = int(state["samples_in_epoch"])
        ckpt.set_rng_state(state["rng"])
        self.last_checkpoint_step = self.step
        self.log.progress(f"resumed from {path}: epoch {self.epoch}, step {self.step}, "
                          f"{self.samples_seen} samples seen (saved at world size {state['world_size']}, "
                          f"now {self.env.world_size})")

    def state_dict(self):
        return {
            "format": ckpt.FORMAT, "version": ckpt.VERSION, "model": self.cfg.model.as_dict(),
            "workload": self.workload, "run_id": self.log.run_id, "time": time.time(),
            "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
            "optimizer_g": self.opt_g.state_dict(), "optimizer_d": self.opt_d.state_dict(),
            "epoch": self.epoch, "step": self.step, "samples_seen": self.samples_seen,
            "samples_in_epoch": self.samples_in_epoch, "world_size": self.env.world_size,
            "local_batch": self.cfg.batch_size, "rng": ckpt.rng_state(),
        }

    def save_checkpoint(self, reason):
        """Local rank 0 of every node writes its copy (node-private directories); no collective involved."""
        if not self.checkpointing or self.last_checkpoint_step == self.step:
            return 0.0
        t = time.perf_counter()
        if self.env.local_rank == 0:
            path = ckpt.save_checkpoint(self.checkpoint_dir, self.state_dict(), keep=self.args.keep_checkpoints)
            self.log.progress(f"checkpoint ({reason}) {path}")
        self.last_checkpoint_step = self.step
        return time.perf_counter() - t

    # ---- one step ----------------------------------------------------------------------------------------
    def backward(self, loss, ddp_module):
        """Backward with the all-reduce wait separated (see timing.py). DDP re-buckets its gradients once,
        with a broadcast among the ranks, at the start of the forward after its first backward; done there it
        would hide a wait inside the forward, so it is done here, right after the first backward, as a wait."""
        self.clock.backward(loss)
        if any(m is ddp_module for m in self._rebuild_pending):
            self._rebuild_pending = [m for m in self._rebuild_pending if m is not ddp_module]
            rebuild = getattr(getattr(ddp_module, "reducer", None), "_rebuild_buckets", None)
            if rebuild is not None and self.clock.waited(rebuild):
                ddp_module._has_rebuilt_buckets = True

    def phase_for(self, local_index):
        if self.probe_plan:
            for name, n in self.probe_plan:
                if local_index < n:
                    return name
                local_index -= n
            return self.probe_plan[-1][0]
        return WARMUP if self.step < self.cfg.warmup_batches else ADVERSARIAL

    def train_step(self, lr, hr, phase):
        cfg = self.cfg
        if self.debug_slow and self.debug_slow[0] == self.env.rank:
            time.sleep(self.debug_slow[1])  # testing only: make this rank's own work slower
        # ---- generator
        self.opt_g.zero_grad(set_to_none=True)
        gen_hr = self.G_ddp(lr)
        loss_pixel = self.l1(gen_hr, hr)
        if phase == WARMUP:
            self.backward(loss_pixel, self.G_ddp)
            self.opt_g.step()
            return gen_hr, {"loss_pixel": loss_pixel.item()}
        # D is used unwrapped (no DDP reduction of its gradients) and frozen: the original computed D's weight
        # gradients here and threw them away
        self.D.requires_grad_(False)
        try:
            with torch.no_grad():
                pred_real = self.D(hr)
            pred_fake = self.D(gen_hr)
        finally:
            self.D.requires_grad_(True)
        valid = torch.ones_like(pred_fake)
        fake = torch.zeros_like(pred_fake)
        # relativistic average GAN, the paper's symmetric generator loss (PyTorch-GAN #92)
        loss_gan = (self.bce(pred_real - pred_fake.mean(0, keepdim=True), fake)
                    + self.bce(pred_fake - pred_real.mean(0, keepdim=True), valid)) / 2
        gen_features = self.vgg(gen_hr)
        with torch.no_grad():
            real_features = self.vgg(hr)
        loss_content = self.l1(gen_features, real_features)
        loss_g = loss_content + cfg.lambda_adv * loss_gan + cfg.lambda_pixel * loss_pixel
        self.backward(loss_g, self.G_ddp)
        self.opt_g.step()
        # ---- discriminator
        self.opt_d.zero_grad(set_to_none=True)
        pred_real = self.D_ddp(hr)
        pred_fake = self.D_ddp(gen_hr.detach())
        loss_real = self.bce(pred_real - pred_fake.mean(0, keepdim=True), valid)
        loss_fake = self.bce(pred_fake - pred_real.mean(0, keepdim=True), fake)
        loss_d = (loss_real + loss_fake) / 2
        self.backward(loss_d, self.D_ddp)
        self.opt_d.step()
        return gen_hr, {"loss_pixel": loss_pixel.item(), "loss_g": loss_g.item(), "loss_d": loss_d.item(),
                        "loss_content": loss_content.item(), "loss_gan": loss_gan.item()}

    def compute_window(self, phase):
        """Time this rank's own steps of ``phase`` with nothing to wait for, then undo them.

        In a synchronous job a rank faster than the slowest waits at every all-reduce, so it never spends a CPU
        quota or credit: its short bursts of compute run faster than the type sustains, and the per-step
        ``compute_seconds`` rates it too fast (by 28% to 2.4x on emulated shares). Here every rank runs whole
        steps (data, forward, backward, optimiser) under DDP's ``no_sync()`` for ``--probe-window`` seconds
        (long against a throttle period) and until their mean is precise (``timing.window_complete``), busy all
        along like a homogeneous cluster of its type. Model, optimisers and random state are restored after, so the probe's training is
        exactly what it would be without the window; a barrier then lines the ranks up again. Returns the
        wall seconds of each window step."""
        saved = (copy.deepcopy(self.G.state_dict()), copy.deepcopy(self.D.state_dict()),
                 copy.deepcopy(self.opt_g.state_dict()), copy.deepcopy(self.opt_d.state_dict()), ckpt.rng_state())
        times = []
        batches = iter(self.loader)
        # each rank keeps its own gradients: DDP still buckets them and calls the hook, as in a real step (under
        # no_sync() it skips that work, and a window step would be cheaper than a step of a 1-node cluster)
        self.clock.local_only = True
        try:
            t_start = time.perf_counter()
            while not window_complete(times, time.perf_counter() - t_start, self.window_seconds):
                synchronize(self.device)
                t = time.perf_counter()
                batch = next(batches, None)
                if batch is None:  # a short epoch: start over (the data are the same kind)
                    batches = iter(self.loader)
                    batch = next(batches)
                self.train_step(batch["lr"].to(self.device), batch["hr"].to(self.device), phase)
                synchronize(self.device)
                times.append(time.perf_counter() - t)
        finally:
            self.clock.local_only = False
        del batches  # stops the data loader's workers, if any
        generator, discriminator, opt_g, opt_d, rng = saved
        self.G.load_state_dict(generator)
        self.D.load_state_dict(discriminator)
        self.opt_g.load_state_dict(opt_g)
        self.opt_d.load_state_dict(opt_d)
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        ckpt.set_rng_state(rng)
        self.coll.barrier()
        return times

    # ---- housekeeping ------------------------------------------------------------------------------------
    def save_sample(self, lr, gen_hr, hr):
        if self.env.rank != 0 or not self.cfg.sample_interval or self.step % self.cfg.sample_interval:
            return 0.0
        from torchvision.utils import save_image

        t = time.perf_counter()
        with torch.no_grad():
            n = min(4, lr.shape[0])
            lr_up = nn.functional.interpolate(lr[:n], size=hr.shape[-2:], mode="bicubic", align_corners=False)
            grid = torch.cat([denormalize(lr_up), denormalize(gen_hr[:n].detach()), denormalize(hr[:n])], -1)
        os.makedirs(os.path.join(self.output_dir, "images"), exist_ok=True)
        save_image(grid.cpu(), os.path.join(self.output_dir, "images", f"step-{self.step:07d}.png"), nrow=1)
        return time.perf_counter() - t

    @torch.no_grad()
    def evaluate(self):
        """Mean PSNR (dB) of G and of bicubic upsampling on the hold-out split, sharded over the ranks."""
        n = len(self.holdout_set)
        if n == 0:
            return None, None
        total = [0.0, 0.0, 0.0]
        idx = list(range(self.env.rank, n, self.env.world_size))
        bs = self.cfg.batch_size
        for i in range(0, len(idx), bs):
            items = [self.holdout_set[j] for j in idx[i:i + bs]]
            lr = torch.stack([x["lr"] for x in items]).to(self.device)
            hr = torch.stack([x["hr"] for x in items]).to(self.device)
            sr = denormalize(self.G(lr))
            hr01 = denormalize(hr)
            bic = denormalize(nn.functional.interpolate(lr, size=hr.shape[-2:], mode="bicubic",
                                                        align_corners=False))
            total[0] += psnr_batch(sr, hr01).sum().item()
            total[1] += psnr_batch(bic, hr01).sum().item()
            total[2] += len(items)
        s_sr, s_bic, count = self.coll.all_reduce_sum(total)
        return s_sr / count, s_bic / count

    # ---- the loop ----------------------------------------------------------------------------------------
    def start_record(self):
        cfg, env = self.cfg, self.env
        n = len(self.train_set)
        self.workload = cfg.workload(n)
        ipe = math.ceil(math.ceil(n / env.world_size) / cfg.batch_size)
        # one id per formed group: under torchrun elastic every membership change starts a new formation
        formation = self.coll.broadcast(uuid.uuid4().hex[:12] if env.rank == 0 else None)
        self.log.record(
            "start", instance_type=self.args.instance_type, local_rank=env.local_rank, formation=formation,
            world_size=env.world_size, nodes=env.nodes, local_batch=cfg.batch_size, samples_per_epoch=n,
            iterations_per_epoch=ipe, epochs=cfg.epochs, warmup_iterations=cfg.warmup_batches,
            workload=self.workload, preset=cfg.preset, hr_height=cfg.hr_height, hr_width=cfg.hr_width,
            holdout_samples=len(self.holdout_set), device=str(self.device),
            backend=dist.get_backend() if env.distributed else "none", threads=torch.get_num_threads(),
            probe=bool(self.max_iterations), max_iterations=self.max_iterations,
            probe_phases=self.args.probe_phases, resume_epoch=self.epoch, resume_step=self.step,
            resume_samples_seen=self.samples_seen, torch=torch.__version__,
            local_world_size=env.local_world_size, pid=os.getpid(), agent_pid=os.getppid(),
        )
        self.log.progress(f"start {self.workload}: world size {env.world_size} on {env.nodes} node(s), "
                          f"{n} training images ({len(self.holdout_set)} held out), {ipe} iterations/epoch, "
                          f"{cfg.epochs} epochs, device {self.device}")

    def run(self):
        cfg, env, clock = self.cfg, self.env, self.clock
        self.start_record()
        init_logged = False
        W = env.world_size
        if self.coll.flag_start(self.stop.requested)():  # a signal arrived during init: no step at all
            self.stop_reason = "signal"
            return "stopped"
        while self.epoch < cfg.epochs:
            self.sampler.set_epoch(self.epoch)
            self.sampler.set_start(self.samples_in_epoch)
            epoch_positions = self.sampler.epoch_positions()
            iteration = self.samples_in_epoch // (W * cfg.batch_size)
            t_epoch = time.perf_counter()
            iters_this_epoch = 0
            stop_reason = None
            batches = iter(self.loader)
            while True:
                if not init_logged:
                    init_seconds = max(0.0, time.time() - self.t_process)
                    self.log.record("init", seconds=init_seconds,
                                    wait_seconds=min(init_seconds, self.coll.waited_seconds))
                    init_logged = True
                phase = self.phase_for(self.iterations_done)
                clock.start()
                # agree on stop requests without a blocking round trip: started now, waited for after the step
                stop_flag = self.coll.flag_start(self.stop.requested)
                t_data = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:  # every rank has as many batches: drain the matched flag collective
                    stop_flag()
                    break
                except DataError as exc:
                    raise unwrap_worker_error(exc) from None
                lr = batch["lr"].to(self.device, non_blocking=True)
                hr = batch["hr"].to(self.device, non_blocking=True)
                data_seconds = time.perf_counter() - t_data
                gen_hr, losses = self.train_step(lr, hr, phase)
                stop_now = clock.waited(stop_flag)
                seconds, compute, wait = clock.stop()

                b = lr.shape[0]
                self.step += 1
                self.samples_seen += b * W
                self.samples_in_epoch += b * W
                self.iterations_done += 1
                iters_this_epoch += 1
                housekeeping = self.save_sample(lr, gen_hr, hr)
                if cfg.checkpoint_interval and self.step % cfg.checkpoint_interval == 0:
                    housekeeping += self.save_checkpoint("interval")
                window = {}
                if self.iterations_done - 1 in self.window_after:
                    window["window_seconds"] = self.compute_window(phase)
                self.log.record(
                    "iteration", epoch=self.epoch, iteration=iteration, step=self.step - 1, phase=phase,
                    seconds=seconds, compute_seconds=compute, samples=b, wait_seconds=wait,
                    data_seconds=data_seconds, housekeeping_seconds=housekeeping, **window, **losses)
                if self.iterations_done <= 3 or self.step % self.args.print_interval == 0:
                    self.log.progress(
                        f"[epoch {self.epoch}/{cfg.epochs}] [iteration {iteration}] [step {self.step - 1}] "
                        f"{phase}: G {_fmt(losses.get('loss_g'))} D {_fmt(losses.get('loss_d'))} "
                        f"pixel {_fmt(losses.get('loss_pixel'))} | {seconds:.3f} s "
                        f"(compute {compute:.3f} s)")
                iteration += 1
                if stop_now:
                    # "peer": another rank was asked to stop (its node leaves, or its agent re-forms the group)
                    stop_reason = "signal" if self.stop.requested else "peer"
                elif self.max_iterations and self.iterations_done >= self.max_iterations:
                    stop_reason = "max-iterations"
                if stop_reason or self.samples_in_epoch >= epoch_positions:
                    break
            if self.samples_in_epoch >= epoch_positions:
                self.finish_epoch(t_epoch, iters_this_epoch)
            if stop_reason and self.epoch < cfg.epochs:
                self.stop_reason = stop_reason
                return "stopped"
        return "completed"

    def finish_epoch(self, t_epoch, iterations):
        # on CUDA the evaluation is timed from the end of the work queued before it to the end of its own, like
        # a step (timing.StepClock); the epoch's seconds end there too
        synchronize(self.device)
        t_eval = time.perf_counter()
        psnr, psnr_bicubic = (None, None) if self.probe_plan else self.evaluate()
        synchronize(self.device)
        eval_seconds = time.perf_counter() - t_eval
        finished = self.epoch
        self.epoch += 1
        self.samples_in_epoch = 0
        self.last_psnr = psnr
        self.log.record("epoch", epoch=finished, seconds=time.perf_counter() - t_epoch, iterations=iterations,
                        psnr=psnr, psnr_bicubic=psnr_bicubic, eval_seconds=eval_seconds, step=self.step)
        self.log.progress(f"epoch {finished} done: {iterations} iterations, hold-out PSNR {_fmt(psnr)} dB "
                          f"(bicubic {_fmt(psnr_bicubic)} dB)")

    def finalize(self, status):
        if status == "completed":
            if self.env.rank == 0:
                os.makedirs(self.output_dir, exist_ok=True)
                for name, module in (("generator.pt", self.G), ("discriminator.pt", self.D)):
                    tmp = os.path.join(self.output_dir, f".{name}.{os.getpid()}")
                    torch.save(module.state_dict(), tmp)
                    os.replace(tmp, os.path.join(self.output_dir, name))
            self.save_checkpoint("completed")
        elif self.iterations_done:
            self.save_checkpoint("stop" if not self.stop.requested else f"stop on {self.stop.signal_name}")


# --------------------------------------------------------------------------------------------------------
# entry point

def run_train(args):
    """Run ``train``; returns the process exit code. Writes ``end`` with ``failed`` on any error it can."""
    t_process = process_start_time()
    env = DistEnv.from_environ()
    node = args.node_name or default_node_name()
    instance_type = args.instance_type or os.environ.get("PARAMOUNT_INSTANCE_TYPE") or "unknown"
    args.instance_type = instance_type
    output_dir = args.output_dir
    log_dir = args.log_dir or output_dir
    logger = None
    trainer = None
    stop = StopRequest().install()
    status = "failed"
    error = None
    end_fields = {}
    unfinished = False
    try:
        threads = max(1, int(args.threads))
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        device = select_device(args.device, env)
        if env.distributed:
            backend = args.dist_backend if args.dist_backend != "auto" else ("nccl" if device.type == "cuda"
                                                                             else "gloo")
            kwargs = {"backend": backend, "timeout": datetime.timedelta(seconds=args.dist_timeout)}
            if device.type == "cuda":
                kwargs["device_id"] = device
            t_group = time.perf_counter()
            dist.init_process_group(**kwargs)  # waits until every rank has started
            group_seconds = time.perf_counter() - t_group
        else:
            group_seconds = 0.0
        coll = Collectives(env)
        coll.waited_seconds += group_seconds
        run_id = args.run_id or default_run_id()
        if env.distributed and not (args.run_id or os.environ.get("PARAMOUNT_RUN_ID")
                                    or os.environ.get("TORCHELASTIC_RUN_ID", "none").lower() != "none"):
            run_id = coll.broadcast(new_run_id() if env.rank == 0 else None)
        logger = RunLogger(log_dir, node, run_id, rank=env.rank, attempt=attempt_number(),
                           local_rank=env.local_rank, echo=not args.quiet)
        cfg = config_mod.resolve(args)
        random.seed(args.seed)
        np.random.seed(args.seed)
        trainer = Trainer(args, cfg, env, coll, logger, device, t_process, stop=stop)
        trainer.setup()  # every stage agrees across ranks: all ranks fail together, none hangs
        status = trainer.run()
        trainer.finalize(status)
        end_fields = {"step": trainer.step, "samples_seen": trainer.samples_seen, "epoch": trainer.epoch,
                      "iterations": trainer.iterations_done, "psnr": trainer.last_psnr,
                      "param_digest": parameter_digest(trainer.G, trainer.D)}
        if trainer.stop_reason:
            end_fields["stop_reason"] = trainer.stop_reason
        if stop.signal_name:
            end_fields["signal"] = stop.signal_name
        if trainer.resumed_from:
            end_fields["resumed_from"] = trainer.resumed_from
        if env.distributed:
            dist.barrier()
            dist.destroy_process_group()
        # Under torchrun elastic an agent whose workers all exit 0 believes the job is done, leaves and closes
        # the rendezvous for everyone: an unfinished stop must look like a failure so the group re-forms.
        unfinished = bool(args.elastic and status == "stopped" and not args.max_iterations and not trainer.probe_plan)
        return_code = 0
    except TrainerError as exc:
        error = str(exc)
        print(f"paramount-trainer: error: {error}", file=sys.stderr, flush=True)
        return_code = 1
    except (KeyboardInterrupt, SystemExit) as exc:
        error = f"interrupted ({type(exc).__name__})"
        print(f"paramount-trainer: {error}", file=sys.stderr, flush=True)
        return_code = 130
    except BaseException as exc:  # noqa: BLE001 - anything else is a crash: still write `end`
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        return_code = 1
    finally:
        stop.uninstall()
    if return_code != 0:
        status = "failed"
        if logger is None:  # failed before the logger existed (e.g. no rendezvous): log with what we know
            with contextlib.suppress(Exception):
                logger = RunLogger(log_dir, node, args.run_id or default_run_id(), rank=env.rank,
                                   attempt=attempt_number(), local_rank=env.local_rank, echo=not args.quiet)
        if trainer is not None:
            end_fields.update(step=trainer.step, samples_seen=trainer.samples_seen,
                              iterations=trainer.iterations_done)
        end_fields["error"] = error
        # no barrier/destroy here: a peer may be gone and the process exits anyway
    if logger is not None:
        with contextlib.suppress(Exception):
            logger.record("end", status=status, seconds=max(0.0, time.time() - t_process), **end_fields)
            if status == "failed":
                logger.progress(f"end: failed: {error}", all_ranks=True, echo=False)  # stderr has it
            else:
                logger.progress(f"end: {status} after {end_fields.get('iterations', 0)} iterations in this "
                                f"process, step {end_fields.get('step')}")
            logger.close()
    return EXIT_UNFINISHED if return_code == 0 and unfinished else return_code


def select_device(choice, env):
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        index = env.local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")
