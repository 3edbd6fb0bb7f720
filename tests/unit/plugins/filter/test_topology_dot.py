"""The topology_dot filter: the renderer behind Ansible's filter interface."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.crosshost.ambassador.plugins.filter.topology_dot import FilterModule
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology

topology_dot = FilterModule().filters()["topology_dot"]


def test_the_filter_draws_the_plans_it_is_given():
    plans = plan_topology({"redis": {"host": "host2", "port": 6379, "image": "redis:7"}},
                          {"host1": {"consumes": ["redis"], "advertise_address": "10.0.0.1"},
                           "host2": {"advertise_address": "10.0.0.2"}})
    dot = topology_dot(plans, title="t")
    assert '"host1/redis_ambassador" -> "10.0.0.2:6379"' in dot


@pytest.mark.parametrize("value", [None, ["host1"], {"host1": {"containers": [{"name": "x"}]}}])
def test_anything_but_plans_is_an_ansible_filter_error(value):
    with pytest.raises(AnsibleFilterError, match="topology_dot"):
        topology_dot(value)
