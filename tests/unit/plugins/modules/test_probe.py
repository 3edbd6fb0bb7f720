"""The probe module's options: provider_docker takes the keys of docker, checked as strictly."""

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.crosshost.ambassador.plugins.modules import probe


@pytest.mark.parametrize("provider, phrase", [
    ({"hots": "unix:///run/h2/docker.sock"}, "hots"),
    ({"host": "unix:///run/h2/docker.sock", "tls_verify": "maybe"}, "tls_verify"),
])
def test_provider_docker_is_checked_as_strictly_as_docker(provider, phrase, capsys):
    args = {"image": "socat:1", "service": "redis", "port": 6379, "provider_docker": provider}
    with patch_module_args(args), pytest.raises(SystemExit):
        probe.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"], result
    assert result["msg"].startswith("provider_docker: ") and phrase in result["msg"], result["msg"]
    assert "Fix: use the keys of the docker option" in result["msg"]
