"""paramount_trainer: distributed ESRGAN trainer that logs paramount iterations (log contract v1).

Run ``python -m paramount_trainer train --help``.
"""
import json
from importlib import resources

__version__ = "0.1.0"

#: Version of the JSON-lines log contract written by the trainer (the ``schema`` key of every record).
LOG_SCHEMA_VERSION = 1
LOG_SCHEMA_RESOURCE = "log-record-v1.schema.json"


def load_log_schema():
    """Return the JSON Schema (a dict) that every record of a node's ``.log`` satisfies."""
    text = resources.files(__name__).joinpath("schemas", LOG_SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)
