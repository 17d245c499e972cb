# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Measurement: read paramount-iteration logs (trainer log contract v1) and turn them into
per-configuration estimates of seconds per iteration, per phase, with confidence intervals.

The entry of the measurement stage; the code is in the ``measurement`` package, one module per step:
``find_log_files`` -> ``read_log_file`` (line by line, each record validated against the trainer's shipped JSON
Schema, never raises on a bad line; ``measurement.records``) -> ``measure`` (group by run, attempt,
(instance_type, nodes) and phase; drop warm-up iterations; robust mean with a confidence interval; init time
apart; ``measurement.runs``, ``measurement.rating``, ``measurement.statistics``, ``measurement.estimates``).
"""

from __future__ import annotations

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.estimates import (
    ConfigMeasurement,
    Measurement,
    PhaseMeasurement,
    measure,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import (
    LOG_SCHEMA_PATH,
    LOG_SUFFIXES,
    SCHEMA_VERSION,
    FileResult,
    find_log_files,
    load_records,
    read_log_file,
    validate_record,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.runs import JobInfo, RunInfo
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.statistics import (
    CONFIDENCE,
    DRIFT_MIN_SAMPLES,
    DRIFT_P,
    DRIFT_SETTLED,
    DRIFT_TAUS,
    MIN_REL_SPREAD,
    SINGLE_SAMPLE_REL_SE,
    WINSOR_K,
    WINSOR_SHARE,
    Estimate,
    fit_drift,
    robust_mean,
    warmup_cut,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import TRAINING_PHASES

PHASES = TRAINING_PHASES

__all__ = [
    "CONFIDENCE", "DRIFT_MIN_SAMPLES", "DRIFT_P", "DRIFT_SETTLED", "DRIFT_TAUS", "LOG_SCHEMA_PATH", "LOG_SUFFIXES",
    "MIN_REL_SPREAD", "PHASES", "SCHEMA_VERSION", "SINGLE_SAMPLE_REL_SE", "WINSOR_K", "WINSOR_SHARE",
    "ConfigMeasurement", "Estimate", "FileResult", "JobInfo", "Measurement", "PhaseMeasurement", "RunInfo",
    "find_log_files", "fit_drift", "load_records", "measure", "read_log_file", "robust_mean", "validate_record",
    "warmup_cut",
]
