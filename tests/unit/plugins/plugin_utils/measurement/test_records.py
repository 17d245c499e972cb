"""Measurement, records: the log reader against the trainer's shipped schema (log contract v1), and the generator of
the tests against the same schema."""
from __future__ import annotations

import json
import math
import os

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests import loggen as lg
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement import records
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import read_log_file, validate_record
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import TRAINING_PHASES, ParamountError

from ..optimize_testlib import load_schema, node_records

SCHEMA = load_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_generator_records_are_valid_against_the_trainer_schema():
    recs = node_records(hosts=(("a", "sim.small"), ("b", "sim.large")), ranks_per_node=2, attempts=2)
    flat = [r for lst in recs.values() for r in lst]
    assert {r["event"] for r in flat} == {"start", "init", "iteration", "end"}
    for r in flat:
        VALIDATOR.validate(r)
        assert validate_record(r) is None


def test_generator_layout_one_log_per_node_with_all_local_ranks(tmp_path):
    recs = node_records(hosts=(("a", "sim.small"), ("b", "sim.small")), ranks_per_node=2)
    paths = lg.write_run(str(tmp_path), recs)
    assert sorted(os.path.basename(p) for p in paths) == ["a.log", "b.log"]
    assert (tmp_path / "a.out").exists()
    ranks = {json.loads(line)["rank"] for line in (tmp_path / "b.log").read_text().splitlines()}
    assert ranks == {2, 3}


def test_the_reader_checks_what_the_shipped_schema_requires():
    """The required keys of every event come from the shipped schema: leaving out any one of them is named."""
    contract = records.log_contract()
    assert set(contract.events) == set(SCHEMA["properties"]["event"]["enum"])
    recs = node_records(hosts=(("a", "sim.small"),))["a"]
    for event in contract.events:
        rec = next((r for r in recs if r["event"] == event), None)
        if rec is None:  # the generator writes no epoch record
            continue
        branch = next(b for b in SCHEMA["allOf"] if b["if"]["properties"]["event"]["const"] == event)
        for key in set(SCHEMA["required"]) - {"event", "schema"} | set(branch["then"]["required"]):
            reason = validate_record({k: v for k, v in rec.items() if k != key})
            assert reason == "%s record: missing key %r" % (event, key)


def test_the_training_phases_are_the_schemas():
    iteration = next(b for b in SCHEMA["allOf"] if b["if"]["properties"]["event"]["const"] == "iteration")
    assert list(TRAINING_PHASES) == iteration["then"]["properties"]["phase"]["enum"]
    # the reader accepts exactly these phases (the measurement stage's phases are TRAINING_PHASES)
    record = next(r for r in node_records()["n0"] if r["event"] == "iteration")
    assert [validate_record(dict(record, phase=phase)) for phase in TRAINING_PHASES] == [None] * len(TRAINING_PHASES)
    assert "phase must be one of" in validate_record(dict(record, phase="x"))


def test_a_schema_the_reader_cannot_check_is_refused_not_half_checked(tmp_path, monkeypatch):
    changed = json.loads(json.dumps(SCHEMA))
    changed["properties"]["host"]["pattern"] = "^[a-z]+$"
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(changed))
    monkeypatch.setattr(records, "LOG_SCHEMA_PATH", str(path))
    records.log_contract.cache_clear()
    try:
        with pytest.raises(ParamountError, match="'host' uses pattern"):
            records.log_contract()
        monkeypatch.setattr(records, "LOG_SCHEMA_PATH", str(tmp_path / "missing.json"))
        with pytest.raises(ParamountError, match="cannot be read"):
            records.log_contract()
    finally:
        records.log_contract.cache_clear()


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))

record_like = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["start", "init", "iteration", "epoch", "end", "other", 3]),
        "schema": st.sampled_from([1, 2, 1.0, "1", True]),
        "run_id": st.sampled_from(["r", "", 5]),
        "host": st.sampled_from(["h", ""]),
        "rank": json_scalars, "attempt": json_scalars, "time": json_scalars,
        "instance_type": st.sampled_from(["t2.small", ""]),
        "local_rank": json_scalars, "world_size": json_scalars, "nodes": json_scalars,
        "local_batch": json_scalars, "samples_per_epoch": json_scalars, "iterations_per_epoch": json_scalars,
        "epochs": json_scalars, "warmup_iterations": json_scalars, "workload": st.sampled_from(["w", ""]),
        "seconds": json_scalars, "epoch": json_scalars, "iteration": json_scalars, "step": json_scalars,
        "phase": st.sampled_from(["warmup", "adversarial", "x"]), "compute_seconds": json_scalars,
        "samples": json_scalars, "iterations": json_scalars,
        "status": st.sampled_from(["completed", "stopped", "failed", "ok"]),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_like)
def test_validate_record_agrees_with_the_json_schema(rec):
    """The plugin's hand-written check accepts exactly what the trainer's JSON Schema accepts
    (NaN and infinities, which JSON cannot carry, are rejected by both)."""
    ours = validate_record(rec) is None
    theirs = VALIDATOR.is_valid(rec)
    has_nonfinite = any(isinstance(v, float) and not math.isfinite(v) for v in rec.values())
    if has_nonfinite and theirs:
        theirs = False  # jsonschema lets inf pass 'minimum'; JSON text cannot hold it; we reject
    assert ours == theirs, (validate_record(rec), rec)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
                max_size=20))
def test_parser_never_raises_on_garbage_lines(tmp_path_factory, lines):
    d = tmp_path_factory.mktemp("garbage")
    path = d / "n.log"
    path.write_text("\n".join(lines), encoding="utf-8", errors="replace")
    res = read_log_file(str(path))
    assert all(validate_record({k: v for k, v in r.items() if not k.startswith("_")}) is None
               for r in res.records)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(1, 3))
def test_parser_keeps_every_valid_line_before_a_truncation(cut, seed):
    recs = node_records(hosts=(("n0", "sim.small"),))["n0"]
    text = "".join(json.dumps(r) + "\n" for r in recs)
    truncated = text[: max(0, len(text) - cut)]
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "n0.log")
        with open(p, "w") as handle:
            handle.write(truncated)
        res = read_log_file(p)
    complete_lines = truncated.count("\n")
    assert len(res.records) >= complete_lines
    assert len(res.records) + len(res.problems) == len([ln for ln in truncated.split("\n") if ln.strip()])
