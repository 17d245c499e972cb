# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Small helpers shared by the optimizer's plugin_utils modules (no third-party imports)."""

from __future__ import annotations

import math
import re

__all__ = ["ParamountError", "is_finite_number", "slug", "fmt_seconds", "fmt_money"]


class ParamountError(Exception):
    """A problem with the user's input (options, logs, catalog, inventory).

    The action plugin turns it into a failed task whose message is ``str(error)``; it never
    surfaces as a traceback. Messages name the file or option that is wrong.
    """


def is_finite_number(value) -> bool:
    """True for int/float values that are finite (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """Lower-case ``text`` and replace every run of characters outside [a-z0-9] by one '-'."""
    out = _SLUG_RE.sub("-", str(text).lower()).strip("-")
    return out or "x"


def fmt_seconds(seconds) -> str:
    if seconds is None or not is_finite_number(seconds):
        return "n/a"
    seconds = float(seconds)
    if seconds < 10:
        return "%.3g s" % seconds
    if seconds < 120:
        return "%.1f s" % seconds
    if seconds < 7200:
        return "%.1f min" % (seconds / 60.0)
    return "%.2f h" % (seconds / 3600.0)


def fmt_money(amount, currency: str = "USD") -> str:
    if amount is None or not is_finite_number(amount):
        return "n/a"
    if abs(amount) < 0.01:
        return "%.5f %s" % (amount, currency)
    return "%.4f %s" % (amount, currency)
