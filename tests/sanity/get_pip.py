"""Offline stand-in for the get-pip.py that ansible-test downloads to bootstrap pip in its venvs.

ansible-test fetches get-pip.py from the internet (not reachable here) and runs it with pip's
install options and the packages to install (e.g. pip==24.2 setuptools wheel). This runs pip
from the wheel the interpreter itself bundles (ensurepip's, as CPython builds such as pyenv's
have it), else from Debian's (/usr/share/python-wheels, package python3-pip-whl; Debian's
python3.11 has no bundled one), with the same arguments: the packages themselves come from
the configured package index, as with get-pip.py. Debian's pip 23.0 does not run on Python 3.13.
scripts/ansible-test copies it to ~/.ansible/test/cache/get_pip_<version>.py, where ansible-test
looks first.
"""

import glob
import os
import runpy
import sys
import sysconfig

bundled = os.path.join(sysconfig.get_paths()["stdlib"], "ensurepip", "_bundled", "pip-*.whl")
wheels = sorted(glob.glob(bundled)) or sorted(glob.glob("/usr/share/python-wheels/pip-*.whl"))
if not wheels:
    sys.exit("get_pip stand-in: no pip wheel in %s or /usr/share/python-wheels (apt-get install python3-pip-whl)"
             % os.path.dirname(bundled))
sys.path.insert(0, wheels[-1])
# get-pip.py's own options; pip install has no --no-setuptools / --no-wheel (they mean: do not add those).
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = [sys.argv[0], "install", "--upgrade"] + args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
