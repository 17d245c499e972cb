"""Throughput of the instrumented trainer against a plain training loop, and 2-rank scaling, on this machine.

Measured in one run, all on CPU with one torch thread per process:
  plain      a bare single-process loop: same models, losses, optimisers, data pipeline and batch, no logging,
             no DDP, no checkpoints (written out below);
  trainer-1  ``python -m paramount_trainer train`` as a single process (instrumentation, no DDP);
  ddp-1      the trainer under ``torchrun --nproc-per-node 1`` (DDP + comm-hook timing at world size 1);
  ddp-2      the trainer under ``torchrun --nproc-per-node 2`` (gloo, 1 thread per rank).
Per phase (warm-up: G with the pixel loss; adversarial: G + D + VGG) the per-step time is the median of the
differences between consecutive step-end timestamps (the trainer's record ``time``), so logging and all other
per-step overheads are included.
A. Instrumentation cost: in ONE process, a plain step and one iteration of the trainer's own loop alternate
   on the same models and data, once as a single process and once under torchrun at world size 1 (DDP);
   cost = (median trainer step + per-step bookkeeping outside it) / median plain step - 1. Alternating step
   by step makes this robust to other load on the machine.
B. Whole runs of the four configurations above, ``--rounds`` times interleaved, best round counts (the first 2
   steps of each phase skipped). Images/s = world size x per-rank batch / step time. Scaling efficiency =
   images/s(ddp-2) / (2 x images/s(ddp-1)).
Prints a table and, last, one JSON line. No pass/fail: figures only.
"""
import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "trainer"))
SKIP = 2


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "trainer") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "PARAMOUNT_RUN_ID"):
        env.pop(var, None)
    return env


def _step_times(stamps):
    """{phase: median seconds per step} from [(phase, end time)] in order."""
    out = {}
    for phase in ("warmup", "adversarial"):
        idx = [i for i, (p, _unused_time) in enumerate(stamps) if p == phase]
        idx = idx[SKIP:]
        diffs = [stamps[i][1] - stamps[i - 1][1] for i in idx if i > 0 and stamps[i - 1][0] == phase]
        if diffs:
            out[phase] = statistics.median(diffs)
    return out


# ------------------------------------------------------------------------------------------------------------
# the plain loop (run in a child process: `trainer_throughput.py --plain ...`)

class PlainStep:
    """One ESRGAN step exactly as the trainer computes it, with nothing else around it."""

    def __init__(self, G, D, vgg, opt_g, opt_d, p):
        from torch import nn

        self.G, self.D, self.vgg, self.opt_g, self.opt_d, self.p = G, D, vgg, opt_g, opt_d, p
        self.bce, self.l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()

    def __call__(self, lr, hr, phase):
        import torch

        G, D, vgg, bce, l1, p = self.G, self.D, self.vgg, self.bce, self.l1, self.p
        self.opt_g.zero_grad(set_to_none=True)
        gen = G(lr)
        loss_pixel = l1(gen, hr)
        if phase == "warmup":
            loss_pixel.backward()
            self.opt_g.step()
            loss_pixel.item()
            return
        D.requires_grad_(False)
        with torch.no_grad():
            pred_real = D(hr)
        pred_fake = D(gen)
        D.requires_grad_(True)
        valid, fake = torch.ones_like(pred_fake), torch.zeros_like(pred_fake)
        loss_gan = (bce(pred_real - pred_fake.mean(0, keepdim=True), fake)
                    + bce(pred_fake - pred_real.mean(0, keepdim=True), valid)) / 2
        gen_f = vgg(gen)
        with torch.no_grad():
            real_f = vgg(hr)
        loss_g = l1(gen_f, real_f) + p["lambda_adv"] * loss_gan + p["lambda_pixel"] * loss_pixel
        loss_g.backward()
        self.opt_g.step()
        self.opt_d.zero_grad(set_to_none=True)
        pred_real = D(hr)
        pred_fake = D(gen.detach())
        loss_d = (bce(pred_real - pred_fake.mean(0, keepdim=True), valid)
                  + bce(pred_fake - pred_real.mean(0, keepdim=True), fake)) / 2
        loss_d.backward()
        self.opt_d.step()
        loss_g.item(), loss_d.item()


def _cycle(loader):
    while True:
        yield from loader


def plain_loop(args):
    import torch
    from torch.utils.data import DataLoader

    from paramount_trainer.config import PRESETS
    from paramount_trainer.data import ImageDataset, list_images
    from paramount_trainer.models import Discriminator, GeneratorRRDB, load_vgg_features

    torch.set_num_threads(1)
    p = dict(PRESETS[args.preset])
    torch.manual_seed(0)
    ds = ImageDataset(list_images(args.data), (p["hr_height"], p["hr_width"]))
    loader = DataLoader(ds, batch_size=args.batch_size or p["batch_size"], shuffle=True, num_workers=0)
    G = GeneratorRRDB(3, filters=p["filters"], num_res_blocks=p["residual_blocks"])
    D = Discriminator((3, p["hr_height"], p["hr_width"]), widths=p["d_widths"])
    vgg = load_vgg_features(p["vgg_layers"], "none")
    opt_g = torch.optim.Adam(G.parameters(), lr=p["lr"], betas=(p["b1"], p["b2"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=p["lr"], betas=(p["b1"], p["b2"]))
    step = PlainStep(G, D, vgg, opt_g, opt_d, p)
    plan = ["warmup"] * args.warmup_steps + ["adversarial"] * args.adversarial_steps
    stamps = []
    batches = _cycle(loader)
    for phase in plan:
        batch = next(batches)
        step(batch["lr"], batch["hr"], phase)
        stamps.append((phase, time.time()))
    print(json.dumps({"stamps": stamps}))


def ab_loop(args):
    """Interleaved A/B in one process, alternating single steps: a plain step, then one iteration of the
    trainer's own loop (timing, stop-flag agreement, logging; DDP when started under torchrun), on the same
    models and data. Compared: the step's wall time (the record's ``seconds``; for the plain step the same span:
    batch fetch + step). Alternating step by step makes the comparison robust to the machine's load swings.
    Also measures the per-step bookkeeping outside ``seconds`` (timing, the record's JSON and write)."""
    import torch
    import torch.distributed as dist

    from paramount_trainer.build import build_data, build_models, build_optimizers
    from paramount_trainer.cli import build_parser
    from paramount_trainer.config import PRESETS, resolve_run
    from paramount_trainer.distributed import Collectives, DistEnv
    from paramount_trainer.logs import RunLogger
    from paramount_trainer.timing import StepClock
    from paramount_trainer.trainer import Trainer

    workdir = tempfile.TemporaryDirectory(prefix="trainer-bench-ab-")
    out = workdir.name
    argv = ["train", "--preset", args.preset, "--data", args.data, "--output-dir", out, "--node-name", "ab",
            "--quiet", "--sample-interval", "0", "--no-checkpoint", "--holdout", "0", "--epochs", "100000",
            "--print-interval", "100000000", "--instance-type", "bench"]
    if args.batch_size:
        argv += ["--batch-size", str(args.batch_size)]
    targs = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    env = DistEnv.from_environ()
    if env.distributed:
        dist.init_process_group("gloo")
    coll = Collectives(env)
    log = RunLogger(out, "ab", "ab", rank=env.rank, echo=False)
    last_iteration = [None]
    record = log.record

    def keep_last(event, **fields):
        rec = record(event, **fields)
        if event == "iteration":
            last_iteration[0] = rec
        return rec
    log.record = keep_last
    config = resolve_run(targs)
    device = torch.device("cpu")
    data = build_data(config, env, device)
    models = build_models(config, env, coll, device)
    optimizers = build_optimizers(config, models)
    trainer = Trainer(models, data, optimizers, config, env=env, coll=coll, logger=log, device=device,
                      t_process=time.time())
    p = dict(PRESETS[args.preset])
    plain = PlainStep(models.generator, models.discriminator, models.vgg, optimizers.generator,
                      optimizers.discriminator, p)
    plain_batches = _cycle(torch.utils.data.DataLoader(data.train_set, batch_size=config.training.batch_size,
                                                       shuffle=True, num_workers=0))
    result = {"plain": {}, "trainer": {}}
    for phase, steps in (("warmup", args.warmup_steps), ("adversarial", args.adversarial_steps)):
        trainer.phase_for = lambda i, phase=phase: phase
        per = {"plain": [], "trainer": []}
        for i in range(steps + 2):
            t0 = time.perf_counter()
            batch = next(plain_batches)
            plain(batch["lr"], batch["hr"], phase)
            t_plain = time.perf_counter() - t0
            trainer.config = dataclasses.replace(trainer.config, max_iterations=trainer.iterations_done + 1)
            trainer.train()
            rec = last_iteration[0]
            if i >= 2:  # the first steps of a phase warm caches/allocators
                per["plain"].append(t_plain)
                per["trainer"].append(rec["seconds"])
        for name in per:
            result[name][phase] = statistics.median(per[name])
    # bookkeeping around each step that `seconds` does not cover
    clock = StepClock(torch.device("cpu"))
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        clock.start()
        clock.waited(lambda: False)
        s, c, w = clock.stop()
        log.record("iteration", epoch=0, iteration=i, step=i, phase="adversarial", seconds=s, compute_seconds=c,
                   samples=4, wait_seconds=w, data_seconds=0.001, housekeeping_seconds=0.0, loss_pixel=0.5,
                   loss_g=0.2, loss_d=0.6, loss_content=0.2, loss_gan=0.8)
    result["bookkeeping_seconds"] = (time.perf_counter() - t0) / n
    if env.distributed:
        dist.barrier()
        dist.destroy_process_group()
    log.close()
    workdir.cleanup()
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------------------------

def run_plain(args, data):
    cmd = [sys.executable, __file__, "--plain", "--data", str(data), "--preset", args.preset,
           "--warmup-steps", str(args.warmup_steps), "--adversarial-steps", str(args.adversarial_steps)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=True, timeout=900)
    return _step_times([tuple(s) for s in json.loads(out.stdout.strip().splitlines()[-1])["stamps"]])


def run_ab(args, data, ddp):
    cmd = [__file__, "--ab", "--data", str(data), "--preset", args.preset,
           "--warmup-steps", str(args.ab_warmup_steps), "--adversarial-steps", str(args.ab_adversarial_steps)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if ddp:
        cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "1", *cmd]
    else:
        cmd = [sys.executable, *cmd]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_trainer(args, data, tmp, launcher, nproc=1):
    out = Path(tempfile.mkdtemp(dir=tmp))
    train = ["train", "--preset", args.preset, "--data", str(data), "--output-dir", str(out), "--node-name", "b",
             "--quiet", "--sample-interval", "0", "--no-checkpoint", "--holdout", "0",
             "--probe-phases", f"warmup:{args.warmup_steps},adversarial:{args.adversarial_steps}"]
    if args.batch_size:
        train += ["--batch-size", str(args.batch_size)]
    if launcher == "python":
        cmd = [sys.executable, "-m", "paramount_trainer", *train]
    else:
        torchrun = Path(sys.executable).parent / "torchrun"
        cmd = [str(torchrun), "--standalone", "--nproc-per-node", str(nproc), "-m", "paramount_trainer", *train]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    recs = [json.loads(line) for line in (out / "b.log").read_text().splitlines()]
    its = [r for r in recs if r["event"] == "iteration" and r["rank"] == 0]
    start = next(r for r in recs if r["event"] == "start" and r["rank"] == 0)
    times = _step_times([(r["phase"], r["time"]) for r in its])
    compute = {ph: statistics.median([r["compute_seconds"] for r in its if r["phase"] == ph][SKIP:])
               for ph in times}
    return times, compute, start["local_batch"], start["world_size"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch-size", type=int, default=None, help="per rank (default: the preset's)")
    ap.add_argument("--warmup-steps", type=int, default=12)
    ap.add_argument("--adversarial-steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--images", type=int, default=96, help="size of the generated data set")
    ap.add_argument("--ab-warmup-steps", type=int, default=40, help="A/B pairs in the warm-up phase (default: 40)")
    ap.add_argument("--ab-adversarial-steps", type=int, default=30,
                    help="A/B pairs in the adversarial phase (default: 30)")
    ap.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ab", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain:
        return plain_loop(args)
    if args.ab:
        return ab_loop(args)

    from paramount_trainer.config import PRESETS
    from paramount_trainer.data import make_dataset

    batch = args.batch_size or PRESETS[args.preset]["batch_size"]
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as tmp:
        data = Path(tmp) / "data"
        make_dataset(str(data), n=args.images, size=128, seed=0)
        # 1. interleaved A/B in one process: the instrumentation cost, robust to the machine's load swings
        t0 = time.time()
        ab_single = run_ab(args, data, ddp=False)
        print(f"A/B single process  {json.dumps(ab_single)}   ({time.time() - t0:.0f} s)", flush=True)
        t0 = time.time()
        ab_ddp = run_ab(args, data, ddp=True)
        print(f"A/B DDP world 1     {json.dumps(ab_ddp)}   ({time.time() - t0:.0f} s)", flush=True)
        # 2. whole runs, one process each (best of rounds): images/s and 2-rank scaling
        best, compute, world_of = {}, {}, {"plain": 1, "trainer-1": 1, "ddp-1": 1, "ddp-2": 2}
        for rnd in range(args.rounds):
            for name in ("plain", "trainer-1", "ddp-1", "ddp-2"):
                t0 = time.time()
                comp = None
                if name == "plain":
                    times = run_plain(args, data)
                elif name == "trainer-1":
                    times, comp, _unused_batch, _unused_world = run_trainer(args, data, tmp, "python")
                else:
                    times, comp, _unused_batch, _unused_world = run_trainer(args, data, tmp, "torchrun", world_of[name])
                for ph, t in times.items():
                    if t < best.get((name, ph), float("inf")):
                        best[(name, ph)] = t
                        if comp:
                            compute[(name, ph)] = comp[ph]
                print(f"round {rnd + 1} {name:10s} " + "  ".join(f"{ph} {t * 1000:7.1f} ms/step"
                                                                 for ph, t in times.items())
                      + f"   ({time.time() - t0:.0f} s)", flush=True)

    result = {"preset": args.preset, "local_batch": batch, "threads_per_rank": 1, "cpus": os.cpu_count(),
              "phases": {}}
    print()
    print(f"preset {args.preset}, per-rank batch {batch}, 1 torch thread per process, {os.cpu_count()} CPUs")
    print(f"A: interleaved A/B in one process, alternating single steps ({args.ab_warmup_steps} warm-up, "
          f"{args.ab_adversarial_steps} adversarial pairs), median step time; bookkeeping outside the step: "
          f"{ab_single['bookkeeping_seconds'] * 1e6:.0f} us/step")
    print(f"{'phase':12s} {'plain ms':>9s} {'trainer ms':>11s} {'cost':>7s} | {'plain ms':>9s} "
          f"{'DDP-1 ms':>9s} {'cost':>7s}")
    for ph in ("warmup", "adversarial"):
        book = ab_single["bookkeeping_seconds"]
        c1 = (ab_single["trainer"][ph] + book) / ab_single["plain"][ph] - 1
        c2 = (ab_ddp["trainer"][ph] + book) / ab_ddp["plain"][ph] - 1
        print(f"{ph:12s} {ab_single['plain'][ph] * 1000:9.1f} {ab_single['trainer'][ph] * 1000:11.1f} "
              f"{c1 * 100:+6.1f}% | {ab_ddp['plain'][ph] * 1000:9.1f} {ab_ddp['trainer'][ph] * 1000:9.1f} "
              f"{c2 * 100:+6.1f}%")
        result["phases"][ph] = {"ab_single": ab_single, "ab_ddp": ab_ddp, "instrumentation_cost": c1,
                                "instrumentation_and_ddp_cost": c2}
    print()
    print(f"B: whole runs, best of {args.rounds} rounds, median step time after {SKIP} skipped steps")
    print(f"{'phase':12s} {'config':10s} {'ms/step':>9s} {'images/s':>9s} {'vs plain':>9s} {'compute ms':>11s}")
    for ph in ("warmup", "adversarial"):
        rows = {}
        for name in ("plain", "trainer-1", "ddp-1", "ddp-2"):
            if (name, ph) not in best:
                continue
            t = best[(name, ph)]
            rows[name] = {"seconds_per_step": t, "images_per_second": batch * world_of[name] / t,
                          "compute_seconds": compute.get((name, ph))}
        plain = rows["plain"]["images_per_second"]
        for name, row in rows.items():
            row["throughput_vs_plain"] = row["images_per_second"] / plain
            comp = row["compute_seconds"]
            print(f"{ph:12s} {name:10s} {row['seconds_per_step'] * 1000:9.1f} {row['images_per_second']:9.2f} "
                  f"{row['throughput_vs_plain']:9.3f} {'' if comp is None else f'{comp * 1000:11.1f}'}")
        eff = rows["ddp-2"]["images_per_second"] / (2 * rows["ddp-1"]["images_per_second"])
        print(f"{ph:12s} 2-rank scaling efficiency (images/s of ddp-2 / 2 x ddp-1): {eff * 100:.1f}%")
        result["phases"][ph].update(runs=rows, scaling_efficiency_2_ranks=eff)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
