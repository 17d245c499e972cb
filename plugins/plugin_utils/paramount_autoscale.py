# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Re-plan while training: the controller loop of ``paramount.cluster.autoscale``.

While the trainer runs under torchrun elastic, the loop observes the nodes' live paramount-iteration logs
at an interval, asks the optimize plugin again (through ``paramount.cluster.plan``) and acts through the
provision role: start the nodes the new plan wants, wait until they joined the training, stop the agents of
the nodes it no longer wants (SIGTERM: they checkpoint and leave without closing the rendezvous), then
terminate those nodes. Every decision goes to a decisions log (JSON lines).

Kept apart, as in the optimize plugin:

* measurement: ``read_records`` / ``live_state`` (formations of the group, steady seconds per iteration,
  samples done and left);
* decision: ``decide`` (triggers, guardrails, cooldown), pure and unit-tested without a cluster;
* action: ``AnsibleCluster`` (runs the collection's playbooks) behind a small interface, so the loop
  (``Controller``) is tested with a fake cluster.

Run by ``playbooks/autoscale.yml``; by hand: ``python paramount_autoscale.py --help``. The module imports
only the standard library (matplotlib, when present, for the timeline plot), so it runs by path.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

DECISIONS_FILE = "decisions.jsonl"
# decisions: wait, hold, replace, restore, refuse, finish; what acting did: changed, failed


class AutoscaleError(Exception):
    """A bad option or input: the message names it."""


# ------------------------------------------------------------------------------------------------------
# measurement

def read_records_file(path):
    """The JSON records of one log file; partial lines are skipped (a live log may be cut mid-line)."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "event" in rec:
                records.append(rec)
    return records


def read_records(folder):
    """Every record of the ``*.log`` files under folder, in time order."""
    records = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.log"), recursive=True)):
        records.extend(read_records_file(path))
    records.sort(key=lambda r: float(r.get("time") or 0.0))
    return records


def formation_id(start_record):
    """The formation of a ``start`` record (records older than the ``formation`` key: attempt and world size)."""
    return str(start_record.get("formation")
               or "%s-%s" % (start_record.get("attempt"), start_record.get("world_size")))


@dataclasses.dataclass
class Formation:
    """One formed group of the training (constant membership and world size)."""

    formation_id: str
    started: float
    hosts: dict  # host -> instance type
    world_size: int
    local_batch: int
    samples_per_epoch: int
    epochs: int
    resume_samples_seen: int
    resume_step: int
    steps: dict = dataclasses.field(default_factory=dict)  # step -> max seconds over ranks
    step_times: dict = dataclasses.field(default_factory=dict)  # step -> time of the record
    phases: dict = dataclasses.field(default_factory=dict)  # step -> phase
    ended: dict = dataclasses.field(default_factory=dict)  # (host, rank) -> end record
    records: list = dataclasses.field(default_factory=list)  # every record of its processes, in order
    last_step: int = -1
    samples_seen: int = 0

    def seconds_per_iteration(self, skip=3, last=30):
        """Median step time of the steady steps (the first ``skip`` steps of a formation are dropped),
        over the latest ``last`` of them; None until there are enough."""
        ordered = sorted(self.steps)
        steady = ordered[skip:][-last:]
        if len(steady) < 3:
            return None
        values = sorted(self.steps[s] for s in steady)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])

    def steady_iterations(self, skip=3):
        return max(0, len(self.steps) - skip)

    def hourly_cost(self, prices):
        return sum(float(prices.get(t, 0.0)) for t in self.hosts.values())

    def homogeneous(self):
        types = set(self.hosts.values())
        return next(iter(types)) if len(types) == 1 else None


@dataclasses.dataclass
class LiveState:
    formations: list
    total_samples: int
    samples_seen: int
    completed: bool

    @property
    def current(self):
        return self.formations[-1] if self.formations else None

    @property
    def remaining_samples(self):
        return max(0, self.total_samples - self.samples_seen)


def live_state(records):
    """Formations (by the ``formation`` id of the start records) and progress of a training run."""
    formations = {}
    by_proc = {}  # (host, rank, pid) -> formation id
    order = []
    completed = False
    total = 0
    seen = 0
    for rec in records:
        event = rec.get("event")
        host = rec.get("host")
        key = (host, rec.get("rank"))
        if event == "start":
            fid = formation_id(rec)
            form = formations.get(fid)
            if form is None:
                form = Formation(fid, float(rec.get("time") or 0.0), {}, int(rec.get("world_size") or 1),
                                 int(rec.get("local_batch") or 1), int(rec.get("samples_per_epoch") or 0),
                                 int(rec.get("epochs") or 0), int(rec.get("resume_samples_seen") or 0),
                                 int(rec.get("resume_step") or 0))
                formations[fid] = form
                order.append(fid)
            form.hosts[host] = rec.get("instance_type") or "unknown"
            form.records.append(rec)
            by_proc[key] = fid
            total = max(total, form.samples_per_epoch * form.epochs)
            seen = max(seen, form.resume_samples_seen)
            continue
        fid = by_proc.get(key)
        if fid is None:
            continue
        form = formations[fid]
        form.records.append(rec)
        if event == "iteration":
            step = int(rec.get("step", -1))
            form.steps[step] = max(form.steps.get(step, 0.0), float(rec.get("seconds") or 0.0))
            form.step_times[step] = max(form.step_times.get(step, 0.0), float(rec.get("time") or 0.0))
            form.phases[step] = rec.get("phase")
            form.last_step = max(form.last_step, step)
            form.samples_seen = form.resume_samples_seen + (form.last_step + 1 - form.resume_step) \
                * form.world_size * form.local_batch
            seen = max(seen, form.samples_seen)
        elif event == "end":
            form.ended[key] = rec
            if rec.get("samples_seen") is not None:  # exact (an epoch's last batch may be short)
                form.samples_seen = int(rec["samples_seen"])
                seen = max(seen, form.samples_seen)
            if rec.get("status") == "completed":
                completed = True
    return LiveState([formations[f] for f in order], total, seen, completed)


def lost_progress(formations, checkpoint_interval):
    """Samples repeated at each change: a formation resumes at resume_samples_seen; the one before it had
    reached samples_seen. Returns [(formation id, repeated samples, repeated steps at the old size)]."""
    out = []
    for prev, cur in zip(formations, formations[1:]):
        repeated = max(0, prev.samples_seen - cur.resume_samples_seen)
        steps = repeated / float(max(1, prev.world_size * prev.local_batch))
        out.append((cur.formation_id, repeated, steps, steps <= checkpoint_interval))
    return out


# ------------------------------------------------------------------------------------------------------
# decision

@dataclasses.dataclass
class Guardrails:
    min_nodes: int = 1
    max_nodes: int = 8
    max_hourly_cost: float = None
    cooldown_seconds: float = 120.0

    def validate(self):
        if self.min_nodes < 1:
            raise AutoscaleError("min_nodes must be at least 1, got %s" % self.min_nodes)
        if self.max_nodes < self.min_nodes:
            raise AutoscaleError("max_nodes (%s) is below min_nodes (%s)" % (self.max_nodes, self.min_nodes))
        if self.max_hourly_cost is not None and self.max_hourly_cost <= 0:
            raise AutoscaleError("max_hourly_cost must be positive, got %s" % self.max_hourly_cost)
        if self.cooldown_seconds < 0:
            raise AutoscaleError("cooldown_seconds must be >= 0, got %s" % self.cooldown_seconds)
        return self

    def violations(self, nodes, hourly_cost):
        out = []
        if nodes < self.min_nodes:
            out.append("%d node(s) < min_nodes %d" % (nodes, self.min_nodes))
        if nodes > self.max_nodes:
            out.append("%d node(s) > max_nodes %d" % (nodes, self.max_nodes))
        if self.max_hourly_cost is not None and hourly_cost > self.max_hourly_cost + 1e-12:
            out.append("hourly cost %.4f > max_hourly_cost %.4f" % (hourly_cost, self.max_hourly_cost))
        return out


@dataclasses.dataclass
class Policy:
    objective: str = "cost"
    threshold: float = 0.25  # measured seconds per iteration off the prediction by more than this share
    margin: float = 0.10  # another configuration better by more than this share of the remaining objective
    switch_seconds: float = 60.0  # what a change costs: joining, a restart, torch start-up
    min_iterations: int = 5  # steady iterations of a formation before it is judged

    def validate(self):
        if self.objective not in ("cost", "time"):
            raise AutoscaleError("objective must be cost or time, got %r" % self.objective)
        for name in ("threshold", "margin", "switch_seconds"):
            if getattr(self, name) < 0:
                raise AutoscaleError("%s must be >= 0, got %s" % (name, getattr(self, name)))
        return self


@dataclasses.dataclass
class Decision:
    action: str
    reason: str
    target: dict = None  # {"instance_type", "nodes", "seconds_per_iteration", ...}
    figures: dict = dataclasses.field(default_factory=dict)

    def as_record(self, now):
        return {"time": now, "action": self.action, "reason": self.reason, "target": self.target,
                "measured": self.figures}


def _remaining(seconds_per_iteration, nodes, ranks_per_node, local_batch, remaining_samples, hourly):
    iterations = math.ceil(remaining_samples / float(max(1, nodes * ranks_per_node * local_batch)))
    seconds = iterations * seconds_per_iteration
    return seconds, hourly * seconds / 3600.0


def candidate_spi(candidate, phase="adversarial"):
    by_phase = candidate.get("seconds_per_iteration_by_phase") or {}
    value = by_phase.get(phase)
    if value is None:
        value = candidate.get("seconds_per_iteration")
    return float(value) if value is not None else None


def decide(state, plan, desired, prices, guardrails, policy, now, last_change=None, expected=None,
           lost=(), request=None):
    """One round's decision.

    state: LiveState; plan: plan.json of this round (or None); desired: {slot: type} the controller keeps;
    prices: {type: price per hour}; expected: the prediction acted on last ({"instance_type", "nodes",
    "seconds_per_iteration"}) or None; lost: slots of ``desired`` that no longer run an agent;
    request: an operator's {"instance_type", "nodes"} (checked against the guardrails like any plan).
    """
    form = state.current
    figures = {"samples_seen": state.samples_seen, "total_samples": state.total_samples,
               "nodes": dict(sorted(form.hosts.items())) if form else {}}
    if state.completed:
        return Decision("finish", "training completed (%d of %d samples)" % (state.samples_seen, state.total_samples),
                        figures=figures)
    if lost:
        return Decision("restore", "node(s) %s of the plan no longer run an agent: start them again (%d wanted)"
                        % (", ".join(sorted(lost)), len(desired)),
                        target=_target_of(desired, prices), figures=figures)
    if form is None:
        return Decision("wait", "no formation has logged yet", figures=figures)
    spi = form.seconds_per_iteration()
    figures.update(seconds_per_iteration=spi, world_size=form.world_size,
                   hourly_cost=round(form.hourly_cost(prices), 6),
                   steady_iterations=form.steady_iterations())
    if form.ended:
        statuses = sorted({str(r.get("status")) for r in form.ended.values()})
        return Decision("wait", "the running group ended (%s): its agents re-form it" % ", ".join(statuses),
                        figures=figures)
    if set(form.hosts) != set(desired):
        return Decision("wait", "the group is re-forming (running %s, wanted %s)"
                        % (",".join(sorted(form.hosts)), ",".join(sorted(desired))), figures=figures)
    if spi is None or form.steady_iterations() < policy.min_iterations:
        return Decision("wait", "measuring: %d steady iteration(s) of this formation, %d needed"
                        % (form.steady_iterations(), policy.min_iterations), figures=figures)
    ranks_per_node = max(1, form.world_size // max(1, len(form.hosts)))
    cur_seconds, cur_cost = _remaining(spi, len(form.hosts), ranks_per_node, form.local_batch,
                                       state.remaining_samples, form.hourly_cost(prices))
    figures.update(remaining_seconds=round(cur_seconds, 3), remaining_cost=round(cur_cost, 6))
    drift = None
    if expected and expected.get("seconds_per_iteration"):
        drift = spi / float(expected["seconds_per_iteration"]) - 1.0
        figures["drift"] = round(drift, 4)

    if request:
        target = _target_from(request, prices, plan)
        source = "requested %s x %d" % (target["instance_type"], target["nodes"])
    elif plan and plan.get("chosen"):
        target = _target_from(plan["chosen"], prices, plan)
        source = "plan %s x %d" % (target["instance_type"], target["nodes"])
    else:
        why = (plan or {}).get("message") or "no plan this round"
        return Decision("hold", "keep the current cluster: %s" % why, figures=figures)

    problems = guardrails.violations(target["nodes"], target["hourly_cost"])
    if problems:
        return Decision("refuse", "%s refused by the guardrails: %s; nothing changes"
                        % (source, "; ".join(problems)), target=target, figures=figures)
    current_type = form.homogeneous()
    if current_type == target["instance_type"] and len(form.hosts) == target["nodes"]:
        if drift is not None and abs(drift) > policy.threshold:
            why = ("measured %.3f s/iteration is %+.0f%% off the prediction %.3f s, but the %s still chooses the "
                   "running cluster" % (spi, 100 * drift, expected["seconds_per_iteration"], source))
            return Decision("hold", why, target=target, figures=figures)
        return Decision("hold", "the running cluster is the %s" % source, target=target, figures=figures)
    if target.get("seconds_per_iteration") is None:
        return Decision("hold", "%s has no predicted seconds per iteration" % source, target=target, figures=figures)
    new_seconds, new_cost = _remaining(target["seconds_per_iteration"], target["nodes"], ranks_per_node,
                                       form.local_batch, state.remaining_samples, target["hourly_cost"])
    # the change itself: the new nodes' start-up is billed, the old nodes run meanwhile
    new_seconds += policy.switch_seconds
    new_cost += (target["hourly_cost"] + form.hourly_cost(prices)) * policy.switch_seconds / 3600.0
    current_value = cur_cost if policy.objective == "cost" else cur_seconds
    new_value = new_cost if policy.objective == "cost" else new_seconds
    gain = 1.0 - new_value / current_value if current_value > 0 else 0.0
    figures.update(target_remaining_seconds=round(new_seconds, 3), target_remaining_cost=round(new_cost, 6),
                   gain=round(gain, 4))
    unit = "cost" if policy.objective == "cost" else "time"
    if last_change is not None and now - last_change < guardrails.cooldown_seconds:
        left = guardrails.cooldown_seconds - (now - last_change)
        why = ("%s would save %.0f%% of the remaining %s, but the cooldown of %.0f s since the last change has "
               "%.0f s left" % (source, 100 * gain, unit, guardrails.cooldown_seconds, left))
        return Decision("hold", why, target=target, figures=figures)
    drifted = drift is not None and abs(drift) > policy.threshold
    if gain > policy.margin or (drifted and gain > 0):
        why = ("saves %.0f%% of the remaining %s (margin %.0f%%)" % (100 * gain, unit, 100 * policy.margin)
               if gain > policy.margin else
               "measured %.3f s/iteration is %+.0f%% off the prediction and it saves %.0f%% of the remaining %s"
               % (spi, 100 * drift, 100 * gain, unit))
        return Decision("replace", "%s: %s" % (source, why), target=target, figures=figures)
    if gain <= 0:
        return Decision("hold", "%s would cost %.0f%% more of the remaining %s than the running cluster"
                        % (source, -100 * gain, unit), target=target, figures=figures)
    return Decision("hold", "%s would save only %.1f%% of the remaining %s (margin %.0f%%)"
                    % (source, 100 * gain, unit, 100 * policy.margin), target=target, figures=figures)


def _target_of(desired, prices):
    types = sorted(set(desired.values()))
    return {"instance_type": types[0] if len(types) == 1 else ",".join(types), "nodes": len(desired),
            "hourly_cost": sum(float(prices.get(t, 0.0)) for t in desired.values())}


def _target_from(choice, prices, plan):
    itype = str(choice.get("instance_type"))
    nodes = int(choice.get("nodes"))
    if nodes < 1:
        raise AutoscaleError("a plan or request for %s asks for %d nodes" % (itype, nodes))
    price = prices.get(itype)
    if price is None and choice.get("hourly_cost") is not None:
        price = float(choice["hourly_cost"]) / nodes
    target = {"instance_type": itype, "nodes": nodes, "hourly_cost": round(nodes * float(price or 0.0), 6)}
    match = choice
    if "seconds_per_iteration" not in choice and plan:
        match = next((c for c in plan.get("candidates") or []
                      if c.get("instance_type") == itype and int(c.get("nodes", 0)) == nodes), {})
    target["seconds_per_iteration"] = candidate_spi(match) if match else None
    if match and match.get("predicted_seconds") is not None:
        target["predicted_seconds"] = match.get("predicted_seconds")
    return target


# ------------------------------------------------------------------------------------------------------
# desired state

def slot_name(run, instance_type, index):
    return "%s-%s-%d" % (run, instance_type.replace(".", "-").replace("_", "-"), index)


def target_slots(instance_type, nodes, desired, run):
    """Slots for nodes x instance_type: the desired slots of that type are kept (their agents keep running),
    new ones get fresh names (a name is never reused within a run)."""
    keep = sorted(s for s, t in desired.items() if t == instance_type)[:nodes]
    out = {s: instance_type for s in keep}
    index = 1
    while len(out) < nodes:
        name = slot_name(run, instance_type, index)
        if name not in desired and name not in out:
            out[name] = instance_type
        index += 1
    return out


def inventory_doc(slots):
    """Desired-state inventory (docs/optimize.md); the rendezvous flag is on the first slot (under elastic
    training the store runs apart, so it only satisfies the format)."""
    hosts = {}
    for i, slot in enumerate(sorted(slots)):
        hosts[slot] = {"instance_type": slots[slot]}
        if i == 0:
            hosts[slot]["paramount_rendezvous"] = True
    return {"all": {"children": {"paramount_train": {"hosts": hosts}}}}


def read_inventory_slots(path):
    """{slot: instance_type} of a desired-state inventory file (YAML or JSON)."""
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover
        yaml = None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise AutoscaleError("cannot read the inventory %s: %s" % (path, exc)) from None
    doc = yaml.safe_load(text) if yaml else json.loads(text)
    try:
        group = doc["all"]["children"]["paramount_train"]
    except (KeyError, TypeError):
        raise AutoscaleError("%s: no group paramount_train under all.children" % path) from None
    group_type = (group.get("vars") or {}).get("instance_type")
    slots = {}
    for slot, hostvars in (group.get("hosts") or {}).items():
        itype = (hostvars or {}).get("instance_type", group_type)
        if not itype:
            raise AutoscaleError("%s: host %s has no instance_type" % (path, slot))
        slots[slot] = itype
    if not slots:
        raise AutoscaleError("%s: group paramount_train has no hosts" % path)
    return slots


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def catalog_module():
    """The collection's one catalog loader (``paramount_catalog``, next to this file).

    Imported through the collection when it is importable (tests, the plugin); this script also runs by
    path outside Ansible (``playbooks/autoscale.yml``), where ``ansible_collections`` is not on sys.path,
    so it is then loaded from its file: it needs only the standard library.
    """
    try:
        from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_catalog  # pylint: disable=import-outside-toplevel
        return paramount_catalog
    except ImportError:
        import importlib.util  # pylint: disable=import-outside-toplevel

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paramount_catalog.py")
        spec = importlib.util.spec_from_file_location("paramount_catalog", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module


def read_prices(catalog_path):
    """{instance_type: price_per_hour} of a catalog CSV (``paramount_catalog.load_catalog``); a type whose
    row has no usable price is left out (a desired type without one is refused by the caller)."""
    module = catalog_module()
    try:
        catalog = module.load_catalog(catalog_path)
    except module.ParamountError as exc:
        raise AutoscaleError(str(exc)) from None  # names the file, line and column
    return {t: e.price_per_hour for t, e in catalog.items() if e.price_per_hour is not None}


# ------------------------------------------------------------------------------------------------------
# timeline

def timeline_rows(decisions, state, prices):
    """Per formation: start time, nodes by type, throughput (samples/s) and the cost accumulated so far."""
    rows = []
    cost = 0.0
    forms = state.formations
    for i, form in enumerate(forms):
        end = forms[i + 1].started if i + 1 < len(forms) else max(list(form.step_times.values()) + [form.started])
        by_type = {}
        for t in form.hosts.values():
            by_type[t] = by_type.get(t, 0) + 1
        spi = form.seconds_per_iteration(last=10 ** 6)
        throughput = form.world_size * form.local_batch / spi if spi else None
        cost += form.hourly_cost(prices) * max(0.0, end - form.started) / 3600.0
        rows.append({"formation": form.formation_id, "start": form.started, "end": end, "nodes_by_type": by_type,
                     "throughput": throughput, "cost_so_far": cost, "samples_seen": form.samples_seen})
    return rows


def plot_timeline(path, rows, decisions):
    """PNG: nodes by type, throughput and accumulated cost over time, with the decisions that acted."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    if not rows:
        return None
    t0 = rows[0]["start"]
    types = sorted({t for r in rows for t in r["nodes_by_type"]})
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    bottoms = [0.0] * len(rows)
    for t in types:
        counts = [r["nodes_by_type"].get(t, 0) for r in rows]
        axes[0].bar([r["start"] - t0 for r in rows], counts, width=[max(1.0, r["end"] - r["start"]) for r in rows],
                    bottom=bottoms, align="edge", label=t, alpha=0.8)
        bottoms = [b + c for b, c in zip(bottoms, counts)]
    axes[0].set_ylabel("nodes")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].step([r["start"] - t0 for r in rows] + [rows[-1]["end"] - t0],
                 [r["throughput"] or 0 for r in rows] + [rows[-1]["throughput"] or 0], where="post")
    axes[1].set_ylabel("samples / s")
    axes[2].plot([t0 - t0] + [r["end"] - t0 for r in rows], [0.0] + [r["cost_so_far"] for r in rows], marker="o")
    axes[2].set_ylabel("cost so far")
    axes[2].set_xlabel("seconds since training started")
    for d in decisions:
        if d.get("action") in ("replace", "restore", "refuse"):
            for ax in axes:
                ax.axvline(float(d["time"]) - t0, color="grey", linestyle=":", linewidth=1)
            axes[0].annotate(d["action"], (float(d["time"]) - t0, max(bottoms) if bottoms else 1), fontsize=7,
                             rotation=90, va="top")
    fig.suptitle("paramount.cluster autoscale timeline")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------
# acting on the cluster

class AnsibleCluster:
    """The cluster as the collection's playbooks see it. Every call is one bounded ansible-playbook run."""

    def __init__(self, run, backend, results_dir, local_root, extra_vars_file, playbook_timeout=900,
                 ansible_playbook=None, echo=print):
        self.run = run
        self.backend = backend
        self.results_dir = results_dir
        self.local_root = local_root
        self.extra_vars_file = extra_vars_file
        self.timeout = playbook_timeout
        # the ansible-playbook beside this Python (a venv's bin is often not on an async task's PATH)
        beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        self.ansible_playbook = ansible_playbook or (beside if os.path.exists(beside)
                                                     else shutil.which("ansible-playbook") or "ansible-playbook")
        self.echo = echo
        self.live_dir = os.path.join(results_dir, "live")

    def _connectable_inventory(self):
        names = ("inventory.aws_ec2.yml", "inventory.yml") if self.backend in ("sim", "aws") else ("inventory.yml",)
        for name in names:
            path = os.path.join(self.local_root, self.run, name)
            if os.path.exists(path):
                return path
        raise AutoscaleError("no connectable inventory of run %s under %s (did provisioning run?)"
                             % (self.run, os.path.join(self.local_root, self.run)))

    def playbook(self, name, extra=None, inventory=None, check=True):
        argv = [self.ansible_playbook, "paramount.cluster." + name, "-e", "@" + self.extra_vars_file]
        if inventory:
            argv += ["-i", inventory]
        if extra:
            argv += ["-e", json.dumps(extra)]
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise AutoscaleError("paramount.cluster.%s took longer than %d s" % (name, self.timeout)) from None
        except OSError as exc:
            raise AutoscaleError("cannot run %s: %s" % (argv[0], exc)) from None
        seconds = time.monotonic() - started
        log_path = os.path.join(self.results_dir, "autoscale", "ansible.log")
        with open(log_path, "a", encoding="utf-8") as handle:
            handle.write("\n#### %s (rc %d, %.1f s)\n%s\n%s"
                         % (" ".join(argv), proc.returncode, seconds, proc.stdout[-20000:], proc.stderr[-5000:]))
        if check and proc.returncode != 0:
            tail = [l for l in (proc.stdout + proc.stderr).splitlines() if "FAILED" in l or "fatal" in l
                    or "ERROR" in l][-3:]
            raise AutoscaleError("paramount.cluster.%s failed (rc %d): %s (full output: %s)"
                                 % (name, proc.returncode, " | ".join(tail)[-1500:] or "see log", log_path))
        return proc.returncode, seconds

    def start(self, desired_path):
        """Start the agents of the whole desired cluster (the training's first formation)."""
        self.playbook("join", {"paramount_desired_inventory": desired_path,
                               "paramount_join_hosts": sorted(read_inventory_slots(desired_path))})

    def observe(self):
        """Fetch the live logs; returns (records, {slot: 'running'|'stopped'})."""
        os.makedirs(self.live_dir, exist_ok=True)
        for old in glob.glob(os.path.join(self.live_dir, "*.status.json")):
            os.unlink(old)
        self.playbook("observe", inventory=self._connectable_inventory(), check=False)
        agents = {}
        for path in glob.glob(os.path.join(self.live_dir, "*.status.json")):
            try:
                with open(path, encoding="utf-8") as handle:
                    doc = json.load(handle)
                agents[doc["slot"]] = doc["agent"]
            except (OSError, ValueError, KeyError):
                continue
        return read_records(self.live_dir), agents

    def plan(self, results_dir, output_dir, current_inventory):
        self.playbook("plan", {"paramount_plan_results_dir": results_dir, "paramount_plan_output_dir": output_dir,
                               "paramount_probe_inventory": current_inventory}, check=False)
        path = os.path.join(output_dir, "plan.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    def join(self, union_path, hosts):
        self.playbook("join", {"paramount_desired_inventory": union_path, "paramount_join_hosts": sorted(hosts)})

    def leave(self, hosts):
        self.playbook("leave", {"paramount_leave_hosts": sorted(hosts)}, inventory=self._connectable_inventory())

    def shrink(self, desired_path):
        self.playbook("provision", {"paramount_desired_inventory": desired_path,
                                    "paramount_target_group": "paramount_train"})


class Controller:
    """The loop: observe, plan, decide, act; bounded in rounds and time."""

    def __init__(self, cluster, run, results_dir, desired, prices, guardrails, policy, interval=20.0,
                 max_seconds=3600.0, join_timeout=300.0, probe_dir=None, checkpoint_interval=None, clock=time.time, sleep=time.sleep, echo=print):
        self.cluster = cluster
        self.run = run
        self.dir = os.path.join(results_dir, "autoscale")
        os.makedirs(self.dir, exist_ok=True)
        self.decisions_path = os.path.join(self.dir, DECISIONS_FILE)
        self.desired = dict(desired)
        self.prices = prices
        self.guardrails = guardrails.validate()
        self.policy = policy.validate()
        self.interval = float(interval)
        self.max_seconds = float(max_seconds)
        self.join_timeout = float(join_timeout)
        self.probe_dir = probe_dir
        self.checkpoint_interval = checkpoint_interval
        self.clock = clock
        self.sleep = sleep
        self.echo = echo
        self.last_change = None
        self.expected = None
        self.round = 0
        self.state = None
        self.decisions = []
        self._missing = set()
        self._pending = None

    # -- files
    def _desired_file(self, name, slots):
        path = os.path.join(self.dir, name)
        write_json(path, inventory_doc(slots))
        return path

    def log(self, decision, **extra):
        rec = decision.as_record(round(self.clock(), 3))
        rec.update(round=self.round, desired=dict(sorted(self.desired.items())), **extra)
        self.decisions.append(rec)
        with open(self.decisions_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(rec, sort_keys=True) + "\n")
        self.echo("[autoscale round %d] %s: %s" % (self.round, decision.action, decision.reason))

    def _request(self):
        path = os.path.join(self.dir, "request.json")
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                request = json.load(handle)
            os.replace(path, path + ".seen")
            if not isinstance(request, dict) or "instance_type" not in request or "nodes" not in request:
                raise ValueError("needs instance_type and nodes")
            return request
        except (OSError, ValueError) as exc:
            self.log(Decision("refuse", "%s is not a valid request (%s); nothing changes" % (path, exc)))
            return None

    def _plan_input(self, state):
        """Logs for the plugin: the current formation's records (run id made unique per formation), plus the
        probe logs of every type that is not running now."""
        folder = os.path.join(self.dir, "round-%03d" % self.round, "logs")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        form = state.current
        running_types = set(form.hosts.values())
        live = [r for r in form.records if r.get("event") != "end"]
        for host in form.hosts:
            with open(os.path.join(folder, "live-%s.log" % host), "w", encoding="utf-8") as handle:
                for rec in live:
                    if rec.get("host") == host:
                        handle.write(json.dumps(dict(rec, run_id="%s-live-%s" % (self.run, form.formation_id))) + "\n")
        if self.probe_dir and os.path.isdir(self.probe_dir):
            for rec_path in glob.glob(os.path.join(self.probe_dir, "**", "*.log"), recursive=True):
                records = read_records_file(rec_path)
                types = {r.get("instance_type") for r in records if r.get("event") == "start"}
                if types and not types & running_types:
                    shutil.copy(rec_path, os.path.join(folder, "probe-" + os.path.basename(rec_path)))
        return folder

    def observe(self):
        records, agents = self.cluster.observe()
        self.state = live_state(records)
        # lost: the agent is known to have stopped, or the node did not answer twice in a row
        missing = {s for s in self.desired if s not in agents}
        lost = sorted(s for s in self.desired if agents.get(s) == "stopped" or (s in missing and s in self._missing))
        self._missing = missing
        return lost

    def wait_formation(self, wanted, reason):
        """Observe until the newest formation has exactly the wanted slots (bounded by join_timeout)."""
        deadline = self.clock() + self.join_timeout
        while self.clock() < deadline:
            self.sleep(min(self.interval, 10.0))
            self.observe()
            form = self.state.current
            if self.state.completed:
                return True
            if form is not None and set(form.hosts) == set(wanted) and form.steps:
                return True
        raise AutoscaleError("%s: the group did not re-form with %s within %.0f s"
                             % (reason, ", ".join(sorted(wanted)), self.join_timeout))

    def replace(self, decision):
        target = decision.target
        new = target_slots(target["instance_type"], target["nodes"], self.desired, self.run)
        start = sorted(set(new) - set(self.desired))
        stop = sorted(set(self.desired) - set(new))
        union = dict(self.desired, **new)
        union_path = self._desired_file("desired-union-%03d.json" % self.round, union)
        try:
            if start:
                self.cluster.join(union_path, start)
                self.wait_formation(set(union), "joining %s" % ", ".join(start))
        except AutoscaleError as exc:
            # a failed change keeps the old cluster: stop what this attempt started
            with_suppressed(lambda: self.cluster.leave(start))
            old_path = self._desired_file("desired-%03d.json" % self.round, self.desired)
            with_suppressed(lambda: self.cluster.shrink(old_path))
            why = ("replacing with %s x %d failed: %s; the nodes this attempt started were stopped, the old cluster "
                   "keeps training" % (target["instance_type"], target["nodes"], exc))
            self.log(Decision("failed", why, target=target))
            self.last_change = self.clock()
            return False
        if stop:
            self.cluster.leave(stop)
        self.desired = new
        self.cluster.shrink(self._desired_file("desired-%03d.json" % self.round, new))
        self.last_change = self.clock()
        self.expected = target
        self.log(Decision("changed", "now %s x %d (started %s; stopped %s)"
                          % (target["instance_type"], target["nodes"], ", ".join(start) or "-", ", ".join(stop) or "-"),
                          target=target), started=start, stopped=stop)
        return True

    def restore(self, lost):
        path = self._desired_file("desired-%03d.json" % self.round, self.desired)
        try:
            self.cluster.join(path, lost)
        except AutoscaleError as exc:
            self.log(Decision("failed", "restoring %s failed: %s; training goes on with the others"
                              % (", ".join(lost), exc)))
        self.last_change = self.clock()

    def loop(self, max_rounds=1000):
        started = self.clock()
        outcome = "time limit"
        while self.round < max_rounds:
            self.round += 1
            if self.clock() - started > self.max_seconds:
                break
            lost = self.observe()
            state = self.state
            plan = None
            if not state.completed and not lost and state.current is not None and not state.current.ended \
                    and set(state.current.hosts) == set(self.desired) \
                    and state.current.steady_iterations() >= self.policy.min_iterations:
                round_dir = os.path.join(self.dir, "round-%03d" % self.round)
                plan = self.cluster.plan(self._plan_input(state), os.path.join(round_dir, "plan"),
                                         self._desired_file("current-%03d.json" % self.round, self.desired))
            # an operator's request waits until a round can judge it (not while measuring or re-forming)
            self._pending = self._pending or self._request()
            decision = decide(state, plan, self.desired, self.prices, self.guardrails, self.policy, self.clock(),
                              self.last_change, self.expected, lost, self._pending)
            if decision.action not in ("wait", "restore"):
                self._pending = None
            self.log(decision)
            if decision.action == "finish":
                outcome = "completed"
                break
            if decision.action == "replace":
                self.replace(decision)
            elif decision.action == "restore":
                self.restore(lost)
            self.sleep(self.interval)
        else:
            outcome = "round limit"
        self.finish(outcome)
        return outcome

    def finish(self, outcome):
        summary = {"outcome": outcome, "rounds": self.round, "desired": self.desired}
        if self.state is not None:
            rows = timeline_rows(self.decisions, self.state, self.prices)
            summary.update(samples_seen=self.state.samples_seen, total_samples=self.state.total_samples,
                           formations=len(self.state.formations), timeline=rows,
                           cost=rows[-1]["cost_so_far"] if rows else 0.0,
                           seconds=(rows[-1]["end"] - rows[0]["start"]) if rows else 0.0)
            if self.checkpoint_interval:
                summary["lost_progress"] = [
                    {"formation": f, "repeated_samples": s, "repeated_steps": round(st, 2), "within_interval": ok}
                    for f, s, st, ok in lost_progress(self.state.formations, self.checkpoint_interval)]
            plot_timeline(os.path.join(self.dir, "timeline.png"), rows, self.decisions)
        write_json(os.path.join(self.dir, "summary.json"), summary)
        write_report(os.path.join(self.dir, "report.md"), self.run, summary, self.decisions)
        self.echo("[autoscale] %s after %d round(s); decisions: %s" % (outcome, self.round, self.decisions_path))


def write_report(path, run, summary, decisions):
    """Markdown: outcome, the timeline plot, the formations and every decision that acted."""
    lines = ["# Autoscale report of run %s" % run, "",
             "Outcome: **%s** after %d round(s); %s of %s samples; %.1f s of training; cost %.6f."
             % (summary.get("outcome"), summary.get("rounds", 0), summary.get("samples_seen", "?"),
                summary.get("total_samples", "?"), summary.get("seconds", 0.0), summary.get("cost", 0.0)),
             "", "![timeline: nodes by type, throughput, accumulated cost](timeline.png)", "",
             "| formation | start (s) | nodes by type | samples/s | cost so far |", "|---|---|---|---|---|"]
    rows = summary.get("timeline") or []
    t0 = rows[0]["start"] if rows else 0.0
    for row in rows:
        nodes = ", ".join("%d x %s" % (n, t) for t, n in sorted(row["nodes_by_type"].items()))
        throughput = "%.2f" % row["throughput"] if row["throughput"] else "-"
        lines.append("| %s | %.0f | %s | %s | %.6f |"
                     % (row["formation"], row["start"] - t0, nodes, throughput, row["cost_so_far"]))
    lines += ["", "| round | action | reason |", "|---|---|---|"]
    for d in decisions:
        if d.get("action") not in ("wait", "hold"):
            lines.append("| %s | %s | %s |" % (d.get("round"), d.get("action"), str(d.get("reason")).replace("|", "/")))
    lost = summary.get("lost_progress") or []
    if lost:
        lines += ["", "Progress repeated at each change (samples, steps): "
                  + "; ".join("%s: %d, %.1f%s" % (x["formation"], x["repeated_samples"], x["repeated_steps"],
                                                  "" if x["within_interval"] else " (MORE than one interval)")
                              for x in lost)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def with_suppressed(fn):
    try:
        fn()
    except AutoscaleError:
        pass


# ------------------------------------------------------------------------------------------------------
# command line

def main(argv=None):
    parser = argparse.ArgumentParser(description="paramount.cluster autoscale controller (see module doc)")
    parser.add_argument("--run", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--results-dir", required=True)
    parser.add_argument("--local-root", required=True, help="where provision writes runs/<run>/")
    parser.add_argument("--extra-vars-file", required=True, help="variables every playbook gets (-e @file)")
    parser.add_argument("--desired-inventory", required=True, help="the cluster training starts on")
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--probe-dir", help="probe logs: types not running now are planned from them")
    parser.add_argument("--objective", default="cost", choices=("cost", "time"))
    parser.add_argument("--interval", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--max-rounds", type=int, default=1000)
    parser.add_argument("--join-timeout", type=float, default=300.0)
    parser.add_argument("--threshold", type=float, default=0.25)
    parser.add_argument("--margin", type=float, default=0.10)
    parser.add_argument("--switch-seconds", type=float, default=60.0)
    parser.add_argument("--min-iterations", type=int, default=5)
    parser.add_argument("--min-nodes", type=int, default=1)
    parser.add_argument("--max-nodes", type=int, default=8)
    parser.add_argument("--max-hourly-cost", type=float)
    parser.add_argument("--cooldown", type=float, default=120.0)
    parser.add_argument("--checkpoint-interval", type=int)
    parser.add_argument("--no-start", action="store_true", help="training already runs: only control it")
    parser.add_argument("--store-host", help="host the rendezvous store (this process's child) binds")
    parser.add_argument("--store-port", type=int, default=29400)
    args = parser.parse_args(argv)

    def echo(text):
        print(time.strftime("%H:%M:%S ") + text, flush=True)

    results = os.path.abspath(args.results_dir)
    os.makedirs(os.path.join(results, "autoscale"), exist_ok=True)
    store = None
    outcome = "failed"
    try:
        desired = read_inventory_slots(args.desired_inventory)
        prices = read_prices(args.catalog)
        unknown = sorted({t for t in desired.values() if t not in prices})
        if unknown:
            raise AutoscaleError("%s: no price for %s in the catalog %s" % (args.desired_inventory,
                                                                            ", ".join(unknown), args.catalog))
        guardrails = Guardrails(args.min_nodes, args.max_nodes, args.max_hourly_cost, args.cooldown).validate()
        problems = guardrails.violations(len(desired), sum(prices[t] for t in desired.values()))
        if problems:
            raise AutoscaleError("%s is outside the guardrails: %s" % (args.desired_inventory, "; ".join(problems)))
        policy = Policy(args.objective, args.threshold, args.margin, args.switch_seconds, args.min_iterations)
        cluster = AnsibleCluster(args.run, args.backend, results, args.local_root, args.extra_vars_file, echo=echo)
        if args.store_host:
            store = start_store(args.store_host, args.store_port, os.path.join(results, "autoscale"))
            echo("rendezvous store on %s:%d (pid %d)" % (args.store_host, args.store_port, store.pid))
        controller = Controller(cluster, args.run, results, desired, prices, guardrails, policy, args.interval,
                                args.max_seconds, args.join_timeout, args.probe_dir,
                                checkpoint_interval=args.checkpoint_interval, echo=echo)
        if not args.no_start:
            echo("starting the elastic training on %s" % ", ".join(sorted(desired)))
            cluster.start(args.desired_inventory)
        outcome = controller.loop(args.max_rounds)
    except AutoscaleError as exc:
        print("paramount autoscale: error: %s" % exc, file=sys.stderr, flush=True)
        return 2
    finally:
        if store is not None:
            stop_process(store)
    return 0 if outcome == "completed" else 1


def start_store(host, port, folder):
    ready = os.path.join(folder, "store.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    here = os.path.dirname(os.path.abspath(__file__))
    log = open(os.path.join(folder, "store.log"), "a", encoding="utf-8")  # pylint: disable=consider-using-with
    proc = subprocess.Popen([sys.executable, os.path.join(here, "paramount_rdzv_store.py"), "--host", host,
                             "--port", str(port), "--ready-file", ready, "--pidfile",
                             os.path.join(folder, "store.pid")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise AutoscaleError("the rendezvous store did not start on %s:%d (see %s)"
                                 % (host, port, os.path.join(folder, "store.log")))
        time.sleep(0.2)
    return proc


def stop_process(proc, grace=10.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())
