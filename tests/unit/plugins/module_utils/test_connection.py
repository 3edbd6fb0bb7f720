"""_connection: a host's engine connection settings, checked at plan time and resolved on the host."""

import os

import pytest
from docker.utils import kwargs_from_env

from ansible_collections.crosshost.ambassador.plugins.module_utils._connection import (
    DEFAULT_URL, VARIABLES, check_settings, resolve)


def test_unset_settings_plan_as_none_and_resolve_to_the_local_socket():
    docker, problems = check_settings({})
    assert problems == [] and docker == dict((key, None) for _var, key in VARIABLES)
    conn = resolve(docker, {})
    assert conn == {"engine_url": DEFAULT_URL, "tls": None, "version": "auto", "use_ssh_client": False, "sources": {}}


@pytest.mark.parametrize("settings, problem", [
    ({"host": "/var/run/docker.sock"}, ("ambassador_docker_host", "'/var/run/docker.sock' is not a Docker API URL")),
    ({"host": "tcps://h:2376"}, ("ambassador_docker_host", "'tcps://h:2376' has the unknown scheme tcps://")),
    ({"tls_verify": "yes"}, ("ambassador_docker_tls_verify", "'yes' is not a boolean")),
    ({"ca_path": "ca.pem"}, ("ambassador_docker_ca_path", "'ca.pem' is not an absolute file path")),
    ({"client_cert": "/c.pem"}, ("ambassador_docker_client_key", "is not set, but ambassador_docker_client_cert is")),
    ({"client_key": "/k.pem"}, ("ambassador_docker_client_cert", "is not set, but ambassador_docker_client_key is")),
    ({"api_version": "41"}, ("ambassador_docker_api_version", "'41' is not a Docker API version")),
    ({"tls_hostname": "a b"}, ("ambassador_docker_tls_hostname", "'a b' is not a host name")),
    ({"host": "unix:///s", "ca_path": "/ca.pem"},
     ("ambassador_docker_ca_path", "is set, but ambassador_docker_host is unix:///s, which TLS does not apply to")),
    ({"host": "tcp://h:2376", "use_ssh_client": True},
     ("ambassador_docker_use_ssh_client", "is set, but ambassador_docker_host is tcp://h:2376, not ssh://")),
])
def test_each_bad_setting_is_named_with_what_and_a_fix(settings, problem):
    _docker, problems = check_settings(settings)
    assert [(var, what) for var, what, _fix in problems] == [problem]
    assert all(fix for _var, _what, fix in problems)


def test_files_are_checked_only_when_asked(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = {"host": "tcp://h:2376", "ca_path": str(ca), "client_cert": "/missing/cert.pem", "client_key": str(ca)}
    assert check_settings(settings)[1] == []
    problems = check_settings(settings, os.path.isfile)[1]
    assert problems == [("ambassador_docker_client_cert", "/missing/cert.pem does not exist", "create it, or correct the path")]


def test_inventory_settings_win_over_the_environment_one_by_one():
    env = {"DOCKER_HOST": "tcp://env:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/env",
           "DOCKER_API_VERSION": "1.41"}
    conn = resolve({"host": "tcp://inv:2376", "ca_path": "/inv/ca.pem"}, env)
    assert conn["engine_url"] == "tcp://inv:2376" and conn["version"] == "1.41"
    assert conn["tls"] == {"verify": True, "ca_cert": "/inv/ca.pem", "client_cert": "/env/cert.pem",
                           "client_key": "/env/key.pem", "hostname": None}
    assert conn["sources"] == {"host": "ambassador_docker_host", "tls_verify": "DOCKER_TLS_VERIFY",
                               "ca_path": "ambassador_docker_ca_path", "client_cert": "DOCKER_CERT_PATH",
                               "client_key": "DOCKER_CERT_PATH", "api_version": "DOCKER_API_VERSION"}
    assert resolve({"tls_verify": False, "host": "tcp://h:2375"}, {"DOCKER_TLS_VERIFY": "1"})["tls"] is None


def test_ssh_urls_use_the_openssh_client_unless_told_otherwise():
    assert resolve({"host": "ssh://u@h"}, {})["use_ssh_client"] is True
    assert resolve({"host": "ssh://u@h", "use_ssh_client": False}, {})["use_ssh_client"] is False


@pytest.mark.parametrize("env", [
    {"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "{certs}"},
    {"DOCKER_HOST": "tcp://h:2376", "DOCKER_CERT_PATH": "{certs}"},
    {"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "", "DOCKER_CERT_PATH": "{certs}"},
    {"DOCKER_HOST": "tcp://h:2375"},
])
def test_the_environment_is_read_as_the_sdks_kwargs_from_env_reads_it(tmp_path, env):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    env = dict((k, v.format(certs=str(tmp_path))) for k, v in env.items())
    sdk = kwargs_from_env(environment=env)
    conn = resolve({}, env)
    assert conn["engine_url"] == sdk["base_url"]
    if "tls" not in sdk:
        assert conn["tls"] is None
    else:
        assert conn["tls"]["ca_cert"] == sdk["tls"].ca_cert
        assert (conn["tls"]["client_cert"], conn["tls"]["client_key"]) == sdk["tls"].cert
        assert conn["tls"]["verify"] == bool(sdk["tls"].verify)
