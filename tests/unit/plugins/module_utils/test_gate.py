"""What a run may do across hosts, on plain data."""

from ansible_collections.crosshost.ambassador.plugins.module_utils._gate import (
    held_services, hosts_to_change, partial_run_problems, run_shape_problems)

HOSTS = ["host1", "host2", "host3"]
SERVICE_HOSTS = {"redis": ["host1", "host2", "host3"], "echo": ["host1", "host2"]}


def test_a_whole_linear_play_is_fine():
    assert run_shape_problems(HOSTS, HOSTS, "linear", {"awx_job_id": 7, "awx_job_template_name": "site"}) == []


def test_serial_batches_and_unordered_strategies_are_refused_with_the_fix():
    (serial,) = run_shape_problems(["host1"], HOSTS, "linear", {})
    assert "serial" in serial and "1 of its 3 hosts" in serial and "Fix: remove serial" in serial
    (free,) = run_shape_problems(HOSTS, HOSTS, "free", {})
    assert "strategy free" in free and "Fix: use the linear strategy" in free
    assert len(run_shape_problems(HOSTS, HOSTS, "host_pinned", {})) == 1


def test_an_awx_job_slice_is_refused_whether_named_or_seen_by_its_workflow():
    (named,) = run_shape_problems(HOSTS, HOSTS, "linear", {"awx_job_slice_count": 3, "awx_job_slice_number": 2})
    assert "slice 2 of 3" in named and "job_slice_count 1" in named
    # What AWX really passes: a sliced template runs as a workflow job of the template's name.
    awx = {"awx_job_id": 12, "awx_job_template_name": "site", "awx_workflow_job_id": 11,
           "awx_workflow_job_name": "site", "tower_workflow_job_name": "site"}
    (sliced,) = run_shape_problems(HOSTS, HOSTS, "linear", awx)
    assert "slice of job template 'site'" in sliced and "workflow job 11" in sliced
    # A workflow of its own name (a real workflow with this template as a node) is not a slice.
    assert run_shape_problems(HOSTS, HOSTS, "linear", dict(awx, awx_workflow_job_name="nightly")) == []
    assert run_shape_problems(HOSTS, HOSTS, "linear", {"tower_job_slice_count": "1"}) == []


def test_a_limit_that_leaves_out_a_host_of_a_changed_service_names_it():
    (problem,) = partial_run_problems(SERVICE_HOSTS, {"host1": ["redis"], "host2": ["redis"]}, ["host1", "host2"])
    assert problem.startswith("this run changes service redis but leaves out host3") and "add host3" in problem
    assert "ambassador_allow_partial=true" in problem
    # Services with no work, or with every host in the play, are fine.
    assert partial_run_problems(SERVICE_HOSTS, {"host1": ["echo"], "host2": []}, ["host1", "host2"]) == []
    assert partial_run_problems(SERVICE_HOSTS, {"host3": []}, ["host3"]) == []
    (two,) = partial_run_problems(SERVICE_HOSTS, {"host3": ["redis"]}, ["host3"])
    assert "leaves out host1, host2" in two and "add host1,host2" in two


def test_a_move_is_held_when_its_new_host_or_its_stopping_host_failed():
    provides = {"host1": ["echo"], "host3": ["redis"]}
    assert held_services(["host3"], provides, {}) == {"redis": ["host3"]}
    assert held_services(["host2"], provides, {"host2": ["redis"]}) == {"redis": ["host2"]}
    assert held_services([], provides, {"host2": ["redis"]}) == {}
    # A consumer that failed holds nothing: it fails alone.
    assert held_services(["host2"], provides, {}) == {}


def test_a_run_changes_the_hosts_with_work_and_the_hosts_of_the_services_that_change():
    service_hosts = {"redis": ["host2", "host3"], "echo": ["host1", "host4"], "web": ["host4", "host5"]}
    hosts = ["host1", "host2", "host3", "host4", "host5"]
    # redis moves away from host1 to host3 (host2 consumes it): host4 and host5 are left alone.
    assert hosts_to_change(service_hosts, {"host1": ["redis"], "host3": ["redis"], "host4": []}, hosts) == [
        "host1", "host2", "host3"]
    # Nothing to change: no host; hosts not in the play (failed, or limited out) are never taken.
    assert hosts_to_change(service_hosts, {"host1": [], "host2": []}, hosts) == []
    assert hosts_to_change(service_hosts, {"host4": ["echo"]}, ["host1", "host2"]) == ["host1"]
    # A service no longer planned (removed everywhere) concerns only the hosts with work.
    assert hosts_to_change(service_hosts, {"host5": ["gone"]}, hosts) == ["host5"]
    # A host whose only step is its missing network is applied with a run that changes something.
    assert hosts_to_change(service_hosts, {"host4": ["echo"]}, hosts, busy=["host5"]) == ["host1", "host4", "host5"]
