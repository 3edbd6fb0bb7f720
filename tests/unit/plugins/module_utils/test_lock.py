"""The run lock's protocol, against a fake engine that keeps containers the way Docker names them."""

import pytest

from ansible_collections.crosshost.ambassador.plugins.module_utils import _lock
from ansible_collections.crosshost.ambassador.plugins.module_utils._lock import (
    LOCK_NAME, RUN_LABEL, LockError, acquire, judge, lock_command, release, renew)


class FakeEngine(object):
    """Containers by name; create fails (None) when the name is taken, as the engine does atomically."""

    def __init__(self):
        self.containers = {}
        self.signals = []
        self.removed = []
        self.next_id = 0

    def create_lock(self, name, image, command, labels):
        if name in self.containers:
            return None
        self.next_id += 1
        cid = "id%d" % self.next_id
        self.containers[name] = {"Id": cid, "Config": {"Labels": labels, "Cmd": [command], "Image": image},
                                 "State": {"Running": True, "Status": "running"}}
        return cid

    def inspect(self, name):
        return self.containers.get(name)

    def signal(self, cid, name, sig):
        self.signals.append((cid, sig))

    def remove(self, cid, name, stop_timeout=None):
        if self.containers.get(name, {}).get("Id") == cid:
            del self.containers[name]
            self.removed.append(cid)


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


RUN_A = {"id": "a", "holder": "alice@ctl pid 1"}
RUN_B = {"id": "b", "holder": "bob@ctl pid 2"}


def test_the_first_run_takes_a_free_lock_and_taking_it_again_renews_it():
    engine, clock = FakeEngine(), Clock()
    lock_id, waited, waited_for = acquire(engine, RUN_A, "socat:1", 60, 10, clock, clock.sleep)
    assert engine.containers[LOCK_NAME]["Config"]["Labels"][RUN_LABEL] == "a" and waited == 0 and waited_for is None
    assert acquire(engine, RUN_A, "socat:1", 60, 10, clock, clock.sleep)[0] == lock_id
    assert engine.signals == [(lock_id, "SIGHUP")]


def test_a_second_run_waits_then_fails_naming_the_holder_and_changes_nothing():
    engine, clock = FakeEngine(), Clock()
    acquire(engine, RUN_A, "socat:1", 60, 10, clock, clock.sleep)
    with pytest.raises(LockError) as err:
        acquire(engine, RUN_B, "socat:1", 60, 5, clock, clock.sleep)
    assert "alice@ctl pid 1 (lease 60 s)" in str(err.value) and "ambassador_lock_timeout" in str(err.value)
    assert clock.now >= 5 and engine.containers[LOCK_NAME]["Config"]["Labels"][RUN_LABEL] == "a"


def test_a_second_run_gets_the_lock_once_the_first_releases_it():
    engine, clock = FakeEngine(), Clock()
    acquire(engine, RUN_A, "socat:1", 60, 10, clock, clock.sleep)

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.now >= 3:
            release(engine, "a")
    lock_id, waited, waited_for = acquire(engine, RUN_B, "socat:1", 60, 10, clock, sleep)
    assert engine.containers[LOCK_NAME]["Id"] == lock_id and waited == 3 and waited_for.startswith("alice")


def test_a_lock_whose_process_ended_or_never_started_is_taken_over():
    engine, clock = FakeEngine(), Clock()
    acquire(engine, RUN_A, "socat:1", 60, 10, clock, clock.sleep)
    engine.containers[LOCK_NAME]["State"] = {"Running": False, "Status": "exited"}
    acquire(engine, RUN_B, "socat:1", 60, 10, clock, clock.sleep)
    assert engine.containers[LOCK_NAME]["Config"]["Labels"][RUN_LABEL] == "b"
    engine.containers[LOCK_NAME]["State"] = {"Running": False, "Status": "created"}
    acquire(engine, RUN_A, "socat:1", 60, 30, clock, clock.sleep)
    assert engine.containers[LOCK_NAME]["Config"]["Labels"][RUN_LABEL] == "a"
    assert clock.now >= _lock.STARTING_GRACE


def test_renew_fails_once_the_lock_is_lost_and_release_leaves_others_alone():
    engine, clock = FakeEngine(), Clock()
    acquire(engine, RUN_A, "socat:1", 60, 10, clock, clock.sleep)
    assert renew(engine, "a") and not release(engine, "b")
    assert release(engine, "a") and LOCK_NAME not in engine.containers
    with pytest.raises(LockError) as err:
        renew(engine, "a")
    assert "it is gone" in str(err.value)
    acquire(engine, RUN_B, "socat:1", 60, 10, clock, clock.sleep)
    with pytest.raises(LockError) as err:
        renew(engine, "a")
    assert "held by bob@ctl pid 2" in str(err.value)


def test_judge_and_the_lease_loop():
    assert judge(None, "a") == "free"
    assert "trap 'n=0' HUP" in lock_command(42) and "-lt 42" in lock_command(42)
