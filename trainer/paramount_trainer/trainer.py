"""The training loop: a :class:`Trainer` in the shape of pytorch/examples' DDP tutorial series (``multinode.py``).

It receives the built models, data and optimisers and one resolved :class:`~paramount_trainer.config.RunConfig`;
it resumes from the newest snapshot (checkpoint) any rank has, wraps the models in DDP, then runs epochs of
batches (paramount iterations), each timed and logged as an ``iteration`` record, with a snapshot every
``checkpoint_interval`` steps and at the end."""
import copy
import math
import os
import time
import uuid

import torch
import torch.distributed as dist
from torch import nn

from . import checkpoint as ckpt
from .config import ADVERSARIAL, WARMUP
from .data import unwrap_worker_error
from .distributed import StopRequest, wrap_ddp
from .errors import CheckpointError, DataError, TrainerError
from .models import denormalize
from .timing import StepClock, synchronize, window_complete


def psnr_batch(sr, hr):
    """Per-image PSNR (dB) of [0,1] images."""
    mse = ((sr - hr) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


def _fmt(x):
    return "-" if x is None else f"{x:.4f}"


class Trainer:
    """ESRGAN training of ``models`` on ``data`` with ``optimizers`` as ``config`` says, on this rank of ``env``.

    ``coll`` are the control-plane collectives, ``logger`` the node's :class:`~paramount_trainer.logs.RunLogger`,
    ``t_process`` the Unix time this process started (the ``init`` record's origin), ``stop`` the
    :class:`~paramount_trainer.distributed.StopRequest` that signals set."""

    def __init__(self, models, data, optimizers, config, *, env, coll, logger, device, t_process, stop=None):
        self.config = config
        self.env = env
        self.coll = coll
        self.log = logger
        self.device = device
        self.t_process = t_process
        self.stop = stop or StopRequest()
        self.G, self.D, self.vgg = models.generator, models.discriminator, models.vgg
        self.opt_g, self.opt_d = optimizers.generator, optimizers.discriminator
        self.train_set, self.holdout_set = data.train_set, data.holdout_set
        self.sampler, self.loader = data.sampler, data.loader
        self.bce = nn.BCEWithLogitsLoss().to(device)
        self.l1 = nn.L1Loss().to(device)
        self.workload = config.training.workload(len(self.train_set))
        self.epoch = 0
        self.step = 0
        self.samples_seen = 0
        self.samples_in_epoch = 0
        self.last_checkpoint_step = None
        self.last_psnr = None
        self.iterations_done = 0
        self.stop_reason = None
        self.resumed_from = None
        self._init_logged = False
        # the first step of each probe phase is followed by a compute-only window (see _run_compute_window)
        self.window_after = set()
        if config.window_seconds > 0:
            first = 0
            for _name, n in config.probe_plan:
                if n:
                    self.window_after.add(first)
                first += n
        self._load_snapshot()  # agrees internally: every rank resumes from the same snapshot, or all fail
        self.clock = StepClock(device)
        self.G_ddp = wrap_ddp(self.G, device, coll, self.clock)
        self.D_ddp = wrap_ddp(self.D, device, coll, self.clock)
        self._rebuild_pending = [self.G_ddp, self.D_ddp] if coll.active else []

    # ---- snapshots (checkpoints) -------------------------------------------------------------------------
    def _load_snapshot(self):
        """Agree on the newest checkpoint any rank can see (node-private directories), load it everywhere."""
        env, coll, config = self.env, self.coll, self.config
        mode = config.resume
        if not config.checkpointing or mode == "never":
            return
        local_step, local_path, error = None, None, None
        if mode == "auto":
            try:
                local_step, local_path = ckpt.latest_checkpoint(config.checkpoint_dir)
            except OSError as exc:
                error = f"checkpoint folder {config.checkpoint_dir!r} cannot be read: {exc}"
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
                ckpt.check_compatible(state, config.training.model, local_path)
            except TrainerError as exc:
                error = str(exc)
        coll.agree(error)
        have = coll.all_gather(state is not None)
        if not all(have):  # some node lacks the newest copy: send it from the first rank that has it
            src = have.index(True)
            state = coll.broadcast(state if env.rank == src else None, src=src)
            local_path = local_path or f"(rank {src}'s copy)"
        coll.agreed(self._restore, state, local_path)
        self.resumed_from = local_path

    def _restore(self, state, path):
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

    def _snapshot(self):
        return {
            "format": ckpt.FORMAT, "version": ckpt.VERSION, "model": self.config.training.model.as_dict(),
            "workload": self.workload, "run_id": self.log.run_id, "time": time.time(),
            "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
            "optimizer_g": self.opt_g.state_dict(), "optimizer_d": self.opt_d.state_dict(),
            "epoch": self.epoch, "step": self.step, "samples_seen": self.samples_seen,
            "samples_in_epoch": self.samples_in_epoch, "world_size": self.env.world_size,
            "local_batch": self.config.training.batch_size, "rng": ckpt.rng_state(),
        }

    def _save_snapshot(self, reason):
        """Local rank 0 of every node writes its copy (node-private directories); no collective involved.
        Returns the seconds it took."""
        if not self.config.checkpointing or self.last_checkpoint_step == self.step:
            return 0.0
        t = time.perf_counter()
        if self.env.local_rank == 0:
            path = ckpt.save_checkpoint(self.config.checkpoint_dir, self._snapshot(),
                                        keep=self.config.keep_checkpoints)
            self.log.progress(f"checkpoint ({reason}) {path}")
        self.last_checkpoint_step = self.step
        return time.perf_counter() - t

    # ---- one batch ---------------------------------------------------------------------------------------
    def _backward(self, loss, ddp_module):
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
        """The phase of this process's ``local_index``-th step: the probe plan's, else by the global step."""
        if self.config.probe_plan:
            for name, n in self.config.probe_plan:
                if local_index < n:
                    return name
                local_index -= n
            return self.config.probe_plan[-1][0]
        return WARMUP if self.step < self.config.training.warmup_batches else ADVERSARIAL

    def _run_batch(self, lr, hr, phase):
        """One optimisation step of G (and of D after the warm-up); returns G's output and the losses."""
        hp = self.config.training
        debug_slow = self.config.debug_slow
        if debug_slow and debug_slow[0] == self.env.rank:
            time.sleep(debug_slow[1])  # testing only: make this rank's own work slower
        # ---- generator
        self.opt_g.zero_grad(set_to_none=True)
        gen_hr = self.G_ddp(lr)
        loss_pixel = self.l1(gen_hr, hr)
        if phase == WARMUP:
            self._backward(loss_pixel, self.G_ddp)
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
        loss_g = loss_content + hp.lambda_adv * loss_gan + hp.lambda_pixel * loss_pixel
        self._backward(loss_g, self.G_ddp)
        self.opt_g.step()
        # ---- discriminator
        self.opt_d.zero_grad(set_to_none=True)
        pred_real = self.D_ddp(hr)
        pred_fake = self.D_ddp(gen_hr.detach())
        loss_real = self.bce(pred_real - pred_fake.mean(0, keepdim=True), valid)
        loss_fake = self.bce(pred_fake - pred_real.mean(0, keepdim=True), fake)
        loss_d = (loss_real + loss_fake) / 2
        self._backward(loss_d, self.D_ddp)
        self.opt_d.step()
        return gen_hr, {"loss_pixel": loss_pixel.item(), "loss_g": loss_g.item(), "loss_d": loss_d.item(),
                        "loss_content": loss_content.item(), "loss_gan": loss_gan.item()}

    def _run_compute_window(self, phase):
        """Time this rank's own steps of ``phase`` with nothing to wait for, then undo them.

        In a synchronous job a rank faster than the slowest waits at every all-reduce, so it never spends a CPU
        quota or credit: its short bursts of compute run faster than the type sustains, and the per-step
        ``compute_seconds`` rates it too fast (by 28% to 2.4x on emulated shares). Here every rank runs whole
        steps (data, forward, backward, optimiser) with the step clock's hook keeping each rank's gradients
        local for ``--probe-window`` seconds (long against a throttle period) and until their mean is precise
        (``timing.window_complete``), busy all along like a homogeneous cluster of its type. Model, optimisers
        and random state are restored after, so the probe's training is exactly what it would be without the
        window; a barrier then lines the ranks up again. Returns the wall seconds of each window step."""
        saved = (copy.deepcopy(self.G.state_dict()), copy.deepcopy(self.D.state_dict()),
                 copy.deepcopy(self.opt_g.state_dict()), copy.deepcopy(self.opt_d.state_dict()), ckpt.rng_state())
        times = []
        batches = iter(self.loader)
        # each rank keeps its own gradients: DDP still buckets them and calls the hook, as in a real step (under
        # no_sync() it skips that work, and a window step would be cheaper than a step of a 1-node cluster)
        self.clock.local_only = True
        try:
            t_start = time.perf_counter()
            while not window_complete(times, time.perf_counter() - t_start, self.config.window_seconds):
                synchronize(self.device)
                t = time.perf_counter()
                batch = next(batches, None)
                if batch is None:  # a short epoch: start over (the data are the same kind)
                    batches = iter(self.loader)
                    batch = next(batches)
                self._run_batch(batch["lr"].to(self.device), batch["hr"].to(self.device), phase)
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

    # ---- the loop ----------------------------------------------------------------------------------------
    def train(self):
        """Run the job's epochs from where the snapshot left it; returns ``completed`` or ``stopped`` (a signal,
        a peer's stop, ``--max-iterations`` or a probe's plan; ``stop_reason`` says which)."""
        self._log_start()
        self._init_logged = False
        if self.coll.flag_start(self.stop.requested)():  # a signal arrived during init: no step at all
            self.stop_reason = "signal"
            return "stopped"
        while self.epoch < self.config.training.epochs:
            stop_reason = self._run_epoch()
            if stop_reason and self.epoch < self.config.training.epochs:
                self.stop_reason = stop_reason
                return "stopped"
        return "completed"

    def _run_epoch(self):
        """The current epoch's remaining batches; returns why it stopped early, or None."""
        hp, clock = self.config.training, self.clock
        W = self.env.world_size
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start(self.samples_in_epoch)
        epoch_positions = self.sampler.epoch_positions()
        iteration = self.samples_in_epoch // (W * hp.batch_size)
        t_epoch = time.perf_counter()
        iters_this_epoch = 0
        stop_reason = None
        batches = iter(self.loader)
        while True:
            if not self._init_logged:
                init_seconds = max(0.0, time.time() - self.t_process)
                self.log.record("init", seconds=init_seconds,
                                wait_seconds=min(init_seconds, self.coll.waited_seconds))
                self._init_logged = True
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
            gen_hr, losses = self._run_batch(lr, hr, phase)
            stop_now = clock.waited(stop_flag)
            seconds, compute, wait = clock.stop()

            b = lr.shape[0]
            self.step += 1
            self.samples_seen += b * W
            self.samples_in_epoch += b * W
            self.iterations_done += 1
            iters_this_epoch += 1
            housekeeping = self._save_sample(lr, gen_hr, hr)
            if hp.checkpoint_interval and self.step % hp.checkpoint_interval == 0:
                housekeeping += self._save_snapshot("interval")
            window = {}
            if self.iterations_done - 1 in self.window_after:
                window["window_seconds"] = self._run_compute_window(phase)
            self.log.record(
                "iteration", epoch=self.epoch, iteration=iteration, step=self.step - 1, phase=phase,
                seconds=seconds, compute_seconds=compute, samples=b, wait_seconds=wait,
                data_seconds=data_seconds, housekeeping_seconds=housekeeping, **window, **losses)
            if self.iterations_done <= 3 or self.step % self.config.print_interval == 0:
                self.log.progress(
                    f"[epoch {self.epoch}/{hp.epochs}] [iteration {iteration}] [step {self.step - 1}] "
                    f"{phase}: G {_fmt(losses.get('loss_g'))} D {_fmt(losses.get('loss_d'))} "
                    f"pixel {_fmt(losses.get('loss_pixel'))} | {seconds:.3f} s "
                    f"(compute {compute:.3f} s)")
            iteration += 1
            if stop_now:
                # "peer": another rank was asked to stop (its node leaves, or its agent re-forms the group)
                stop_reason = "signal" if self.stop.requested else "peer"
            elif self.config.max_iterations and self.iterations_done >= self.config.max_iterations:
                stop_reason = "max-iterations"
            if stop_reason or self.samples_in_epoch >= epoch_positions:
                break
        if self.samples_in_epoch >= epoch_positions:
            self._finish_epoch(t_epoch, iters_this_epoch)
        return stop_reason

    def _log_start(self):
        hp, env, config = self.config.training, self.env, self.config
        n = len(self.train_set)
        ipe = math.ceil(math.ceil(n / env.world_size) / hp.batch_size)
        # one id per formed group: under torchrun elastic every membership change starts a new formation
        formation = self.coll.broadcast(uuid.uuid4().hex[:12] if env.rank == 0 else None)
        self.log.record(
            "start", instance_type=config.instance_type, local_rank=env.local_rank, formation=formation,
            world_size=env.world_size, nodes=env.nodes, local_batch=hp.batch_size, samples_per_epoch=n,
            iterations_per_epoch=ipe, epochs=hp.epochs, warmup_iterations=hp.warmup_batches,
            workload=self.workload, preset=hp.preset, hr_height=hp.hr_height, hr_width=hp.hr_width,
            holdout_samples=len(self.holdout_set), device=str(self.device),
            backend=dist.get_backend() if env.distributed else "none", threads=torch.get_num_threads(),
            probe=bool(config.max_iterations), max_iterations=config.max_iterations,
            probe_phases=config.probe_phases, resume_epoch=self.epoch, resume_step=self.step,
            resume_samples_seen=self.samples_seen, torch=torch.__version__,
            local_world_size=env.local_world_size, pid=os.getpid(), agent_pid=os.getppid(),
        )
        self.log.progress(f"start {self.workload}: world size {env.world_size} on {env.nodes} node(s), "
                          f"{n} training images ({len(self.holdout_set)} held out), {ipe} iterations/epoch, "
                          f"{hp.epochs} epochs, device {self.device}")

    def _finish_epoch(self, t_epoch, iterations):
        # on CUDA the evaluation is timed from the end of the work queued before it to the end of its own, like
        # a step (timing.StepClock); the epoch's seconds end there too
        synchronize(self.device)
        t_eval = time.perf_counter()
        psnr, psnr_bicubic = (None, None) if self.config.probe_plan else self.evaluate()
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
        """The final models (a completed job) and the last snapshot (any job that made progress)."""
        if status == "completed":
            if self.env.rank == 0:
                output_dir = self.config.output_dir
                os.makedirs(output_dir, exist_ok=True)
                for name, module in (("generator.pt", self.G), ("discriminator.pt", self.D)):
                    tmp = os.path.join(output_dir, f".{name}.{os.getpid()}")
                    torch.save(module.state_dict(), tmp)
                    os.replace(tmp, os.path.join(output_dir, name))
            self._save_snapshot("completed")
        elif self.iterations_done:
            self._save_snapshot("stop" if not self.stop.requested else f"stop on {self.stop.signal_name}")

    # ---- outputs -----------------------------------------------------------------------------------------
    def _save_sample(self, lr, gen_hr, hr):
        if self.env.rank != 0 or not self.config.training.sample_interval \
                or self.step % self.config.training.sample_interval:
            return 0.0
        from torchvision.utils import save_image

        t = time.perf_counter()
        with torch.no_grad():
            n = min(4, lr.shape[0])
            lr_up = nn.functional.interpolate(lr[:n], size=hr.shape[-2:], mode="bicubic", align_corners=False)
            grid = torch.cat([denormalize(lr_up), denormalize(gen_hr[:n].detach()), denormalize(hr[:n])], -1)
        images = os.path.join(self.config.output_dir, "images")
        os.makedirs(images, exist_ok=True)
        save_image(grid.cpu(), os.path.join(images, f"step-{self.step:07d}.png"), nrow=1)
        return time.perf_counter() - t

    @torch.no_grad()
    def evaluate(self):
        """Mean PSNR (dB) of G and of bicubic upsampling on the hold-out split, sharded over the ranks."""
        n = len(self.holdout_set)
        if n == 0:
            return None, None
        total = [0.0, 0.0, 0.0]
        idx = list(range(self.env.rank, n, self.env.world_size))
        bs = self.config.training.batch_size
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
