"""The support matrix: every ansible-core and Docker SDK that the README's support table claims, each run for real.

ansible-core (controller): the lowest that meta/runtime.yml admits (.venv-lowest, Python 3.11), the newest
2.20.x (Python 3.12) and the newest 2.21.x (Python 3.13), each: ansible-test sanity and units, and the installed
tarball's site.yml on the lab instance "ver" (playbooks/vars/lab_matrix.yml), with a move of redis, the second
run of each changing nothing, and without a version warning (COLLECTIONS_ON_ANSIBLE_VERSION_MISMATCH=error).

Docker SDK (where the apply module runs): the lowest supported (Debian 12's python3-docker 5.0.3), the main pin
7.1.0 (.venv) and the newest 7.2.0, each: the unit tests of the apply module's engine side and decision, and one
lab converge and move with the module running on that SDK (ansible_python_interpreter).

Each entry's virtualenv is built by `scripts/setup --matrix` (scripts/test runs it) from
tests/matrix/<entry>.txt. An entry whose Python the machine lacks fails, saying what to install.
The lab instance is brought up once for this module and torn down after it.
"""

import json
import os
import re

import pytest
import yaml

from ecosystem_helpers import CLEAN_CFG, LOWEST_BIN, ROOT, VENV_BIN, run

MATRIX = os.path.join(ROOT, "tests", "matrix")
MATRIX_LAB_VARS = os.path.join(ROOT, "playbooks", "vars", "lab_matrix.yml")
TOPOLOGY = os.path.join(MATRIX, "topology.yml")
CALLBACKS = os.path.join(ROOT, "tests", "integration", "callback_plugins")
HOSTS = ("ver1", "ver2", "ver3")
# The checkout as the collection (scripts/setup links it below .venv/collections), without its ansible.cfg.
CHECKOUT = {"ANSIBLE_CONFIG": CLEAN_CFG, "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, ".venv", "collections")}
# What a move of redis from ver2 to ver3, and back, does, host by host.
# redis keeps data (a volume): it moves stop-first, stopped where it was before it starts where it goes.
MOVE = {
    "ver1": [("recreate", "redis_ambassador")],
    "ver2": [("remove", "redis"), ("remove", "redis_ambassador"), ("stop", "redis")],
    "ver3": [("create", "redis"), ("create", "redis_ambassador")],
}
BACK = {
    "ver1": [("recreate", "redis_ambassador")],
    "ver2": [("create", "redis"), ("create", "redis_ambassador")],
    "ver3": [("remove", "redis"), ("remove", "redis_ambassador"), ("stop", "redis")],
}
# The one warning a move of redis must give: its volume stays behind (README: Moves).
DATA_LEFT = re.compile(r"\[WARNING\]: host ver\d.*?service\s+redis\s+(?:would\s+leave|leaves)\s+its\s+data.*?README:\s+Moves\)", re.S)


def _lowest_core():
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as handle:
        return yaml.safe_load(handle)["requires_ansible"].split(",")[0].lstrip(">=")


def _pins(entry):
    """The Python an entry's file names on its first line, and its pins (package -> version)."""
    with open(os.path.join(MATRIX, entry + ".txt")) as handle:
        lines = handle.read().splitlines()
    python = re.match(r"# python: ([0-9.]+)$", lines[0]).group(1)
    pins = dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    return python, pins


def entry_bin(entry):
    """The bin directory of a matrix entry's virtualenv; fail, saying what to install, when it was not built."""
    if entry == "lowest":
        return LOWEST_BIN
    if entry == "main":
        return VENV_BIN
    python, _pins_ = _pins(entry)
    bin_dir = os.path.join(ROOT, ".matrix", entry, "bin")
    if not os.path.exists(os.path.join(bin_dir, "python")):
        pytest.fail("matrix entry %s needs CPython %s, and scripts/setup found none (it looks in /usr/bin, "
                    "/usr/local/bin and ~/.pyenv/versions): install CPython %s (e.g. `pyenv install %s`, or your "
                    "distribution's python%s package), then run scripts/setup --matrix" % (entry, python, python, python, python))
    return bin_dir


def recap(output):
    """Host -> (changed, failed + unreachable) from ansible-playbook's PLAY RECAP."""
    found = {}
    for host, changed, unreachable, failed in re.findall(
            r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M):
        found[host] = (int(changed), int(unreachable) + int(failed))
    return found


@pytest.fixture(scope="module")
def matrix_lab():
    """The lab instance "ver" (ver1..ver3 on 10.77.13.0/24) for this module, torn down after it."""
    run(["ansible-playbook", "playbooks/lab.yml", "-e", "@" + MATRIX_LAB_VARS]).ok()
    with open(MATRIX_LAB_VARS) as handle:
        state_dir = yaml.safe_load(handle)["lab_state_dir"]
    yield os.path.join(state_dir, "inventory.yml")
    run(["ansible-playbook", "playbooks/lab.yml", "-e", "@" + MATRIX_LAB_VARS, "-e", "lab_state=absent"]).ok()


class Site(object):
    """Runs of crosshost.ambassador.site on the "ver" instance with one controller and one module interpreter."""

    def __init__(self, lab_inventory, tmp_path, bin_dir, env, extra=()):
        self.inventory = ["-i", lab_inventory, "-i", TOPOLOGY]
        self.tmp_path, self.bin_dir, self.extra = tmp_path, bin_dir, list(extra)
        self.env = dict(env)
        # The collection must not warn about the running ansible-core: make such a warning an error.
        self.env.update({"ANSIBLE_COLLECTIONS_ON_ANSIBLE_VERSION_MISMATCH": "error",
                         "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS, "ANSIBLE_CALLBACKS_ENABLED": "record_results"})
        self.count = 0

    def __call__(self, *args):
        """One run that must pass without a warning; returns (host -> sorted (action, name) of every apply step,
        host -> (changed, failed) of the recap), and keeps every task result in self.results."""
        self.count += 1
        record = str(self.tmp_path / ("record-%d.json" % self.count))
        env = dict(self.env, RECORD_RESULTS_FILE=record)
        result = run(["ansible-playbook"] + self.inventory + ["crosshost.ambassador.site"] + self.extra + list(args),
                     cwd=self.tmp_path, env=env, bin_dir=self.bin_dir).ok()
        output = DATA_LEFT.sub("", result.output)
        for bad in ("[DEPRECATION WARNING]", "[WARNING]", "[ERROR]"):
            assert bad not in output, result.output[-6000:]
        counts = recap(result.output)
        assert sorted(counts) == sorted(HOSTS) and all(f == 0 for _c, f in counts.values()), result.output[-4000:]
        with open(record) as handle:
            self.results = json.load(handle)["results"]
        actions = dict((h, []) for h in HOSTS)
        for r in self.results:
            if r["action"] == "crosshost.ambassador.apply" and r["status"] == "ok":
                actions[r["host"]].extend((a["action"], a["name"]) for a in r["result"]["actions"])
        return dict((h, sorted(a)) for h, a in actions.items()), counts

    def probe_redis(self, host="ver1"):
        """redis PING from a container on host, through its ambassador, with this run's interpreter (on the host,
        over SSH: its engine at the default socket)."""
        args = {"image": "{{ ambassador_image }}", "service": "redis",
                "port": 6379, "send": "PING\r\n", "expect": "+PONG"}
        result = run(["ansible"] + self.inventory + [host, "-m", "crosshost.ambassador.probe", "-a", json.dumps(args)]
                     + self.extra, cwd=self.tmp_path, env=self.env, bin_dir=self.bin_dir).ok()
        assert "+PONG" in result.output


def converge_and_move(site):
    """Converge, move redis ver2 -> ver3 for one run, move it back; each second run changes nothing."""
    site()
    actions, counts = site()
    assert all(c == 0 for c, _f in counts.values()), counts
    assert actions == dict((h, []) for h in HOSTS)
    moved, _counts = site("-e", "ambassador_placement_overrides=redis=ver3")
    assert moved == MOVE
    site.probe_redis()
    again, counts = site("-e", "ambassador_placement_overrides=redis=ver3")
    assert again == dict((h, []) for h in HOSTS) and all(c == 0 for c, _f in counts.values()), counts
    back, _counts = site()
    assert back == BACK
    site.probe_redis()


# ---------------------------------------------------------------------------------------------------------------
# ansible-core on the controller

CORE = ["lowest", "core-2.20", "core-2.21"]


def _core_version(entry):
    return _lowest_core() if entry == "lowest" else _pins(entry)[1]["ansible-core"]


@pytest.mark.parametrize("entry", CORE)
def test_ansible_test_sanity_and_units_pass_on_each_ansible_core(entry):
    bin_dir = entry_bin(entry)
    version = run([os.path.join(bin_dir, "ansible"), "--version"], bin_dir=bin_dir).ok()
    assert version.output.startswith("ansible [core %s]" % _core_version(entry)), version.output
    result = run([os.path.join(ROOT, "scripts", "ansible-test"), "all", os.path.dirname(bin_dir)], timeout=1800,
                 bin_dir=bin_dir).ok()
    assert 'Running sanity test "validate-modules"' in result.output and "FATAL" not in result.output
    units = sum(int(n) for n in re.findall(r"^=+ (\d+) passed", result.output, re.M))
    collected = run(["python", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/unit"]).ok()
    assert units and "%d tests collected" % units in collected.output


def installed_site(tarball, lab_inventory, tmp_path, bin_dir):
    """The tarball installed by that ansible-core's ansible-galaxy into an empty path; runs of site from there."""
    installed = str(tmp_path / "collections")
    env = {"ANSIBLE_CONFIG": CLEAN_CFG, "ANSIBLE_COLLECTIONS_PATH": installed}
    run(["ansible-galaxy", "collection", "install", tarball, "-p", installed], cwd=tmp_path, env=env,
        bin_dir=bin_dir).ok()
    where = run(["ansible-doc", "crosshost.ambassador.apply"], cwd=tmp_path, env=env, bin_dir=bin_dir).ok()
    assert installed in where.output, "ansible-doc did not find the installed copy"
    return Site(lab_inventory, tmp_path, bin_dir, env)


@pytest.mark.parametrize("entry", CORE)
def test_the_installed_tarball_converges_and_moves_on_each_ansible_core(entry, tarball, matrix_lab, tmp_path):
    converge_and_move(installed_site(tarball, matrix_lab, tmp_path, entry_bin(entry)))


def test_a_user_of_pip_install_ansible_14_sees_no_version_warning_and_site_converges(tarball, matrix_lab, tmp_path):
    bin_dir = entry_bin("ansible-14")
    version = run([os.path.join(bin_dir, "python"), "-m", "pip", "show", "ansible"], bin_dir=bin_dir).ok()
    assert "Version: %s" % _pins("ansible-14")[1]["ansible"] in version.output
    site = installed_site(tarball, matrix_lab, tmp_path, bin_dir)
    site()
    actions, counts = site()
    assert actions == dict((h, []) for h in HOSTS) and all(c == 0 for c, _f in counts.values()), counts
    site.probe_redis()


def test_a_controller_upgrade_from_the_lowest_to_the_newest_ansible_core_recreates_nothing(matrix_lab, tmp_path):
    """The spec hash of a container must not depend on the controller's ansible-core (or a new one recreates all)."""
    env = CHECKOUT
    Site(matrix_lab, tmp_path, entry_bin("lowest"), env)()
    for entry in CORE[1:]:
        actions, counts = Site(matrix_lab, tmp_path, entry_bin(entry), env)()
        assert actions == dict((h, []) for h in HOSTS) and all(c == 0 for c, _f in counts.values()), (entry, counts)


# ---------------------------------------------------------------------------------------------------------------
# The Docker SDK where the apply module runs

SDK = ["docker-5.0.3", "main", "docker-7.2.0"]


def _sdk_version(entry):
    if entry == "main":
        with open(os.path.join(ROOT, "requirements.txt")) as handle:
            return re.search(r"^docker==(\S+)$", handle.read(), re.M).group(1)
    return _pins(entry)[1]["docker"]


def _sdk_id(entry):
    return "docker-" + _sdk_version(entry)


@pytest.mark.parametrize("entry", SDK, ids=_sdk_id)
def test_the_apply_modules_unit_tests_pass_on_each_docker_sdk(entry):
    bin_dir = entry_bin(entry)
    python = os.path.join(bin_dir, "python")
    found = run([python, "-c", "import docker; print(docker.__version__)"], bin_dir=bin_dir).ok()
    assert found.output.strip() == _sdk_version(entry)
    result = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "tests/unit/plugins/module_utils/test_engine.py",
                  "tests/unit/plugins/module_utils/test_reconcile.py"], bin_dir=bin_dir).ok()
    assert re.search(r"^\d+ passed", result.output, re.M), result.output


@pytest.mark.parametrize("entry", SDK, ids=_sdk_id)
def test_the_lab_converges_and_moves_with_the_apply_module_on_each_docker_sdk(entry, matrix_lab, tmp_path):
    python = os.path.join(entry_bin(entry), "python")
    # The checkout's collection on the main controller; only the modules' interpreter changes.
    env = CHECKOUT
    site = Site(matrix_lab, tmp_path, VENV_BIN, env, extra=["-e", "ansible_python_interpreter=" + python])
    converge_and_move(site)


# Combinations that cannot work: the module says so in one sentence, on every host, and changes nothing.
BROKEN = {
    "broken-docker-5.0.3-requests-2.32": r"the Docker SDK for Python \(docker\) 5\.0\.3 cannot work with requests "
                                         r"2\.32\.3: requests 2\.32 refuses its unix-socket adapter \(Not supported "
                                         r"URL scheme http\+docker\)\. Fix: pip install 'docker>=7\.1\.0', or "
                                         r"'requests<2\.32\.0'",
    "broken-docker-5.0.3-py3.12": r"the Docker SDK for Python \(docker\) 5\.0\.3 is installed but cannot be imported "
                                  r"by Python 3\.12\.\d+ \(ModuleNotFoundError: No module named 'distutils'\)\. "
                                  r"Fix: pip install 'docker>=7\.1\.0'",
}


@pytest.mark.parametrize("entry", sorted(BROKEN))
def test_a_docker_sdk_that_cannot_work_fails_apply_with_one_clear_sentence(entry, matrix_lab, tmp_path):
    python = os.path.join(entry_bin(entry), "python")
    env = CHECKOUT
    result = run(["ansible-playbook", "-i", matrix_lab, "-i", TOPOLOGY, "crosshost.ambassador.site",
                  "-e", "ansible_python_interpreter=" + python], cwd=tmp_path, env=env)
    assert result.rc != 0
    for host in HOSTS:
        assert re.search(r"host %s: %s" % (host, BROKEN[entry]), result.output), result.output[-6000:]
    assert all(changed == 0 for changed, _f in recap(result.output).values()), result.output[-3000:]


@pytest.mark.parametrize("entry", CORE)
def test_the_gathered_default_address_is_read_from_ansible_facts_without_injected_fact_vars(entry, tmp_path,
                                                                                            matrix_lab):
    """INJECT_FACTS_AS_VARS is deprecated in 2.20 and False from 2.24: a host without an advertise address gets the
    default IPv4 address from ansible_facts, so the plan must not need the injected ansible_default_ipv4."""
    bin_dir = entry_bin(entry)
    with open(matrix_lab) as handle:
        inventory = yaml.safe_load(handle)
    ver3 = inventory["all"]["children"]["lab"]["hosts"]["ver3"]
    del ver3["ambassador_advertise_address"]
    # Reached by its address all the same, but with no ansible_host to take an address from.
    ver3["ansible_ssh_host"] = ver3.pop("ansible_host")
    lab_inventory = str(tmp_path / "lab.yml")
    with open(lab_inventory, "w") as handle:
        yaml.safe_dump(inventory, handle)
    site = Site(lab_inventory, tmp_path, bin_dir, dict(CHECKOUT, ANSIBLE_INJECT_FACT_VARS="False"))
    # --check: the gathered address is ver3's own (its sshd runs in its namespace), so nothing is to be applied.
    site("--check")
    results = [r for r in site.results if r["status"] == "ok"]
    (gathered,) = [r["result"]["ansible_facts"] for r in results
                   if r["host"] == "ver3" and r["action"] == "ansible.builtin.setup"]
    address = gathered["ansible_default_ipv4"]["address"]
    # The plan step runs once, on the play's first host, and plans every host.
    plans = [json.loads(r["result"]["plans_json"]["ver3"]) for r in results if r["action"] == "crosshost.ambassador.plan"]
    assert address and plans and plans[0]["advertise_address"] == address
