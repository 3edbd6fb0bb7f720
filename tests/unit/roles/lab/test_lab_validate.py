"""roles/lab: how many hosts it takes. Host number i's engine gets the address pool 10.(100+i).0.0/16,
so 155 hosts is the most; the 156th is refused, naming the limit, before anything is made."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
# ansible-test units has no ansible-playbook script beside its interpreter: run the module.
ANSIBLE_PLAYBOOK = [sys.executable, "-m", "ansible.cli.playbook"]


def lab_vars(tmp_path, count):
    return {"lab_hosts": ["v%d" % (i + 1) for i in range(count)], "lab_bridge": "xhvalid0",
            "lab_subnet": "10.77.99.0/24", "lab_state_dir": str(tmp_path / "state"),
            "lab_run_dir": "/run/xhvalid", "lab_inventory": str(tmp_path / "state" / "inventory.yml")}


def run(tmp_path, count, **include):
    """The lab role (by its path: no collection lookup) on localhost with count hosts."""
    book = tmp_path / "lab.yml"
    book.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": dict(include, name=os.path.join(ROOT, "roles", "lab"))}]}]))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    args = ["-i", "localhost,", str(book), "-e", json.dumps(lab_vars(tmp_path, count))]
    return subprocess.run(ANSIBLE_PLAYBOOK + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)


def test_155_hosts_pass_the_validation(tmp_path):
    proc = run(tmp_path, 155, tasks_from="validate")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_156_hosts_are_refused_naming_the_limit_and_nothing_is_made(tmp_path):
    proc = run(tmp_path, 156)
    assert proc.returncode != 0
    assert "lab_hosts lists 156 host(s); the lab supports 1 to 155" in proc.stdout, proc.stdout[-3000:]
    assert "10.(100+i).0.0/16" in proc.stdout
    assert not (tmp_path / "state").exists()
    assert not os.path.exists("/sys/class/net/xhvalid0") and not os.path.exists("/run/xhvalid")
