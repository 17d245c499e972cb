"""Helpers for the trainer's integration tests: a small offline data set, in-process and torchrun runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
TORCHRUN = VENV_BIN / "torchrun"

#: small, fast tiny-preset runs: no sample grids, progress not echoed
TINY = ["--preset", "tiny", "--quiet", "--sample-interval", "0", "--print-interval", "1000"]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory):
    """32 real-photo crops of 128x128 (the tiny preset trains at 64x64)."""
    from paramount_trainer.data import make_dataset

    out = tmp_path_factory.mktemp("trainer-data") / "photos"
    make_dataset(str(out), n=32, size=128, seed=0)
    return out


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "trainer") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    for var in ("PARAMOUNT_RUN_ID", "PARAMOUNT_INSTANCE_TYPE", "TORCHELASTIC_RESTART_COUNT", "RANK",
                "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="session")
def trainer_env():
    return _env()


@pytest.fixture
def run_inprocess():
    """Run ``paramount_trainer`` CLI in this process (saves the torch import); returns the exit code."""
    from paramount_trainer.cli import main

    def run(args):
        return main(["train", *TINY, *map(str, args)])
    return run


@pytest.fixture
def run_torchrun():
    """``torchrun --standalone --nproc-per-node N -m paramount_trainer train ...`` (rendezvous on a free port)."""

    def run(args, nproc=2, timeout=120, extra_env=None):
        env = _env()
        env.update(extra_env or {})
        cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", str(nproc), "--max-restarts", "0",
               "-m", "paramount_trainer", "train", *TINY, *map(str, args)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return run


@pytest.fixture
def run_python():
    """``python -m paramount_trainer ...`` in a subprocess (no torchrun)."""

    def run(args, timeout=120):
        cmd = [sys.executable, "-m", "paramount_trainer", *map(str, args)]
        return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    return run


@pytest.fixture(scope="session")
def schema_validator():
    import jsonschema
    from paramount_trainer import load_log_schema

    schema = load_log_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def read_log(log_dir, node):
    path = Path(log_dir) / f"{node}.log"
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def records():
    """``records(log_dir, node)``: the parsed records of ``<log_dir>/<node>.log``."""
    return read_log


@pytest.fixture(scope="session")
def tiny_args():
    """Options every tiny test run uses."""
    return list(TINY)
