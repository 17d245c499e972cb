# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Filter paramount.cluster.desired_slots: the slots of a desired-state inventory, checked by the contract's own
reader (``decision.inventory.desired_slots``) before the provision role starts anything. The documentation is the
sidecar ``desired_slots.yml``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError
from ansible_collections.paramount.cluster.plugins.plugin_utils.decision.inventory import desired_slots as read_slots

# how a failure names the backend that emulates the types on this machine
EMULATORS = {"local": "the local backend", "sim": "the simulated cloud"}


def desired_slots(inventory, source, emulated=None, backend=None):
    """{slot: variables} of the loaded desired-state inventory ``source``; AnsibleFilterError naming every bad host."""
    if emulated is not None and (isinstance(emulated, (str, bytes)) or not hasattr(emulated, "__iter__")):
        raise AnsibleFilterError("desired_slots: emulated must be a list of instance types, got %r" % (emulated,))
    try:
        return read_slots(inventory, str(source), None if emulated is None else list(emulated),
                          EMULATORS.get(backend, "the %s backend" % backend if backend else "the backend"))
    except ParamountError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """paramount.cluster's desired-state inventory filter."""

    def filters(self):
        return {"desired_slots": desired_slots}
