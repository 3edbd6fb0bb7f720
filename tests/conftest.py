"""Make the checkout importable as ansible_collections.crosshost.ambassador.

Under ansible-test (the collection copied below an ansible_collections/ tree) that is
already so; from a checkout, scripts/setup links it under .venv/collections.
"""

import os
import sys

try:
    import ansible_collections.crosshost.ambassador.plugins.module_utils  # noqa: F401 pylint: disable=unused-import
except ImportError:
    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    COLLECTIONS = os.path.join(ROOT, ".venv", "collections")
    if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "crosshost", "ambassador")):
        raise RuntimeError("run scripts/setup first: %s does not hold the collection link" % COLLECTIONS)
    sys.path.insert(0, COLLECTIONS)
