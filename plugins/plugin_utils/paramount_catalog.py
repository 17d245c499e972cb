# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Instance catalog: ``instance_type,vcpus,memory_gib,gpus,price_per_hour,source`` CSV files."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

CATALOG_HEADER = ["instance_type", "vcpus", "memory_gib", "gpus", "price_per_hour", "source"]


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


def _number(text, name, where, allow_empty=True):
    text = (text or "").strip()
    if text == "":
        if allow_empty:
            return None
        raise ParamountError("%s: %s is empty" % (where, name))
    try:
        value = float(text)
    except ValueError:
        raise ParamountError("%s: %s %r is not a number" % (where, name, text)) from None
    if not math.isfinite(value) or value < 0:
        raise ParamountError("%s: %s %r must be a finite number >= 0" % (where, name, text))
    return value


def load_catalog(path: str) -> dict[str, CatalogEntry]:
    """Read a catalog CSV. Structural problems raise ParamountError naming the file and line.

    A row whose price is empty, zero, negative or not a number is kept with ``price_per_hour``
    None and ``price_problem`` set, so the optimizer can exclude that type with the reason.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise ParamountError("catalog %s: file not found" % path) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParamountError("catalog %s: cannot be read (%s)" % (path, exc)) from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ParamountError("catalog %s: empty file (expected header %s)" % (path, ",".join(CATALOG_HEADER)))
    header = [h.strip() for h in rows[0]]
    if header != CATALOG_HEADER:
        raise ParamountError("catalog %s: header is %s, expected %s" % (path, ",".join(header), ",".join(CATALOG_HEADER)))
    entries: dict[str, CatalogEntry] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        where = "catalog %s line %d" % (path, lineno)
        if len(row) != len(CATALOG_HEADER):
            raise ParamountError("%s: expected %d columns, found %d" % (where, len(CATALOG_HEADER), len(row)))
        itype = row[0].strip()
        if not itype:
            raise ParamountError("%s: instance_type is empty" % where)
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
        entries[itype] = CatalogEntry(itype, vcpus, memory, gpus, price, source, problem)
    return entries
