"""Atomic checkpoints: ``<dir>/ckpt-<step>.pt``, written to a temporary name, fsynced, then ``os.replace``d."""
import os
import random
import re

import numpy as np
import torch

from .errors import CheckpointError

FORMAT = "paramount-trainer-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
REQUIRED = ("format", "version", "model", "generator", "discriminator", "optimizer_g", "optimizer_d", "epoch",
            "step", "samples_seen", "samples_in_epoch", "world_size", "rng")


def checkpoint_path(directory, step):
    return os.path.join(directory, f"ckpt-{int(step):09d}.pt")


def list_checkpoints(directory):
    """[(step, path)] sorted by step; an absent directory has none."""
    if not directory or not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint(directory):
    found = list_checkpoints(directory)
    return found[-1] if found else (None, None)


def rng_state():
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except Exception:  # another GPU count: the CUDA streams are not used for anything but init
            pass


def _as_tuple(value):
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


def save_checkpoint(directory, state, keep=2):
    """Write ``state`` atomically as ``ckpt-<step>.pt`` in ``directory``; keep the ``keep`` newest."""
    os.makedirs(directory, exist_ok=True)
    final = checkpoint_path(directory, state["step"])
    tmp = os.path.join(directory, f".{os.path.basename(final)}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    if keep and keep > 0:
        for _step, old in list_checkpoints(directory)[:-keep]:
            try:
                os.unlink(old)
            except FileNotFoundError:  # another local writer (shared dir) removed it first
                pass
    return final


def load_checkpoint(path):
    """Load and sanity-check a checkpoint; a clear :class:`CheckpointError` naming ``path`` otherwise."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"corrupt checkpoint {path!r}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"incompatible checkpoint {path!r}: not a paramount-trainer checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"incompatible checkpoint {path!r}: format version {state.get('version')!r}, "
                              f"this trainer reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"incompatible checkpoint {path!r}: missing {', '.join(missing)}")
    return state


def check_compatible(state, model_config, path):
    """The architecture stored in the checkpoint must equal the configured one."""
    stored = state["model"]
    wanted = model_config.as_dict()
    diffs = [f"{k} {stored.get(k)!r} in the checkpoint vs {wanted[k]!r} configured"
             for k in wanted if k not in ("hr_height", "hr_width") and stored.get(k) != wanted[k]]
    if diffs:
        raise CheckpointError(f"incompatible checkpoint {path!r}: " + "; ".join(diffs))
