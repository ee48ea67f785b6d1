"""What the reliability tests share: the counts the README reports, snapshots, foreign objects, orphans."""

import json
import time
import uuid
from pathlib import Path

import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import strip_noise
from tests.integration.conftest import snapshot

# Filled in by the tests, printed by the session-finish hook (conftest.py) and written to tests/output/.
COUNTS = {
    "inputs_tried": 0,  # bad inputs given to a module or role
    "inputs_rejected_cleanly": 0,  # ...that failed naming the parameter and the fix, with the cluster unchanged
    "faults_injected": 0,  # API server restarts, killed istioctl, 409s, webhook outages, double launches
    "faults_survived": 0,  # ...after which a re-run converged (changed, then not changed) with no orphans
    "foreign_objects_checked": 0,  # (foreign object, run) pairs compared before and after
    "objects_lost": 0,  # foreign objects deleted or changed by a module or role
    "secret_markers_searched": 0,  # (marker, output) pairs searched
    "secrets_leaked": 0,  # marker occurrences found in task output, results, -vvv logs or left-over files
}

GATEWAY_API = "networking.istio.io/v1"
# Written by istiod all the time (leader election, IP allocation): not anybody's data.
VOLATILE = {
    "ConfigMap/istio-system/istio-leader",
    "ConfigMap/istio-system/istio-namespace-controller-election",
    "ConfigMap/istio-system/istio-ip-autoallocate",
}
EXTRA_KINDS = [
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    (GATEWAY_API, "Gateway"),
]


def uid():
    return uuid.uuid4().hex[:6]


def full_snapshot(kube, namespaces):
    """conftest.snapshot() (Deployments, Services, ServiceAccounts, ConfigMaps, Secrets, HPAs, PDBs, Roles,
    RoleBindings and the Namespace objects) plus ReplicaSets, Pods, NetworkPolicies and Istio Gateways,
    without server-owned noise and without istiod's own churn."""
    namespaces = sorted(set(namespaces))
    state = snapshot(kube, namespaces)
    for ns in namespaces:
        for api_version, kind in EXTRA_KINDS:
            for obj in kube.list(api_version, kind, ns):
                key = "%s/%s/%s" % (kind, ns, obj["metadata"]["name"])
                state[key] = json.dumps(strip_noise(obj), sort_keys=True)
    return {k: v for k, v in state.items() if k not in VOLATILE}


def snapshot_diff(before, after):
    """Human-readable differences of two snapshots."""
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            state = "added" if key not in before else "removed" if key not in after else "changed"
            lines.append("%s %s" % (state, key))
    return lines


def failed_message(result):
    """The message of a failed module result, or of the first failed task of a playbook run."""
    if "tasks" in (result or {}):
        for task in result["tasks"]:
            for host in task["hosts"].values():
                if host.get("failed"):
                    return host.get("msg") or json.dumps(host)[:2000]
        return None
    return result.get("msg") if result and result.get("failed") else None


# -- foreign objects: another team's things, which no module or role may touch ---------------------------
def foreign_objects(namespace, tag):
    """Another team's Deployment, ConfigMap, Secret and Istio Gateway in `namespace`."""
    labels = {"app.kubernetes.io/part-of": "team-" + tag, "team": tag}
    app_labels = {"app": "team-app-" + tag}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "team-app-" + tag, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": app_labels},
                "template": {
                    "metadata": {"labels": app_labels},
                    "spec": {"containers": [{"name": "app", "image": "registry.example.com/team/app:1"}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "team-config-" + tag, "namespace": namespace, "labels": labels},
            "data": {"settings.yaml": "feature: on\n"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "team-secret-" + tag, "namespace": namespace, "labels": labels},
            "stringData": {"password": "team-owned-" + tag},
        },
        {
            "apiVersion": GATEWAY_API,
            "kind": "Gateway",
            "metadata": {"name": "team-gateway-" + tag, "namespace": namespace, "labels": labels},
            "spec": {
                "selector": {"istio": "team-" + tag},
                "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
            },
        },
    ]


def foreign_key(obj):
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"])


def foreign_state(kube, objects):
    """{key: strip_noise'd JSON or None} of seeded foreign objects (status and server metadata dropped)."""
    state = {}
    for obj in objects:
        key = foreign_key(obj)
        live = kube.get(*key)
        state[key] = json.dumps(strip_noise(live), sort_keys=True) if live else None
    return state


# -- what a gateway owns, and what it must not leave behind ------------------------------------------------
NAMESPACE_KINDS = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
]
# What Kubernetes and istiod put in every namespace.
AUTOMATIC = {
    ("ConfigMap", "kube-root-ca.crt"),
    ("ConfigMap", "istio-ca-root-cert"),
    ("ConfigMap", "istio-ca-crl"),
    ("ServiceAccount", "default"),
}


def namespace_inventory(kube, namespace):
    """(owned, canary, controlled, other) kind/name sets of everything in the namespace.

    controlled: objects whose controller owner still exists (ReplicaSets, Pods); owned: istioctl's owner label;
    canary: gateway_canary's mark; other: everything else but Kubernetes' and istiod's automatic objects. A pod
    whose ReplicaSet is gone, or a ReplicaSet whose Deployment is gone, is not `controlled`, so it shows up as
    owned or other, where the expected sets catch it.
    """
    objects = []
    for api_version, kind in NAMESPACE_KINDS:
        objects += kube.list(api_version, kind, namespace)
    uids = {o["metadata"]["uid"] for o in objects}
    owned, canary, controlled, other = set(), set(), set(), set()
    for obj in objects:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        entry = "%s/%s" % (obj["kind"], meta["name"])
        controllers = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
        if (obj["kind"], meta["name"]) in AUTOMATIC or meta.get("deletionTimestamp"):
            continue
        if controllers and all(o["uid"] in uids for o in controllers):
            controlled.add(entry)
        elif labels.get(L.OWNING_RESOURCE):
            owned.add(entry)
        elif labels.get(L.CANARY_OF):
            canary.add(entry)
        else:
            other.add(entry)
    return owned, canary, controlled, other


def desired_objects(result):
    """kind/name of what istio_gateway rendered (its `objects` result) in the gateway's namespace."""
    return {"%s/%s" % (o["kind"], o["name"]) for o in result.get("objects") or [] if o["action"] != "prune"}


def assert_no_orphans(kube, namespace, expected_owned, expected_canary=(), foreign=()):
    """The namespace holds exactly what the gateway owns (and its canary), the controllers' children of those,
    the seeded foreign objects, and nothing else; pods belong to live ReplicaSets."""
    owned, canary, controlled, other = namespace_inventory(kube, namespace)
    assert owned == set(expected_owned), "owned objects differ: extra %s, missing %s" % (
        sorted(owned - set(expected_owned)),
        sorted(set(expected_owned) - owned),
    )
    assert canary == set(expected_canary), "canary objects: %s, expected %s" % (sorted(canary), sorted(expected_canary))
    assert other == set(foreign), "orphans or unexpected objects: %s" % sorted(other - set(foreign))
    return owned, canary, controlled


def wait_namespace_settled(kube, namespace, timeout=60):
    """Wait until Kubernetes and istiod have put their own objects into a new namespace (the `default`
    ServiceAccount, kube-root-ca.crt, istiod's CA ConfigMaps), so a snapshot does not catch them arriving."""
    wanted = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
    for name in ("istio-ca-root-cert", "istio-ca-crl"):
        if kube.get("v1", "ConfigMap", name, "istio-system") is not None:
            wanted.add(("ConfigMap", name))
    deadline = time.monotonic() + timeout

    def present():
        found = {("ServiceAccount", o["metadata"]["name"]) for o in kube.list("v1", "ServiceAccount", namespace)}
        found |= {("ConfigMap", o["metadata"]["name"]) for o in kube.list("v1", "ConfigMap", namespace)}
        return wanted <= found

    while not present():
        assert time.monotonic() < deadline, "namespace %s never got %s" % (namespace, sorted(wanted))
        time.sleep(0.5)


def token_connection(kube, testbed, namespace, account):
    """host, ca_cert and a real token (TokenRequest API, one hour) of ServiceAccount namespace/account."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    token = kube.request("POST", "/api/v1/namespaces/%s/serviceaccounts/%s/token" % (namespace, account), body=body)
    state = json.loads(Path(testbed.kubeconfig).parent.joinpath("state.json").read_text())
    kubeconfig = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    return {
        "host": state["server"],
        "ca_cert": kubeconfig["clusters"][0]["cluster"]["certificate-authority"],
        "api_key": token["status"]["token"],
    }
