# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The instance types the simulated cloud emulates: the ``sim.*`` rows of the collection's catalog.

catalogs/default.csv is where they are defined (price, memory, ``cpu_share``); this module reads it with the
collection's one catalog loader (plugins/plugin_utils/paramount_catalog.py), imported as the collection when it is on
``sys.path`` and otherwise by its path in this checkout (the tool runs by path, outside Ansible).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SIM_BACKEND = "sim"  # its types are the catalog's sim.* rows


@dataclasses.dataclass(frozen=True)
class SimType:
    """An emulated instance type. ``cpu`` is the share of one core (cgroup v1 CFS quota)."""

    name: str
    cpu: float
    memory_mib: int
    vcpus: int
    price_per_hour: float


def _catalog_module():
    try:
        from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_catalog  # pylint: disable=import-outside-toplevel
        return paramount_catalog
    except ImportError:
        path = CHECKOUT / "plugins" / "plugin_utils" / "paramount_catalog.py"
        name = "simcloud._paramount_catalog"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # before it runs: its dataclasses look their module up there
            spec.loader.exec_module(module)
        return sys.modules[name]


def load_sim_types(catalog_path=None):
    """{name: SimType} of the catalog's ``sim.*`` rows that have a ``cpu_share`` (default: the shipped catalog)."""
    catalog_module = _catalog_module()
    catalog = catalog_module.load_catalog(str(catalog_path or CHECKOUT / "catalogs" / "default.csv"))
    return {
        name: SimType(name, entry.cpu_share, int(round(entry.memory_gib * 1024)), int(entry.vcpus), entry.price_per_hour)
        for name, entry in catalog_module.emulated_entries(catalog, SIM_BACKEND).items()
    }


# Quotas add up to 1.05 cores, well under the machine's 2, so the speed order stays sharp even when all three run at
# once; the catalog's prices make `medium` the cheapest per unit of work and `large` the fastest.
SIM_TYPES = load_sim_types()
