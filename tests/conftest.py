"""Shared by every test: the collection importable from the checkout, and the test bed's pytest plugin."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "istio_ops" / "gateways"

# `make collection` makes this link; create it for a bare `pytest` run too.
if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, LINK)
# Plain `pytest` puts tests/ on sys.path, not the repository root the plugin is imported from.
for path in (str(ROOT), str(COLLECTIONS)):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ["tests.testbed.pytest_testbed"]
