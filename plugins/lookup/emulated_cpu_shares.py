# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: emulated_cpu_shares
short_description: The emulated instance types of a backend and the CPU share of each, from the catalog
description:
  - Returns one dictionary, instance type to its share of one CPU in (0, 1], of the emulated types of O(backend)
    (local or sim), which are the catalog rows named C(<backend>.*) with a C(cpu_share).
  - The catalog is where the emulated types are defined; the provision role's defaults, the simulated cloud's tool and
    the tests read them from there.
author:
  - paramount.cluster developers (@paramount)
options:
  backend:
    description:
      - The emulating backend; its types are the catalog rows whose name starts with C(<backend>.).
    type: str
    required: true
    choices: [local, sim]
  catalog:
    description:
      - Path of the catalog CSV. Empty means the catalog shipped with the collection (C(catalogs/default.csv)).
    type: path
    default: ""
notes:
  - Runs on the controller, where the local and sim backends run their nodes.
"""

EXAMPLES = r"""
- name: Show the CPU share of each type of the simulated cloud
  ansible.builtin.debug:
    msg: "{{ lookup('paramount.cluster.emulated_cpu_shares', backend='sim') }}"

- name: The local backend's types
  ansible.builtin.debug:
    msg: "{{ lookup('paramount.cluster.emulated_cpu_shares', backend='local').keys() | list }}"
"""

RETURN = r"""
_raw:
  description: One dictionary, instance type to its CPU share, in the catalog's order.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import (
    default_catalog_path,
    emulated_entries,
    load_catalog,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

EMULATING_BACKENDS = ("local", "sim")


def emulated_cpu_shares(backend, catalog_path=None):
    """{type: cpu_share} of the catalog's ``<backend>.*`` rows that have a cpu_share, in the catalog's order."""
    catalog = load_catalog(catalog_path or default_catalog_path())
    return {name: entry.cpu_share for name, entry in emulated_entries(catalog, backend).items()}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("paramount.cluster.emulated_cpu_shares takes no terms, got %r" % (terms,))
        unknown = sorted(set(kwargs) - {"backend", "catalog"})
        if unknown:
            raise AnsibleLookupError("paramount.cluster.emulated_cpu_shares: unknown option(s) %s (it takes backend, catalog)"
                                     % ", ".join(unknown))
        backend = kwargs.get("backend")
        if backend not in EMULATING_BACKENDS:
            raise AnsibleLookupError("paramount.cluster.emulated_cpu_shares: backend must be one of %s, got %r"
                                     % (", ".join(EMULATING_BACKENDS), backend))
        try:
            shares = emulated_cpu_shares(backend, kwargs.get("catalog") or None)
        except ParamountError as exc:
            raise AnsibleLookupError("paramount.cluster.emulated_cpu_shares: %s" % exc) from None
        if not shares:
            raise AnsibleLookupError("paramount.cluster.emulated_cpu_shares: the catalog has no %s.* row with a cpu_share"
                                     % backend)
        return [shares]
