# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""A small EC2 cloud on one machine: moto is the cloud API, network namespaces are the machines.

A development and test tool of the paramount.cluster checkout (the sim backend's tests, the molecule scenarios on
the simulated cloud, the benchmarks); it is not part of the built collection. The provision role's ``sim`` backend
only reads the state.json a running cloud writes.

Needs root, iproute2, openssh-server, util-linux (unshare) and a cgroup v1 ``cpu`` hierarchy. Only the standard
library and boto3 are imported. From the checkout's root::

    python simcloud up --state-dir DIR      # prints the state (JSON)
    python simcloud exec --state-dir DIR -- ansible-playbook ...   # run in the controller netns
    python simcloud down --state-dir DIR    # idempotent; also `down --all` sweeps every sim cloud

Modules: cloud (the state, moto, the reconciler's process), hosts (namespace hosts), quotas (cgroup CPU quotas and
memory limits), instance_types (the ``sim.*`` rows of catalogs/default.csv), controller (what runs next to moto),
system (commands, processes, namespaces), cli.
"""

from .cloud import DEFAULT_SUBNET, STATE_FILE, SimCloud, sweep_all
from .instance_types import SIM_TYPES, SimType, load_sim_types
from .quotas import CPU_PERIOD_US
from .system import CGROUP_ROOT, PREFIX_MARK, SimCloudError, missing_requirements

__all__ = [
    "CGROUP_ROOT", "CPU_PERIOD_US", "DEFAULT_SUBNET", "PREFIX_MARK", "SIM_TYPES", "STATE_FILE",
    "SimCloud", "SimCloudError", "SimType", "load_sim_types", "missing_requirements", "sweep_all",
]
