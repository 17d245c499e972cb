"""Whatever a cloud run leaves behind, optimize() returns a plan or raises ParamountError (a clear
message); never another exception."""
from __future__ import annotations

import json
import os
import tempfile

from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests import loggen as lg
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize

BAD_VALUES = [None, -1, -0.5, float("nan"), float("inf"), "x", "", [], {}, True, 0, 10**12, 2]
KEYS = ["event", "schema", "run_id", "host", "rank", "attempt", "time", "instance_type", "nodes", "world_size",
        "local_batch", "samples_per_epoch", "iterations_per_epoch", "epochs", "warmup_iterations", "workload",
        "seconds", "compute_seconds", "phase", "step", "status"]

mutation = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10**6)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.integers(1, 50)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.sampled_from(KEYS), st.sampled_from(BAD_VALUES)),
    st.tuples(st.just("delkey"), st.integers(0, 10**6), st.sampled_from(KEYS)),
    st.tuples(st.just("garbage"), st.integers(0, 10**6), st.binary(max_size=30)),
    st.tuples(st.just("type"), st.integers(0, 10**6), st.sampled_from(["sim.small", "unknown", "t9.huge"])),
    st.tuples(st.just("status"), st.integers(0, 10**6), st.sampled_from(["failed", "stopped", "completed"])),
)


def _tree(d):
    timing = lg.SimpleTiming(lg.SIM_SPEED, seed=5)
    files = []
    for t, n in (("sim.small", 1), ("sim.large", 1), ("sim.large", 2)):
        rid = "r-%s-%d" % (t, n)
        recs = lg.run_records(rid, "wl", [("%s-%d" % (rid, i), t) for i in range(n)], timing,
                              samples_per_epoch=400, epochs=2, warmup_iterations=5,
                              phases=(("warmup", 3), ("adversarial", 8)))
        files += lg.write_run(os.path.join(d, rid), recs, out_files=False)
    return files


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# found by CI: a start record claiming 10^12 nodes made the search cost build a list of that many (MemoryError)
@example(mutations=[("set", 0, "nodes", 1_000_000_000_000)], objective="cost")
@given(st.lists(mutation, min_size=1, max_size=12), st.sampled_from(["cost", "time"]))
def test_mutated_logs_never_crash(mutations, objective):
    with tempfile.TemporaryDirectory() as d:
        files = _tree(d)
        contents = {f: open(f, encoding="utf-8").read().splitlines() for f in files}
        for m in mutations:
            f = files[m[1] % len(files)]
            lines = contents[f]
            if not lines:
                continue
            i = m[1] % len(lines)
            if m[0] == "drop":
                del lines[i]
            elif m[0] == "truncate":
                lines[i] = lines[i][: max(0, len(lines[i]) - m[2])]
            elif m[0] == "garbage":
                lines.insert(i, m[2].decode("latin-1"))
            else:
                try:
                    rec = json.loads(lines[i])
                except ValueError:
                    continue
                if m[0] == "set":
                    rec[m[2]] = m[3]
                elif m[0] == "delkey":
                    rec.pop(m[2], None)
                elif m[0] == "type" and rec.get("event") == "start":
                    rec["instance_type"] = m[2]
                elif m[0] == "status" and rec.get("event") == "end":
                    rec["status"] = m[2]
                lines[i] = json.dumps(rec)
        for f, lines in contents.items():
            with open(f, "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
        try:
            r = optimize({"results_dir": d, "objective": objective, "bootstrap": 5, "plots": False,
                          "node_counts": [1, 2, 3]}, check_mode=True)
        except ParamountError as exc:
            assert str(exc)
            return
        plan = r["plan"]
        assert plan["schema_version"] == 1
        json.dumps(plan, allow_nan=False)
        assert (plan["chosen"] is None) == bool(r.get("failed"))
