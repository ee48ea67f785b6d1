"""The peers on the test bed: kubernetes.core (what users compare this collection with) and ansible-runner
(how AWX / Automation Controller runs its jobs). `make peers` links kubernetes.core into .build/collections.
"""

import copy
import os
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml
from kubernetes import client, config

from .ansible_run import COLLECTIONS
from .test_rbac import bed_connection, token_for
from .test_testbed import assert_injected_gateway_ready

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# ansible-runner finds ansible-playbook on PATH, as in an execution environment.
RUNNER_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])


@pytest.fixture(autouse=True)
def kubernetes_core():
    if not (COLLECTIONS / "ansible_collections" / "kubernetes" / "core" / "MANIFEST.json").exists():
        pytest.fail("kubernetes.core is not in .build/collections: run `make peers`")


@pytest.fixture(scope="module")
def api(testbed):
    return config.new_client_from_config(str(testbed.kubeconfig))


def play(*tasks):
    return yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}], sort_keys=False)


def run_play(ansible, text, extra_vars=None, env=None):
    """ansible-playbook of TEXT; the result of each task, by task name."""
    rc, parsed, raw = ansible.playbook(text, extra_vars=extra_vars, env=env)
    assert rc == 0 and parsed, raw[-4000:]
    return {task["name"]: task["hosts"]["localhost"] for task in parsed["tasks"]}


def test_kubernetes_core_k8s_creates_a_configmap_and_k8s_info_reads_it(ansible, api, namespace_factory):
    namespace = namespace_factory("peers-k8s")
    data = {"greeting": "hello from kubernetes.core", "count": "3"}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "peers", "namespace": namespace}}
    configmap["data"] = data
    results = run_play(
        ansible,
        play(
            {"name": "namespace", "kubernetes.core.k8s": {"kind": "Namespace", "name": namespace}},
            {"name": "create", "kubernetes.core.k8s": {"definition": configmap}},
            {"name": "again", "kubernetes.core.k8s": {"definition": configmap}},
            {
                "name": "read",
                "kubernetes.core.k8s_info": {"kind": "ConfigMap", "namespace": namespace, "name": "peers"},
            },
        ),
    )

    assert results["namespace"]["changed"] and results["create"]["changed"]
    assert not results["again"]["changed"]
    created = results["create"]["result"]
    [read] = results["read"]["resources"]
    assert read["data"] == created["data"] == data
    live = client.CoreV1Api(api).read_namespaced_config_map("peers", namespace)
    assert live.data == data
    assert live.metadata.uid == read["metadata"]["uid"] == created["metadata"]["uid"]


def read_only_identity(kube, namespace, name):
    """A ServiceAccount bound to (a copy of) docs/rbac/rbac.yml's read role; the objects to delete afterwards."""
    rbac = yaml.safe_load((ROOT / "docs" / "rbac" / "rbac.yml").read_text())["items"]
    read_role = next(d for d in rbac if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-read"))
    role = copy.deepcopy(read_role)
    role["metadata"] = {"name": name}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        role,
        binding,
    ]
    for obj in objects:
        kube.apply(obj)
    return [role, binding]


GATEWAY_INFO_PLAYBOOK = """\
- name: Istio gateways and their control planes, as a job template runs it
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the gateways
      istio_ops.gateways.gateway_info:
        namespace: "{{ gateways_namespace }}"
        istio_namespace: "{{ istio_namespace }}"
      register: info

    - name: The default revision serves the namespace
      ansible.builtin.assert:
        that: "'default' in info.control_planes | map(attribute='revision')"
"""


def write_private_data_dir(root, playbook, hosts, extravars, envvars):
    """What AWX hands ansible-runner for a job: project/, inventory/ and env/ (extravars, envvars, settings)."""
    for folder in ("project", "inventory", "env"):
        (root / folder).mkdir(parents=True)
    (root / "project" / "gateway_info.yml").write_text(playbook)
    (root / "inventory" / "hosts").write_text(hosts)
    (root / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    (root / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    (root / "env" / "settings").write_text(yaml.safe_dump({"job_timeout": 600}))


def test_ansible_runner_runs_gateway_info_as_awx_does(testbed, kube, namespace_factory, tmp_path):
    namespace = namespace_factory("peers-runner")
    name = "istio-ops-gateways-read-" + namespace
    cluster_objects = read_only_identity(kube, namespace, name)
    try:
        server, ca_cert = bed_connection(testbed.kubeconfig, tmp_path)
        token = token_for(kube, name, namespace)
        # AWX's "OpenShift or Kubernetes API Bearer Token" credential, injected as environment variables; no
        # kubeconfig in reach, so the job reads as the ServiceAccount (docs/awx.md).
        envvars = {
            "K8S_AUTH_HOST": server,
            "K8S_AUTH_API_KEY": token,
            "K8S_AUTH_VERIFY_SSL": "True",
            "K8S_AUTH_SSL_CA_CERT": ca_cert,
            "K8S_AUTH_KUBECONFIG": "",
            "KUBECONFIG": "",
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "PATH": RUNNER_PATH,
        }
        hosts = "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable
        extravars = {"gateways_namespace": namespace, "istio_namespace": "istio-system"}
        write_private_data_dir(tmp_path / "job", GATEWAY_INFO_PLAYBOOK, hosts, extravars, envvars)

        job = ansible_runner.run(
            private_data_dir=str(tmp_path / "job"),
            playbook="gateway_info.yml",
            ident="1",
            quiet=True,
        )
        events = list(job.events)
    finally:
        for obj in cluster_objects:
            kube.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])

    stdout = job.stdout.read()
    assert (job.status, job.rc) == ("successful", 0), stdout[-4000:]
    assert job.stats["ok"] == {"localhost": 2} and not job.stats["failures"], job.stats
    [result] = [
        e["event_data"]["res"]
        for e in events
        if e["event"] == "runner_on_ok" and e["event_data"].get("task_action") == "istio_ops.gateways.gateway_info"
    ]
    versions = {plane["revision"]: plane["version"] for plane in result["control_planes"]}
    assert versions["default"] == testbed.default_version
    assert versions[testbed.canary_revision] == testbed.canary_version
    assert result["gateways"] == []
    assert token not in stdout
    assert (tmp_path / "job" / "artifacts" / "1" / "job_events").is_dir()


def test_kubernetes_core_helm_installs_the_gateway_chart_that_gateway_info_then_lists(
    testbed, ansible, api, namespace_factory, tmp_path
):
    if testbed.chart_repo is None:
        pytest.skip("needs the local test bed's chart repository (TESTBED_KUBECONFIG points elsewhere)")
    namespace = namespace_factory("peers-helm")
    helm_homes = {f"HELM_{d}_HOME": str(tmp_path / d.lower()) for d in ("CACHE", "CONFIG", "DATA")}
    helm = {"binary_path": str(testbed.helm), "release_namespace": namespace}
    results = run_play(
        ansible,
        play(
            {
                "name": "install",
                "kubernetes.core.helm": dict(
                    helm,
                    name="istio-ingress",
                    chart_ref="gateway",
                    chart_repo_url=testbed.chart_repo,
                    chart_version=testbed.default_chart_version,
                    create_namespace=True,
                    # A LoadBalancer Service never gets an address on kwok, so `--wait` would not return.
                    values={"service": {"type": "ClusterIP"}},
                    wait=True,
                    wait_timeout="180s",
                ),
            },
            {"name": "release", "kubernetes.core.helm_info": dict(helm, name="istio-ingress")},
            {"name": "info", "istio_ops.gateways.gateway_info": {"namespace": namespace}},
        ),
        env=helm_homes,
    )

    assert results["install"]["changed"]
    release = results["release"]["status"]
    assert release["status"] == "deployed"
    assert release["chart"] == f"gateway-{testbed.default_chart_version}"
    assert_injected_gateway_ready(api, namespace, "istio-ingress", "app=istio-ingress", testbed.default_version)
    service = client.CoreV1Api(api).read_namespaced_service("istio-ingress", namespace)
    assert service.spec.type == "ClusterIP"
    [gateway] = results["info"]["gateways"]
    assert (gateway["name"], gateway["namespace"], gateway["revision"]) == ("istio-ingress", namespace, "default")
