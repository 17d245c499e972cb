# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Small helpers shared by the optimizer's plugin_utils modules (no third-party imports), and the vocabulary
they share: the objective and the training phases, each named once here."""

from __future__ import annotations

import enum
import math
import re

__all__ = ["ParamountError", "Vocabulary", "Objective", "OBJECTIVES", "TrainingPhase", "TRAINING_PHASES",
           "phase_order", "is_finite_number", "slug", "fmt_seconds", "fmt_money"]


class Vocabulary(str, enum.Enum):
    """A closed set of names that appear in options, logs and plan.json. Members are their own string (they
    compare, hash and format as their value), so ``Objective.TIME == "time"`` holds where a plain string comes
    from Ansible or a file. Data written out (plan.json, YAML) takes ``.value``: yaml.safe_dump represents plain
    strings only."""

    def __str__(self):
        return self.value

    @classmethod
    def values(cls):
        """The names, in their defined order (argument spec choices, messages)."""
        return tuple(member.value for member in cls)


class Objective(Vocabulary):
    """What the plan minimises (option ``objective``)."""

    COST = "cost"
    TIME = "time"


class TrainingPhase(Vocabulary):
    """The training phases a job runs in order; trainer log contract v1 names them in iteration records
    (``phase``; trainer/paramount_trainer/schemas/log-record-v1.schema.json, kept equal by a unit test)."""

    WARMUP = "warmup"
    ADVERSARIAL = "adversarial"


OBJECTIVES = Objective.values()
TRAINING_PHASES = TrainingPhase.values()


def phase_order(phase):
    """Sort key of phase names: the training phases in the order they run, then any other name."""
    return (TRAINING_PHASES.index(phase) if phase in TRAINING_PHASES else len(TRAINING_PHASES), str(phase))


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
