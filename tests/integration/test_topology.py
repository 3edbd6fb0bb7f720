"""The collection end to end on the lab: real engines, real namespaces, real traffic."""

import pytest
import yaml

from conftest import converge, exec_ok


def test_redis_on_host2_is_reached_from_host1_through_both_ambassadors(lab, topology, consumer):
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "SET", "greeting", "hello"]) == "OK"
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "GET", "greeting"]) == "hello"
    # The value really lives in the redis container on host2.
    redis = lab.client("host2").containers.get("redis")
    assert redis.exec_run(["redis-cli", "GET", "greeting"]).output.strip() == b"hello"
    # host1 has only the consumer-side ambassador, host2 the service and its provider-side ambassador.
    assert lab.owned("host1") == ["echo", "echo_ambassador", "redis_ambassador"]
    assert lab.owned("host2") == ["echo_ambassador", "redis", "redis_ambassador"]
    provider = lab.client("host2").containers.get("redis_ambassador")
    bindings = provider.attrs["HostConfig"]["PortBindings"]["6379/tcp"]
    assert bindings == [{"HostIp": lab.hosts["host2"]["ambassador_advertise_address"], "HostPort": "6379"}]


def echo_reaches(lab, host):
    probe = lab.start_consumer(host, "echo-probe")
    try:
        return exec_ok(probe, ["sh", "-c", "echo ping-%s | socat -t 2 - TCP:echo:7777" % host]) == "ping-%s" % host
    finally:
        probe.remove(force=True)


def assert_only_service_touched(lab, before, after, service):
    """Every container whose name does not start with the service's is the same one as before."""
    for host in lab.hosts:
        for name, (cid, _status) in before[host]["containers"].items():
            if not name.startswith(service):
                assert after[host]["containers"].get(name, (None,))[0] == cid, (host, name)


def test_echo_on_host1_is_reached_from_host2_and_host3(lab, topology):
    converge(lab, topology)
    assert echo_reaches(lab, "host2") and echo_reaches(lab, "host3")


def test_second_run_reports_no_change(lab, topology):
    converge(lab, topology)
    before = lab.snapshot()
    again = converge(lab, topology)
    assert again.changed() == {"host1": 0, "host2": 0, "host3": 0}
    assert all(actions == [] for actions in again.actions().values())
    assert lab.snapshot() == before


def test_a_hosts_plan_is_a_role_variable_in_its_play_and_read_from_the_plan_step_in_another(lab, topology, tmp_path):
    """README "What each host gets": ambassador_plan is not a fact; the play that runs the role sees it,
    and another play decodes the plan step's JSON text; both are the same plan."""
    converge(lab, topology)
    book = tmp_path / "plans.yml"
    from_another_play = "{{ hostvars[inventory_hostname]._ambassador_topology.plans_json[inventory_hostname] | from_json }}"
    book.write_text(yaml.safe_dump([
        {"hosts": "lab", "gather_facts": False, "roles": ["crosshost.ambassador.topology"],
         "tasks": [{"ansible.builtin.set_fact": {"in_its_play": "{{ ambassador_plan }}"}}]},
        {"hosts": "lab", "gather_facts": False,
         "tasks": [{"ansible.builtin.set_fact": {"in_another_play": from_another_play}}]},
    ]))
    run = lab.playbook(topology, str(book))
    assert run.rc == 0, run.output[-3000:]
    for host in lab.hosts:
        facts = run.facts(host)
        assert "ambassador_plan" not in facts and facts["ambassador_environment"] == facts["in_its_play"]["environment"]
        assert facts["in_its_play"] == facts["in_another_play"] and facts["in_its_play"]["host"] == host


def test_moving_redis_recreates_only_its_ambassadors_and_check_mode_predicts_it(lab, topology, consumer):
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    env_before = lab.site(topology, "--check").facts("host1")["ambassador_environment"]
    before = lab.snapshot()

    topology.services["redis"]["host"] = "host3"
    topology.save()
    predicted = lab.site(topology, "--check", "--diff")
    assert predicted.rc == 0, predicted.output[-6000:]
    assert lab.snapshot() == before, "check mode changed something"

    moved = converge(lab, topology)
    expected = {
        "host1": [("recreate", "redis_ambassador")],
        # redis keeps data (a volume): it moves stop-first, stopped on host2 before host3 starts it.
        "host2": [("remove", "redis"), ("remove", "redis_ambassador"), ("stop", "redis")],
        "host3": [("create", "redis"), ("create", "redis_ambassador")],
    }
    assert predicted.actions() == expected
    assert moved.actions() == expected
    assert moved.changed() == {"host1": 1, "host2": 2, "host3": 1}

    after = lab.snapshot()
    assert_only_service_touched(lab, before, after, "redis")
    # The same consumer container (same id, never restarted) reaches redis on host3 now.
    consumer.reload()
    assert after["host1"]["containers"]["consumer"][0] == consumer.id
    assert consumer.attrs["RestartCount"] == 0 and consumer.status == "running"
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "SET", "where", "host3"]) == "OK"
    assert lab.client("host3").containers.get("redis").exec_run(["redis-cli", "GET", "where"]).output.strip() == b"host3"
    # The consumers' link-style environment did not change with the move.
    env_after = moved.facts("host1")["ambassador_environment"]
    assert env_after == env_before and env_after["REDIS_PORT_6379_TCP"] == "tcp://redis:6379"
    # The data volume on host2 is kept.
    assert "redis-data" in after["host2"]["volumes"]

    assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}


DECIDE = "Decide what this host needs, changing nothing yet"
MAKE = "Reconcile this host's ambassadors and service containers"
SWITCH = "Switch this host's changed ambassadors over"
BREAK = "Remove what this host no longer runs"


def test_a_move_is_made_before_break_across_hosts_and_in_one_step_when_asked(lab, topology):
    """echo moves from host1 to host2, and host1 becomes its consumer: host2 turns its ambassador
    provider-side first, then host3 switches, then host1 lets go. Asked for one step (as a
    command-line string), every host does its part in its first apply step."""
    converge(lab, topology)
    before = lab.snapshot()
    topology.services["echo"].update(host="host2", consumers=["host1", "host3"])
    moved = converge(lab, topology.save())
    assert moved.steps() == {
        "host1": [(DECIDE, []), (MAKE, []), (BREAK, [("recreate", "echo_ambassador"), ("remove", "echo")])],
        "host2": [(DECIDE, []), (MAKE, [("create", "echo"), ("recreate", "echo_ambassador")])],
        "host3": [(DECIDE, []), (MAKE, []), (SWITCH, [("recreate", "echo_ambassador")])],
    }
    assert echo_reaches(lab, "host1") and echo_reaches(lab, "host3")

    topology.services["echo"].update(host="host1", consumers=["host2", "host3"])
    back = converge(lab, topology.save(), "-e", "ambassador_make_before_break=false")
    assert back.steps() == {
        "host1": [(DECIDE, []), (MAKE, [("create", "echo"), ("recreate", "echo_ambassador")])],
        "host2": [(DECIDE, []), (MAKE, [("recreate", "echo_ambassador"), ("remove", "echo")])],
        "host3": [(DECIDE, []), (MAKE, [("recreate", "echo_ambassador")])],
    }
    assert echo_reaches(lab, "host2") and echo_reaches(lab, "host3")
    assert_only_service_touched(lab, before, lab.snapshot(), "echo")


def test_dropping_a_service_removes_its_ambassadors_everywhere(lab, topology):
    converge(lab, topology)
    del topology.services["echo"]
    topology.save()
    run = converge(lab, topology)
    assert run.actions() == {
        "host1": [("remove", "echo"), ("remove", "echo_ambassador")],
        "host2": [("remove", "echo_ambassador")],
        "host3": [("remove", "echo_ambassador")],
    }
    for host in lab.hosts:
        assert not [n for n in lab.owned(host) if n.startswith("echo")]


def test_a_foreign_container_with_an_ambassador_name_is_left_alone_and_the_host_fails(lab, topology):
    echo = dict(topology.services["echo"])
    del topology.services["echo"]
    topology.save()
    converge(lab, topology)
    foreign = lab.client("host2").containers.run(lab.vars["lab_client_image"], ["sleep", "100000"],
                                                 name="echo_ambassador", detach=True)
    try:
        before = lab.snapshot()
        topology.services["echo"] = echo
        topology.save()
        run = lab.site(topology)
        assert run.rc != 0
        assert run.failed_hosts() == ["host2"]
        msg = run.results_of("crosshost.ambassador.apply")["host2"]["result"]["msg"]
        assert "container echo_ambassador exists" in msg and "did not create" in msg and "Fix:" in msg
        assert lab.engine_url("host2") in msg
        foreign.reload()
        assert foreign.status == "running"
        assert lab.snapshot()["host2"] == before["host2"], "something changed on the failing host"
        # The other hosts converged.
        assert "echo" in lab.owned("host1") and "echo_ambassador" in lab.owned("host3")
    finally:
        foreign.remove(force=True)
    converge(lab, topology)


def test_an_invalid_topology_fails_before_any_host_is_touched(lab, topology):
    converge(lab, topology)
    topology.services["redis"]["port"] = 70000
    topology.services["echo"]["consumers"].append("nosuchhost")
    topology.save()
    before = lab.snapshot()
    run = lab.site(topology)
    assert run.rc != 0
    assert run.failed_hosts(), "the play should have failed"
    plan = run.results_of("crosshost.ambassador.plan")
    (result,) = plan.values()
    assert "ambassador_services.redis.port: 70000 is out of range. Fix: use an integer from 1 to 65535." \
        in result["result"]["problems"]
    assert any(p.startswith("ambassador_services.echo.consumers[2]: 'nosuchhost'") for p in result["result"]["problems"])
    assert run.results_of("crosshost.ambassador.apply") == {}
    assert lab.snapshot() == before


@pytest.mark.parametrize("url", [
    "unix:///run/crosshost-lab/nosuch/docker.sock",  # no socket there
    "tcp://127.0.0.1:1",                             # TCP connection refused
])
def test_an_unreachable_engine_fails_that_host_only_with_its_url(lab, topology, url):
    topology.host_vars("host3", ambassador_docker_host=url)
    run = lab.site(topology)
    assert run.failed_hosts() == ["host3"]
    msg = run.results_of("crosshost.ambassador.apply")["host3"]["result"]["msg"]
    assert "host host3" in msg and url in msg
    assert "Traceback" not in run.output
    assert run.stats["host1"]["failures"] == 0 and run.stats["host2"]["failures"] == 0
