"""Outputs, the files of a plan: JSON cleaning, idempotent writes."""
from __future__ import annotations

import math

from ansible_collections.paramount.cluster.plugins.plugin_utils.outputs import files as out


def test_clean_json_removes_non_finite_values():
    import numpy as np
    cleaned = out.clean_json({"a": float("nan"), "b": [math.inf, np.float64(1.23456789), np.int64(3)], "c": (1,)})
    assert cleaned == {"a": None, "b": [None, 1.23457, 3], "c": [1]}


def test_writes_only_when_content_changes(tmp_path):
    changed = []
    p = str(tmp_path / "f")
    out._write_if_changed(p, b"x", changed)
    out._write_if_changed(p, b"x", changed)
    out._write_if_changed(p, b"y", changed)
    assert changed == [p, p]
