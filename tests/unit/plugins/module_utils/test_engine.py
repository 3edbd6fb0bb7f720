"""The apply module's engine side (_engine.Engine) through the installed Docker SDK, against a
stand-in engine on a unix socket that answers like dockerd 20.10 (API 1.41) and records every request.

Run with each Docker SDK the collection supports (tests/ecosystem/test_matrix.py): what reaches the engine
must be the same whatever the SDK version.
"""

from __future__ import annotations

import json
import os
import re
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from ansible_collections.crosshost.ambassador.plugins.module_utils._engine import Engine, EngineError, sdk_problem
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import (
    HASH_LABEL, OWNER_LABEL, container_spec)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = re.sub(r"^/v[0-9.]+", "", self.path)
        engine = self.server.engine
        engine.requests.append((self.command, path, body))
        status, answer = engine.answer(self.command, path)
        self._answer(status, answer)

    do_GET = do_POST = do_DELETE = _handle


class FakeEngine(object):
    """Answers per (method, path prefix); anything not set up is a 404 like dockerd's."""

    def __init__(self, path):
        self.requests = []
        self.answers = {("GET", "/version"): (200, {"ApiVersion": "1.41", "Version": "20.10.24",
                                                    "MinAPIVersion": "1.12"})}
        self.server = socketserver.ThreadingUnixStreamServer(path, _Handler)
        self.server.daemon_threads = True
        self.server.engine = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method, path):
        for (m, prefix), result in sorted(self.answers.items(), key=lambda kv: -len(kv[0][1])):
            if m == method and path.startswith(prefix):
                return result
        return 404, {"message": "page not found"}

    def sent(self, method, prefix):
        return [(path, body) for m, path, body in self.requests if m == method and path.startswith(prefix)]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine():
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "docker.sock")
    fake = FakeEngine(path)
    fake.url = "unix://" + path
    yield fake
    fake.stop()
    os.unlink(path)
    os.rmdir(directory)


def provider_ambassador():
    return container_spec({
        "name": "redis_ambassador", "kind": "ambassador", "side": "provider", "service": "redis",
        "image": "crosshost-lab/socat:1", "entrypoint": ["socat"],
        "command": ["TCP-LISTEN:6379,fork,reuseaddr,range=10.77.13.11/32", "TCP:redis:6379"],
        "env": {"A": "1"}, "volumes": ["/etc/xh/tls:/tls:ro"], "network": "ambassador", "aliases": [],
        "published": [{"host_ip": "10.77.13.12", "host_port": 6379, "port": 6379, "protocol": "tcp"}],
        "init": True, "restart_policy": "unless-stopped", "user": "65534:65534", "read_only": True,
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "memory": 268435456, "pids_limit": 1024,
        "cap_add": [], "sysctls": {}, "tls": False,
    })


def test_create_sends_the_whole_spec_to_the_engine_and_starts_the_container(engine):
    engine.answers[("POST", "/containers/create")] = (201, {"Id": "c1", "Warnings": []})
    engine.answers[("POST", "/containers/c1/start")] = (204, None)
    spec = provider_ambassador()
    assert Engine(engine.url).create(spec) == "c1"

    ((path, body),) = engine.sent("POST", "/containers/create")
    assert path == "/containers/create?name=redis_ambassador"
    host = body["HostConfig"]
    assert host["PortBindings"] == {"6379/tcp": [{"HostIp": "10.77.13.12", "HostPort": "6379"}]}
    assert host["RestartPolicy"] == {"Name": "unless-stopped"} and host["Init"] is True
    assert host["Binds"] == ["/etc/xh/tls:/tls:ro"] and host["NetworkMode"] == "ambassador"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == 268435456 and host["PidsLimit"] == 1024
    assert "CapAdd" not in host and "Sysctls" not in host
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"ambassador": {}}} or \
        body["NetworkingConfig"]["EndpointsConfig"]["ambassador"].get("Aliases") in (None, [])
    assert body["Image"] == "crosshost-lab/socat:1" and body["Entrypoint"] == ["socat"]
    assert body["Cmd"] == spec["command"] and body["Env"] == ["A=1"] and body["User"] == "65534:65534"
    assert body["ExposedPorts"] == {"6379/tcp": {}}
    assert body["Labels"][OWNER_LABEL] == "true" and body["Labels"][HASH_LABEL]
    assert engine.sent("POST", "/containers/c1/start")


def test_a_consumer_side_ambassador_gets_its_network_alias(engine):
    engine.answers[("POST", "/containers/create")] = (201, {"Id": "c2", "Warnings": []})
    engine.answers[("POST", "/containers/c2/start")] = (204, None)
    spec = dict(provider_ambassador(), side="consumer", aliases=["redis"], published=[], cap_add=["NET_ADMIN"],
                sysctls={"net.ipv4.ip_forward": "1"})
    Engine(engine.url).create(spec)
    ((_path, body),) = engine.sent("POST", "/containers/create")
    assert body["NetworkingConfig"]["EndpointsConfig"]["ambassador"]["Aliases"] == ["redis"]
    assert body["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    assert body["HostConfig"]["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert "PortBindings" not in body["HostConfig"] or not body["HostConfig"]["PortBindings"]


def test_a_taken_port_removes_the_half_made_container_and_says_how_to_fix_it(engine):
    engine.answers[("POST", "/containers/create")] = (201, {"Id": "c3", "Warnings": []})
    engine.answers[("POST", "/containers/c3/start")] = (
        500, {"message": "driver failed programming external connectivity: Bind for 10.77.13.12:6379 failed: "
                         "port is already allocated"})
    engine.answers[("DELETE", "/containers/c3")] = (204, None)
    with pytest.raises(EngineError) as failed:
        Engine(engine.url).create(provider_ambassador())
    text = str(failed.value)
    assert "starting container redis_ambassador failed on the Docker engine at %s" % engine.url in text
    assert "port is already allocated" in text and "ambassador_services.redis.published" in text
    ((path, _body),) = engine.sent("DELETE", "/containers/c3")
    assert "force=True" in path or "force=true" in path.lower()


def test_containers_lists_every_container_with_its_labels_and_state(engine):
    engine.answers[("GET", "/containers/json")] = (200, [
        {"Id": "a" * 64, "Names": ["/redis"], "Labels": {OWNER_LABEL: "true"}, "State": "running",
         "Image": "crosshost-lab/redis:1", "Ports": []},
        {"Id": "b" * 64, "Names": [], "Labels": None, "State": "exited", "Image": "x", "Ports": None},
    ])
    found = Engine(engine.url).containers()
    assert found == [
        {"id": "a" * 64, "name": "redis", "labels": {OWNER_LABEL: "true"}, "state": "running",
         "image": "crosshost-lab/redis:1", "ports": []},
        {"id": "b" * 64, "name": "b" * 12, "labels": {}, "state": "exited", "image": "x", "ports": []},
    ]
    ((path, _body),) = engine.sent("GET", "/containers/json")
    assert "all=1" in path or "all=True" in path


def test_an_image_the_engine_lacks_is_missing_not_an_error_and_a_network_is_matched_exactly(engine):
    engine.answers[("GET", "/networks")] = (200, [{"Name": "ambassador-old"}, {"Name": "ambassador", "Id": "n1"}])
    client = Engine(engine.url)
    assert client.has_image("crosshost-lab/socat:1") is False
    assert client.network("ambassador") == {"Name": "ambassador", "Id": "n1"}
    engine.answers[("GET", "/networks")] = (200, [{"Name": "ambassador-old"}])
    assert client.network("ambassador") is None


def test_an_engine_that_does_not_answer_is_named_in_the_error():
    with pytest.raises(EngineError) as failed:
        Engine("unix:///nonexistent/crosshost/docker.sock").containers()
    assert "unix:///nonexistent/crosshost/docker.sock" in str(failed.value)


def test_the_installed_sdk_is_one_the_apply_module_accepts():
    assert sdk_problem() is None


def test_replace_side_by_side_makes_the_new_one_before_the_old_one_goes_and_rolls_back(engine):
    old = "a" * 64
    engine.answers[("POST", "/containers/%s/rename" % old)] = (204, None)
    engine.answers[("POST", "/containers/%s/update" % old)] = (200, {"Warnings": []})
    engine.answers[("POST", "/containers/%s/exec" % old)] = (201, {"Id": "e1"})
    engine.answers[("POST", "/exec/e1/start")] = (200, None)
    engine.answers[("GET", "/exec/e1/json")] = (200, {"Running": True, "ExitCode": 0})
    engine.answers[("POST", "/containers/create")] = (201, {"Id": "c4", "Warnings": []})
    engine.answers[("POST", "/containers/c4/start")] = (204, None)
    engine.answers[("DELETE", "/containers/%s" % old)] = (204, None)
    spec = dict(provider_ambassador(), side="consumer", published=[])
    assert Engine(engine.url).replace(old, spec, "side_by_side", running=True) == "c4"
    order = [(m, p.split("?")[0]) for m, p, _b in engine.requests if m != "GET"]
    assert order == [("POST", "/containers/%s/rename" % old), ("POST", "/containers/%s/update" % old),
                     ("POST", "/containers/%s/exec" % old), ("POST", "/exec/e1/start"),
                     ("POST", "/containers/create"), ("POST", "/containers/c4/start"),
                     ("DELETE", "/containers/%s" % old)]
    assert "name=redis_ambassador.replaced-aaaaaaaaaaaa" in engine.sent("POST", "/containers/%s/rename" % old)[0][0]
    assert engine.sent("POST", "/containers/%s/update" % old)[0][1]["RestartPolicy"] == {"Name": "no"}
    # The new one cannot be made: the old one gets its name and restart policy back, and stays.
    engine.requests = []
    engine.answers[("POST", "/containers/create")] = (500, {"message": "no space left on device"})
    with pytest.raises(EngineError, match="no space left"):
        Engine(engine.url).replace(old, spec, "side_by_side", restart_policy="unless-stopped")
    renames = [p for p, _b in engine.sent("POST", "/containers/%s/rename" % old)]
    assert len(renames) == 2 and "name=redis_ambassador" in renames[1] and "replaced" not in renames[1]
    updates = [b["RestartPolicy"] for _p, b in engine.sent("POST", "/containers/%s/update" % old)]
    assert updates == [{"Name": "no"}, {"Name": "unless-stopped"}]
    assert not engine.sent("DELETE", "/containers/%s" % old) and not engine.sent("POST", "/containers/%s/exec" % old)


def test_replace_stop_first_stops_and_removes_the_old_one_before_making_the_new_one(engine):
    old = "b" * 64
    engine.answers[("POST", "/containers/%s/stop" % old)] = (204, None)
    engine.answers[("DELETE", "/containers/%s" % old)] = (204, None)
    engine.answers[("POST", "/containers/create")] = (201, {"Id": "c5", "Warnings": []})
    engine.answers[("POST", "/containers/c5/start")] = (204, None)
    assert Engine(engine.url).replace(old, provider_ambassador(), "stop_first", stop_timeout=10) == "c5"
    order = [(m, p.split("?")[0]) for m, p, _b in engine.requests if m != "GET"]
    assert order == [("POST", "/containers/%s/stop" % old), ("DELETE", "/containers/%s" % old),
                     ("POST", "/containers/create"), ("POST", "/containers/c5/start")]


@pytest.mark.parametrize("status, message", [
    (409, 'Conflict. The container name "/crosshost-ambassador-lock" is already in use by container "0123".'),
    # Podman 4.3's compatible API (seen on the lab's pod instance).
    (500, 'container create: creating container storage: the container name "crosshost-ambassador-lock" is already '
          'in use by 0123. You have to remove that container to be able to reuse that name: that name is already in use'),
])
def test_a_lock_container_whose_name_is_taken_is_not_acquired_on_docker_and_podman(engine, status, message):
    engine.answers[("POST", "/containers/create")] = (status, {"message": message})
    assert Engine(engine.url).create_lock("crosshost-ambassador-lock", "img", "sleep 1", {}) is None
    assert not engine.sent("POST", "/containers/0123/start")


def test_another_failure_to_create_the_lock_container_is_an_error_naming_it(engine):
    engine.answers[("POST", "/containers/create")] = (500, {"message": "no space left on device"})
    with pytest.raises(EngineError) as failed:
        Engine(engine.url).create_lock("crosshost-ambassador-lock", "img", "sleep 1", {})
    assert "crosshost-ambassador-lock" in str(failed.value) and "no space left" in str(failed.value)
