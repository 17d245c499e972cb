# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Instance catalog: CSV files whose header starts with the six required columns
``instance_type,vcpus,memory_gib,gpus,price_per_hour,source``, followed by optional named columns in any
order:

========================== ===================================================================== ==========
column                     meaning                                                               default
========================== ===================================================================== ==========
billing_increment_seconds  billed time is rounded up to a multiple of this (> 0)                 1
billing_minimum_seconds    a node is billed at least this long over its whole life (>= 0)        60
cpu_share                  an emulated type's share of one CPU, in (0, 1]                        none
node_limit                 the largest node count of the type that may be started (a quota), a   none
                           positive integer
========================== ===================================================================== ==========

An empty cell takes the default. An unknown column, or a bad value (negative, not a number, a share outside
(0, 1], a fractional node limit) is an error naming the file, the line and the column. Blank lines and lines
starting with ``#`` are skipped.

This is the one catalog loader of the collection: the optimize plugin, the cost ledger
(``playbooks/files/paramount_ledger.py``), the autoscale controller (``autoscale/desired.py``), the lookup of
the emulated types' CPU shares and the simulated cloud's instance types all read catalogs through
``load_catalog``. The module needs only the standard library, so the simulated cloud (a tool of the checkout that
runs by path, outside Ansible) can load it by its file path.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass

try:
    from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError
except ImportError:  # loaded by path by a tool that runs outside Ansible (simcloud/instance_types.py)

    class ParamountError(Exception):  # type: ignore[no-redef]
        """A problem with the catalog file; the message names the file, line and column."""


CATALOG_HEADER = ["instance_type", "vcpus", "memory_gib", "gpus", "price_per_hour", "source"]
OPTIONAL_COLUMNS = ["billing_increment_seconds", "billing_minimum_seconds", "cpu_share", "node_limit"]
DEFAULT_BILLING_INCREMENT_SECONDS = 1.0  # per-second billing ...
DEFAULT_BILLING_MINIMUM_SECONDS = 60.0  # ... with a one-minute minimum (EC2 Linux on-demand)


def default_catalog_path() -> str:
    """The catalog shipped with the collection (``catalogs/default.csv`` at the collection root)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "catalogs", "default.csv"))


@dataclass(frozen=True)
class CatalogEntry:
    instance_type: str
    vcpus: float | None
    memory_gib: float | None
    gpus: float | None
    price_per_hour: float | None  # None: the row has no usable price (the type is then excluded)
    source: str
    price_problem: str = ""  # why price_per_hour is None
    billing_increment_seconds: float = DEFAULT_BILLING_INCREMENT_SECONDS
    billing_minimum_seconds: float = DEFAULT_BILLING_MINIMUM_SECONDS
    cpu_share: float | None = None  # emulated types only: share of one CPU, in (0, 1]
    node_limit: int | None = None  # quota: the largest node count of this type that may be started

    @property
    def billing(self) -> dict:
        """The billing rule of the type, as recorded in plan.json."""
        return {"increment_seconds": self.billing_increment_seconds,
                "minimum_seconds": self.billing_minimum_seconds}


def _number(text, name, where, allow_empty=True):
    text = (text or "").strip()
    if text == "":
        if allow_empty:
            return None
        raise ParamountError("%s, column %s: empty" % (where, name))
    try:
        value = float(text)
    except ValueError:
        raise ParamountError("%s, column %s: %r is not a number" % (where, name, text)) from None
    if not math.isfinite(value) or value < 0:
        raise ParamountError("%s, column %s: %r must be a finite number >= 0" % (where, name, text))
    return value


def _optional(name, text, where):
    """The value of one optional column (None when the cell is empty)."""
    value = _number(text, name, where)
    if value is None:
        return None
    if name == "billing_increment_seconds" and value <= 0:
        raise ParamountError("%s, column %s: %r must be > 0 (1 is per-second billing)" % (where, name, text))
    if name == "cpu_share" and not 0 < value <= 1:
        raise ParamountError("%s, column %s: %r is outside (0, 1]" % (where, name, text))
    if name == "node_limit":
        if value < 1 or value != int(value):
            raise ParamountError("%s, column %s: %r must be a positive integer" % (where, name, text))
        return int(value)
    return value


def _header(path, row):
    header = [h.strip() for h in row]
    expected = ",".join(CATALOG_HEADER)
    if header[:len(CATALOG_HEADER)] != CATALOG_HEADER:
        raise ParamountError("catalog %s: header is %s, expected %s first (then optional columns %s)"
                             % (path, ",".join(header), expected, ", ".join(OPTIONAL_COLUMNS)))
    extra = header[len(CATALOG_HEADER):]
    for col, name in enumerate(extra, start=len(CATALOG_HEADER) + 1):
        if name not in OPTIONAL_COLUMNS:
            raise ParamountError("catalog %s line 1, column %d: unknown column %r (known optional columns: %s)"
                                 % (path, col, name, ", ".join(OPTIONAL_COLUMNS)))
        if extra.count(name) > 1:
            raise ParamountError("catalog %s line 1: column %s appears twice" % (path, name))
    return header


def load_catalog(path: str) -> dict[str, CatalogEntry]:
    """Read a catalog CSV. Structural problems and bad values raise ParamountError naming the file, line
    and column.

    A row whose price is empty, zero, negative or not a number is kept with ``price_per_hour``
    None and ``price_problem`` set, so the optimizer can exclude that type with the reason.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise ParamountError("catalog %s: file not found" % path) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParamountError("catalog %s: cannot be read (%s)" % (path, exc)) from None
    rows = [(i, r) for i, r in rows if any(cell.strip() for cell in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise ParamountError("catalog %s: empty file (expected header %s)" % (path, ",".join(CATALOG_HEADER)))
    header = _header(path, rows[0][1])
    entries: dict[str, CatalogEntry] = {}
    for lineno, row in rows[1:]:
        where = "catalog %s line %d" % (path, lineno)
        if len(row) != len(header):
            raise ParamountError("%s: expected %d columns, found %d" % (where, len(header), len(row)))
        itype = row[0].strip()
        if not itype:
            raise ParamountError("%s, column instance_type: empty" % where)
        if itype in entries:
            raise ParamountError("%s: instance_type %s appears twice" % (where, itype))
        vcpus = _number(row[1], "vcpus", where)
        memory = _number(row[2], "memory_gib", where)
        gpus = _number(row[3], "gpus", where)
        price_text = row[4].strip()
        price = None
        problem = ""
        if price_text == "":
            problem = "no price in catalog %s" % path
        else:
            try:
                price = float(price_text)
            except ValueError:
                price = None
            if price is None or not math.isfinite(price) or price <= 0:
                problem = "price %r in catalog %s is not a positive number" % (price_text, path)
                price = None
        source = row[5].strip()
        if price is not None and not source:
            problem = "price in catalog %s has no source" % path
            price = None
        extra = {name: _optional(name, text, where)
                 for name, text in zip(header[len(CATALOG_HEADER):], row[len(CATALOG_HEADER):])}
        extra = {k: v for k, v in extra.items() if v is not None}
        entries[itype] = CatalogEntry(itype, vcpus, memory, gpus, price, source, problem, **extra)
    return entries


def emulated_entries(catalog: dict, backend: str | None = None) -> dict[str, CatalogEntry]:
    """The emulated types of a loaded catalog: its rows with a ``cpu_share``, in the catalog's order; with
    ``backend`` (local, sim) only that backend's ``<backend>.*`` rows."""
    prefix = None if backend is None else backend + "."
    return {name: entry for name, entry in catalog.items()
            if entry.cpu_share is not None and (prefix is None or name.startswith(prefix))}
