"""Lab hosts that look like real hosts, proven on the lab instance "ssh" (playbooks/vars/lab_ssh.yml).

Each host is reached over SSH at its own address with the key the lab makes, its host key checked
against the known_hosts the lab writes; a session there sees its own engine at the default socket
/var/run/docker.sock and its own /etc/crosshost-ambassador. ssh3 is reached as a non-root user
with sudo. The topology converges there as it does on real hosts, and the docker_host role gives
a host's Python the Docker SDK (the distribution's package, or a venv) without pip in the system.
"""

import os
import pwd
import signal
import subprocess
import time

import docker
import pytest
import yaml

from conftest import ROOT, VENV_BIN, ansible_playbook, exec_ok, processes_naming

VARS_FILE = os.path.join(ROOT, "playbooks", "vars", "lab_ssh.yml")
with open(VARS_FILE) as _handle:
    VARS = yaml.safe_load(_handle)
HOSTS = VARS["lab_hosts"]
STATE_DIR = VARS["lab_state_dir"]
INVENTORY = os.path.join(STATE_DIR, "inventory.yml")
SUDO_HOST = VARS["lab_sudo_hosts"][0]

SERVICES = {
    # redis on ssh2 used from ssh1 and ssh3, with mutual TLS between the ambassadors (files in /etc).
    "redis": {"host": "ssh2", "port": 6379, "image": "{{ lab_redis_image }}", "consumers": ["ssh1", SUDO_HOST],
              "tls": True},
    "echo": {"host": "ssh1", "port": 7777, "image": "{{ lab_client_image }}",
             "command": ["socat", "TCP-LISTEN:7777,fork,reuseaddr", "EXEC:/bin/cat"], "consumers": ["ssh2", SUDO_HOST]},
}

LOOK_PLAYBOOK = """
- name: Look around on each lab host, over SSH
  hosts: lab
  gather_facts: false
  tasks:
    - name: What the host sees
      ansible.builtin.command:
        argv: [python3, -c, "{{ script }}"]
      vars:
        script: |
          import docker, getpass, json, os
          info = docker.from_env().info()
          print(json.dumps({"user": getpass.getuser(), "socket": os.path.realpath("/var/run/docker.sock"),
                            "bundle": os.environ.get("REQUESTS_CA_BUNDLE"),
                            "labels": info["Labels"], "run": sorted(os.listdir("/run")),
                            "etc": sorted(os.listdir("/etc/crosshost-ambassador"))}))
      register: seen
      changed_when: false
"""


def write(path, data):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False)


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory):
    """The instance, up for this module and torn down after it."""
    tmpdir = tmp_path_factory.mktemp("ssh-runs")
    up = ansible_playbook(["playbooks/lab.yml", "-e", "@" + VARS_FILE], tmpdir)
    assert up.rc == 0, up.output[-4000:]
    yield tmpdir
    down = ansible_playbook(["playbooks/lab.yml", "-e", "@" + VARS_FILE, "-e", "lab_state=absent"], tmpdir)
    assert down.rc == 0, down.output[-4000:]
    assert not os.path.exists("/home/%s" % VARS["lab_sudo_user"])
    assert subprocess.run(["id", VARS["lab_sudo_user"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False).returncode != 0


@pytest.fixture
def topology(tmp_path):
    path = tmp_path / "topology"
    write(path / "hosts.yml", {"all": {"children": {"lab": None}}})
    write(path / "group_vars" / "all.yml", {"ambassador_services": SERVICES})
    return path


def inventory():
    with open(INVENTORY) as handle:
        return yaml.safe_load(handle)["all"]["children"]["lab"]


def client(host):
    """This machine's look inside a host's engine (its socket's machine-side path)."""
    return docker.DockerClient(base_url="unix://" + inventory()["hosts"][host]["lab_docker_socket"], timeout=60)


def site(ssh_lab, topology, *args):
    return ansible_playbook(["-i", INVENTORY, "-i", str(topology), "playbooks/site.yml"] + list(args), ssh_lab)


def test_the_inventory_reaches_hosts_over_ssh_like_real_hosts(ssh_lab):
    lab = inventory()
    for host in HOSTS:
        values = lab["hosts"][host]
        assert "ambassador_docker_host" not in values and "ansible_connection" not in values
        assert values["ansible_host"] == values["ambassador_advertise_address"]
    assert "ansible_connection" not in lab["vars"]
    assert lab["hosts"][SUDO_HOST]["ansible_user"] == VARS["lab_sudo_user"] and lab["hosts"][SUDO_HOST]["ansible_become"]
    assert lab["vars"]["ansible_python_interpreter"] == "/usr/bin/python3"
    assert lab["vars"]["ansible_host_key_checking"] is True
    assert "StrictHostKeyChecking=yes" in lab["vars"]["ansible_ssh_common_args"]
    # Root may not log in on the sudo host; a host key other than the lab's is refused.
    key = lab["vars"]["ansible_ssh_private_key_file"]
    known = os.path.join(STATE_DIR, "ssh", "known_hosts")
    ssh = ["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "ControlMaster=no"]
    refused = subprocess.run(ssh + ["-o", "UserKnownHostsFile=" + known, "root@" + lab["hosts"][SUDO_HOST]["ansible_host"],
                                    "true"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                             check=False)
    assert refused.returncode == 255 and "Permission denied" in refused.stdout
    with open(known) as handle:
        lines = handle.read().splitlines()
    swapped = os.path.join(str(ssh_lab), "swapped_known_hosts")
    with open(swapped, "w") as handle:  # ssh1's address with ssh2's key
        handle.write("%s %s\n" % (lines[0].split()[0], " ".join(lines[1].split()[1:])))
    spoofed = subprocess.run(ssh + ["-o", "UserKnownHostsFile=" + swapped, "-o", "StrictHostKeyChecking=yes",
                                    "root@" + lab["hosts"]["ssh1"]["ansible_host"], "true"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert spoofed.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in spoofed.stdout


def test_a_second_lab_run_and_a_check_run_change_nothing(ssh_lab):
    for extra in ([], ["--check"]):
        again = ansible_playbook(["playbooks/lab.yml", "-e", "@" + VARS_FILE] + extra, ssh_lab)
        assert again.rc == 0 and again.changed() == {"localhost": 0}, again.output[-4000:]


def test_a_session_sees_its_own_engine_at_the_default_socket_and_its_own_etc(ssh_lab, tmp_path, monkeypatch):
    playbook = tmp_path / "look.yml"
    playbook.write_text(LOOK_PLAYBOOK)
    # A client may pass the CA bundle variables (sshd's AcceptEnv), as tests of TLS engines do.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    run = ansible_playbook(["-i", INVENTORY, str(playbook), "-e", "ansible_ssh_extra_args='-o SendEnv=REQUESTS_CA_BUNDLE'"],
                           ssh_lab)
    assert run.rc == 0, run.output[-4000:]
    seen = dict((r["host"], yaml.safe_load(r["result"]["stdout"])) for r in run.results
                if r["action"] == "ansible.builtin.command")
    assert sorted(seen) == sorted(HOSTS)
    for host in HOSTS:
        assert seen[host]["labels"] == ["crosshost-lab.host=%s" % host]
        assert seen[host]["socket"] == inventory()["hosts"][host]["lab_docker_socket"]
        # /run is the host's own: no other host's run directory, no machine-wide sockets.
        assert "netns" not in seen[host]["run"] and "docker.sock" in seen[host]["run"]
        assert seen[host]["user"] == "root"  # ssh3: through sudo
        # ... and get the variables a client passes, except through sudo, which resets the environment.
        assert seen[host]["bundle"] == (None if host == SUDO_HOST else "/etc/ssl/certs/ca-certificates.crt")
    assert all(os.path.isdir(os.path.join(STATE_DIR, h, "etc", "crosshost-ambassador")) for h in HOSTS)


def test_the_topology_converges_over_ssh_with_its_tls_files_on_each_host_and_a_rerun_changes_nothing(
        ssh_lab, topology):
    run = site(ssh_lab, topology)
    assert run.rc == 0, run.output[-6000:]
    assert {"redis", "redis_ambassador", "echo_ambassador"} <= set(c.name for c in client("ssh2").containers.list())
    for host in HOSTS:
        # Each host's TLS files are in its own /etc (this machine's /etc has none of them).
        own = os.path.join(STATE_DIR, host, "etc", "crosshost-ambassador", "tls")
        assert os.listdir(own) == [host]
        assert sorted(os.listdir(os.path.join(own, host))) == ["ca.pem", "cert.pem", "key.pem"]
        assert not os.path.exists("/etc/crosshost-ambassador/tls/%s" % host)
    consumer = client("ssh1").containers.run(inventory()["vars"]["lab_client_image"], ["sleep", "100000"],
                                             name="consumer", detach=True, network="ambassador")
    try:
        assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    finally:
        consumer.remove(force=True)
    again = site(ssh_lab, topology)
    assert again.rc == 0 and again.changed() == dict((h, 0) for h in HOSTS), again.output[-4000:]


def test_the_sudo_host_needs_become_and_fails_clearly_without_it(ssh_lab, topology):
    converged = site(ssh_lab, topology)
    assert converged.rc == 0, converged.output[-6000:]
    # Something to do on the sudo host, which its user may not do without root.
    client(SUDO_HOST).containers.get("echo_ambassador").remove(force=True)
    run = site(ssh_lab, topology, "-e", "ansible_become=false")
    assert SUDO_HOST in run.failed_hosts(), run.output[-4000:]
    failed = [r for r in run.results if r["host"] == SUDO_HOST and r["status"] == "failed"]
    assert failed[0]["result"]["msg"] == (
        "host %s: the collection's tasks run as uid=%d(%s), not root, and need root for the Docker socket and for the "
        "TLS files under /etc. Fix: run the play with become: true (sudo), or connect as root."
        % (SUDO_HOST, pwd.getpwnam(VARS["lab_sudo_user"]).pw_uid, VARS["lab_sudo_user"]))
    assert "Traceback" not in run.output
    assert run.results_of("crosshost.ambassador.apply").get(SUDO_HOST) is None
    assert "echo_ambassador" not in [c.name for c in client(SUDO_HOST).containers.list(all=True)]
    # With become (the inventory's), it converges.
    again = site(ssh_lab, topology)
    assert again.rc == 0, again.output[-4000:]
    assert ("create", "echo_ambassador") in again.actions()[SUDO_HOST]


def test_a_tls_file_missing_on_the_host_fails_that_host_naming_it_and_its_engine_is_untouched(ssh_lab, topology):
    converged = site(ssh_lab, topology)
    assert converged.rc == 0, converged.output[-6000:]
    # The module runs on ssh1, over SSH: the file is looked for there, not at plan time on the controller.
    write(topology / "host_vars" / "ssh1.yml", {"ambassador_docker_host": "tcp://10.77.15.11:2376",
                                                "ambassador_docker_tls_verify": True,
                                                "ambassador_docker_ca_path": "/nonexistent/ca.pem"})
    before = sorted((c.name, c.id, c.status) for c in client("ssh1").containers.list(all=True))
    run = site(ssh_lab, topology)
    assert run.failed_hosts() == ["ssh1"], run.output[-4000:]
    msg = " ".join(run.results_of("crosshost.ambassador.apply")["ssh1"]["result"]["msg"].split())
    assert msg.startswith("host ssh1: /nonexistent/ca.pem (from ambassador_docker_ca_path) does not exist on this "
                          "host, for the Docker engine at tcp://10.77.15.11:2376. Fix:"), msg
    assert "Traceback" not in run.output
    assert sorted((c.name, c.id, c.status) for c in client("ssh1").containers.list(all=True)) == before


PREPARE_PLAYBOOK = """
- name: Prepare each host's Python, then converge with it
  hosts: lab
  gather_facts: false
  roles:
    - role: crosshost.ambassador.docker_host
    - role: crosshost.ambassador.topology
      when: converge | default(true) | bool
  post_tasks:
    - name: The Python the modules now run with
      ansible.builtin.setup:
        gather_subset: ["!all"]
"""


def wheels(tmp_path, requirement):
    """A directory of wheels for requirement: the lab's hosts have no route to a package index."""
    where = str(tmp_path / ("wheels-" + requirement.replace("=", "")))
    subprocess.run([os.path.join(VENV_BIN, "pip"), "download", "-q", "--only-binary=:all:", "-d", where, requirement],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return where


def sdk_versions(run):
    return dict((r["host"], r["result"]["stdout"]) for r in run.results
                if r["task"].endswith("Ask the interpreter for its Docker SDK version") and r["status"] == "ok")


def interpreters(run):
    return dict((r["host"], r["result"]["ansible_facts"]["ansible_python"]["executable"]) for r in run.results
                if r["action"] == "ansible.builtin.setup" and r["status"] == "ok")


def test_docker_host_finds_the_distribution_package_and_the_modules_run_with_it(ssh_lab, topology, tmp_path):
    playbook = tmp_path / "prepare.yml"
    playbook.write_text(PREPARE_PLAYBOOK)
    run = ansible_playbook(["-i", INVENTORY, "-i", str(topology), str(playbook)], ssh_lab)
    assert run.rc == 0, run.output[-6000:]
    # Debian 12's python3-docker, which the lab installed (its hosts share this machine's packages).
    assert sdk_versions(run) == dict((h, "5.0.3") for h in HOSTS)
    assert interpreters(run) == dict((h, "/usr/bin/python3") for h in HOSTS)
    assert run.changed() == dict((h, 0) for h in HOSTS), run.output[-4000:]


def test_docker_host_makes_a_venv_with_a_pinned_sdk_and_the_modules_run_with_it(ssh_lab, topology, tmp_path):
    playbook = tmp_path / "prepare.yml"
    playbook.write_text(PREPARE_PLAYBOOK)
    # One venv per host: lab hosts share this machine's file system.
    venvs = str(tmp_path / "venvs")
    args = ["-i", INVENTORY, "-i", str(topology), str(playbook), "--limit", "ssh1,%s" % SUDO_HOST,
            "-e", "docker_host_sdk_source=venv", "-e", "docker_host_venv=%s/{{ inventory_hostname }}" % venvs,
            "-e", "docker_host_sdk=docker==7.1.0",
            "-e", "docker_host_pip_extra_args='--no-index --find-links=%s'" % wheels(tmp_path, "docker==7.1.0")]
    run = ansible_playbook(args, ssh_lab)
    assert run.rc == 0, run.output[-6000:]
    assert sdk_versions(run) == {"ssh1": "7.1.0", SUDO_HOST: "7.1.0"}
    assert interpreters(run) == dict((h, "%s/%s/bin/python" % (venvs, h)) for h in ("ssh1", SUDO_HOST))
    assert not os.path.exists("/usr/lib/python3/dist-packages/docker-7.1.0.dist-info")
    again = ansible_playbook(args, ssh_lab)
    assert again.rc == 0 and again.changed() == {"ssh1": 0, SUDO_HOST: 0}, again.output[-4000:]


def test_docker_host_refuses_an_sdk_older_than_5_naming_host_interpreter_version_and_fix(ssh_lab, tmp_path):
    playbook = tmp_path / "prepare.yml"
    playbook.write_text(PREPARE_PLAYBOOK)
    venv = str(tmp_path / "old")
    run = ansible_playbook(["-i", INVENTORY, str(playbook), "--limit", "ssh1", "-e", "converge=false",
                            "-e", "docker_host_sdk_source=venv", "-e", "docker_host_venv=" + venv,
                            "-e", "docker_host_sdk=docker==4.4.4",
                            "-e", "docker_host_pip_extra_args='--no-index --find-links=%s'"
                            % wheels(tmp_path, "docker==4.4.4")], ssh_lab)
    assert run.failed_hosts() == ["ssh1"]
    (failed,) = [r for r in run.results if r["status"] == "failed"]
    assert " ".join(failed["result"]["msg"].split()) == (
        "host ssh1: %s/bin/python has the Docker SDK for Python 4.4.4; the collection's modules need 5.0 or later. "
        "Fix: set docker_host_sdk to a newer pinned version (e.g. docker==7.1.0)." % venv)


def leftovers():
    """What of this instance is still on the machine: processes, namespaces, mounts, files, the sudo user."""
    processes = processes_naming(VARS["lab_run_dir"], STATE_DIR)
    with open("/proc/self/mountinfo") as handle:
        mounts = [line.split()[4] for line in handle if VARS["lab_run_dir"] in line or STATE_DIR in line]
    netns = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return {
        "processes": processes,
        "mounts": mounts,
        "namespaces": [line.split()[0] for line in netns.splitlines() if line.split() and line.split()[0] in HOSTS],
        "files": [p for p in (STATE_DIR, VARS["lab_run_dir"], "/home/" + VARS["lab_sudo_user"],
                              "/etc/sudoers.d/crosshost-lab-" + VARS["lab_sudo_user"]) if os.path.lexists(p)],
    }


def test_absent_leaves_nothing_even_after_an_engine_with_a_container_was_killed(ssh_lab):
    client("ssh2").containers.run(inventory()["vars"]["lab_client_image"], ["sleep", "100000"], name="orphan",
                                  detach=True)
    # A crashed engine: its containerd, shim and container stay, with their mounts in the host's mount namespace.
    with open(os.path.join(VARS["lab_run_dir"], "ssh2", "docker.pid")) as handle:
        os.kill(int(handle.read()), signal.SIGKILL)
    time.sleep(1)
    assert leftovers()["processes"]
    down = ansible_playbook(["playbooks/lab.yml", "-e", "@" + VARS_FILE, "-e", "lab_state=absent"], ssh_lab)
    assert down.rc == 0, down.output[-4000:]
    left = leftovers()
    assert left == dict((k, []) for k in left), left
