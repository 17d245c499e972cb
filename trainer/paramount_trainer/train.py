"""``train``: the command's entry. Parsed options -> resolved configuration -> process group -> built data,
models and optimisers -> :class:`~paramount_trainer.trainer.Trainer` -> ``end`` record and exit code."""
import contextlib
import hashlib
import random
import sys
import time
import traceback

import numpy as np
import torch

from .build import build_data, build_models, build_optimizers
from .config import resolve_run
from .distributed import (DistEnv, StopRequest, agreed_run_id, elastic_exit_code, init_distributed, select_device,
                          shutdown_distributed)
from .errors import TrainerError
from .logs import RunLogger, attempt_number, default_node_name, default_run_id, process_start_time
from .trainer import Trainer


def parameter_digest(*modules):
    """sha256 over all parameters (not BN buffers, which are rank-local: see README), in a fixed order."""
    h = hashlib.sha256()
    for module in modules:
        for name, p in module.named_parameters():
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def _set_threads(threads):
    torch.set_num_threads(max(1, int(threads)))
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def _end_fields(trainer, stop):
    """The ``end`` record's account of a run that ended without an error."""
    fields = {"step": trainer.step, "samples_seen": trainer.samples_seen, "epoch": trainer.epoch,
              "iterations": trainer.iterations_done, "psnr": trainer.last_psnr,
              "param_digest": parameter_digest(trainer.G, trainer.D)}
    if trainer.stop_reason:
        fields["stop_reason"] = trainer.stop_reason
    if stop.signal_name:
        fields["signal"] = stop.signal_name
    if trainer.resumed_from:
        fields["resumed_from"] = trainer.resumed_from
    return fields


def run_train(args):
    """Run ``train``; returns the process exit code. Writes ``end`` with ``failed`` on any error it can."""
    t_process = process_start_time()
    env = DistEnv.from_environ()
    node = args.node_name or default_node_name()
    log_dir = args.log_dir or args.output_dir
    logger = None
    trainer = None
    configured = False  # the configuration resolved: a failure's ``end`` record counts the steps done (maybe 0)
    stop = StopRequest().install()
    status = "failed"
    error = None
    end_fields = {}
    exit_code = 0
    try:
        _set_threads(args.threads)
        device = select_device(args.device, env)
        coll = init_distributed(env, device, args.dist_backend, args.dist_timeout)
        logger = RunLogger(log_dir, node, agreed_run_id(args.run_id, env, coll), rank=env.rank,
                           attempt=attempt_number(), local_rank=env.local_rank, echo=not args.quiet)
        config = resolve_run(args)
        random.seed(config.seed)
        np.random.seed(config.seed)
        configured = True
        # every stage agrees across ranks: all ranks fail together, none hangs
        data = coll.agreed(build_data, config, env, device)
        models = coll.agreed(build_models, config, env, coll, device)
        optimizers = build_optimizers(config, models)
        trainer = Trainer(models, data, optimizers, config, env=env, coll=coll, logger=logger, device=device,
                          t_process=t_process, stop=stop)
        status = trainer.train()
        trainer.finalize(status)
        end_fields = _end_fields(trainer, stop)
        shutdown_distributed(env)
        exit_code = elastic_exit_code(config, status)
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
        elif configured:
            end_fields.update(step=0, samples_seen=0, iterations=0)
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
    return exit_code if return_code == 0 else return_code
