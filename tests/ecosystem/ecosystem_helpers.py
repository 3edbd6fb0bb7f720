"""Helpers of the ecosystem tests: the tools a collection maintainer and its users run.

Each test runs a real tool (ansible-test, ansible-lint, molecule, ansible-galaxy,
ansible-builder, ansible-runner) as a user would, and fails when the tool fails.
The Docker hosts they need are lab instances of their own (never the default lab):
the "awx" instance (playbooks/vars/lab_awx.yml, described by inventory/awx/), brought up
once per session and torn down after; the "ver" instance of the support matrix
(playbooks/vars/lab_matrix.yml), brought up and torn down by test_matrix.py; the "pod" instance,
every host on Podman (playbooks/vars/lab_pod.yml), brought up by the integration tests that
test_podman.py runs on it and torn down by test_podman.py; Molecule's scenarios create and destroy theirs.
"""

import os
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
LOWEST_BIN = os.path.join(ROOT, ".venv-lowest", "bin")
AWX_LAB_VARS = os.path.join(ROOT, "playbooks", "vars", "lab_awx.yml")
with open(AWX_LAB_VARS) as _handle:
    # The key the "awx" instance's hosts let root in with (the lab makes it): what a user's SSH key is.
    AWX_SSH_KEY = os.path.join(yaml.safe_load(_handle)["lab_state_dir"], "ssh", "id_ed25519")
# An empty ansible.cfg for runs of the installed collection (not the checkout's).
CLEAN_CFG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clean.cfg")


class Result(object):
    def __init__(self, cmd, proc):
        self.cmd = cmd
        self.rc = proc.returncode
        self.output = proc.stdout

    def ok(self):
        assert self.rc == 0, "%s exited %d:\n%s" % (" ".join(self.cmd), self.rc, self.output[-8000:])
        return self


def run(cmd, cwd=ROOT, env=None, timeout=900, bin_dir=VENV_BIN):
    """Run a command with the virtualenv's tools first on PATH; return its exit code and output."""
    full_env = dict(os.environ)
    full_env.update({"PATH": bin_dir + os.pathsep + full_env.get("PATH", ""), "ANSIBLE_NOCOLOR": "1",
                     "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PY_COLORS": "0"})
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=str(cwd), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)
    return Result(cmd, proc)


def committed_tree(dest):
    """The committed files of the checkout (HEAD), as a user's clone or an AWX project sync has them."""
    os.makedirs(str(dest))
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", "HEAD"], stdout=subprocess.PIPE, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return str(dest)
