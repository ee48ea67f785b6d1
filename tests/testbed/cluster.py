"""The Kubernetes side of the bed: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok with fake nodes, all on 127.0.0.1."""

import yaml

from . import clusternet, pki, procs, stages
from .common import CLUSTER, LOG_DIR, STATE_DIR

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
NODE_COUNT = 2
NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
NODE_LEASE_SECONDS = 40
PKI_DIR = STATE_DIR / "pki"
KUBECONFIG = STATE_DIR / "kubeconfig"
KWOK_STAGES = STATE_DIR / "kwok-stages.yaml"
AUDIT_POLICY = STATE_DIR / "audit-policy.yaml"
# The writes of the admin user (the tests and the modules they run; controllers, kwok and istiod have users of
# their own), one JSON event per line: what tests count to prove a converged run writes nothing (audit.py).
AUDIT_LOG = LOG_DIR / "audit.log"
AUDIT_POLICY_TEXT = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [testbed-admin]
  verbs: [create, update, patch, delete, deletecollection]
- level: None
"""


def write_kubeconfig(path, server, ca, cert=None, key=None, token=None):
    user = {"token": token} if token else {"client-certificate": str(cert), "client-key": str(key)}
    # Named after the cluster, so KUBECONFIG=<one>:<other> merges the clusters' entries, not overwrites them.
    name = CLUSTER
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
                "users": [{"name": name, "user": user}],
                "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                "current-context": name,
            }
        )
    )
    path.chmod(0o600)
    return path


def generate_pki():
    """Cluster CA, API server serving cert and one client identity per component."""
    PKI_DIR.mkdir(parents=True, exist_ok=True)
    ca = pki.CA(PKI_DIR, "ca")
    ca.issue(
        "apiserver",
        "kube-apiserver",
        server=True,
        ips=["127.0.0.1", SERVICE_IP],
        dns=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    )
    ca.issue("admin", "testbed-admin", organization="system:masters")
    # The bootstrap RBAC policy grants these well-known user names what they need.
    ca.issue("controller-manager", "system:kube-controller-manager")
    ca.issue("scheduler", "system:kube-scheduler")
    # kwok writes node and pod status for every fake node, like a fleet of kubelets.
    ca.issue("kwok", "kwok", organization="system:masters")
    pki.service_account_keys(PKI_DIR)


def start_etcd(state, bindir, client_port, peer_port):
    url, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    procs.start(
        state,
        "etcd",
        [
            str(bindir / "etcd"),
            "--name=testbed",
            f"--data-dir={STATE_DIR / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testbed={peer}",
            # Throwaway data: skip fsync so slow CI disks do not stall the API server.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    procs.wait_for("etcd health", lambda: procs.http_get(f"{url}/health")[0] == 200, state)
    return url


def start_apiserver(state, bindir, etcd_url, port, egress_config):
    p = PKI_DIR
    AUDIT_POLICY.write_text(AUDIT_POLICY_TEXT)
    procs.start(
        state,
        "kube-apiserver",
        [
            str(bindir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--advertise-address=127.0.0.1",
            # 127.0.0.1 is no address for pods: publish no endpoints for the `kubernetes` Service.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--profiling=false",
            # Webhook and aggregated-API traffic goes through the bed's cluster network (clusternet.py).
            f"--egress-selector-config-file={egress_config}",
            f"--audit-policy-file={AUDIT_POLICY}",
            f"--audit-log-path={AUDIT_LOG}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",  # never rotated: readers keep an offset into it
        ],
    )
    server = f"https://127.0.0.1:{port}"
    procs.wait_for("kube-apiserver /readyz", lambda: apiserver_ready(server), state, timeout=180)
    return server


def apiserver_ready(server):
    status = procs.http_get(f"{server}/readyz", PKI_DIR / "ca.crt", PKI_DIR / "admin.crt", PKI_DIR / "admin.key")[0]
    return status == 200


def component_kubeconfig(server, name):
    return write_kubeconfig(
        STATE_DIR / f"{name}.kubeconfig", server, PKI_DIR / "ca.crt", PKI_DIR / f"{name}.crt", PKI_DIR / f"{name}.key"
    )


def start_controllers(state, bindir, server):
    p = PKI_DIR
    kcm = component_kubeconfig(server, "controller-manager")
    procs.start(
        state,
        "kube-controller-manager",
        [
            str(bindir / "kube-controller-manager"),
            f"--kubeconfig={kcm}",
            f"--authentication-kubeconfig={kcm}",
            f"--authorization-kubeconfig={kcm}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ],
    )
    sched = component_kubeconfig(server, "scheduler")
    procs.start(
        state,
        "kube-scheduler",
        [
            str(bindir / "kube-scheduler"),
            f"--kubeconfig={sched}",
            f"--authentication-kubeconfig={sched}",
            f"--authorization-kubeconfig={sched}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
        ],
    )
    kwok = component_kubeconfig(server, "kwok")
    stages.write_stages(bindir, KWOK_STAGES, state["pod_ready"], state["pod_ready_delay"])
    procs.start(
        state,
        "kwok",
        [
            str(bindir / "kwok"),
            f"--kubeconfig={kwok}",
            f"--config={KWOK_STAGES}",
            f"--manage-nodes-with-annotation-selector={'='.join(NODE_ANNOTATION)}",
            # The heartbeat stage updates node status only every ~10 min and counts on Leases
            # (kwokctl's default; a bare kwok leaves them off). Without them the node lifecycle
            # controller marks the nodes, and for good their pods, NotReady after ~50 s.
            f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
        ],
    )


def fake_node(index, kubelet_version):
    name = f"kwok-node-{index}"
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
            "annotations": {NODE_ANNOTATION[0]: NODE_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
        },
        # kwok hands out pod IPs from the node's podCIDR.
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "addresses": [{"type": "InternalIP", "address": f"192.0.2.{index + 1}"}],
            # Istio reads kubeletVersion (native sidecar support); kwok would say "kwok-0.8.0".
            # The client's model wants every nodeInfo field; kwok fills in the empty ones.
            "nodeInfo": {
                "kubeletVersion": kubelet_version,
                "architecture": "amd64",
                "operatingSystem": "linux",
                **dict.fromkeys(("bootID", "containerRuntimeVersion", "kernelVersion", "kubeProxyVersion"), ""),
                **dict.fromkeys(("machineID", "osImage", "systemUUID"), ""),
            },
        },
    }


def create_nodes(core, kubelet_version):
    for index in range(NODE_COUNT):
        core.create_node(fake_node(index, kubelet_version))


def nodes_ready(api):
    """Every fake node Ready and heartbeating through its Lease, as kubelets do."""
    from kubernetes import client

    nodes = client.CoreV1Api(api).list_node().items
    leases = {
        lease.metadata.name for lease in client.CoordinationV1Api(api).list_namespaced_lease("kube-node-lease").items
    }
    ready = [
        n.metadata.name
        for n in nodes
        if n.metadata.name in leases
        and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    return len(ready) >= NODE_COUNT


def default_service_account_exists(core):
    return any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account("default").items)


def api_client(kubeconfig):
    from kubernetes import config

    return config.new_client_from_config(str(kubeconfig))


def up(state, bindir, kubernetes_version):
    """Start the control plane and kwok; return once nodes are Ready and `default` SA exists."""
    from kubernetes import client

    etcd_port, peer_port, api_port = procs.free_ports(3)
    state["pod_ready"], state["pod_ready_delay"] = stages.settings()
    generate_pki()
    etcd_url = start_etcd(state, bindir, etcd_port, peer_port)
    server = f"https://127.0.0.1:{api_port}"
    egress_config = clusternet.up(state, server, PKI_DIR / "ca.crt", PKI_DIR / "admin.crt", PKI_DIR / "admin.key")
    start_apiserver(state, bindir, etcd_url, api_port, egress_config)
    write_kubeconfig(KUBECONFIG, server, PKI_DIR / "ca.crt", PKI_DIR / "admin.crt", PKI_DIR / "admin.key")
    state["server"] = server
    procs.save_state(state)
    start_controllers(state, bindir, server)
    api = api_client(KUBECONFIG)
    core = client.CoreV1Api(api)
    create_nodes(core, kubernetes_version)
    procs.wait_for(f"{NODE_COUNT} kwok nodes Ready, with Leases", lambda: nodes_ready(api), state)
    procs.wait_for("ServiceAccount default/default", lambda: default_service_account_exists(core), state)


def healthy(state):
    """True when every bed process still runs and the API server is ready."""
    if not state.get("server") or not all(procs.is_running(r) for r in state["processes"].values()):
        return False
    try:
        return apiserver_ready(state["server"])
    except OSError:
        return False
