"""Make the checkout importable as ansible_collections.crosshost.ambassador (scripts/setup links it)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".venv", "collections")
if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "crosshost", "ambassador")):
    raise RuntimeError("run scripts/setup first: %s does not hold the collection link" % COLLECTIONS)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
