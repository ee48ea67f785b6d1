"""Paths, pinned versions and small helpers shared by the test bed modules."""

import os
import sys
import time
from pathlib import Path

TESTBED_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTBED_DIR.parents[1]
VERSIONS_FILE = TESTBED_DIR / "versions.env"
GOMOD_DIR = TESTBED_DIR / "gomod"
K8S_GOMOD_DIR = GOMOD_DIR / "k8s"
STATE_DIR = REPO_ROOT / ".testbed"
LOG_DIR = STATE_DIR / "logs"


def load_versions(path=VERSIONS_FILE):
    """Parse versions.env (plain KEY=VALUE lines, '#' comments)."""
    versions = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1) if "=" in line else (line, "")
            versions[key.strip()] = value.strip().strip("\"'")
    return versions


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "istio-ops-testbed"


def istio_minor(version):
    """'1.30-alpha.9739e10eb9d7' -> '1.30'."""
    return ".".join(version.split("-")[0].split(".")[:2])


def istioctl_path(bindir, version):
    return bindir / f"istio-{istio_minor(version)}" / "istioctl"


def pilot_path(bindir, version):
    return bindir / f"istio-{istio_minor(version)}" / "pilot-discovery"


def log(msg, source="testbed"):
    print(f"[{source} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fmt_elapsed(seconds):
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
