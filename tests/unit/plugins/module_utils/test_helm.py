"""The helm runner and the helm install method: chart values, helm's flags and environment, and what the
real helm binary renders from Istio's packaged `gateway` chart (the bed's build cache; no cluster needed).

Expected objects are what istioctl renders for the same options (its istio-ingress/istio-egress charts):
selector {app: istio-ingressgateway, istio: ingressgateway} updated by the option labels, ports
15021/80->8080/443->8443 (egress: 80->8080/443->8443), Service type LoadBalancer (egress: ClusterIP), HPA 1-5.
"""

import json
import os
import stat

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import gateway, helm, install_helm
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import KubeClient
from tests.testbed import testbed
from tests.unit.plugins.module_utils.render_facets import HelmModule, gateway_params

BED = testbed.describe()
REAL_HELM = str(BED.helm) if BED.helm and BED.helm.exists() else None
GATEWAY_CHART = BED.bin_dir / "charts" / ("gateway-%s.tgz" % BED.default_chart_version)
needs_helm = pytest.mark.skipif(
    not (REAL_HELM and GATEWAY_CHART.exists()),
    reason="the bed's helm binary or packaged gateway chart is not built (make testbed-build)",
)

INGRESS_SELECTOR = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
EGRESS_SELECTOR = {"app": "istio-egressgateway", "istio": "egressgateway"}
INGRESS_PORTS = [
    {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
]


def params(**overrides):
    """The shared option set, for a gateway gw in namespace ns of method helm."""
    return gateway_params(**dict({"name": "gw", "namespace": "ns", "method": "helm", "wait_timeout": 300}, **overrides))


@pytest.fixture
def recording_helm(tmp_path):
    """A stand-in helm that records its argv and environment (JSON lines) and prints $FAKE_HELM_OUT."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "helm"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "with open(%r, 'a') as f: f.write(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}) + '\\n')\n"
        "sys.stdout.write(os.environ.get('FAKE_HELM_OUT', ''))\n"
        "sys.stderr.write(os.environ.get('FAKE_HELM_ERR', ''))\n"
        "sys.exit(int(os.environ.get('FAKE_HELM_RC', '0')))\n" % str(log)
    )
    script.chmod(0o755)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()]

    return str(script), calls


def runner(binary, tmp_path, kube_params=None):
    kube = KubeClient(kube_params or {"host": "https://127.0.0.1:6443", "api_key": "t0ken", "validate_certs": True})
    return helm.Helm(HelmModule(binary, tmp_path), kube, binary)


# -- chart values (pure) ---------------------------------------------------------------------------------


def test_default_ingress_values_pin_the_canonical_identity():
    values = install_helm.chart_values(params())
    assert values["labels"] == dict(INGRESS_SELECTOR, **{L.INSTALLED_BY: "helm", L.INSTALLED_FOR: "gw"})
    assert values["serviceAccount"] == {"name": "gw-service-account"}
    assert values["service"] == {"type": "LoadBalancer", "ports": INGRESS_PORTS, "selectorLabels": {}}
    assert values["podAnnotations"] == {L.INJECT_TEMPLATES: "gateway", L.SIDECAR_INJECT: "true"}
    assert "revision" not in values and "replicaCount" not in values and "podDisruptionBudget" not in values


def test_egress_gets_istioctls_egress_service():
    values = install_helm.chart_values(params(kind="egress"))
    assert values["labels"]["app"] == "istio-egressgateway" and values["labels"]["istio"] == "egressgateway"
    assert values["service"]["type"] == "ClusterIP"
    assert [p["name"] for p in values["service"]["ports"]] == ["http2", "https"]


def test_user_labels_update_the_defaults_and_extra_ones_reach_the_service_selector():
    values = install_helm.chart_values(params(labels={"istio": "edge", "team": "a"}))
    assert values["labels"]["app"] == "istio-ingressgateway"
    assert values["labels"]["istio"] == "edge" and values["labels"]["team"] == "a"
    assert values["service"]["selectorLabels"] == {"team": "a"}


def test_options_map_to_chart_values():
    values = install_helm.chart_values(
        params(
            revision="canary",
            injection_template="custom",
            replicas=3,
            autoscaling={"enabled": False, "min": None, "max": None},
            service={
                "type": "NodePort",
                "ports": [{"name": "http", "port": 8080, "target_port": 8081, "node_port": 30080, "protocol": None}],
                "annotations": {"a": "b"},
                "load_balancer_ip": "10.0.0.9",
                "external_traffic_policy": "Local",
            },
            resources={"requests": {"cpu": "200m"}},
            pod_annotations={"x": "y"},
            pod_disruption_budget={"min_available": "50%", "max_unavailable": None},
        )
    )
    assert values["revision"] == "canary"
    assert values["replicaCount"] == 3
    assert values["autoscaling"] == {"enabled": False}
    assert values["service"] == {
        "type": "NodePort",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8081, "nodePort": 30080}],
        "selectorLabels": {},
        "annotations": {"a": "b"},
        "loadBalancerIP": "10.0.0.9",
        "externalTrafficPolicy": "Local",
    }
    assert values["resources"] == {"requests": {"cpu": "200m"}}
    assert values["podAnnotations"] == {L.INJECT_TEMPLATES: "custom", L.SIDECAR_INJECT: "true", "x": "y"}
    assert values["podDisruptionBudget"] == {"minAvailable": "50%"}


@pytest.mark.parametrize("given, expected", [(2, 2), ("2", 2), ("25%", "25%")])
def test_pdb_bounds_are_ints_or_percentages(given, expected):
    budget = {"min_available": None, "max_unavailable": given}
    values = install_helm.chart_values(params(pod_disruption_budget=budget))
    assert values["podDisruptionBudget"] == {"maxUnavailable": expected}


def test_autoscaling_bounds_map_to_the_chart():
    values = install_helm.chart_values(params(autoscaling={"enabled": True, "min": 2, "max": 7}))
    assert values["autoscaling"] == {"enabled": True, "minReplicas": 2, "maxReplicas": 7}


def test_helm_values_merge_last():
    extra = {"service": {"annotations": {"z": "1"}}, "nodeSelector": {"pool": "edge"}, "labels": {"team": "x"}}
    values = install_helm.chart_values(params(helm={"values": extra}))
    assert values["nodeSelector"] == {"pool": "edge"}
    assert values["service"]["annotations"] == {"z": "1"} and values["service"]["ports"] == INGRESS_PORTS
    assert values["labels"]["team"] == "x" and values["labels"]["app"] == "istio-ingressgateway"


@pytest.mark.parametrize(
    "extra, named, fix",
    [
        ({"name": "other"}, "helm.values.name: 'other'", "named after the option name"),
        ({"revision": "r1"}, "helm.values.revision: 'r1'", "use the option revision"),
        ({"labels": {"app": "a"}}, "helm.values.labels.app: 'a'", "use the option labels"),
        ({"labels": {"istio": "i"}}, "helm.values.labels.istio: 'i'", "use the option labels"),
        ({"labels": {L.INSTALLED_FOR: "x"}}, "helm.values.labels.%s: 'x'" % L.INSTALLED_FOR, "marks"),
        ({"serviceAccount": {"name": "sa"}}, "helm.values.serviceAccount.name: 'sa'", "-service-account"),
        ({"kind": "DaemonSet"}, "helm.values.kind: 'DaemonSet'", "a Deployment"),
        ({"podAnnotations": {L.INJECT_TEMPLATES: "t"}}, "helm.values.podAnnotations", "injection_template"),
    ],
)
def test_pinned_helm_values_are_refused_naming_parameter_value_and_fix(extra, named, fix):
    with pytest.raises(InputError) as raised:
        gateway.check_inputs(gateway_params(method="helm", helm={"values": extra}))
    assert named in raised.value.message and fix in raised.value.message


def test_every_pinned_value_is_reported_at_once():
    with pytest.raises(InputError) as raised:
        gateway.check_inputs(gateway_params(method="helm", helm={"values": {"name": "a", "revision": "b"}}))
    assert "helm.values.name" in raised.value.message and "helm.values.revision" in raised.value.message


def test_chart_version_of_a_control_plane_drops_image_variants():
    assert install_helm.chart_version_of("1.30.2-distroless") == "1.30.2"
    assert install_helm.chart_version_of("1.30.0-alpha.abc") == "1.30.0-alpha.abc"
    assert install_helm.chart_version_of("1.30-alpha.abc") == "1.30.0-alpha.abc"
    assert install_helm.chart_version_of("1.31") == "1.31.0"
    assert install_helm.chart_version_of(None) is None


# -- the runner: flags, environment, commands -------------------------------------------------------------


def test_connection_flags_are_spelled_as_helm_wants_them(recording_helm, tmp_path):
    binary, _calls = recording_helm
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    run = runner(
        binary,
        tmp_path,
        {
            "kubeconfig": str(kubeconfig),
            "context": "c",
            "impersonate_user": "alice",
            "impersonate_groups": ["g1", "g2"],
        },
    )
    assert run.kube_args() == [
        "--kubeconfig",
        str(kubeconfig),
        "--kube-context",
        "c",
        "--kube-as-user",
        "alice",
        "--kube-as-group",
        "g1",
        "--kube-as-group",
        "g2",
    ]


def test_explicit_auth_options_win_through_a_private_kubeconfig(recording_helm, tmp_path):
    binary, _calls = recording_helm
    run = runner(
        binary,
        tmp_path,
        {"host": "https://127.0.0.1:6443", "api_key": "s3cr3t", "validate_certs": True, "impersonate_user": "bob"},
    )
    args = run.kube_args()
    assert args[0] == "--kubeconfig" and args[2:] == ["--kube-as-user", "bob"]
    assert stat.S_IMODE(os.stat(args[1]).st_mode) == 0o600
    with open(args[1]) as handle:
        assert json.load(handle)["users"][0]["user"] == {"token": "s3cr3t"}


def test_helm_runs_with_private_homes_and_none_of_the_users_helm_settings(recording_helm, tmp_path, monkeypatch):
    binary, calls = recording_helm
    for name in ("HELM_KUBETOKEN", "HELM_KUBECONTEXT", "HELM_REPOSITORY_CONFIG", "HELM_PLUGINS", "HELM_DRIVER"):
        monkeypatch.setenv(name, "from-the-user")
    monkeypatch.setenv("FAKE_HELM_OUT", "v3.22.0")
    run = runner(binary, tmp_path)
    assert run.version() == "3.22.0"
    env = calls()[0]["env"]
    assert not {k for k, v in env.items() if k.startswith("HELM_") and v == "from-the-user"}
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        assert env[name].startswith(run._tmpdir + os.sep)
        assert stat.S_IMODE(os.stat(env[name]).st_mode) == 0o700
    assert env["HELM_NO_PLUGINS"] == "1" and env["HELM_DRIVER"] == "secret"
    run.cleanup()
    assert not os.path.exists(env["HELM_CACHE_HOME"])


@pytest.mark.parametrize(
    "repository, chart, expected",
    [
        ("https://charts.example/istio", "gateway", ["gateway", "--repo", "https://charts.example/istio"]),
        ("oci://registry.example/istio/", "gateway", ["oci://registry.example/istio/gateway"]),
        (None, "gateway", ["gateway"]),
    ],
)
def test_chart_references(repository, chart, expected):
    assert helm.Helm.chart_args(repository, chart, "1.30.0") == expected + ["--version", "1.30.0"]


def test_a_local_chart_is_used_without_the_repository(tmp_path):
    local = tmp_path / "gateway.tgz"
    local.write_text("")
    assert helm.Helm.chart_args("https://x", str(local), None) == [str(local)]


def test_upgrade_install_flags(recording_helm, tmp_path):
    binary, calls = recording_helm
    run = runner(binary, tmp_path)
    run.upgrade_install("gw", "ns", "https://r", "gateway", "1.30.0", "/v.yaml", labels={"b": "2", "a": "1"})
    run.upgrade_install("gw", "ns", "https://r", "gateway", "1.30.0", "/v.yaml", wait_timeout=90)
    first, second = (c["argv"] for c in calls())
    assert first[:6] == ["upgrade", "gw", "gateway", "--repo", "https://r", "--version"]
    assert "--install" in first and "--skip-crds" in first and "--create-namespace" not in first
    assert first[first.index("--namespace") + 1] == "ns" and first[first.index("-f") + 1] == "/v.yaml"
    assert first[first.index("--labels") + 1] == "a=1,b=2"
    assert "--wait" not in first and "--labels" not in second
    assert second[second.index("--wait") + 1 : second.index("--wait") + 3] == ["--timeout", "90s"]
    assert "--kubeconfig" in first  # it talks to the cluster


def test_release_reads_helm_status_and_none_when_there_is_none(recording_helm, tmp_path, monkeypatch):
    binary, calls = recording_helm
    run = runner(binary, tmp_path)
    monkeypatch.setenv("FAKE_HELM_RC", "1")
    monkeypatch.setenv("FAKE_HELM_ERR", "Error: release: not found\n")
    assert run.release("gw", "ns") is None
    monkeypatch.setenv("FAKE_HELM_ERR", "Error: Kubernetes cluster unreachable\n")
    with pytest.raises(helm.HelmError, match="unreachable"):
        run.release("gw", "ns")
    monkeypatch.setenv("FAKE_HELM_RC", "0")
    record = {
        "name": "gw",
        "namespace": "ns",
        "version": 3,
        "info": {"status": "deployed", "description": "Upgrade complete"},
        "manifest": "---\nkind: Service\n",
        "config": {"a": 1},
    }
    monkeypatch.setenv("FAKE_HELM_OUT", json.dumps(record))
    assert run.release("gw", "ns") == {
        "name": "gw",
        "namespace": "ns",
        "revision": 3,
        "status": "deployed",
        "description": "Upgrade complete",
        "manifest": "---\nkind: Service\n",
        "config": {"a": 1},
    }
    assert calls()[-1]["argv"][:5] == ["status", "gw", "--namespace", "ns", "-o"]


def test_every_run_has_a_timeout(recording_helm, tmp_path, monkeypatch):
    binary, _calls = recording_helm
    run = runner(binary, tmp_path)
    seen = []
    monkeypatch.setattr(helm.Binary, "run", lambda self, args, timeout=120, kube=True: seen.append(timeout) or "")
    run.upgrade_install("gw", "ns", None, "gateway", None, "/v", wait_timeout=300)
    run.upgrade_install("gw", "ns", None, "gateway", None, "/v")
    assert seen == [helm.kill_after(300), helm.kill_after(None)]


# -- the method: ownership, pending, claim ---------------------------------------------------------------


def method(p=None):
    return install_helm.HelmMethod(None, None, p or params(), {})


def test_owns_needs_the_release_annotations_and_the_method_marks():
    obj = {
        "kind": "Deployment",
        "metadata": {
            "name": "gw",
            "namespace": "ns",
            "labels": {L.INSTALLED_BY: "helm", L.INSTALLED_FOR: "gw"},
            "annotations": {L.HELM_RELEASE_NAME: "gw", L.HELM_RELEASE_NAMESPACE: "ns"},
        },
    }
    assert method().owns(obj)
    other = json.loads(json.dumps(obj))
    other["metadata"]["annotations"][L.HELM_RELEASE_NAME] = "gw2"
    assert not method().owns(other)
    by_hand = json.loads(json.dumps(obj))
    del by_hand["metadata"]["labels"][L.INSTALLED_BY]
    assert not method().owns(by_hand)


def test_claim_patch_makes_helm_adopt_and_drops_istioctls_owner_labels():
    live = {
        "metadata": {
            "name": "gw",
            "namespace": "ns",
            "resourceVersion": "42",
            "labels": {L.OWNING_RESOURCE: "ns.gw", L.OPERATOR_MANAGED: "Reconcile", "app": "istio-ingressgateway"},
        }
    }
    patch = method().claim_patch(live)["metadata"]
    assert patch["resourceVersion"] == "42"
    assert patch["annotations"] == {L.HELM_RELEASE_NAME: "gw", L.HELM_RELEASE_NAMESPACE: "ns"}
    assert patch["labels"] == {
        L.OWNING_RESOURCE: None,
        L.OPERATOR_MANAGED: None,
        L.MANAGED_BY: "Helm",
        L.INSTALLED_BY: "helm",
        L.INSTALLED_FOR: "gw",
    }


def test_claim_patch_overwrites_the_manifest_methods_marks():
    live = {
        "metadata": {
            "resourceVersion": "1",
            "labels": {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTALLED_BY: "manifest", L.INSTALLED_FOR: "gw"},
        }
    }
    labels = method().claim_patch(live)["metadata"]["labels"]
    assert labels == {L.MANAGED_BY: "Helm", L.INSTALLED_BY: "helm", L.INSTALLED_FOR: "gw"}


class StubHelm(object):
    def __init__(self, record):
        self.record = record

    def release(self, name, namespace):
        return self.record


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw"}, "spec": {"type": "ClusterIP"}}


@pytest.mark.parametrize(
    "record, reason",
    [
        (None, "Helm release ns/gw does not exist"),
        ({"status": "failed", "revision": 4}, "Helm release ns/gw is failed (revision 4)"),
        ({"status": "pending-upgrade", "revision": 2}, "is pending-upgrade"),
        (
            {
                "status": "deployed",
                "revision": 2,
                "manifest": "apiVersion: v1\nkind: Service\nmetadata: {name: gw}\nspec: {type: NodePort}\n",
            },
            "(revision 2) holds another manifest for Service gw",
        ),
    ],
)
def test_pending_names_why_helm_must_run(record, reason):
    m = method()
    m.helm = StubHelm(record)
    m.template = [SERVICE]
    assert len(m.pending()) == 1 and reason in m.pending()[0]


def test_nothing_is_pending_when_the_release_holds_the_render():
    m = method()
    m.helm = StubHelm({"status": "deployed", "revision": 2, "manifest": "---\n# Source: x\n" + json.dumps(SERVICE)})
    m.template = [SERVICE]
    assert m.pending() == []


# -- the real helm and Istio's packaged chart -------------------------------------------------------------


def render(tmp_path, values=None, **overrides):
    p = params(helm={"chart": str(GATEWAY_CHART), "binary_path": REAL_HELM, "values": values}, **overrides)
    m = install_helm.HelmMethod(HelmModule(REAL_HELM, tmp_path), KubeClient({"host": "https://127.0.0.1:1"}), p, {})
    m.preflight({"version": BED.default_version, "revision": "default"})
    m._server_version = lambda: "v1.33.0"  # no cluster: the capabilities a bed's API server would report
    objects = m.render(p)
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}, m


@needs_helm
def test_real_helm_renders_the_canonical_default_ingress(tmp_path):
    objects, m = render(tmp_path)
    assert m.chart_version == BED.default_chart_version  # from the control plane's version
    assert sorted(objects) == [
        ("Deployment", "gw"),
        ("HorizontalPodAutoscaler", "gw"),
        ("Role", "gw-service-account"),
        ("RoleBinding", "gw-service-account"),
        ("Service", "gw"),
        ("ServiceAccount", "gw-service-account"),
    ]
    dep = objects[("Deployment", "gw")]
    assert dep["spec"]["selector"]["matchLabels"] == INGRESS_SELECTOR
    pod = dep["spec"]["template"]["metadata"]
    assert set(INGRESS_SELECTOR.items()) <= set(pod["labels"].items())
    assert L.REVISION not in pod["labels"]
    assert pod["annotations"][L.INJECT_TEMPLATES] == "gateway" and pod["annotations"][L.SIDECAR_INJECT] == "true"
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "gw-service-account"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "auto"
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "2000m", "memory": "1024Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }
    svc = objects[("Service", "gw")]
    assert svc["spec"]["selector"] == INGRESS_SELECTOR
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["ports"] == INGRESS_PORTS
    hpa = objects[("HorizontalPodAutoscaler", "gw")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 5)
    assert hpa["metrics"][0]["resource"] == {"name": "cpu", "target": {"averageUtilization": 80, "type": "Utilization"}}
    binding = objects[("RoleBinding", "gw-service-account")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gw-service-account"}]
    for obj in objects.values():
        meta = obj["metadata"]
        assert meta["namespace"] == "ns"
        assert meta["annotations"] == {L.HELM_RELEASE_NAME: "gw", L.HELM_RELEASE_NAMESPACE: "ns"}
        assert meta["labels"][L.MANAGED_BY] == "Helm"
        assert meta["labels"][L.INSTALLED_BY] == "helm" and meta["labels"][L.INSTALLED_FOR] == "gw"
        assert m.owns(obj)


@needs_helm
def test_real_helm_renders_egress_with_labels_revision_and_a_pdb(tmp_path):
    objects, _m = render(
        tmp_path,
        name="egress",
        kind="egress",
        labels={"istio": "edge-out", "team": "net"},
        revision="canary",
        replicas=3,
        autoscaling={"enabled": False, "min": None, "max": None},
        pod_disruption_budget={"min_available": 2, "max_unavailable": None},
    )
    assert sorted(objects) == [
        ("Deployment", "egress"),
        ("PodDisruptionBudget", "egress"),
        ("Role", "egress-service-account"),
        ("RoleBinding", "egress-service-account"),
        ("Service", "egress"),
        ("ServiceAccount", "egress-service-account"),
    ]
    canonical = {"app": "istio-egressgateway", "istio": "edge-out", "team": "net"}
    dep = objects[("Deployment", "egress")]
    assert dep["spec"]["replicas"] == 3
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert set(canonical.items()) <= set(pod_labels.items()) and pod_labels[L.REVISION] == "canary"
    # The chart's Deployment and PDB selectors hold only app and istio (a documented difference from istioctl's).
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "istio-egressgateway", "istio": "edge-out"}
    pdb = objects[("PodDisruptionBudget", "egress")]["spec"]
    assert pdb == {"selector": {"matchLabels": {"app": "istio-egressgateway", "istio": "edge-out"}}, "minAvailable": 2}
    svc = objects[("Service", "egress")]["spec"]
    assert svc["selector"] == canonical  # equal to istioctl's, through the chart's selectorLabels
    assert svc["type"] == "ClusterIP"
    ports = [(p["name"], p["port"], p["targetPort"]) for p in svc["ports"]]
    assert ports == [("http2", 80, 8080), ("https", 443, 8443)]


@needs_helm
def test_real_helm_renders_service_options_resources_and_autoscaling(tmp_path):
    objects, _m = render(
        tmp_path,
        autoscaling={"enabled": True, "min": 2, "max": 4},
        pod_disruption_budget={"min_available": None, "max_unavailable": "50%"},
        service={
            "type": "NodePort",
            "ports": [{"name": "http", "port": 8080, "target_port": None, "node_port": 30080, "protocol": "TCP"}],
            "annotations": {"lb.example/kind": "internal"},
            "load_balancer_ip": None,
            "external_traffic_policy": "Local",
        },
        resources={"requests": {"cpu": "250m"}},
        pod_annotations={"proxy.istio.io/config": "{}"},
        injection_template="gateway-custom",
        values={"nodeSelector": {"pool": "edge"}},
    )
    svc = objects[("Service", "gw")]
    assert svc["metadata"]["annotations"]["lb.example/kind"] == "internal"
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP", "nodePort": 30080}]
    dep = objects[("Deployment", "gw")]
    assert "replicas" not in dep["spec"]  # the HPA decides
    template = dep["spec"]["template"]
    assert template["metadata"]["annotations"][L.INJECT_TEMPLATES] == "gateway-custom"
    assert template["metadata"]["annotations"]["proxy.istio.io/config"] == "{}"
    assert template["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "2000m", "memory": "1024Mi"},
        "requests": {"cpu": "250m", "memory": "128Mi"},
    }
    assert template["spec"]["nodeSelector"] == {"pool": "edge"}
    hpa = objects[("HorizontalPodAutoscaler", "gw")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4)
    assert objects[("PodDisruptionBudget", "gw")]["spec"]["maxUnavailable"] == "50%"


@needs_helm
def test_real_helm_leaves_the_users_helm_directories_alone(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    render(tmp_path)
    assert not home.exists() or not any(home.rglob("*helm*"))


@needs_helm
def test_real_helm_version_is_3(tmp_path):
    run = helm.Helm(HelmModule(REAL_HELM, tmp_path), KubeClient({"host": "https://127.0.0.1:1"}), REAL_HELM)
    assert run.version().split(".")[0] == "3"
