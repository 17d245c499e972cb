# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The control loop of ``paramount.cluster.autoscale``: observe, plan, decide, act; and its entry point.

While the trainer runs under torchrun elastic, the loop observes the nodes' live paramount-iteration logs
at an interval, asks the planner again (in this process) and acts through the provision role: start the nodes
the new plan wants, wait until they joined the training, stop the agents of the nodes it no longer wants
(SIGTERM: they checkpoint and leave without closing the rendezvous), then terminate those nodes. Every decision
goes to a decisions log (JSON lines).

Run by ``playbooks/autoscale.yml`` with the collection importable:
``python -m ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.controller [--check] SETTINGS``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import settings as settings_mod
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.actions import (
    AnsibleCluster,
    start_store,
    stop_process,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.desired import (
    inventory_doc,
    read_inventory_slots,
    read_prices,
    target_slots,
    write_json,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.live import (
    live_state,
    lost_progress,
    timeline_rows,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.policy import (
    TRAINING_PHASE,
    AutoscaleError,
    Decision,
    decide,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.replan import Planner
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.report import plot_timeline, write_report

DECISIONS_FILE = "decisions.jsonl"
REQUEST_FILE = "request.json"
# while waiting for a group to re-form, observe at least this often
REFORM_POLL_SECONDS = 10.0


class Controller:
    """The loop: observe, plan, decide, act; bounded in rounds and time.

    ``cluster`` acts (``actions.AnsibleCluster`` or a fake); ``planner(round_dir, state, desired)`` returns a
    round's plan (``replan.Planner.plan`` or a fake)."""

    def __init__(self, cluster, planner, run, results_dir, desired, prices, guardrails, policy,
                 interval=settings_mod.DEFAULT_INTERVAL_SECONDS, max_seconds=settings_mod.DEFAULT_MAX_SECONDS,
                 join_timeout=settings_mod.DEFAULT_JOIN_TIMEOUT_SECONDS, checkpoint_interval=None, clock=time.time,
                 sleep=time.sleep, echo=print):
        self.cluster = cluster
        self.planner = planner
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
        """An operator's request file, once (renamed to .seen); a bad one is refused in the decisions log."""
        path = os.path.join(self.dir, REQUEST_FILE)
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
            self.sleep(min(self.interval, REFORM_POLL_SECONDS))
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

    def _can_judge(self, state, lost):
        """A round plans only when the running group is the desired one and has measured enough."""
        form = state.current
        return (not state.completed and not lost and form is not None and not form.ended
                and set(form.hosts) == set(self.desired)
                and form.steady_iterations(TRAINING_PHASE) >= self.policy.min_iterations)

    def loop(self, max_rounds=settings_mod.DEFAULT_MAX_ROUNDS):
        started = self.clock()
        outcome = "time limit"
        while self.round < max_rounds:
            self.round += 1
            if self.clock() - started > self.max_seconds:
                break
            lost = self.observe()
            state = self.state
            plan = None
            if self._can_judge(state, lost):
                plan = self.planner(os.path.join(self.dir, "round-%03d" % self.round), state, self.desired)
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
            rows = timeline_rows(self.state, self.prices)
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


def with_suppressed(fn):
    try:
        fn()
    except AutoscaleError:
        pass


def prepare(settings):
    """The desired start cluster and the prices, checked against the catalog and the guardrails."""
    desired = read_inventory_slots(settings.start_inventory)
    prices = read_prices(settings.catalog)
    unknown = sorted({t for t in desired.values() if t not in prices})
    if unknown:
        raise AutoscaleError("%s: no price for %s in the catalog %s" % (settings.start_inventory,
                                                                        ", ".join(unknown), settings.catalog))
    problems = settings.guardrails.violations(len(desired), sum(prices[t] for t in desired.values()))
    if problems:
        raise AutoscaleError("%s is outside the guardrails: %s" % (settings.start_inventory, "; ".join(problems)))
    planner = Planner(settings.run, settings.catalog, settings.objective, settings.plan_options,
                      settings.guardrails if settings.plan_within_guardrails else None, settings.probe_dir)
    return desired, prices, planner


def control(settings, echo):
    """Start the store (and the training unless no_start), run the loop; returns the outcome."""
    results = os.path.abspath(settings.results_dir)
    os.makedirs(os.path.join(results, "autoscale"), exist_ok=True)
    desired, prices, planner = prepare(settings)
    cluster = AnsibleCluster(settings.run, settings.backend, results, settings.local_root, settings.extra_vars_file,
                             playbook_timeout=settings.playbook_timeout, echo=echo)
    store = None
    try:
        if settings.store_host:
            store = start_store(settings.store_host, settings.store_port, os.path.join(results, "autoscale"))
            echo("rendezvous store on %s:%d (pid %d)" % (settings.store_host, settings.store_port, store.pid))
        controller = Controller(cluster, planner.plan, settings.run, results, desired, prices, settings.guardrails,
                                settings.policy, settings.interval, settings.max_seconds, settings.join_timeout,
                                checkpoint_interval=settings.checkpoint_interval, echo=echo)
        if not settings.no_start:
            echo("starting the elastic training on %s" % ", ".join(sorted(desired)))
            cluster.start(settings.start_inventory)
        return controller.loop(settings.max_rounds)
    finally:
        if store is not None:
            stop_process(store)


def main(argv=None):
    parser = argparse.ArgumentParser(description="paramount.cluster autoscale controller (docs/autoscale.md)")
    parser.add_argument("settings", help="the settings document (JSON or YAML) playbooks/autoscale.yml writes")
    parser.add_argument("--check", action="store_true",
                        help="check the settings, the start inventory and the catalog, then exit")
    args = parser.parse_args(argv)

    def echo(text):
        print(time.strftime("%H:%M:%S ") + text, flush=True)

    try:
        settings = settings_mod.load_settings(args.settings)
        if args.check:
            prepare(settings)
            return 0
        outcome = control(settings, echo)
    except AutoscaleError as exc:
        print("paramount autoscale: error: %s" % exc, file=sys.stderr, flush=True)
        return 2
    return 0 if outcome == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
