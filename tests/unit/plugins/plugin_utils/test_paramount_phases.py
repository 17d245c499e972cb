import json

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_phases import PhaseClock


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_each_play_gets_its_wall_time_and_the_failures_are_marked():
    clock = FakeClock()
    phases = PhaseClock(clock)
    phases.play_start("Provision", ["a", "b"])
    clock.now += 6.5
    phases.play_start("Probe")
    phases.host_seen("b")
    phases.host_seen("a")
    phases.host_seen("b")
    clock.now += 30.0
    phases.host_failed()
    phases.play_start("Teardown")
    clock.now += 3.5
    phases.end()
    assert [(p["phase"], p["seconds"], p["hosts"], p["failed"]) for p in phases.phases] == [
        ("Provision", 6.5, ["a", "b"], False), ("Probe", 30.0, ["a", "b"], True), ("Teardown", 3.5, [], False)]
    assert phases.total() == 40.0
    table = phases.table().splitlines()
    assert table[2] == "| Provision | 6.5 | 16% | 2 |  |"
    assert table[3] == "| Probe | 30.0 | 75% | 2 | yes |"
    assert table[-1] == "| all | 40.0 | 100% | | |"
    assert json.loads(phases.to_json())["phases"][1]["seconds"] == 30.0


def test_end_twice_and_failures_outside_a_play_change_nothing():
    clock = FakeClock()
    phases = PhaseClock(clock)
    phases.host_failed()
    phases.end()
    phases.play_start("", [])
    clock.now += 1
    phases.end()
    phases.end()
    assert phases.phases == [{"phase": "(unnamed play)", "seconds": 1.0, "hosts": [], "failed": False}]
