# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Outputs stage, the files of a plan: plan.json, the desired-state inventory, a CLAP cluster file, report.md and
plots in ``output_dir``. Files are written only when their content changes, so a second identical run reports
``changed: false``."""

from __future__ import annotations

import json
import math
import os

from ansible_collections.paramount.cluster.plugins.plugin_utils.outputs.report import render_plots, render_report
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

PLAN_FILE = "plan.json"
INVENTORY_FILE = "inventory.yml"
CLAP_FILE = "clap-cluster.yml"
REPORT_FILE = "report.md"


def clean_json(obj):
    """Plain JSON types only; non-finite floats become None; floats keep 6 significant digits."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    try:
        f = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    if not math.isfinite(f):
        return None
    if f == int(f) and abs(f) < 1e15 and type(obj).__name__.startswith("int"):
        return int(f)
    return float("%.6g" % f)


def _write_if_changed(path, data: bytes, changed: list):
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    changed.append(path)


def dump_yaml(doc, header=""):
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    return (header + text).encode("utf-8")


def write_outputs(output_dir, plan, measurement=None, candidates=(), chosen=None, clap_doc=None,
                  plots=True):
    """Write every output file; returns (paths written or unchanged, paths changed)."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as exc:
        raise ParamountError("output_dir %s cannot be created (%s)" % (output_dir, exc.strerror)) from None
    if not os.access(output_dir, os.W_OK):
        raise ParamountError("output_dir %s is not writable" % output_dir)
    files, changed = [], []

    def put(name, data):
        path = os.path.join(output_dir, name)
        _write_if_changed(path, data, changed)
        files.append(path)

    put(PLAN_FILE, (json.dumps(clean_json(plan), indent=2, sort_keys=False) + "\n").encode("utf-8"))
    if plan.get("chosen"):
        put(INVENTORY_FILE, dump_yaml(plan["desired_inventory"],
                                      "# desired-state inventory written by paramount.cluster.optimize\n"
                                      "# (group paramount_train: one slot per node; see docs/optimize.md)\n"))
        if clap_doc is not None:
            put(CLAP_FILE, dump_yaml(clap_doc, "# CLAP cluster file written by paramount.cluster.optimize\n"))
    images = {}
    if plots:
        images = render_plots(candidates, chosen, plan.get("cross_check") or [])
        for name, data in images.items():
            put(name, data)
    put(REPORT_FILE, render_report(plan, measurement, candidates, images).encode("utf-8"))
    return files, changed
