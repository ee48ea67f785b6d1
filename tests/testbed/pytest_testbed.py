"""pytest plugin of the test bed: the session fixtures `testbed` and `testbed_fleet`
and the `integration` marker.

`testbed` brings the local bed up once per run (building binaries on first use),
or reuses one that is already up and leaves it running. A bed this run started
is stopped at the end, unless TESTBED_KEEP=1. It is the cluster TESTBED_CLUSTER
names (default cluster-1, the primary), so two suites can run on beds of their own.
With TESTBED_KUBECONFIG=/path the fixture uses that cluster instead and builds
nothing; istioctl then comes from $ISTIOCTL / $ISTIOCTL_CANARY or PATH.

`testbed_fleet` does the same for cluster-1..FLEET_SIZE (see fleet.py).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from . import fleet
from . import testbed as bed
from .common import load_versions

FLEET_SIZE = 3  # clusters testbed_fleet makes sure of; a larger fleet that is up is described in full


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "integration: needs a Kubernetes cluster with Istio (the local test bed by default)"
    )


def _client_version(istioctl):
    out = subprocess.run(
        [str(istioctl), "version", "--remote=false", "-o", "json"], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)["clientVersion"]["version"]


def external_testbed(kubeconfig):
    """Describe a cluster the caller provides (TESTBED_KUBECONFIG)."""
    versions = load_versions()
    istioctl = os.environ.get("ISTIOCTL") or shutil.which("istioctl")
    if not istioctl:
        pytest.fail("TESTBED_KUBECONFIG is set but no istioctl: set ISTIOCTL or put it on PATH")
    canary = os.environ.get("ISTIOCTL_CANARY") or istioctl
    return bed.Testbed(
        kubeconfig=Path(kubeconfig),
        istioctl=Path(istioctl),
        istioctl_canary=Path(canary),
        canary_revision=os.environ.get("TESTBED_CANARY_REVISION", versions["ISTIO_CANARY_REVISION"]),
        default_version=_client_version(istioctl),
        canary_version=_client_version(canary),
        bin_dir=None,
        kubectl=Path(os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"),
    )


@pytest.fixture(scope="session")
def testbed():
    """The bed: kubeconfig, istioctl, istioctl_canary, canary_revision, default_version,
    canary_version, bin_dir, kubectl, ... (see tests/testbed/README.md)."""
    external = os.environ.get("TESTBED_KUBECONFIG")
    if external:
        yield external_testbed(external)
        return
    bed.up(user=os.getpid())
    try:
        yield bed.describe()
    finally:
        bed.release(os.getpid(), keep=_keep())


def _keep():
    return os.environ.get("TESTBED_KEEP") == "1"


@pytest.fixture(scope="module")
def testbed_fleet(testbed):
    """One Testbed per fleet cluster that is up, cluster-1..FLEET_SIZE at least (`name`, `kubeconfig`,
    `server`, ...). Clusters this module started are stopped at its end, unless TESTBED_KEEP=1: idle, each
    cluster's API server alone costs a tenth of a core, which the suites running beside it need."""
    if testbed.bin_dir is None:
        pytest.skip("a fleet needs the local test bed (TESTBED_KUBECONFIG points elsewhere)")
    user = str(os.getpid())
    others = [name for name in fleet.names(FLEET_SIZE) if name != testbed.name]  # `testbed` holds its own
    try:
        fleet.start(others, up_args=("--user", user))
        yield bed.describe_fleet()
    finally:
        for name in others:
            fleet.run(name, "release", "--user", user, *(["--keep"] if _keep() else []))
