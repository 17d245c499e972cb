# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)

# This file only documents the action plugin plugins/action/optimize.py (which runs on the controller).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: optimize
short_description: Choose the cheapest or fastest cluster from paramount-iteration probe logs
description:
  - Reads the node logs of one or more probe runs of one workload (trainer log contract v1, JSON lines,
    any depth under O(results_dir)), measures seconds per iteration per instance type, node count and
    training phase, predicts every candidate (instance type, node count) with a fitted scaling model,
    prices it from a catalog, and chooses by O(objective) within the constraints.
  - Writes C(plan.json) (schema_version 1), the next cluster as a desired-state inventory
    (C(inventory.yml), group C(paramount_train)), a CLAP cluster file (C(clap-cluster.yml)),
    C(report.md) and two PNG plots into O(output_dir). Files are rewritten only when their content
    changes. In check mode nothing is written; the plan is still returned.
  - Returns the plan as RV(plan) and as the fact C(paramount_plan).
  - When no candidate is feasible, C(plan.json) is written with C(chosen) null, and the task fails
    naming the closest candidates and what each violates.
  - Runs on the controller only (action plugin); needs numpy, scipy, matplotlib and PyYAML there.
    See C(docs/optimize.md) in the collection for the method, the file formats and the benchmark.
author:
  - paramount.cluster developers (@paramount)
options:
  results_dir:
    description:
      - Directory tree of the probe runs' node logs (C(*.log) or C(*.jsonl) JSON-lines files) of one workload,
        at any depth; one or several runs; not every rank needs its own file.
      - Logs of two different C(workload) ids in this tree are an error.
    type: path
    required: true
  catalog:
    description:
      - CSV whose header starts with C(instance_type,vcpus,memory_gib,gpus,price_per_hour,source), then optional
        columns in any order C(billing_increment_seconds) (default 1), C(billing_minimum_seconds) (default 60),
        C(cpu_share) and C(node_limit); an empty cell takes the default; an unknown column or a bad value is an
        error naming the file, line and column.
      - Defaults to the catalog shipped with the collection (C(catalogs/default.csv)).
      - A type whose price is missing or not a positive number is excluded with that reason.
    type: path
  objective:
    description:
      - V(cost) minimises the predicted cost, V(time) the predicted time.
    type: str
    default: cost
    choices: [cost, time]
  deadline:
    description:
      - Longest acceptable time in seconds, compared with O(setup_seconds) plus the predicted time.
    type: float
  budget:
    description:
      - Largest acceptable predicted cost of the run (catalog currency), setup included.
    type: float
  instance_types:
    description:
      - Consider only these instance types. Default every type of the catalog and every probed type.
    type: list
    elements: str
  node_counts:
    description:
      - Node counts to consider. Default 1 to O(max_nodes) (8 when O(max_nodes) is not set).
    type: list
    elements: int
  max_nodes:
    description:
      - Largest number of nodes a plan may use.
    type: int
  max_hourly_cost:
    description:
      - Guardrail on the whole cluster's price per hour (nodes x price); never plan above it.
    type: float
  epochs:
    description:
      - Length of the job in epochs, overriding the C(epochs) of the probes' start records.
    type: int
  measured_only:
    description:
      - Choose only among configurations (type, node count) that were probed.
    type: bool
    default: false
  setup_seconds:
    description:
      - Boot and set-up time of a node in seconds. Billed (cost and O(deadline)), but not part of the predicted run time.
    type: float
    default: 0.0
  output_dir:
    description:
      - Where the plan files are written. Default C(<results_dir>/plan), which is skipped when reading logs.
    type: path
  current_inventory:
    description:
      - The cluster that runs now, in the desired-state inventory format (group C(paramount_train), host
        variable C(instance_type)), as a path to a YAML file or as a mapping. Used to compute C(start),
        C(stop) and C(keep) and to keep the rendezvous on a node that stays.
    type: raw
  ranks_per_node:
    description:
      - Ranks (processes) per node to assume for node counts that were not probed. Default what the probes used.
    type: int
  run_name:
    description:
      - Prefix of slot names in the desired-state inventory (C(<run_name>-<type>-<index>)) and of the CLAP cluster name.
    type: str
    default: paramount
  warmup_drop:
    description:
      - Iterations dropped at the start of every attempt and phase as warm-up, before the automatic
        detection of slower leading iterations.
    type: int
    default: 1
  plots:
    description:
      - Write the PNG plots.
    type: bool
    default: true
  clap_setups:
    description:
      - Names of CLAP setups that already exist (for example the collection's CLAP folder) to use on the
        nodes of the CLAP cluster file. Default a setup defined in the same file that adds O(clap_role) and
        runs its O(clap_setup_action).
    type: list
    elements: str
  clap_role:
    description:
      - CLAP role added on every node when O(clap_setups) is not set.
    type: str
    default: gan
  clap_setup_action:
    description:
      - Action of O(clap_role) run on every node when O(clap_setups) is not set.
    type: str
    default: setup-gan
  bootstrap:
    description:
      - Number of bootstrap refits for the prediction intervals (0 gives point intervals).
    type: int
    default: 200
  tie_tolerance:
    description:
      - Risk-averse tie-breaking. Feasible candidates whose predicted objective is within this share of the best
        one (for example V(0.03) for 3%) are near-ties; among them the one with the lowest upper end of its 95%
        interval is chosen. V(0) (the default) chooses the best point prediction.
    type: float
    default: 0.0
  cpu_capacity:
    description:
      - Cores the emulated types of a cluster may take at once (local and sim backends, which run every node on
        this machine as a share of one CPU). A candidate whose nodes x C(cpu_share) of the catalog exceeds it is
        infeasible, with C(cpu_capacity) in its reason. Types without a C(cpu_share) are not limited by it.
      - Unset (the default) means no limit, for real clouds. The collection's plan playbook passes the measured
        capacity on the local and sim backends (lookup P(paramount.cluster.cpu_capacity#lookup), the cores this
        process may use by its scheduler affinity and cgroup CPU limit, less 0.5 core for Ansible and sshd).
    type: float
attributes:
  action:
    support: full
    description: Runs as an action plugin on the controller.
  check_mode:
    support: full
    description: In check mode the plan is computed and returned, and no file is written.
  diff_mode:
    support: none
    description: No diff is shown.
  platform:
    support: full
    platforms: all
    description: Runs on the controller, whatever the target.
notes:
  - The first iteration of every attempt and phase is always dropped as warm-up; a type with no probe cannot be
    predicted and is listed in C(excluded) with the reason.
  - A candidate above the catalog's C(node_limit) of its type (a cloud quota) is infeasible, with the reason.
  - "Method, plan.json, inventory and CLAP formats, benchmarks: C(docs/optimize.md) in the collection."
"""

EXAMPLES = r"""
- name: Plan the cheapest cluster that finishes within two hours
  paramount.cluster.optimize:
    results_dir: results/probe
    objective: cost
    deadline: 7200
    max_hourly_cost: 1.0
    setup_seconds: 90
    output_dir: results/plan
    current_inventory: results/probe/inventory.yml
  register: planned

- name: Show the choice
  ansible.builtin.debug:
    msg: "{{ paramount_plan.chosen.instance_type }} x {{ paramount_plan.chosen.nodes }}"

- name: Fastest configuration among the probed ones, sim types only
  paramount.cluster.optimize:
    results_dir: results/probe
    objective: time
    measured_only: true
    instance_types: [sim.small, sim.medium, sim.large]
    node_counts: [1, 2, 4]
"""

RETURN = r"""
plan:
  description:
    - The plan, the same as C(plan.json). Keys C(schema_version) (1), C(objective), C(constraints), C(chosen)
      (instance_type, nodes, predicted_seconds, predicted_cost, seconds_per_iteration, iterations, or null),
      C(candidates) (the same keys plus measured, feasible, reason, rank, pareto), C(excluded)
      (instance_type, reason), C(search_cost), C(start), C(stop), C(keep), C(rendezvous),
      C(desired_inventory) and more; see docs/optimize.md.
  returned: always, unless the options or the logs are unusable
  type: dict
  sample:
    schema_version: 1
    objective: cost
    chosen:
      instance_type: sim.medium
      nodes: 1
      predicted_seconds: 3433.5
      predicted_cost: 0.0172
      seconds_per_iteration: 0.686
      iterations: 5000
    start: [paramount-sim-medium-1]
    stop: []
    keep: []
ansible_facts:
  description: Facts set by the task.
  returned: always, unless the options or the logs are unusable
  type: dict
  contains:
    paramount_plan:
      description: The same as RV(plan).
      type: dict
      returned: always
files:
  description: Paths of the files written or found up to date in O(output_dir) (empty in check mode).
  returned: always, unless the options or the logs are unusable
  type: list
  elements: str
output_dir:
  description: The directory the plan files go to.
  returned: always, unless the options or the logs are unusable
  type: str
msg:
  description: One line on the choice, or why nothing is feasible, or what is wrong with the input.
  returned: always
  type: str
"""
