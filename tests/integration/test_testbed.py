"""Tests of the test bed itself: what the collection's integration tests rely on."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.testbed import clusternet, fleet, istio, procs, slowapi, stages
from tests.testbed.common import REPO_ROOT, state_dir

from .ansible_run import AnsibleRunner

pytestmark = pytest.mark.integration

SEED_OPERATOR = (Path(__file__).resolve().parents[1] / "testbed" / "seed-ingress-iop.yaml").read_text()


def wait_until(what, check, timeout=120, interval=1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def api(testbed):
    return config.new_client_from_config(str(testbed.kubeconfig))


@pytest.fixture
def namespace(api):
    """A fresh namespace, deleted after the test (in the background: its name is unique)."""
    core = client.CoreV1Api(api)
    name = f"testbed-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def deployment(name, replicas, labels):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "registry.k8s.io/pause:3.10", "ports": [{"containerPort": 8080}]}
                    ]
                },
            },
        },
    }


def rolled_out(apps, namespace, name):
    d = apps.read_namespaced_deployment(name, namespace)
    s = d.status
    return (
        s.observed_generation == d.metadata.generation
        and s.updated_replicas == d.spec.replicas
        and s.ready_replicas == d.spec.replicas
        and s.replicas == d.spec.replicas
    )


def ready_pods(core, namespace, selector):
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return {
        p.metadata.name: p
        for p in pods
        if not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    }


def test_deployment_becomes_ready_and_service_gets_endpoints(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    discovery = client.DiscoveryV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, deployment("web", 3, labels))
    core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "web"}, "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    )

    wait_until("deployment web ready", lambda: rolled_out(apps, namespace, "web"))

    def ready_endpoints():
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        ).items
        return [e for s in slices for e in s.endpoints or [] if e.conditions.ready]

    endpoints = wait_until("3 ready endpoints", lambda: len(ready_endpoints()) == 3 and ready_endpoints())
    assert {e.target_ref.name for e in endpoints} == set(ready_pods(core, namespace, "app=web"))


def test_istioctl_installs_seed_gateway_with_injection(testbed, api, namespace, tmp_path):
    # The seed as documented, moved into this test's namespace (and named after it)
    # so it cannot collide with gateways other tests install in istio-ingress.
    operator = yaml.safe_load(SEED_OPERATOR)
    operator["metadata"]["name"] = namespace
    operator["spec"]["components"]["ingressGateways"][0]["namespace"] = namespace
    iop = tmp_path / "ingress.yaml"
    iop.write_text(yaml.safe_dump(operator))

    result = subprocess.run(
        [str(testbed.istioctl), "install", "-y", "-f", str(iop), f"--kubeconfig={testbed.kubeconfig}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    assert_injected_gateway_ready(
        api, namespace, "istio-ingressgateway", "istio=ingressgateway", testbed.default_version
    )


def assert_injected_gateway_ready(api, namespace, name, selector, version):
    """Deployment NAME rolls out; its Ready pods carry the istio-proxy VERSION injected."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    wait_until("gateway ready", lambda: rolled_out(apps, namespace, name))
    pods = ready_pods(core, namespace, selector)
    assert pods
    for pod in pods.values():
        proxy = next(c for c in pod.spec.containers if c.name == "istio-proxy")
        assert proxy.image != "auto", "the injection webhook did not run"
        assert proxy.image.endswith(f"/proxyv2:{version}")


def test_rollout_restart_replaces_pods(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", 2, {"app": "web"}))
    wait_until("deployment web ready", lambda: rolled_out(apps, namespace, "web"))
    before = set(ready_pods(core, namespace, "app=web"))

    restarted_at = datetime.now(timezone.utc).isoformat()
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": restarted_at}}}}},
    )

    def replaced():
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = ready_pods(core, namespace, "app=web")
        return (
            rolled_out(apps, namespace, "web")
            and len(pods) == 2
            and len(ready) == 2
            and not set(ready) & before
            and set(ready)
        )

    after = wait_until("pods replaced", replaced)
    assert len(after) == 2 and not after & before


def kubectl(testbed, *args, kubeconfig=None, stdin=None, timeout=120, check=True):
    result = subprocess.run(
        [str(testbed.kubectl), f"--kubeconfig={kubeconfig or testbed.kubeconfig}", *args],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_kubectl_works_against_the_bed(testbed, api, namespace):
    versions = json.loads(kubectl(testbed, "version", "-o", "json").stdout)
    server = client.VersionApi(api).get_code().git_version
    assert versions["clientVersion"]["gitVersion"] == server
    assert versions["serverVersion"]["gitVersion"] == server

    manifest = yaml.safe_dump(deployment("web", 2, {"app": "web"}))
    kubectl(testbed, "apply", "-n", namespace, "-f", "-", stdin=manifest)
    kubectl(testbed, "rollout", "status", "-n", namespace, "deployment/web", "--timeout=120s")
    names = kubectl(testbed, "get", "pods", "-n", namespace, "-l", "app=web", "-o", "name").stdout.split()
    assert len(names) == 2


FAIL = "testbed.istio-ops.io/fail"


@pytest.fixture
def local_bed(testbed):
    """kwok stages, toxiproxy and the chart repository exist on the local bed only."""
    if testbed.bin_dir is None:
        pytest.skip("needs the local test bed (TESTBED_KUBECONFIG points elsewhere)")
    return testbed


READY_AFTER = "testbed.istio-ops.io/ready-after"


def annotated(manifest, annotations):
    manifest["spec"]["template"]["metadata"]["annotations"] = annotations
    return manifest


def rollout_seconds(apps, namespace, manifest):
    start = time.monotonic()
    apps.create_namespaced_deployment(namespace, manifest)
    wait_until("rollout", lambda: rolled_out(apps, namespace, manifest["metadata"]["name"]), interval=0.2)
    return time.monotonic() - start


def test_ready_after_annotation_delays_the_rollout(local_bed, api, namespace):
    apps = client.AppsV1Api(api)
    seconds = rollout_seconds(apps, namespace, annotated(deployment("slow", 2, {"app": "slow"}), {READY_AFTER: "6s"}))
    assert 6 <= seconds < 15


def test_rollout_takes_the_configured_time(local_bed, testbed, api, namespace):
    """Delayed bed: between the configured bounds; instant bed: within about a second."""
    apps = client.AppsV1Api(api)
    seconds = rollout_seconds(apps, namespace, deployment("web", 3, {"app": "web"}))
    if testbed.pod_ready == "delayed":
        low, high = (ms / 1000 for ms in stages.parse_delay(testbed.pod_ready_delay))
        assert low <= seconds < high + 5
    else:
        assert seconds < 3


def test_pod_marked_notready_never_becomes_ready_and_the_rollout_times_out(local_bed, testbed, api, namespace):
    core = client.CoreV1Api(api)
    manifest = yaml.safe_dump(annotated(deployment("bad", 1, {"app": "bad"}), {FAIL: "notready"}))
    kubectl(testbed, "apply", "-n", namespace, "-f", "-", stdin=manifest)
    result = kubectl(testbed, "rollout", "status", "-n", namespace, "deployment/bad", "--timeout=12s", check=False)
    assert result.returncode != 0
    assert "exceeded its progress deadline" in result.stderr or "timed out" in result.stderr
    [pod] = core.list_namespaced_pod(namespace, label_selector="app=bad").items
    assert pod.status.phase == "Running"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    assert pod.status.container_statuses[0].state.running


def test_pod_marked_crashloop_restarts_with_rising_count(local_bed, api, namespace):
    core = client.CoreV1Api(api)
    pod = {
        "metadata": {"name": "crash", "annotations": {FAIL: "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    }
    core.create_namespaced_pod(namespace, pod)

    def restarts():
        statuses = core.read_namespaced_pod("crash", namespace).status.container_statuses or []
        return statuses[0].restart_count if statuses else 0

    wait_until("a first restart", lambda: restarts() >= 1, timeout=30)
    first = restarts()
    wait_until("more restarts", lambda: restarts() > first + 1, timeout=30)
    status = core.read_namespaced_pod("crash", namespace).status
    container = status.container_statuses[0]
    assert container.state.waiting.reason == "CrashLoopBackOff"
    assert container.last_state.terminated.exit_code == 1
    assert not container.ready
    assert {c.type: c.status for c in status.conditions}["Ready"] == "False"


def request_seconds(api_client, count=5):
    """Fastest of COUNT GET /version calls (one connection, kept alive)."""
    version = client.VersionApi(api_client)
    times = []
    for _attempt in range(count):
        start = time.monotonic()
        version.get_code(_request_timeout=10)
        times.append(time.monotonic() - start)
    return min(times)


def test_slow_kubeconfig_adds_the_latency_and_can_be_cut(local_bed, testbed, api):
    slow = config.new_client_from_config(str(testbed.kubeconfig_slow))
    proxy = slowapi.Toxiproxy(testbed.toxiproxy_api, default_latency_ms=testbed.api_latency_ms)
    assert request_seconds(slow) >= testbed.api_latency_ms / 1000
    assert request_seconds(api) < testbed.api_latency_ms / 1000

    with proxy.slowed(300):
        assert request_seconds(slow, 2) >= 0.3
    assert request_seconds(slow) < 0.3

    with proxy.cut():
        fresh = config.new_client_from_config(str(testbed.kubeconfig_slow))
        fresh.configuration.retries = 0
        with pytest.raises(Exception, match="(?i)refused|reset|max retries|connection"):
            client.VersionApi(fresh).get_code(_request_timeout=5)
        assert request_seconds(api, 1) < 1  # the direct path is untouched
    reconnected = config.new_client_from_config(str(testbed.kubeconfig_slow))
    assert request_seconds(reconnected, 1) >= testbed.api_latency_ms / 1000
    assert set(proxy.toxics()) == {"latency"}


def test_helm_installs_the_gateway_chart_from_the_local_repository(local_bed, testbed, api, namespace, tmp_path):
    home = {f"HELM_{d}_HOME": str(tmp_path / d.lower()) for d in ("CACHE", "CONFIG", "DATA")}
    env = dict(os.environ, **home, KUBECONFIG=str(testbed.kubeconfig))

    def helm(*args):
        result = subprocess.run(
            [str(testbed.helm), *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    helm("repo", "add", "istio", testbed.chart_repo)
    listed = helm("search", "repo", "istio/gateway", "--devel", "--versions", "-o", "json")
    assert testbed.default_chart_version in {c["version"] for c in json.loads(listed)}
    helm("install", "istio-ingress", "istio/gateway", "--version", testbed.default_chart_version, "-n", namespace)

    assert_injected_gateway_ready(api, namespace, "istio-ingress", "app=istio-ingress", testbed.default_version)
    [release] = json.loads(helm("list", "-n", namespace, "-o", "json"))
    assert release["status"] == "deployed"
    assert release["chart"] == f"gateway-{testbed.default_chart_version}"
    assert release["app_version"] == testbed.default_version


def istioctl(testbed, binary, *args):
    result = subprocess.run(
        [str(binary), *args, f"--kubeconfig={testbed.kubeconfig}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def proxy_versions(core, namespace, selector):
    """Versions of the istio-proxy the Ready pods got (a native sidecar, i.e. an init container, on k8s 1.35)."""
    pods = ready_pods(core, namespace, selector).values()
    containers = [c for p in pods for c in [*(p.spec.init_containers or []), *p.spec.containers]]
    images = [c.image for c in containers if c.name == "istio-proxy"]
    return {image.rsplit(":", 1)[-1] for image in images} if len(images) == len(pods) else {"(not injected)"}


def tag_injects(core, tag, version):
    """Wait until the API server's webhook informer has the tag's webhook as istioctl just wrote it."""
    wait_until(
        f"tag {tag} injecting {version}",
        lambda: istio.injected_image(core, istio.ControlPlane(tag, version, None, None)).endswith(f":{version}"),
    )


def test_a_pod_labelled_with_a_tag_is_injected_by_the_revision_the_tag_points_at(testbed, api, namespace):
    """The tag's webhook names the istiod Service; the API server reaches it as on a real cluster."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    istioctl(testbed, testbed.istioctl, "tag", "set", tag, "--revision", "default", "-y")
    try:
        tag_injects(core, tag, testbed.default_version)
        labels = {"app": "web", "istio.io/rev": tag}
        apps.create_namespaced_deployment(namespace, deployment("web", 1, labels))
        wait_until(
            "web on the default revision",
            lambda: proxy_versions(core, namespace, "app=web") == {testbed.default_version},
        )

        istioctl(
            testbed,
            testbed.istioctl_canary,
            "tag",
            "set",
            tag,
            "--revision",
            testbed.canary_revision,
            "--overwrite",
            "-y",
        )
        tag_injects(core, tag, testbed.canary_version)
        restarted = {"kubectl.kubernetes.io/restartedAt": datetime.now(timezone.utc).isoformat()}
        apps.patch_namespaced_deployment(
            "web", namespace, {"spec": {"template": {"metadata": {"annotations": restarted}}}}
        )
        wait_until(
            f"web restarted onto {testbed.canary_revision}",
            lambda: (
                rolled_out(apps, namespace, "web")
                and proxy_versions(core, namespace, "app=web") == {testbed.canary_version}
            ),
        )
    finally:
        istioctl(testbed, testbed.istioctl_canary, "tag", "remove", tag, "-y")


def gateway_api_gateway(name, labels):
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "labels": labels, "annotations": {"networking.istio.io/service-type": "ClusterIP"}},
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }


def conditions(obj):
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}


@pytest.mark.parametrize("revision", ["default", "canary"])
def test_a_gateway_api_gateway_gets_its_deployment_from_istiod(testbed, api, namespace, revision):
    """istiod's deployment controller renders the Gateway's Deployment, Service and ServiceAccount; its pods are
    injected by the revision the Gateway names (none: the default revision)."""
    custom, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
    labels, version = {}, testbed.default_version
    if revision == "canary":
        labels, version = {"istio.io/rev": testbed.canary_revision}, testbed.canary_version
    group = ("gateway.networking.k8s.io", "v1", namespace, "gateways")
    custom.create_namespaced_custom_object(*group, gateway_api_gateway("web", labels))

    def programmed():
        gateway = custom.get_namespaced_custom_object(*group, "web")
        return conditions(gateway) == {"Accepted": "True", "Programmed": "True"} and gateway

    gateway = wait_until("Gateway web Accepted and Programmed", programmed)
    assert gateway["status"]["addresses"] == [{"type": "Hostname", "value": f"web-istio.{namespace}.svc.cluster.local"}]
    assert_injected_gateway_ready(api, namespace, "web-istio", "gateway.networking.k8s.io/gateway-name=web", version)
    assert core.read_namespaced_service("web-istio", namespace).spec.type == "ClusterIP"
    core.read_namespaced_service_account("web-istio", namespace)
    deployment = apps.read_namespaced_deployment("web-istio", namespace)
    [owner] = deployment.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Gateway", "web", gateway["metadata"]["uid"])


def test_pods_injected_by_a_broken_revision_fail_until_it_is_healed(local_bed, testbed, api, namespace):
    """istio.fail_injected_pods: every pod the canary revision injects crash-loops, the default revision's
    pods are fine, and after healing a restart brings the canary's pods up."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    canary = testbed.canary_revision
    istio.fail_injected_pods(core, canary, "crashloop")
    try:
        apps.create_namespaced_deployment(
            namespace, deployment("stable", 1, {"app": "stable", "istio.io/rev": "default"})
        )
        apps.create_namespaced_deployment(namespace, deployment("canary", 1, {"app": "canary", "istio.io/rev": canary}))
        wait_until("stable ready", lambda: rolled_out(apps, namespace, "stable"))
        assert proxy_versions(core, namespace, "app=stable") == {testbed.default_version}
        [stable] = ready_pods(core, namespace, "app=stable").values()
        assert FAIL not in (stable.metadata.annotations or {})

        def crashing():
            pods = core.list_namespaced_pod(namespace, label_selector="app=canary").items
            restarts = [s.restart_count for p in pods for s in p.status.container_statuses or []]
            return len(pods) == 1 and restarts and min(restarts) >= 2 and pods[0]

        pod = wait_until("the canary's pod crash-looping", crashing)
        assert pod.metadata.annotations[FAIL] == "crashloop"
        assert not ready_pods(core, namespace, "app=canary")
    finally:
        istio.fail_injected_pods(core, canary, None)
    restarted = {"kubectl.kubernetes.io/restartedAt": datetime.now(timezone.utc).isoformat()}
    apps.patch_namespaced_deployment(
        "canary", namespace, {"spec": {"template": {"metadata": {"annotations": restarted}}}}
    )
    wait_until(
        "canary healed",
        lambda: (
            rolled_out(apps, namespace, "canary")
            and proxy_versions(core, namespace, "app=canary") == {testbed.canary_version}
        ),
    )


# -- several clusters (testbed_fleet: cluster-1..3, each a bed of its own) ----------------------------
@pytest.fixture(scope="module")
def fleet_beds(testbed_fleet):
    beds = testbed_fleet[:3]
    assert [b.name for b in beds] == fleet.names(3)
    return beds


def fleet_apis(beds):
    return [config.new_client_from_config(str(b.kubeconfig)) for b in beds]


def kube_system_uid(api):
    return client.CoreV1Api(api).read_namespace("kube-system").metadata.uid


def test_fleet_clusters_are_separate_and_each_answers(fleet_beds):
    apis = fleet_apis(fleet_beds)
    assert len({b.server for b in fleet_beds}) == 3
    assert len({kube_system_uid(api) for api in apis}) == 3  # three etcds, not one seen three times
    for api in apis:
        nodes = client.CoreV1Api(api).list_node(label_selector="type=kwok").items
        ready = [c.status for n in nodes for c in n.status.conditions if c.type == "Ready"]
        assert len(nodes) == 2 and ready == ["True", "True"]

    name = f"fleet-{uuid.uuid4().hex[:8]}"
    second = client.CoreV1Api(apis[1])
    second.create_namespaced_config_map("default", {"metadata": {"name": name}, "data": {"on": "cluster-2"}})
    try:
        assert second.read_namespaced_config_map(name, "default").data == {"on": "cluster-2"}
        for api in (apis[0], apis[2]):
            with pytest.raises(client.ApiException) as absent:
                client.CoreV1Api(api).read_namespaced_config_map(name, "default")
            assert absent.value.status == 404
    finally:
        second.delete_namespaced_config_map(name, "default")


def test_each_cluster_has_its_own_istiods_that_inject(fleet_beds):
    webhook_ports = set()
    for bed, api in zip(fleet_beds, fleet_apis(fleet_beds)):
        core = client.CoreV1Api(api)
        for revision, version in (("default", bed.default_version), (bed.canary_revision, bed.canary_version)):
            image = istio.injected_image(core, istio.ControlPlane(revision, version, None, None))
            assert image.endswith(f"/proxyv2:{version}"), (bed.name, revision, image)
        # Each cluster's network forwards the istiod Services' webhook port to that cluster's own istiods.
        endpoints = clusternet.read_endpoints(state_dir(bed.name) / clusternet.ENDPOINTS.name)
        own = procs.load_state(state_dir(bed.name) / "state.json")["istiod"]
        forwarded = {e["ports"]["15017"] for e in endpoints}
        assert forwarded == {istiod["https_port"] for istiod in own.values()}, bed.name
        webhook_ports |= forwarded
    assert len(webhook_ports) == 6


def with_user(kubeconfig, server=None, user_of=None):
    """KUBECONFIG's cluster entry (SERVER instead, if given) with the credentials of kubeconfig USER_OF."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    if server:
        doc["clusters"][0]["cluster"]["server"] = server
    if user_of:
        doc["users"][0]["user"] = yaml.safe_load(Path(user_of).read_text())["users"][0]["user"]
    return config.new_client_from_config_dict(doc)


def request_status(api):
    """HTTP status of listing namespaces through API (200 when allowed)."""
    api.configuration.retries = 0
    try:
        client.CoreV1Api(api).list_namespace(_request_timeout=10)
    except client.ApiException as exc:
        return exc.status
    return 200


def test_credentials_of_one_cluster_are_rejected_by_another(fleet_beds):
    first, second = fleet_beds[0], fleet_beds[1]
    istiod_of_second = second.kubeconfig.parent / "istiod.kubeconfig"  # a ServiceAccount token
    assert request_status(with_user(second.kubeconfig)) == 200
    assert request_status(with_user(second.kubeconfig, user_of=istiod_of_second)) == 200

    assert request_status(with_user(first.kubeconfig, user_of=second.kubeconfig)) == 401  # client certificate
    assert request_status(with_user(first.kubeconfig, user_of=istiod_of_second)) == 401  # token
    # And cluster-2's CA does not vouch for cluster-1's serving certificate.
    with pytest.raises(Exception, match="(?i)certificate verify failed"):
        request_status(with_user(second.kubeconfig, server=first.server))


def test_inventory_has_a_host_per_cluster_that_reaches_it(fleet_beds, tmp_path):
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(fleet.INVENTORY), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    inventory = json.loads(listed)
    assert inventory[fleet.INVENTORY_GROUP]["hosts"][:3] == fleet.names(3)
    for bed in fleet_beds:
        host = inventory["_meta"]["hostvars"][bed.name]
        assert host["ansible_connection"] == "local"
        assert host["kubeconfig"] == str(bed.kubeconfig)

    # Each host runs the collection and kubectl with its own kubeconfig, and reaches its own cluster.
    # The environment's kubeconfig leads nowhere, so a host that ignored its own could not pass.
    nowhere = str(tmp_path / "no-kubeconfig")
    kube_system_uid_task = {
        "ansible.builtin.command": {
            "argv": ["{{ kubectl }}", "--kubeconfig={{ kubeconfig }}", "get", "namespace", "kube-system"]
            + ["-o", "jsonpath={.metadata.uid}"]
        },
        "changed_when": False,
    }
    play = [
        {
            "hosts": fleet.INVENTORY_GROUP,
            "gather_facts": False,
            "tasks": [{"istio_ops.gateways.gateway_info": {"kubeconfig": "{{ kubeconfig }}"}}, kube_system_uid_task],
        }
    ]
    rc, parsed, raw = AnsibleRunner(nowhere).playbook(
        yaml.safe_dump(play),
        extra_vars={"kubectl": str(fleet_beds[0].kubectl)},
        env={"KUBECONFIG": nowhere},
        inventory=fleet.INVENTORY,
    )
    assert rc == 0, raw[-4000:]
    info, uid = (task["hosts"] for task in parsed["tasks"])
    for bed, api in zip(fleet_beds, fleet_apis(fleet_beds)):
        assert uid[bed.name]["stdout"] == kube_system_uid(api), bed.name
        assert {"default", bed.canary_revision} <= {plane["revision"] for plane in info[bed.name]["control_planes"]}


def test_down_of_one_cluster_stops_its_processes_only(fleet_beds):
    scratch = "fleet-scratch"  # not cluster-<n>: never in the inventory
    env = dict(os.environ, TESTBED_CLUSTER=scratch)
    record = "from tests.testbed import procs; procs.start({'processes': {}}, 'sleeper', ['sleep', '600'])"
    subprocess.run([sys.executable, "-c", record], cwd=REPO_ROOT, env=env, check=True, timeout=60)
    [sleeper] = fleet.load_state(scratch)["processes"].values()
    others = {bed.name: fleet.load_state(bed.name)["processes"] for bed in fleet_beds}
    try:
        assert procs.is_running(sleeper)
        fleet.run(scratch, "down")
        assert not procs.is_running(sleeper)
        assert fleet.load_state(scratch) is None
        for bed in fleet_beds:
            assert fleet.load_state(bed.name)["processes"] == others[bed.name]
            assert all(procs.is_running(rec) for rec in others[bed.name].values()), bed.name
            assert bed.kubeconfig.exists() and (bed.kubeconfig.parent / "pki" / "ca.crt").exists()
        assert list(fleet.members())[:3] == fleet.names(3)
        assert set(yaml.safe_load(fleet.INVENTORY.read_text())["all"]["children"]["fleet"]["hosts"]) >= set(
            fleet.names(3)
        )
    finally:
        if procs.is_running(sleeper):
            os.kill(sleeper["pid"], 9)
        shutil.rmtree(state_dir(scratch), ignore_errors=True)
