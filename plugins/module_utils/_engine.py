# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""The only place that talks to a Docker engine, through the Docker SDK's low-level API.

Small on purpose: list containers and networks, create/start/remove a container,
make sure an image and a network exist. Every failure is raised as
:class:`EngineError` with a sentence a user can act on, never a traceback.

:func:`connect` is the one way the modules reach an engine: from a host's connection
settings (a plan's ``docker``), filled from the module's environment
(``_connection.resolve``), with the SDK's own ``TLSConfig``.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import sys
import tarfile
import time
import traceback

try:
    import docker
    import requests.adapters
    from docker.errors import NotFound
    from docker.tls import TLSConfig
    from docker.utils import parse_repository_tag
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised on hosts without the SDK
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class NotFound(Exception):
        pass

from ansible_collections.crosshost.ambassador.plugins.module_utils._connection import VARIABLE, resolve, scheme
from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import replaced_watch
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import OWNER_LABEL, labels_for

# Docker SDK releases that break under newer libraries beneath them (measured; see the README's support table):
# (SDK below this, library, from this version, what happens).
_SDK_BREAKS = (
    ((7, 1, 0), "requests", (2, 32, 0), "requests 2.32 refuses its unix-socket adapter (Not supported URL scheme "
                                        "http+docker)"),
    ((6, 1, 0), "urllib3", (2, 0, 0), "urllib3 2 refuses its unix-socket adapter (Not supported URL scheme "
                                      "http+docker)"),
)


def name_taken(status, text):
    """Whether an engine's answer to a container create says the name is taken: Docker answers 409 Conflict;
    Podman 4.3's compatible API answers 500 with 'the container name "..." is already in use'."""
    return status == 409 or (status == 500 and "container name" in text and "is already in use" in text)


def _version(text):
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def require_sdk(module, missing_message, where=None):
    """Fail ``module`` (an ``AnsibleModule``) when the Docker SDK cannot be used here.

    :param missing_message: what to say when the SDK is not installed at all (Ansible's
        ``missing_required_lib("docker")``; this file imports nothing of Ansible).
    :param where: put before the message of an SDK that is installed but cannot work (e.g. ``host h1``).
    """
    problem = sdk_problem()
    if problem:
        module.fail_json(msg="%s: %s" % (where, problem) if where else problem)
    if not HAS_DOCKER:
        module.fail_json(msg=missing_message, exception=DOCKER_IMPORT_ERROR)


def sdk_problem():
    """Why the Docker SDK for Python on this host cannot work, as one sentence with the fix; None if it can."""
    if not HAS_DOCKER:
        try:
            from importlib.metadata import version
            found = version("docker")
        except Exception:  # not installed at all: missing_required_lib says so
            return None
        return ("the Docker SDK for Python (docker) %s is installed but cannot be imported by Python %s (%s). "
                "Fix: pip install 'docker>=7.1.0'" % (found, sys.version.split()[0],
                                                      DOCKER_IMPORT_ERROR.strip().splitlines()[-1]))
    for below, library, since, why in _SDK_BREAKS:
        try:
            found = __import__(library).__version__
        except Exception:
            continue
        if _version(docker.__version__) < below and _version(found) >= since:
            fix = "pip install 'docker>=7.1.0', or '%s<%s'" % (library, ".".join(str(n) for n in since))
            return ("the Docker SDK for Python (docker) %s cannot work with %s %s: %s. Fix: %s"
                    % (docker.__version__, library, found, why, fix))
    return None


# The lowest Docker SDK for Python the modules are tested with (Debian 12's python3-docker; README: Supported versions).
MIN_SDK = (5, 0)
# Where each TLS file comes from when the inventory does not say: DOCKER_CERT_PATH's file names.
_FILE_FIX = {
    "ca_path": "the CA certificate that signed the engine's certificate",
    "client_cert": "a client certificate signed by a CA the engine trusts (dockerd --tlscacert)",
    "client_key": "the key of that client certificate",
}


class EngineError(Exception):
    """A Docker engine could not do what was asked; the message says why."""


def _reason(exc):
    explanation = getattr(exc, "explanation", None)
    text = explanation if explanation else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text.strip() or exc.__class__.__name__


def _sdk_version():
    return _version(getattr(docker, "__version__", "0"))[:2]


def _text(exc):
    """Everything an exception and its causes say, for recognising TLS failures."""
    seen, out = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(repr(exc))
        response = getattr(exc, "response", None)
        if response is not None:
            out.append(getattr(response, "text", "") or "")
        exc = exc.__cause__ or exc.__context__
    return " ".join(out)


def _source(conn, key):
    return conn["sources"].get(key, "default")


def explain(exc, conn):
    """One sentence for a failure to connect: what went wrong, with which URL or file, and the fix."""
    url, tls, text = conn["engine_url"], conn["tls"], _text(exc)
    if "Client sent an HTTP request to an HTTPS server" in text:
        return ("the Docker engine at %s speaks TLS, and no TLS is configured for it. Fix: set %s: true with %s, "
                "%s and %s (or DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH in the module's environment)"
                % (url, VARIABLE["tls_verify"], VARIABLE["ca_path"], VARIABLE["client_cert"], VARIABLE["client_key"]))
    if tls and ("Hostname mismatch" in text or "IP address mismatch" in text or "doesn't match" in text):
        return ("the certificate of the Docker engine at %s is not valid for that name or address. Fix: set %s to a "
                "name its certificate carries" % (url, VARIABLE["tls_hostname"]))
    if tls and "CERTIFICATE_VERIFY_FAILED" in text:
        return ("the certificate of the Docker engine at %s is not signed by the CA in %s (from %s). Fix: point %s "
                "(or DOCKER_CERT_PATH's ca.pem) at the CA that signed the engine's certificate"
                % (url, tls["ca_cert"] or "the system's bundle", _source(conn, "ca_path"), VARIABLE["ca_path"]))
    if tls and ("ALERT_BAD_CERTIFICATE" in text or "ALERT_UNKNOWN_CA" in text or "CERTIFICATE_REQUIRED" in text
                or "alert bad certificate" in text or "alert unknown ca" in text):
        if tls["client_cert"]:
            return ("the Docker engine at %s refused the client certificate %s (from %s): it is not signed by a CA "
                    "the engine trusts. Fix: use a client certificate signed by the CA of the engine's --tlscacert"
                    % (url, tls["client_cert"], _source(conn, "client_cert")))
        return ("the Docker engine at %s wants a client certificate, and none is configured. Fix: set %s and %s "
                "(or DOCKER_CERT_PATH with cert.pem and key.pem)" % (url, VARIABLE["client_cert"], VARIABLE["client_key"]))
    if "paramiko" in text.lower():
        return ("the Docker SDK for Python reaches %s (ssh://) only with the package paramiko installed, even when it "
                "runs the OpenSSH client (%s). Fix: install requirements.txt (paramiko) for the interpreter that runs "
                "the module, or run the module on the Docker host over SSH with its local socket"
                % (url, VARIABLE["use_ssh_client"]))
    if scheme(url) == "ssh":
        return ("cannot reach the Docker engine at %s: %s. Fix: make `ssh %s docker system dial-stdio` work where the "
                "module runs: the key (~/.ssh/config), the host's key in ~/.ssh/known_hosts (unknown keys are refused), "
                "and the docker CLI on that host" % (url, _reason(exc), url))
    return "cannot reach the Docker engine at %s: %s" % (url, _reason(exc))


class _HostnameAdapter(requests.adapters.HTTPAdapter if HAS_DOCKER else object):
    """HTTPS to an engine whose certificate names it otherwise than its URL does (ambassador_docker_tls_hostname)."""

    def __init__(self, hostname, **kwargs):
        self._hostname = hostname
        super(_HostnameAdapter, self).__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_hostname"] = self._hostname
        kwargs["server_hostname"] = self._hostname
        return super(_HostnameAdapter, self).init_poolmanager(*args, **kwargs)


def connect(settings, timeout=60, environ=None):
    """The engine a host's connection settings (a plan's ``docker``) lead to, filled from ``environ``
    (default: this process's environment) where they are unset; see ``_connection.resolve``."""
    conn = resolve(settings or {}, os.environ if environ is None else environ)
    return Engine(conn["engine_url"], timeout=timeout, connection=conn)


class Engine(object):
    """One Docker engine, reached at ``engine_url`` (or as ``connection``, a ``_connection.resolve`` result, says)."""

    def __init__(self, engine_url, timeout=60, connection=None):
        conn = connection or resolve({"host": engine_url}, {})
        self.url = conn["engine_url"]
        if _sdk_version() < MIN_SDK:
            raise EngineError("the Docker SDK for Python on this host is %s; crosshost.ambassador needs %s or later. "
                              "Fix: install the package docker>=%s for the interpreter that runs the module (%s)"
                              % (docker.__version__, ".".join(map(str, MIN_SDK)), ".".join(map(str, MIN_SDK)),
                                 os.sys.executable))
        tls = False
        if conn["tls"]:
            t = conn["tls"]
            for key, path in (("ca_path", t["ca_cert"]), ("client_cert", t["client_cert"]), ("client_key", t["client_key"])):
                if path and not os.path.isfile(path):
                    raise EngineError("%s (from %s) does not exist on this host, for the Docker engine at %s. Fix: "
                                      "put %s there, or point %s elsewhere"
                                      % (path, _source(conn, key), self.url, _FILE_FIX[key], VARIABLE[key]))
            try:
                tls = TLSConfig(client_cert=(t["client_cert"], t["client_key"]) if t["client_cert"] else None,
                                ca_cert=t["ca_cert"], verify=t["verify"])
            except Exception as exc:  # docker.errors.TLSParameterError
                raise EngineError("the TLS settings for the Docker engine at %s are incomplete: %s"
                                  % (self.url, _reason(exc)))
        try:
            self.api = self._client(conn, timeout, tls, conn["version"] if conn["version"] != "auto" else None)
            if conn["version"] == "auto":
                # As the SDK's version="auto" does, but after the client is set up (see _client).
                server = self.api.version(api_version=False)["ApiVersion"]
                self.api = self._client(conn, timeout, tls, server)
        except EngineError:
            raise
        except Exception as exc:  # socket, TLS and URL errors surface in many forms
            raise EngineError(explain(exc, conn))

    @staticmethod
    def _client(conn, timeout, tls, version):
        api = docker.APIClient(base_url=conn["engine_url"], timeout=timeout, tls=tls, version=version or "1.24",
                               use_ssh_client=conn["use_ssh_client"])
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (set in many execution environments) replace
        # the CA a TLSConfig names; the engine's own CA must be used. (Also: no proxy from the environment.)
        api.trust_env = False
        if conn["tls"] and conn["tls"]["hostname"]:
            api.mount("https://", _HostnameAdapter(conn["tls"]["hostname"]))
        return api

    def _failed(self, what, exc):
        return EngineError("%s failed on the Docker engine at %s: %s" % (what, self.url, _reason(exc)))

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # the SDK's errors, and the socket and HTTP errors under them
            raise self._failed(what, exc)

    def containers(self):
        """Every container on the engine, as ``{id, name, labels, state, image}``."""
        found = []
        for summary in self._call("listing containers", self.api.containers, all=True):
            names = summary.get("Names") or []
            found.append({
                "id": summary["Id"],
                "name": names[0].lstrip("/") if names else summary["Id"][:12],
                "labels": summary.get("Labels") or {},
                "state": summary.get("State"),
                "image": summary.get("Image"),
                "ports": summary.get("Ports") or [],
            })
        return found

    def network(self, name):
        """The network called ``name`` (exact match), or None."""
        for net in self._call("listing networks", self.api.networks, names=[name]):
            if net.get("Name") == name:
                return net
        return None

    def create_network(self, name):
        return self._call("creating network %s" % name, self.api.create_network, name, driver="bridge",
                          labels={OWNER_LABEL: "true"}, check_duplicate=True)

    def _found(self, what, func, *args, **kwargs):
        """``func``'s answer, or None when the engine has no such thing."""
        try:
            return func(*args, **kwargs)
        except NotFound:
            return None
        except Exception as exc:
            raise self._failed(what, exc)

    def has_image(self, ref):
        return self._found("inspecting image %s" % ref, self.api.inspect_image, ref) is not None

    def pull(self, ref):
        repository, tag = parse_repository_tag(ref)
        self._call("pulling image %s" % ref, self.api.pull, repository, tag=tag or "latest")

    def create(self, spec, files=None):
        """Create and start the container ``spec`` (``_container.spec``: every field of its table) describes,
        with ``files`` (path -> text) in place before it starts; return its id."""
        api = self.api
        port_bindings = {}
        for p in spec["published"]:
            port_bindings.setdefault("%d/%s" % (p["port"], p["protocol"]), []).append((p["host_ip"], p["host_port"]))
        host_config = api.create_host_config(
            port_bindings=port_bindings or None,
            restart_policy={"Name": spec["restart_policy"]},
            init=True if spec["init"] else None,
            binds=list(spec["volumes"]) or None,
            network_mode=spec["network"],
            read_only=spec["read_only"] or None,
            cap_drop=list(spec["cap_drop"]) or None,
            security_opt=list(spec["security_opt"]) or None,
            mem_limit=spec["memory"] or None,
            pids_limit=spec["pids_limit"] or None,
            cap_add=list(spec["cap_add"]) or None,
            sysctls=dict(spec["sysctls"]) or None,
        )
        networking_config = api.create_networking_config({
            spec["network"]: api.create_endpoint_config(aliases=list(spec["aliases"]) or None),
        })
        created = self._call(
            "creating container %s" % spec["name"], api.create_container,
            image=spec["image"],
            name=spec["name"],
            entrypoint=spec["entrypoint"],
            command=spec["command"],
            environment=dict(spec["env"]) or None,
            user=spec["user"] or None,
            labels=labels_for(spec),
            ports=[(p["port"], p["protocol"]) for p in spec["published"]] or None,
            host_config=host_config,
            networking_config=networking_config,
        )
        try:
            if files:
                try:
                    self.put_files(created["Id"], spec["name"], files)
                except EngineError:
                    self.remove(created["Id"], spec["name"])
                    raise
            return self._start_new(created["Id"], spec["name"])
        except EngineError as exc:
            text = str(exc)
            if spec["published"] and ("already in use" in text or "already allocated" in text):
                text += (". Fix: stop what holds that port on the host (this collection leaves it alone), or give "
                         "service %s another published port (ambassador_services.%s.published)"
                         % (spec["service"], spec["service"]))
            raise EngineError(text)

    def put_files(self, container_id, name, files):
        """Write ``files`` (absolute path -> text) in the container's file system, owned by root and readable
        by all; the container may be running or not. The engine unpacks an archive there: a process that
        reads the file meanwhile may see it half written (see ``_dataplane.ADDRESSES_END``)."""
        for path, text in sorted(files.items()):
            directory, base = posixpath.split(path)
            data = text.encode("utf-8")
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w") as tar:
                info = tarfile.TarInfo(base)
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
            if not self._call("putting %s in container %s" % (path, name), self.api.put_archive, container_id,
                              directory, archive.getvalue()):
                raise EngineError("putting %s in container %s failed on the Docker engine at %s" % (path, name, self.url))

    def read_files(self, container_id, name, paths):
        """path -> the text of that file in the container (None when there is no such file), for ``paths``."""
        found = {}
        for path in paths:
            got = self._found("reading %s in container %s" % (path, name), self.api.get_archive, container_id, path)
            if got is None:
                found[path] = None
                continue
            stream, _stat = got
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r") as tar:
                member = tar.next()
                handle = tar.extractfile(member) if member is not None and member.isfile() else None
                found[path] = handle.read().decode("utf-8", "replace") if handle is not None else None
        return found

    def _start_new(self, container_id, name):
        """Start a container just created; return its id. If it cannot start (e.g. its published port is taken),
        remove it: nothing half made is left behind."""
        try:
            self.start(container_id, name)
        except EngineError:
            self.remove(container_id, name)
            raise
        return container_id

    def inspect(self, name):
        """The engine's view of one container (by name or id), or None when there is none."""
        return self._found("inspecting container %s" % name, self.api.inspect_container, name)

    def _logs(self, name, **which):
        """What container ``name`` logged (stdout and stderr), the part ``which`` selects, or None when there
        is no such container."""
        found = self._found("reading the log of container %s" % name, self.api.logs, name, stdout=True, stderr=True,
                            **which)
        return None if found is None else found.decode("utf-8", "replace")

    def logs_since(self, name, since):
        """:meth:`_logs` since ``since`` (seconds since the epoch)."""
        return self._logs(name, since=int(since))

    def logs_tail(self, name, lines):
        """:meth:`_logs`, its last ``lines`` lines."""
        return self._logs(name, tail=lines)

    def stop(self, container_id, name, timeout):
        self._call("stopping container %s" % name, self.api.stop, container_id, timeout=timeout)

    def signal(self, container_id, name, signal):
        self._call("signalling container %s" % name, self.api.kill, container_id, signal=signal)

    def version(self):
        """The engine's ``GET /version`` answer (its ``Components`` name a Podman engine)."""
        return self._call("asking the engine its version", self.api.version)

    def _exec(self, what, container_id, argv, detach):
        """Run ``argv`` in a running container (``what`` it is, for errors); return the engine's inspection of it
        (when it is ``detach``-ed, once it has started)."""
        # Output attached and dropped: Podman 4.3 refuses to start an exec that attaches no stream ("must
        # provide at least one stream"); a detached one needs none.
        created = self._call(what, self.api.exec_create, container_id, argv, stdout=not detach, stderr=False)
        self._call(what, self.api.exec_start, created["Id"], detach=detach)
        return self._call(what, self.api.exec_inspect, created["Id"])

    def exec_status(self, container_id, name, argv):
        """Run ``argv`` in a running container; return its exit code."""
        return self._exec("running a check in container %s" % name, container_id, argv, False).get("ExitCode")

    def create_lock(self, name, image, command, labels):
        """Create and start the lock container ``name``: a small process that ends by itself
        (and the engine then removes the container) unless it is renewed. Return its id, or None
        when a container of that name exists already (the engine decides atomically)."""
        host_config = self.api.create_host_config(
            auto_remove=True, network_mode="none", read_only=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], mem_limit=16 * 1024 * 1024, pids_limit=8)
        try:
            created = self.api.create_container(image=image, name=name, entrypoint=["/bin/sh", "-c"],
                                                command=[command], user="65534:65534", labels=labels,
                                                host_config=host_config, network_disabled=True)
        except Exception as exc:
            if name_taken(getattr(getattr(exc, "response", None), "status_code", None), _text(exc)):
                return None
            raise self._failed("creating the lock container %s" % name, exc)
        return self._start_new(created["Id"], name)

    def exec_detached(self, container_id, name, argv):
        """Start ``argv`` in a running container and leave it running there; fail if it could not start."""
        found = self._exec("starting a process in container %s" % name, container_id, argv, True)
        if not found.get("Running") and found.get("ExitCode"):
            raise EngineError("the process %s in container %s on the Docker engine at %s ended with exit code %s"
                              % (argv[0], name, self.url, found.get("ExitCode")))

    def set_restart_policy(self, container_id, name, policy):
        self._call("setting the restart policy of container %s" % name, self.api.update_container, container_id,
                   restart_policy={"Name": policy})

    def replace(self, container_id, spec, method, stop_timeout=None, running=False, restart_policy=None, files=None):
        """Replace the container ``container_id`` by one made from ``spec``, of the same name; return its id.

        ``method`` (``_reconcile.replace_method``): ``side_by_side`` renames the old one aside, makes
        the new one and only then removes the old one; ``stop_first`` removes the old one first,
        stopped within ``stop_timeout`` seconds when given.

        Side by side, both carry the name's alias for a moment. Should the run die in that moment,
        the old one stops by itself (``_dataplane.replaced_watch``, started in it when it is
        ``running``) and stays stopped (restart policy no). When the new one cannot be made, the old
        one gets its name and its ``restart_policy`` back and keeps running.
        """
        name = spec["name"]
        if method == "stop_first":
            self.remove(container_id, name, stop_timeout=stop_timeout)
            return self.create(spec, files)
        aside = "%s.replaced-%s" % (name, container_id[:12])
        self.rename(container_id, name, aside)
        try:
            self.set_restart_policy(container_id, aside, "no")
            if running:
                self.exec_detached(container_id, aside, ["/bin/sh", "-c", replaced_watch(name)])
            new_id = self.create(spec, files)
        except EngineError:
            self.rename(container_id, aside, name)
            self.set_restart_policy(container_id, name, restart_policy or "no")
            raise
        self.remove(container_id, aside)
        return new_id

    def rename(self, container_id, name, new_name):
        self._call("renaming container %s to %s" % (name, new_name), self.api.rename, container_id, new_name)

    def start(self, container_id, name):
        self._call("starting container %s" % name, self.api.start, container_id)

    def remove(self, container_id, name, stop_timeout=None):
        """Remove a container, keeping its volumes.

        With ``stop_timeout`` it is first stopped gracefully (SIGTERM, then SIGKILL
        after that many seconds), so that a service can save its data.
        """
        try:
            if stop_timeout is not None:
                self.api.stop(container_id, timeout=stop_timeout)
            self.api.remove_container(container_id, force=True, v=False)
        except NotFound:
            return
        except Exception as exc:
            raise self._failed("removing container %s" % name, exc)

    def run_probe(self, image, network, entrypoint, command, environment, timeout, labels):
        """Run a short-lived container on ``network`` until it exits; return ``(exit code, output)``.

        The container is always removed, also when it does not finish in ``timeout`` seconds.
        """
        host_config = self.api.create_host_config(network_mode=network)
        created = self._call("creating a probe container", self.api.create_container, image=image,
                             entrypoint=entrypoint, command=command, environment=environment, labels=labels,
                             host_config=host_config)
        container_id = created["Id"]
        try:
            self.start(container_id, "probe")
            try:
                status = self.api.wait(container_id, timeout=timeout)
            except Exception as exc:  # the SDK raises a requests timeout, not a Docker error
                raise EngineError("the probe container did not finish within %d seconds on the Docker engine at %s (%s)"
                                  % (timeout, self.url, exc))
            output = self._call("reading the probe's output", self.api.logs, container_id, stdout=True, stderr=True)
            return status.get("StatusCode", -1), output.decode("utf-8", "replace")
        finally:
            self.remove(container_id, "probe")
