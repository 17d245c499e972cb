# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Trainer log records (contract v1): the one reader of the nodes' JSON-lines logs on the controller.

Every record is checked against the JSON Schema the trainer ships
(``trainer/paramount_trainer/schemas/log-record-v1.schema.json``, inside the collection): the keys each event
requires and their types and bounds are read from that file, not written again here. Keys a record may leave out
are checked where they are used, with a warning that names them, so one odd optional value does not cost a
whole record. Stdlib only: the cost ledger (``playbooks/files/paramount_ledger.py``) runs by path and reads the
logs through this module too.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

SCHEMA_VERSION = 1
LOG_SUFFIXES = (".log", ".jsonl")
LOG_SCHEMA_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "trainer", "paramount_trainer", "schemas", "log-record-v1.schema.json")

# JSON Schema keywords the checks below implement; a schema that constrains a required key with another one
# is refused at load time rather than half checked
_CHECKED_KEYWORDS = {"type", "minLength", "minimum", "enum", "description"}


def short_list(items, limit=3):
    """``a, b, c, ... (7 in all)``: names in a message, at most ``limit`` of them."""
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    if len(items) > limit:
        text += ", ... (%d in all)" % len(items)
    return text


def _integer_check(minimum):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be an integer"
        if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
            return "must be an integer"
        return None if minimum is None or value >= minimum else "must be >= %d" % minimum
    return check


def _number_check(minimum):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if not math.isfinite(value):  # JSON text cannot carry it; the reader keeps NaN to name the key
            return "is not finite (%r)" % value
        if minimum is None or value >= minimum:
            return None
        return "is negative (%r)" % value if minimum == 0 else "must be >= %r (%r)" % (minimum, value)
    return check


def _string_check(min_length):
    def check(value):
        if isinstance(value, str) and len(value) >= min_length:
            return None
        return "must be a non-empty string" if min_length == 1 else "must be a string of %d+ characters" % min_length
    return check


def _enum_check(choices):
    def check(value):
        return None if isinstance(value, str) and value in choices else "must be one of %s" % ", ".join(choices)
    return check


def _property_check(key, prop):
    """A function value -> None or a reason, from one property of the schema."""
    unknown = sorted(set(prop) - _CHECKED_KEYWORDS)
    if unknown or ("enum" in prop and not all(isinstance(c, str) for c in prop["enum"])):
        raise ParamountError("%s: required key %r uses %s, which the log reader does not check"
                             % (LOG_SCHEMA_PATH, key, ", ".join(unknown) or "a non-string enum"))
    if "enum" in prop:
        return _enum_check(tuple(prop["enum"]))
    kind = prop.get("type")
    if kind == "integer":
        return _integer_check(prop.get("minimum"))
    if kind == "number":
        return _number_check(prop.get("minimum"))
    if kind == "string":
        return _string_check(int(prop.get("minLength", 0)))
    raise ParamountError("%s: required key %r has type %r, which the log reader does not check"
                         % (LOG_SCHEMA_PATH, key, kind))


def _required_checks(required, properties):
    return tuple((key, _property_check(key, properties.get(key, {}))) for key in required
                 if key not in ("event", "schema"))


@dataclass(frozen=True)
class LogContract:
    """What the shipped schema requires: the events and, per event, (key, check) in the schema's order."""

    events: tuple
    checks: dict  # event -> ((key, check), ...), the common keys first


@functools.lru_cache(maxsize=None)
def log_contract() -> LogContract:
    """The contract as the shipped schema states it (read once, on first use)."""
    try:
        with open(LOG_SCHEMA_PATH, encoding="utf-8") as handle:
            schema = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ParamountError("the trainer's log schema %s cannot be read (%s): the collection is incomplete"
                             % (LOG_SCHEMA_PATH, exc)) from None
    if schema["properties"]["schema"].get("const") != SCHEMA_VERSION:
        raise ParamountError("%s is not log contract v%d" % (LOG_SCHEMA_PATH, SCHEMA_VERSION))
    common = _required_checks(schema["required"], schema["properties"])
    checks = {}
    for branch in schema["allOf"]:
        event = branch["if"]["properties"]["event"]["const"]
        then = branch["then"]
        checks[event] = common + _required_checks(then.get("required", ()), then.get("properties", {}))
    events = tuple(schema["properties"]["event"]["enum"])
    if set(events) != set(checks):
        raise ParamountError("%s: events %s and their requirements do not match" % (LOG_SCHEMA_PATH, events))
    return LogContract(events, checks)


def validate_record(rec) -> str | None:
    """Check one decoded JSON value against log contract v1 (the shipped schema's required keys).

    Returns None when valid, otherwise a reason. A record whose ``schema`` is another version is reported as
    ``unknown schema version``.
    """
    if not isinstance(rec, dict):
        return "not a JSON object"
    if "event" not in rec:
        return "missing key 'event'"
    if "schema" not in rec:
        return "missing key 'schema'"
    schema = rec["schema"]
    if isinstance(schema, bool) or schema != SCHEMA_VERSION:
        if isinstance(schema, int) and not isinstance(schema, bool):
            return "unknown schema version %r" % (schema,)
        return "schema must be %d, got %r" % (SCHEMA_VERSION, schema)
    contract = log_contract()
    event = rec["event"]
    if not isinstance(event, str) or event not in contract.checks:
        return "unknown event %r" % (event,)
    for key, check in contract.checks[event]:
        if key not in rec:
            return "%s record: missing key %r" % (event, key)
        problem = check(rec[key])
        if problem:
            return "%s record: %s %s" % (event, key, problem)
    return None


def _reject_constant(name):
    # json accepts NaN/Infinity by default; keep them as floats so validation names the key
    return float(name.replace("Infinity", "inf").replace("NaN", "nan"))


@dataclass
class FileResult:
    path: str
    records: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # (line, reason) for lines that were dropped
    unknown_schema: list = field(default_factory=list)  # (line, version)
    lines: int = 0


def read_log_file(path: str) -> FileResult:
    """Read one JSON-lines node log. Bad lines are dropped with their line number and reason."""
    result = FileResult(path)
    try:
        handle = open(path, "r", encoding="utf-8", errors="replace")
    except OSError as exc:
        result.problems.append((0, "cannot be read (%s)" % exc.strerror))
        return result
    with handle:
        for lineno, line in enumerate(handle, start=1):
            result.lines = lineno
            text = line.strip()
            if not text:
                continue
            try:
                rec = json.loads(text, parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                result.problems.append((lineno, "truncated or corrupt line (not JSON)"))
                continue
            reason = validate_record(rec)
            if reason is None:
                rec = dict(rec)
                rec["_file"] = path
                rec["_line"] = lineno
                result.records.append(rec)
            elif reason.startswith("unknown schema version"):
                result.unknown_schema.append((lineno, rec.get("schema")))
            else:
                result.problems.append((lineno, reason))
    return result


def find_log_files(results_dir: str, exclude=()) -> list[str]:
    """Every ``*.log`` / ``*.jsonl`` file under ``results_dir`` at any depth, sorted.

    Directories in ``exclude`` (e.g. the output_dir when it sits inside results_dir) are skipped.
    """
    if not results_dir:
        raise ParamountError("results_dir is empty")
    if not os.path.exists(results_dir):
        raise ParamountError("results_dir %s does not exist" % results_dir)
    if not os.path.isdir(results_dir):
        raise ParamountError("results_dir %s is not a directory" % results_dir)
    skip = {os.path.realpath(p) for p in exclude if p}
    found = []
    for dirpath, dirnames, filenames in os.walk(results_dir):
        dirnames[:] = sorted(d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in skip)
        for name in sorted(filenames):
            if name.endswith(LOG_SUFFIXES):
                found.append(os.path.join(dirpath, name))
    return found


def load_records(results_dir: str, exclude=()):
    """Read every log file; returns (files, records, warnings). Raises ParamountError when
    there is nothing to measure or a file uses an unknown schema version."""
    files = find_log_files(results_dir, exclude)
    if not files:
        raise ParamountError(
            "results_dir %s: no log files found (expected the trainer's JSON-lines node logs "
            "named *.log, at any depth)" % results_dir)
    records, warnings, unknown = [], [], []
    for path in files:
        res = read_log_file(path)
        records.extend(res.records)
        if res.unknown_schema:
            versions = sorted({repr(item[1]) for item in res.unknown_schema})
            unknown.append("%s line %d (schema %s)" % (path, res.unknown_schema[0][0], "/".join(versions)))
        if res.problems:
            if not res.records and not res.unknown_schema:
                warnings.append("%s: ignored, no valid log record (%d problem lines; first: line %d: %s)"
                                % (path, len(res.problems), res.problems[0][0], res.problems[0][1]))
            else:
                lines = short_list("%d (%s)" % (ln, why) for ln, why in res.problems)
                warnings.append("%s: dropped %d bad line(s): %s" % (path, len(res.problems), lines))
    if unknown:
        raise ParamountError(
            "unknown log schema version in %s; this plugin reads schema %d only: upgrade the "
            "collection or move those files out of results_dir" % (short_list(unknown), SCHEMA_VERSION))
    if not records:
        raise ParamountError(
            "results_dir %s: no valid paramount-iteration record in %d log file(s): %s"
            % (results_dir, len(files), short_list(warnings, 2)))
    return files, records, warnings
