"""Shared helpers for the optimizer's unit tests (log trees written with tests/loggen.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests import loggen as lg

REPO = Path(__file__).resolve().parents[4]
SCHEMA_PATH = REPO / "trainer" / "paramount_trainer" / "schemas" / "log-record-v1.schema.json"


def load_schema():
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line if isinstance(line, str) else json.dumps(line))
            handle.write("\n")


def probe(root, types=("sim.small", "sim.medium", "sim.large"), counts=(1,), seed=0, **kw):
    kw.setdefault("samples_per_epoch", 4000)
    kw.setdefault("epochs", 5)
    kw.setdefault("warmup_iterations", 100)
    timing = kw.pop("timing", None) or lg.SimpleTiming(lg.SIM_SPEED, seed=seed)
    return lg.sim_probe_tree(str(root), types=types, counts=counts, timing=timing, **kw)


def node_records(hosts=(("n0", "sim.small"),), **kw):
    """{host: [records]} of one generated run ``r1`` of workload ``wl`` on ``hosts`` ((host, type), ...)."""
    timing = lg.SimpleTiming(lg.SIM_SPEED, seed=1)
    return lg.run_records("r1", "wl", list(hosts), timing, **kw)
