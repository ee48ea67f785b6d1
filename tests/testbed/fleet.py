"""Several clusters: the fleet cluster-1..N and its Ansible inventory.

Each cluster is a whole bed of its own (etcd, API server, controllers, kwok nodes, istiods, PKI, free
ports) in its own state directory (common.state_dir). Any cluster is started by the one `testbed.py up`,
run here in a process of its own with TESTBED_CLUSTER=<name>; `testbed.py up --clusters N` starts
cluster-1 (the primary, .testbed/) to cluster-N that way.

The fleet is the clusters named cluster-<n>. Beds of other names (TESTBED_CLUSTER=reliability) are
separate and never in the inventory, so a fleet rollout cannot touch the bed another suite runs on.
.testbed/inventory.yml lists the fleet clusters that are up; every `up` and `down` rewrites it.
"""

import fcntl
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml

from . import procs
from .cluster import KUBECONFIG
from .common import BED_ROOT, CLUSTERS_DIR, PRIMARY_CLUSTER, REPO_ROOT, of_cluster, state_dir

FLEET_NAME = re.compile(r"cluster-([1-9][0-9]*)")
INVENTORY = BED_ROOT / "inventory.yml"
INVENTORY_TMP = BED_ROOT / "inventory.yml.tmp"
INVENTORY_LOCK = BED_ROOT / "inventory.lock"
INVENTORY_GROUP = "fleet"
# Entries of the primary's state directory that belong to the whole bed, not to the primary.
SHARED_ENTRIES = tuple(path.name for path in (CLUSTERS_DIR, INVENTORY, INVENTORY_TMP, INVENTORY_LOCK))
# Clusters `up` starts at once. A start is mostly waiting (readiness, `istioctl install`), so on
# 2 cores three together take about 60 % of three in a row (README "Several clusters").
DEFAULT_JOBS = 3


def names(count):
    return [f"cluster-{index}" for index in range(1, count + 1)]


def load_state(name):
    return procs.load_state(of_cluster(procs.STATE_FILE, name))


def recorded():
    """Every cluster with a state file (up, or half-started): the primary first, then by name."""
    others = sorted(path.name for path in CLUSTERS_DIR.iterdir()) if CLUSTERS_DIR.is_dir() else []
    return [name for name in [PRIMARY_CLUSTER, *others] if of_cluster(procs.STATE_FILE, name).exists()]


def members():
    """{name: state} of the fleet clusters whose `up` finished, in order of their number."""
    states = {name: load_state(name) for name in recorded() if FLEET_NAME.fullmatch(name)}
    ready = sorted((n for n, state in states.items() if (state or {}).get("ready")), key=lambda n: int(n.split("-")[1]))
    return {name: states[name] for name in ready}


def run(name, *args, check=True):
    """`testbed.py ARGS` for cluster NAME, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tests.testbed.testbed", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ, TESTBED_CLUSTER=name),
        stdin=subprocess.DEVNULL,
        check=check,
    )


def start(cluster_names, jobs=DEFAULT_JOBS, up_args=()):
    """`up` of each cluster, JOBS at a time; raise once all are done if any of them failed."""
    if not cluster_names:
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = pool.map(lambda name: run(name, "up", *up_args, check=False).returncode, cluster_names)
        failed = [name for name, code in zip(cluster_names, codes) if code]
    if failed:
        logs = ", ".join(str(state_dir(name) / "logs") for name in failed)
        raise RuntimeError(f"`up` failed for {', '.join(failed)} (logs in {logs}); the others are up")


def inventory():
    """Ansible inventory of the fleet clusters that are up: a host per cluster, on this machine."""
    hosts = {
        name: {
            "ansible_connection": "local",
            # The python running ansible-playbook: the venv, with the kubernetes client the modules use.
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "kubeconfig": str(of_cluster(KUBECONFIG, name)),
            "testbed_server": state.get("server"),
        }
        for name, state in members().items()
    }
    return {"all": {"children": {INVENTORY_GROUP: {"hosts": hosts}}}} if hosts else None


def write_inventory():
    """Rewrite .testbed/inventory.yml from the clusters' state files (none up: no file)."""
    BED_ROOT.mkdir(parents=True, exist_ok=True)
    with open(INVENTORY_LOCK, "w") as lock:  # clusters starting together each rewrite it
        fcntl.flock(lock, fcntl.LOCK_EX)
        content = inventory()
        if content is None:
            INVENTORY.unlink(missing_ok=True)
            return
        INVENTORY_TMP.write_text(yaml.safe_dump(content, sort_keys=False))
        os.replace(INVENTORY_TMP, INVENTORY)
