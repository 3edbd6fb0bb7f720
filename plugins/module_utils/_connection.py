# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""How a host's Docker engine is reached: its connection settings, checked and resolved.

Pure: no Ansible, no Docker SDK. The planner checks each host's settings with
:func:`check_settings` (every problem as ``(variable, what, fix)``), so that bad settings
stop the play before any host is touched; the modules resolve them on the host that runs
them with :func:`resolve`, which fills what the inventory leaves unset from the module's
environment, as the Docker CLI and community.docker do.
"""

from __future__ import annotations

import os
import re

DEFAULT_URL = "unix:///var/run/docker.sock"
SCHEMES = ("unix", "tcp", "http", "https", "ssh", "npipe")

# Inventory variable -> key of a plan's ``docker`` settings.
VARIABLES = (
    ("ambassador_docker_host", "host"),
    ("ambassador_docker_tls_verify", "tls_verify"),
    ("ambassador_docker_ca_path", "ca_path"),
    ("ambassador_docker_client_cert", "client_cert"),
    ("ambassador_docker_client_key", "client_key"),
    ("ambassador_docker_tls_hostname", "tls_hostname"),
    ("ambassador_docker_api_version", "api_version"),
    ("ambassador_docker_use_ssh_client", "use_ssh_client"),
)
VARIABLE = dict((key, var) for var, key in VARIABLES)
# The modules' argument spec of these settings (apply's plan.docker, probe's docker).
ARGUMENT_SPEC = dict(
    host=dict(type="str"),
    tls_verify=dict(type="bool"),
    ca_path=dict(type="str"),
    client_cert=dict(type="str"),
    # A path, not the key itself.
    client_key=dict(type="str", no_log=False),
    tls_hostname=dict(type="str"),
    api_version=dict(type="str"),
    use_ssh_client=dict(type="bool"),
)
TLS_FILES = ("ca_path", "client_cert", "client_key")
TLS_KEYS = ("tls_verify",) + TLS_FILES + ("tls_hostname",)
# What DOCKER_CERT_PATH holds, by key.
CERT_PATH_FILES = (("ca_path", "ca.pem"), ("client_cert", "cert.pem"), ("client_key", "key.pem"))

_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://(\S+)$")
_API_VERSION = re.compile(r"^(auto|1\.[0-9]{1,3})$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def scheme(url):
    match = _URL.match(url or "")
    return match.group(1) if match else None


def check_settings(settings, file_exists=None):
    """Check one host's connection settings (keys of :data:`VARIABLES`, unset ones absent or None).

    ``file_exists``, when given, is asked about each file setting: pass it when the module will
    run on this machine (``ansible_connection: local``), where the files must be.
    Returns ``(docker, problems)``: the settings a plan carries (every key, None when unset)
    and a list of ``(variable, what, fix)``.
    """
    docker = dict((key, settings.get(key)) for _var, key in VARIABLES)
    problems = []

    def bad(key, what, fix):
        problems.append((VARIABLE[key], what, fix))

    url = docker["host"]
    if url is not None:
        if not isinstance(url, str) or not _URL.match(url):
            bad("host", "%r is not a Docker API URL" % (url,), "use e.g. unix:///var/run/docker.sock, "
                "tcp://host:2376 or ssh://user@host")
        elif scheme(url) not in SCHEMES:
            bad("host", "%r has the unknown scheme %s://" % (url, scheme(url)),
                "use one of %s" % ", ".join(s + "://" for s in SCHEMES))
    for key in ("tls_verify", "use_ssh_client"):
        if docker[key] is not None and not isinstance(docker[key], bool):
            bad(key, "%r is not a boolean" % (docker[key],), "use true or false")
    for key in TLS_FILES:
        path = docker[key]
        if path is None:
            continue
        if not isinstance(path, str) or not path.startswith("/"):
            bad(key, "%r is not an absolute file path" % (path,), "give the absolute path of a PEM file")
        elif file_exists is not None and not file_exists(path):
            bad(key, "%s does not exist" % path, "create it, or correct the path")
    if (docker["client_cert"] is None) != (docker["client_key"] is None):
        have, lack = ("client_cert", "client_key") if docker["client_key"] is None else ("client_key", "client_cert")
        bad(lack, "is not set, but %s is" % VARIABLE[have], "set both, the client certificate and its key, or neither")
    hostname = docker["tls_hostname"]
    if hostname is not None and (not isinstance(hostname, str) or not HOSTNAME.match(hostname)):
        bad("tls_hostname", "%r is not a host name" % (hostname,), "use the name in the engine's certificate")
    version = docker["api_version"]
    if version is not None and (not isinstance(version, str) or not _API_VERSION.match(version)):
        bad("api_version", "%r is not a Docker API version" % (version,), "use auto or e.g. 1.41")
    if isinstance(url, str) and scheme(url) in ("unix", "ssh", "npipe"):
        for key in TLS_KEYS:
            if docker[key] not in (None, False):
                bad(key, "is set, but %s is %s, which TLS does not apply to" % (VARIABLE["host"], url),
                    "use tcp://host:2376 for TLS, or drop %s" % VARIABLE[key])
    if docker["use_ssh_client"] is not None and isinstance(url, str) and scheme(url) not in (None, "ssh"):
        bad("use_ssh_client", "is set, but %s is %s, not ssh://" % (VARIABLE["host"], url),
            "drop it, or use an ssh:// URL")
    return docker, problems


def _env_true(value):
    """DOCKER_TLS_VERIFY as the Docker SDK reads it: set and not empty means true."""
    return value is not None and value != ""


def resolve(docker, environ, home="~"):
    """The connection to make, from a plan's ``docker`` settings and the module's environment.

    Each unset setting comes from the environment as the Docker CLI reads it: the URL from
    ``DOCKER_HOST`` (else the local socket); TLS from ``DOCKER_TLS_VERIFY`` and
    ``DOCKER_CERT_PATH`` (``ca.pem``, ``cert.pem``, ``key.pem``; default ``~/.docker``);
    ``DOCKER_TLS_HOSTNAME``, ``DOCKER_API_VERSION``. Returns a dict: ``engine_url``, ``tls`` (None, or
    ``verify``, ``ca_cert``, ``client_cert``, ``client_key``, ``hostname``), ``version``,
    ``use_ssh_client`` and ``sources`` (setting -> ``inventory`` or the environment variable).
    """
    docker = dict(docker or {})
    sources = {}

    def pick(key, env_name, env_value=None):
        if docker.get(key) is not None:
            sources[key] = VARIABLE[key]
            return docker[key]
        value = environ.get(env_name) if env_value is None else env_value
        if value is not None and value != "":
            sources[key] = env_name
            return value
        return None

    url = pick("host", "DOCKER_HOST") or DEFAULT_URL
    verify = docker.get("tls_verify")
    if verify is not None:
        sources["tls_verify"] = VARIABLE["tls_verify"]
    elif _env_true(environ.get("DOCKER_TLS_VERIFY")):
        verify = True
        sources["tls_verify"] = "DOCKER_TLS_VERIFY"
    cert_path = environ.get("DOCKER_CERT_PATH") or None
    files = {}
    for key, name in CERT_PATH_FILES:
        if docker.get(key) is not None:
            files[key] = docker[key]
            sources[key] = VARIABLE[key]
        elif cert_path or (verify and sources.get("tls_verify") == "DOCKER_TLS_VERIFY"):
            # The SDK's kwargs_from_env: DOCKER_TLS_VERIFY alone means ~/.docker.
            files[key] = os.path.join(cert_path or os.path.join(os.path.expanduser(home), ".docker"), name)
            sources[key] = "DOCKER_CERT_PATH" if cert_path else "DOCKER_TLS_VERIFY (~/.docker)"
    hostname = pick("tls_hostname", "DOCKER_TLS_HOSTNAME")
    version = pick("api_version", "DOCKER_API_VERSION") or "auto"
    kind = scheme(url)
    tls = None
    if kind in ("tcp", "https") and (verify or files.get("client_cert") or files.get("ca_path") or kind == "https"):
        tls = {
            "verify": bool(verify),
            "ca_cert": files.get("ca_path"),
            "client_cert": files.get("client_cert"),
            "client_key": files.get("client_key"),
            "hostname": hostname,
        }
    ssh_client = docker.get("use_ssh_client")
    if ssh_client is None:
        # The OpenSSH client, with the user's ~/.ssh/config (and `docker system dial-stdio` on the host).
        ssh_client = kind == "ssh"
    return {"engine_url": url, "tls": tls, "version": version, "use_ssh_client": bool(ssh_client), "sources": sources}
