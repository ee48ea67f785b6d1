"""Fixtures of the integration tests: an Ansible runner and a Kubernetes client bound to the test bed."""

import json
import uuid

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import KubeClient, strip_noise

from .ansible_run import AnsibleRunner
from .audit import AuditLog


@pytest.fixture(scope="session")
def ansible(testbed):
    return AnsibleRunner(testbed.kubeconfig)


@pytest.fixture(scope="session")
def kube(testbed):
    return KubeClient({"kubeconfig": str(testbed.kubeconfig)})


@pytest.fixture(scope="session")
def audit(testbed):
    """The writes the bed's API server logged (tests/integration/audit.py)."""
    return AuditLog()


@pytest.fixture
def namespace_factory(kube):
    """Unique namespace names; every namespace a test names this way is deleted afterwards."""
    names = []

    def make(prefix="it"):
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:6])
        names.append(name)
        return name

    yield make
    for name in names:
        kube.delete("v1", "Namespace", name)


# What Kubernetes' and istiod's controllers add to every new namespace, at their own pace: not the
# collection's doing, so a snapshot taken right after a namespace is created must not count it.
CONTROLLER_OBJECTS = {
    ("ServiceAccount", "default"),
    ("ConfigMap", "kube-root-ca.crt"),
    ("ConfigMap", "istio-ca-root-cert"),
    ("ConfigMap", "istio-ca-crl"),
}


def snapshot(kube, namespaces):
    """Every object of the kinds the collection touches, by kind/namespace/name, without server-owned noise."""
    kinds = [
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ]
    state = {}
    for ns in namespaces:
        for api_version, kind in kinds:
            for obj in kube.list(api_version, kind, ns):
                meta = obj["metadata"]
                if (kind, meta["name"]) in CONTROLLER_OBJECTS:
                    continue
                state["%s/%s/%s" % (kind, ns, meta["name"])] = json.dumps(strip_noise(obj), sort_keys=True)
    for ns in namespaces:  # only these: other tests create and delete namespaces concurrently
        obj = kube.get("v1", "Namespace", ns)
        state["Namespace/" + ns] = json.dumps(strip_noise(obj), sort_keys=True) if obj else None
    return state
