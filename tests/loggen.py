"""Synthetic paramount-iteration logs (trainer log contract v1) for tests and benchmarks (not shipped).

The step times come from a caller-supplied ``timing`` object, so the ground truth of a benchmark
can be any generator (it must not be the optimizer's own model). What this module guarantees is
the format: every record it writes is valid against ``log-record-v1.schema.json`` and laid out as
the trainer lays it out (one ``<node>.log`` JSON-lines file per node holding all its local ranks,
and a human-readable ``<node>.out``).
"""

from __future__ import annotations

import json
import os
import random

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import (
    default_catalog_path,
    emulated_entries,
    load_catalog,
)


class SimpleTiming:
    """A plain timing source for tests: compute = work[phase] / speed[type] x (1 + noise),
    communication = comm(nodes) (seconds, default 0.02 x (nodes - 1)), warm-up drift on the first
    iterations of each attempt, and no stragglers.
    """

    def __init__(self, speed, work=None, comm=None, noise=0.02, drift=0.5, seed=0, init=2.0, init_per_node=0.5):
        self.speed = dict(speed)
        self.work = dict(work or {"warmup": 0.06, "adversarial": 0.2})
        self.comm = comm or (lambda nodes: 0.02 * (nodes - 1))
        self.noise = noise
        self.drift = drift
        self.rng = random.Random(seed)
        self.init_base = init
        self.init_per_node = init_per_node

    def step(self, phase, index, ranks, nodes, attempt=0):
        """(compute seconds per rank, communication seconds) for one synchronous step.

        Other timing sources may return a third item, the step time, when it is not max(compute) + comm."""
        drift = 1.0 + self.drift * (0.5 ** index)
        comps = []
        for _rank, _host, itype in ranks:
            base = self.work[phase] / self.speed[itype]
            comps.append(base * drift * max(0.5, 1.0 + self.rng.gauss(0.0, self.noise)))
        return comps, self.comm(nodes)

    def init(self, nodes, itype):
        return self.init_base + self.init_per_node * nodes


def run_records(run_id, workload, hosts, timing, *, ranks_per_node=1, local_batch=4, samples_per_epoch=1000,
                epochs=3, warmup_iterations=500, phases=(("warmup", 3), ("adversarial", 10)),
                status="stopped", start_time=1_700_000_000.0, attempts=1, iterations_per_epoch=None):
    """Records of one probe run, as ``{host: [record, ...]}`` (all local ranks of a node together).

    ``hosts``: list of (node name, instance_type). Every rank's ``seconds`` is the synchronous step
    time (slowest rank's compute plus communication); ``compute_seconds`` is the rank's own work.
    ``attempts`` > 1 simulates torchrun restarts: each attempt logs start/init and the iterations
    again with ``attempt`` counting up. ``status`` is the ``end`` status (None: no end record).
    """
    nodes = len(hosts)
    world = nodes * ranks_per_node
    ranks = []
    for h_index, (host, itype) in enumerate(hosts):
        for local in range(ranks_per_node):
            ranks.append((h_index * ranks_per_node + local, host, itype, local))
    if iterations_per_epoch is None:
        iterations_per_epoch = -(-samples_per_epoch // (world * local_batch))
    out = {host: [] for host, _itype in hosts}
    now = float(start_time)
    step = 0
    for attempt in range(attempts):
        t0 = now
        for rank, host, itype, local in ranks:
            out[host].append({
                "event": "start", "schema": 1, "run_id": run_id, "host": host, "rank": rank, "attempt": attempt,
                "time": round(now, 6), "instance_type": itype, "local_rank": local, "world_size": world,
                "nodes": nodes, "local_batch": local_batch, "samples_per_epoch": samples_per_epoch,
                "iterations_per_epoch": iterations_per_epoch, "epochs": epochs,
                "warmup_iterations": warmup_iterations, "workload": workload,
            })
        init_s = max(timing.init(nodes, rank_info[2]) for rank_info in ranks)
        now += init_s
        for rank, host, itype, local in ranks:
            out[host].append({"event": "init", "schema": 1, "run_id": run_id, "host": host, "rank": rank,
                              "attempt": attempt, "time": round(now, 6), "seconds": round(init_s, 6)})
        for phase, count in phases:
            for index in range(count):
                res = timing.step(phase, index, [rank_info[:3] for rank_info in ranks], nodes, attempt)
                comps, comm = res[0], res[1]
                # a timing source may give the step time itself (e.g. compute and communication overlap)
                step_s = res[2] if len(res) > 2 else max(comps) + comm
                now += step_s
                for (rank, host, itype, local), comp in zip(ranks, comps):
                    out[host].append({
                        "event": "iteration", "schema": 1, "run_id": run_id, "host": host, "rank": rank,
                        "attempt": attempt, "time": round(now, 6), "epoch": step // iterations_per_epoch,
                        "iteration": step % iterations_per_epoch, "step": step, "phase": phase,
                        "seconds": round(step_s, 6), "compute_seconds": round(comp, 6), "samples": local_batch,
                    })
                step += 1
        if status is not None and attempt == attempts - 1:
            for rank, host, itype, local in ranks:
                out[host].append({"event": "end", "schema": 1, "run_id": run_id, "host": host, "rank": rank,
                                  "attempt": attempt, "time": round(now, 6), "status": status,
                                  "seconds": round(now - start_time, 6)})
        elif attempt < attempts - 1:
            now += 1.0  # restart gap
        del t0
    return out


def write_run(directory, records_by_host, out_files=True):
    """Write ``<directory>/<host>.log`` (JSON lines) and ``<host>.out``; returns the .log paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for host, recs in records_by_host.items():
        path = os.path.join(directory, "%s.log" % host)
        with open(path, "w", encoding="utf-8") as handle:
            for rec in recs:
                handle.write(json.dumps(rec, sort_keys=True) + "\n")
        paths.append(path)
        if out_files:
            with open(os.path.join(directory, "%s.out" % host), "w", encoding="utf-8") as handle:
                for rec in recs:
                    if rec["event"] == "iteration":
                        handle.write("epoch %d iter %d rank %d phase %s %.3fs\n" % (
                            rec["epoch"], rec["iteration"], rec["rank"], rec["phase"], rec["seconds"]))
    return paths


def emulated_speeds(catalog_path=None):
    """{type: cpu_share} of the catalog's emulated types (the rows with a cpu_share; default: the shipped catalog):
    an emulated node computes at its share of one CPU."""
    catalog = load_catalog(catalog_path or default_catalog_path())
    return {name: entry.cpu_share for name, entry in emulated_entries(catalog).items()}


SIM_SPEED = emulated_speeds()


def sim_probe_tree(root, workload="esrgan-tiny-test", counts=(1, 2), types=("sim.small", "sim.medium", "sim.large"),
                   timing=None, heterogeneous=False, **kwargs):
    """A results tree like the probe phase leaves: ``root/<run_id>/<node>.log``. Returns the run ids."""
    timing = timing or SimpleTiming(SIM_SPEED)
    run_ids = []
    if heterogeneous:
        hosts = [("probe-%d" % i, t) for i, t in enumerate(types)]
        rid = "probe-hetero"
        write_run(os.path.join(root, rid), run_records(rid, workload, hosts, timing, **kwargs))
        run_ids.append(rid)
    for t in types:
        for n in counts:
            rid = "probe-%s-%dx" % (t.replace(".", "-"), n)
            hosts = [("%s-node%d" % (rid, i), t) for i in range(n)]
            write_run(os.path.join(root, rid), run_records(rid, workload, hosts, timing, **kwargs))
            run_ids.append(rid)
    return run_ids
