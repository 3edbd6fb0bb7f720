"""Ways to reach an engine, proven on the lab instance "eng": eng3's engine listens only on
tcp://10.77.14.13:2376 with mutual TLS from the lab's CA (lab_tls_hosts), eng1 and eng2 on
their unix sockets.

eng3 is reached (1) through the ambassador_docker_* TLS variables and (2) through DOCKER_HOST,
DOCKER_TLS_VERIFY and DOCKER_CERT_PATH in the environment, as an AWX credential injects them;
both with REQUESTS_CA_BUNDLE set, which would otherwise replace the engine's CA. Bad settings
fail naming the host, the URL or file and the fix: at plan time with nothing changed anywhere
(missing file, unknown scheme), or at run time on that host only (client certificate of another
CA, a CA that did not sign the engine's certificate, a plaintext client).
"""

import os
import re
import subprocess

import docker
import pytest
import yaml
from docker.tls import TLSConfig

import eng_lab
# The module-scoped instance.
from eng_lab import eng  # noqa: F401 pylint: disable=unused-import
from conftest import ON_THE_CONTROLLER, ansible_playbook, exec_ok

TLS_HOST = "eng3"
TLS_URL = "tcp://%s:2376" % eng_lab.address(TLS_HOST)
CLIENT_DIR = os.path.join(eng_lab.STATE_DIR, "tls", "client")
TLS_VARIABLES = ("ambassador_docker_host", "ambassador_docker_tls_verify", "ambassador_docker_ca_path",
                 "ambassador_docker_client_cert", "ambassador_docker_client_key")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

SERVICES = {
    # On the TLS host, used from eng1.
    "redis": {"host": TLS_HOST, "port": 6379, "image": "{{ lab_redis_image }}"},
    # On eng1, used from the TLS host and eng2.
    "echo": {"host": "eng1", "port": 7777, "image": "{{ lab_client_image }}",
             "command": ["socat", "TCP-LISTEN:7777,fork,reuseaddr", "EXEC:/bin/cat"], "consumers": ["eng2", TLS_HOST]},
}


@pytest.fixture(autouse=True)
def ca_bundle(monkeypatch):
    """As on these machines and in many execution environments: requests would verify against this."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", SYSTEM_BUNDLE)
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False)


@pytest.fixture
def topology(tmp_path):
    """A topology inventory for eng1..eng3 (host_vars may be added per test)."""
    path = tmp_path / "topology"
    _write(str(path / "hosts.yml"), {"all": {"children": {"lab": None}}})
    # The modules run on the hosts, over SSH: they get the CA bundle variables of this environment too.
    _write(str(path / "group_vars" / "all.yml"), {
        "ambassador_services": SERVICES,
        "ansible_ssh_extra_args": "-o SendEnv=REQUESTS_CA_BUNDLE -o SendEnv=CURL_CA_BUNDLE"})
    _write(str(path / "host_vars" / "eng1.yml"), {"ambassador_consumes": ["redis"]})
    return path


def site(eng, topology, inventory=eng_lab.INVENTORY):
    return ansible_playbook(["-i", inventory, "-i", str(topology), "playbooks/site.yml"], eng)


def tls_client():
    tls = TLSConfig(ca_cert=os.path.join(CLIENT_DIR, "ca.pem"), verify=True,
                    client_cert=(os.path.join(CLIENT_DIR, "cert.pem"), os.path.join(CLIENT_DIR, "key.pem")))
    client = docker.DockerClient(base_url=TLS_URL, tls=tls, version="1.41", timeout=60)
    client.api.trust_env = False  # this test's own client: the engine's CA, not REQUESTS_CA_BUNDLE
    return client


def containers(client):
    return dict((c.name, (c.id, c.status)) for c in client.containers.list(all=True))


def _remove_echo_ambassador(client):
    """Something for the next run to do on that engine."""
    for old in client.containers.list(all=True, filters={"name": "^echo_ambassador$"}):
        old.remove(force=True)


def snapshot():
    snap = dict((h, containers(docker.DockerClient(base_url=eng_lab.socket_url(h), timeout=60)))
                for h in eng_lab.HOSTS if h != TLS_HOST)
    snap[TLS_HOST] = containers(tls_client())
    return snap


def redis_from_eng1():
    client = docker.DockerClient(base_url=eng_lab.socket_url("eng1"), timeout=60)
    for old in client.containers.list(all=True, filters={"name": "^consumer$"}):
        old.remove(force=True)
    consumer = client.containers.run("crosshost-lab/client:1", ["sleep", "100000"], name="consumer", detach=True,
                                     network="ambassador")
    try:
        return exec_ok(consumer, ["redis-cli", "-h", "redis", "ping"], expect="PONG")
    finally:
        consumer.remove(force=True)


def test_the_tls_engine_listens_only_on_tcp_with_mutual_tls(eng):
    assert not os.path.exists(os.path.join(eng_lab.RUN_DIR, TLS_HOST, "docker.sock"))
    plain = docker.APIClient(base_url=TLS_URL, version="1.41", timeout=10)
    with pytest.raises(docker.errors.APIError) as refused:
        plain.version(api_version=False)
    assert "Client sent an HTTP request to an HTTPS server" in refused.value.response.text
    assert tls_client().version()["ApiVersion"]


PROBE_PLAYBOOK = """
- name: Probe echo from the TLS host
  hosts: eng3
  gather_facts: false
  tasks:
    - name: Probe echo
      crosshost.ambassador.probe:
        docker:
          host: "{{ ambassador_docker_host }}"
          tls_verify: "{{ ambassador_docker_tls_verify }}"
          ca_path: "{{ ambassador_docker_ca_path }}"
          client_cert: "{{ ambassador_docker_client_cert }}"
          client_key: "{{ ambassador_docker_client_key }}"
        image: "{{ ambassador_image }}"
        service: echo
        port: 7777
        send: "hello-tls\\n"
        expect: hello-tls
"""


def test_tls_engine_reached_through_the_variables(eng, topology, tmp_path):
    assert os.environ["REQUESTS_CA_BUNDLE"] == SYSTEM_BUNDLE
    run = site(eng, topology)
    assert run.rc == 0, run.output[-6000:]
    assert {"redis", "redis_ambassador", "echo_ambassador"} <= set(containers(tls_client()))
    assert redis_from_eng1() == "PONG"
    again = site(eng, topology)
    assert again.rc == 0 and again.changed() == dict((h, 0) for h in eng_lab.HOSTS), again.output[-4000:]
    # probe reaches the engine the same way (connect()): echo on eng1, from eng3, through eng3's ambassador.
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE_PLAYBOOK)
    probe = ansible_playbook(["-i", eng_lab.INVENTORY, "-i", str(topology), str(playbook)], eng)
    assert probe.rc == 0, probe.output[-4000:]
    assert "hello-tls" in probe.results_of("crosshost.ambassador.probe")[TLS_HOST]["result"]["received"]


def test_tls_engine_reached_through_the_environment_as_an_awx_credential_injects_it(
        eng, topology, tmp_path, monkeypatch):
    with open(eng_lab.INVENTORY) as handle:
        inventory = yaml.safe_load(handle)
    host = inventory["all"]["children"]["lab"]["hosts"][TLS_HOST]
    for name in TLS_VARIABLES:
        host.pop(name)
    # A credential injects the variables into the job's environment on the controller (AWX: the
    # execution environment): modules that run there see them, modules on a host over SSH do not.
    host.update(ON_THE_CONTROLLER)
    bare = str(tmp_path / "inventory.yml")
    _write(bare, inventory)
    # Something to do on eng3: its ambassador of echo is gone.
    _remove_echo_ambassador(tls_client())
    monkeypatch.setenv("DOCKER_HOST", TLS_URL)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", CLIENT_DIR)
    run = site(eng, topology, inventory=bare)
    assert run.rc == 0, run.output[-6000:]
    actions = run.actions()
    assert ("create", "echo_ambassador") in actions[TLS_HOST], actions
    assert "echo_ambassador" in containers(tls_client())
    assert redis_from_eng1() == "PONG"


def _other_ca(tmp_path):
    """A CA the engine does not trust, and a client certificate it signed."""
    d = str(tmp_path / "other-ca")
    os.makedirs(d)

    def ssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other CA",
        "-keyout", "ca-key.pem", "-out", "ca.pem")
    ssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other client",
        "-addext", "extendedKeyUsage=clientAuth", "-keyout", "key.pem", "-out", "client.csr")
    ssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "2",
        "-copy_extensions", "copy", "-out", "cert.pem")
    return d


def _host_vars(topology, host, values):
    _write(str(topology / "host_vars" / ("%s.yml" % host)), values)


@pytest.mark.parametrize("case", ["client certificate of another CA", "CA that did not sign the engine", "plaintext"])
def test_a_bad_tls_setting_fails_that_host_only_naming_it_the_url_and_the_fix(eng, topology, tmp_path, case):
    converged = site(eng, topology)
    assert converged.rc == 0, converged.output[-4000:]
    other = _other_ca(tmp_path)
    expected = {
        "client certificate of another CA": (
            {"ambassador_docker_client_cert": other + "/cert.pem", "ambassador_docker_client_key": other + "/key.pem"},
            ["refused the client certificate %s/cert.pem (from ambassador_docker_client_cert)" % other, "Fix:"]),
        "CA that did not sign the engine": (
            {"ambassador_docker_ca_path": other + "/ca.pem"},
            ["is not signed by the CA in %s/ca.pem (from ambassador_docker_ca_path)" % other, "Fix:"]),
        "plaintext": (
            {"ambassador_docker_tls_verify": False, "ambassador_docker_ca_path": None,
             "ambassador_docker_client_cert": None, "ambassador_docker_client_key": None},
            ["speaks TLS, and no TLS is configured for it", "Fix: set ambassador_docker_tls_verify: true"]),
    }
    values, phrases = expected[case]
    _host_vars(topology, TLS_HOST, values)
    before = snapshot()
    run = site(eng, topology)
    assert run.failed_hosts() == [TLS_HOST], run.output[-4000:]
    msg = run.results_of("crosshost.ambassador.apply")[TLS_HOST]["result"]["msg"]
    assert msg.startswith("host %s: " % TLS_HOST) and TLS_URL in msg, msg
    for phrase in phrases:
        assert phrase in msg, msg
    assert "Traceback" not in run.output
    assert snapshot() == before


@pytest.mark.parametrize("values, problem", [
    # Files are looked for at plan time when the module runs on the controller (on a host over SSH: there).
    (dict(ON_THE_CONTROLLER, ambassador_docker_client_cert="/nonexistent/cert.pem",
          ambassador_docker_client_key="/nonexistent/key.pem"),
     "%s: ambassador_docker_client_cert: /nonexistent/cert.pem does not exist. Fix: create it, or correct the path."
     % TLS_HOST),
    ({"ambassador_docker_host": "tcps://10.77.14.13:2376"},
     "%s: ambassador_docker_host: 'tcps://10.77.14.13:2376' has the unknown scheme tcps://. Fix: use one of unix://, "
     "tcp://, http://, https://, ssh://, npipe://." % TLS_HOST),
    ({"ambassador_docker_client_key": None},
     "%s: ambassador_docker_client_key: is not set, but ambassador_docker_client_cert is. Fix: set both, the client "
     "certificate and its key, or neither." % TLS_HOST),
])
def test_bad_connection_settings_stop_the_plan_with_nothing_changed_anywhere(eng, topology, values, problem):
    converged = site(eng, topology)
    assert converged.rc == 0, converged.output[-4000:]
    _host_vars(topology, TLS_HOST, values)
    before = snapshot()
    run = site(eng, topology)
    assert run.rc != 0
    (plan,) = run.results_of("crosshost.ambassador.plan").values()
    assert problem in plan["result"]["problems"], plan["result"]["problems"]
    assert run.results_of("crosshost.ambassador.apply") == {}
    assert "Traceback" not in run.output
    assert snapshot() == before


SSH_HOST = "eng2"
SSH_URL = "ssh://root@%s" % eng_lab.address(SSH_HOST)


def _ssh_home(tmp_path, monkeypatch):
    """A HOME whose ~/.ssh has what a user's has for the lab's hosts: the key (in its config) and their host
    keys (known_hosts). paramiko reads them from $HOME; the OpenSSH client reads the passwd entry's home, not
    $HOME, so an `ssh` first on PATH points the real client at that config with -F (root's own ~/.ssh is
    not this test's to change)."""
    with open(eng_lab.INVENTORY) as handle:
        lab = yaml.safe_load(handle)["all"]["children"]["lab"]["vars"]
    known_hosts = re.search(r"UserKnownHostsFile=(\S+)", lab["ansible_ssh_common_args"]).group(1)
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    config = "Host %s\n  IdentityFile %s\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
    (ssh / "config").write_text(config % (eng_lab.address(SSH_HOST), lab["ansible_ssh_private_key_file"],
                                          ssh / "known_hosts"))
    with open(known_hosts) as handle:
        (ssh / "known_hosts").write_text(handle.read())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text("#!/bin/sh\nexec /usr/bin/ssh -F %s \"$@\"\n" % (ssh / "config"))
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", "%s%s%s" % (bin_dir, os.pathsep, os.environ["PATH"]))
    return str(home)


@pytest.mark.parametrize("use_ssh_client", [True, False], ids=["openssh", "paramiko"])
def test_an_engine_reached_by_an_ssh_url_from_the_controller(eng, topology, tmp_path, monkeypatch, use_ssh_client):
    _host_vars(topology, SSH_HOST, dict(ON_THE_CONTROLLER, ambassador_docker_host=SSH_URL,
                                        ambassador_docker_use_ssh_client=use_ssh_client))
    _ssh_home(tmp_path, monkeypatch)
    # Something to do on eng2: its ambassador of echo is gone.
    local = docker.DockerClient(base_url=eng_lab.socket_url(SSH_HOST), timeout=60)
    _remove_echo_ambassador(local)
    run = site(eng, topology)
    assert run.rc == 0, run.output[-6000:]
    assert ("create", "echo_ambassador") in run.actions()[SSH_HOST], run.actions()
    consumer = local.containers.run("crosshost-lab/client:1", ["sleep", "100000"], name="ssh-consumer", detach=True,
                                    network="ambassador")
    try:
        assert exec_ok(consumer, ["sh", "-c", "echo hello-ssh | socat -t2 - TCP:echo:7777"]) == "hello-ssh"
    finally:
        consumer.remove(force=True)
    again = site(eng, topology)
    assert again.rc == 0 and again.changed()[SSH_HOST] == 0, again.output[-4000:]


def test_an_ssh_url_with_an_unknown_host_key_fails_that_host_naming_the_url(eng, topology, tmp_path, monkeypatch):
    _host_vars(topology, SSH_HOST, dict(ON_THE_CONTROLLER, ambassador_docker_host=SSH_URL))
    home = _ssh_home(tmp_path, monkeypatch)
    os.unlink(os.path.join(home, ".ssh", "known_hosts"))
    before = snapshot()
    run = site(eng, topology)
    assert run.failed_hosts() == [SSH_HOST], run.output[-4000:]
    msg = run.results_of("crosshost.ambassador.apply")[SSH_HOST]["result"]["msg"]
    assert SSH_URL in msg and "known_hosts" in msg and "Traceback" not in run.output, msg
    assert snapshot() == before


@pytest.mark.parametrize("name, works", [("eng3", True), ("not-eng3.example", False)])
def test_tls_hostname_is_the_name_the_engines_certificate_is_checked_against(eng, topology, name, works):
    # The certificate names eng3 (DNS) and its address; the URL is by address, so only the name checked changes.
    _host_vars(topology, TLS_HOST, {"ambassador_docker_tls_hostname": name})
    _remove_echo_ambassador(tls_client())
    before = snapshot()
    run = site(eng, topology)
    if works:
        assert run.rc == 0, run.output[-4000:]
        assert ("create", "echo_ambassador") in run.actions()[TLS_HOST]
        return
    assert run.failed_hosts() == [TLS_HOST], run.output[-4000:]
    msg = run.results_of("crosshost.ambassador.apply")[TLS_HOST]["result"]["msg"]
    assert TLS_URL in msg and "is not valid for that name or address" in msg and "Traceback" not in run.output, msg
    assert snapshot() == before
