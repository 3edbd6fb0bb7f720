"""Run integration tests on a lab instance other than the default lab.

    scripts/lab-instance-tests playbooks/vars/lab_mix.yml tests/integration/test_topology.py -k redis

The integration tests name the default lab's hosts (host1, host2, ...) and its run directory
(/run/crosshost-lab). Several instances share this machine, and ip netns names are host names, so
another instance has other host names. This copies tests/integration and inventory/lab to a
temporary directory with host<i> renamed to the instance's i-th lab host and /run/crosshost-lab/ to
its lab_run_dir, then runs pytest on the copies with LAB_ROOT (this checkout), LAB_VARS (the vars
file: the tests bring the instance up with it), LAB_TOPOLOGY and LAB_INVENTORY set. Nothing outside
the instance is touched. Arguments after the vars file go to pytest; test paths are relative to the
checkout.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def renamer(hosts, run_dir):
    def rename(text):
        text = re.sub(r"\bhost([1-9][0-9]?)\b",
                      lambda m: hosts[int(m.group(1)) - 1] if int(m.group(1)) <= len(hosts) else m.group(0), text)
        return text.replace("/run/crosshost-lab/", run_dir + "/")
    return rename


def copy_renamed(src, dst, rename):
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        target = os.path.join(dst, os.path.relpath(dirpath, src))
        os.makedirs(target, exist_ok=True)
        for name in filenames:
            with open(os.path.join(dirpath, name)) as handle:
                text = handle.read()
            with open(os.path.join(target, rename(name)), "w") as handle:
                handle.write(rename(text))


def main(argv):
    if not argv or not argv[0].endswith((".yml", ".yaml")):
        sys.stderr.write("usage: scripts/lab-instance-tests VARS_FILE [pytest arguments]\n")
        return 2
    vars_file = os.path.abspath(argv[0])
    with open(vars_file) as handle:
        values = yaml.safe_load(handle)
    hosts = values["lab_hosts"]
    state_dir = values.get("lab_state_dir", "/var/lib/crosshost-lab")
    if state_dir == "/var/lib/crosshost-lab":
        sys.stderr.write("%s is the default lab: run the tests directly\n" % argv[0])
        return 2
    rename = renamer(hosts, values.get("lab_run_dir", "/run/crosshost-lab"))
    work = tempfile.mkdtemp(prefix="lab-instance-tests-")
    try:
        with open(os.path.join(work, "conftest.py"), "w") as handle:
            handle.write("import sys\nsys.path.insert(0, %r)\n" % os.path.join(ROOT, ".venv", "collections"))
        copy_renamed(os.path.join(ROOT, "tests", "integration"), os.path.join(work, "tests", "integration"), rename)
        copy_renamed(os.path.join(ROOT, "inventory", "lab"), os.path.join(work, "topology"), rename)
        env = dict(os.environ, LAB_ROOT=ROOT, LAB_VARS=vars_file, LAB_TOPOLOGY=os.path.join(work, "topology"),
                   LAB_INVENTORY=os.path.join(state_dir, "inventory.yml"))
        args = [os.path.join(work, a) if a.startswith("tests/") else a for a in argv[1:]]
        return subprocess.call([os.path.join(ROOT, ".venv", "bin", "python"), "-m", "pytest", "-p", "no:cacheprovider",
                                "--rootdir", work] + args, cwd=work, env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
