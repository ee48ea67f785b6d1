"""Paths, pinned versions and small helpers shared by the test bed modules.

A process works on one cluster of the bed: TESTBED_CLUSTER names it (default `cluster-1`, the
primary). The primary's state is .testbed/, every other cluster's .testbed/clusters/<name>/, so
each has its own etcd, PKI, kubeconfigs, processes and logs. STATE_DIR and LOG_DIR are that
cluster's; nothing else in the bed knows which cluster it runs for.
"""

import os
import re
import sys
import time
from pathlib import Path

TESTBED_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTBED_DIR.parents[1]
VERSIONS_FILE = TESTBED_DIR / "versions.env"
GOMOD_DIR = TESTBED_DIR / "gomod"
K8S_GOMOD_DIR = GOMOD_DIR / "k8s"
BED_ROOT = REPO_ROOT / ".testbed"
CLUSTERS_DIR = BED_ROOT / "clusters"
PRIMARY_CLUSTER = "cluster-1"
# A path component and the kubeconfig's cluster/user/context name: a DNS label.
CLUSTER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")


def cluster_name(environ=None):
    """The cluster this process works on (TESTBED_CLUSTER, default the primary)."""
    environ = os.environ if environ is None else environ
    name = environ.get("TESTBED_CLUSTER") or PRIMARY_CLUSTER
    if not CLUSTER_NAME.fullmatch(name):
        raise SystemExit(f"TESTBED_CLUSTER={name!r}: use lower-case letters, digits and '-' (e.g. cluster-2)")
    return name


def state_dir(name):
    return BED_ROOT if name == PRIMARY_CLUSTER else CLUSTERS_DIR / name


CLUSTER = cluster_name()
# Without TESTBED_CLUSTER, `down` and `status` cover every cluster of the bed, not only the primary.
ALL_CLUSTERS = not os.environ.get("TESTBED_CLUSTER")
STATE_DIR = state_dir(CLUSTER)
LOG_DIR = STATE_DIR / "logs"


def of_cluster(path, name):
    """The same file (e.g. cluster.KUBECONFIG, a path under STATE_DIR) of cluster NAME."""
    return state_dir(name) / path.relative_to(STATE_DIR)


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
    # Clusters started together log to one terminal: name all but the primary.
    who = source if CLUSTER == PRIMARY_CLUSTER else f"{source} {CLUSTER}"
    print(f"[{who} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fmt_elapsed(seconds):
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
