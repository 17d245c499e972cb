# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: cpu_capacity
short_description: The cores the emulated nodes of a cluster may take on this controller
description:
  - Returns the CPU capacity of the emulated backends (local and sim, whose nodes run on the controller as shares
    of one CPU) as one float, in cores.
  - It is the number of cores this process may use, the smaller of its scheduler affinity
    (C(os.sched_getaffinity)) and the CPU limit of its own cgroup (v2 C(cpu.max), v1 C(cpu.cfs_quota_us) over
    C(cpu.cfs_period_us), the strictest of the cgroup and its ancestors), never C(os.cpu_count()); less
    O(reserve) cores for Ansible, the local launcher and sshd; never below 0.
  - The plan playbook gives it to P(paramount.cluster.optimize#module) as C(cpu_capacity), and the provision role
    checks that a cluster's shares fit it before anything starts.
author:
  - paramount.cluster developers (@paramount)
options:
  reserve:
    description:
      - Cores left to what runs beside the training (ansible-playbook and its workers, the launcher's
        throttling loop, sshd of the sim hosts).
    type: float
    default: 0.5
notes:
  - Runs on the controller, where the local and sim backends run their nodes.
"""

EXAMPLES = r"""
- name: Show the capacity of this machine for emulated nodes
  ansible.builtin.debug:
    msg: "{{ lookup('paramount.cluster.cpu_capacity') }} cores"

- name: Leave a whole core to Ansible
  ansible.builtin.debug:
    msg: "{{ lookup('paramount.cluster.cpu_capacity', reserve=1.0) }} cores"
"""

RETURN = r"""
_raw:
  description: The capacity in cores (one float).
  type: list
  elements: float
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_capacity


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("paramount.cluster.cpu_capacity takes no terms, got %r" % (terms,))
        unknown = sorted(set(kwargs) - {"reserve"})
        if unknown:
            raise AnsibleLookupError("paramount.cluster.cpu_capacity: unknown option(s) %s (it takes reserve)"
                                     % ", ".join(unknown))
        reserve = kwargs.get("reserve", paramount_capacity.DEFAULT_CPU_RESERVE)
        try:
            return [paramount_capacity.cpu_capacity(float(reserve))]
        except (TypeError, ValueError):
            raise AnsibleLookupError("paramount.cluster.cpu_capacity: reserve must be a number of cores >= 0, got %r"
                                     % (reserve,)) from None
