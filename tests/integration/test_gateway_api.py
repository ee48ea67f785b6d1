"""Gateway API gateways on the test bed (issue #15): istio_gateway method gateway_api writes a Gateway and its
parameters ConfigMap, the bed's real istiod deploys the rest, and the module waits for Accepted, Programmed and the
rollout.

Each case: four steps with no write on converged runs (the API server's audit log), what istiod deployed checked
object by object (owned by the Gateway, the options' HPA, PDB, resources and Service type, none of the collection's
marks), routes delegated to labelled application namespaces, an in-place revision upgrade, the stale autoscaler
removed, objects of others in the way refused untouched (a Gateway, a ConfigMap, a Deployment under istiod's name,
another Gateway whose `<name>-<class>` meets ours, an istio-API gateway of the same name), and removal that waits
for the garbage collector and keeps the applications' routes.
"""

import base64
import uuid

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import ownership
from tests.testbed import pki

from .audit import four_steps_writing_nothing_when_converged
from .conftest import snapshot

pytestmark = pytest.mark.integration

GATEWAY_API = ownership.GATEWAY_API
HTTP = {"name": "http", "port": 80, "protocol": "HTTP"}


def https(secret="web-cert", **extra):
    listener = {
        "name": "https",
        "port": 443,
        "protocol": "HTTPS",
        "hostname": "*.example.com",
        "tls": {"mode": "Terminate", "certificateRefs": [{"name": secret}]},
    }
    listener.update(extra)
    return listener


def api_args(namespace, name="gw", listeners=(HTTP,), **extra):
    # ClusterIP: the bed has no load balancer, and istiod programs a Gateway only once its Service has an address.
    args = {
        "name": name,
        "namespace": namespace,
        "method": "gateway_api",
        "listeners": list(listeners),
        "service": {"type": "ClusterIP"},
        "wait_timeout": 180,
    }
    args.update(extra)
    return args


def make_namespace(kube, name, labels=None):
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})


def tls_secret(kube, namespace, name="web-cert"):
    cert, key = pki.self_signed_tls("www.example.com")
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()},
        }
    )


def deployed(kube, namespace, name="gw"):
    gateway = kube.get(GATEWAY_API, "Gateway", name, namespace)
    return gateway, {o["kind"]: o for o in ownership.deployed_objects(kube, gateway)}


def proxy_images(kube, namespace, name="gw"):
    selector = "%s=%s" % (ownership.GATEWAY_NAME_LABEL, name)
    pods = [
        p
        for p in kube.list("v1", "Pod", namespace, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    return {c["image"] for p in pods for c in p["spec"]["containers"] if c["name"] == "istio-proxy"}


def failed_with(result, *fragments):
    assert result.get("failed"), result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]


def test_install_converges_and_istiod_deploys_what_the_options_say(ansible, kube, audit, testbed, namespace_factory):
    ns = namespace_factory("ga")
    make_namespace(kube, ns)
    tls_secret(kube, ns)
    args = api_args(
        ns,
        listeners=[HTTP, https()],
        autoscaling={"min": 2, "max": 3},
        pod_disruption_budget={"max_unavailable": 1},
        resources={"requests": {"cpu": "50m"}},
        infrastructure={"labels": {"team": "edge"}, "annotations": {"owner": "platform"}},
    )
    check, real, _again, _rerun = four_steps_writing_nothing_when_converged(ansible, audit, args)
    assert sorted((o["kind"], o["action"]) for o in check["objects"]) == [
        ("ConfigMap", "create"),
        ("Gateway", "create"),
    ]
    assert real["deployment"]["name"] == "gw-istio" and real["deployment"]["ready_replicas"] >= 1
    assert real["gateway_api"]["deployed_as"] == "gw-istio"
    assert real["gateway_api"]["secrets"] == [{"name": "web-cert", "namespace": ns, "found": True, "problem": None}]

    gateway, objects = deployed(kube, ns)
    state = {c["type"]: c["status"] for c in gateway["status"]["conditions"]}
    assert state["Accepted"] == state["Programmed"] == "True", gateway["status"]
    assert sorted(objects) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    for kind, obj in objects.items():
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("team") == "edge", kind
        # What istiod deploys is the Gateway's, never marked as installed by one of the collection's methods.
        assert ownership.installed_by(obj) is None and L.INSTALLED_FOR not in labels, (kind, labels)
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 3)
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    service = objects["Service"]["spec"]
    assert service["type"] == "ClusterIP" and sorted(p["port"] for p in service["ports"]) == [
        80,
        443,
        15021,
    ]  # istiod adds status-port
    template = objects["Deployment"]["spec"]["template"]
    (proxy,) = [c for c in template["spec"]["containers"] if c["name"] == "istio-proxy"]
    assert (
        proxy["resources"]["requests"]["cpu"] == "50m" and proxy["resources"]["limits"]["memory"] == "1Gi"
    )  # 1024Mi, as the API server writes it
    assert objects["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0  # the budget's
    assert all(image.endswith(":" + testbed.default_version) for image in proxy_images(kube, ns)), proxy_images(
        kube, ns
    )

    [info] = ansible.module("gateway_info", {"namespace": ns, "name": "gw"})["gateways"]
    assert info["method"] == "gateway_api" and info["owner"]["managed_by_collection"] is True
    assert info["gateway_api"]["conditions"]["Programmed"] == "True"
    assert info["deployments"][0]["name"] == "gw-istio" and info["hpa"][0]["min_replicas"] == 2

    # One option changed: the ConfigMap alone is updated, and istiod re-renders the Deployment.
    fixed = dict(args, replicas=3, autoscaling={"enabled": False})
    changed = ansible.module("istio_gateway", fixed, diff=True)
    assert changed["changed"] and not changed.get("failed"), changed.get("msg")
    actions = {(o["kind"], o["name"]): o["action"] for o in changed["objects"]}
    assert actions[("ConfigMap", "gw-gateway-params")] == "update" and actions[("Gateway", "gw")] == "none"
    # istiod never deletes the HPA it no longer renders: the module prunes it, or it would fight the fixed count.
    assert actions[("HorizontalPodAutoscaler", "gw-istio")] == "prune"
    assert kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "gw-istio", ns) is None
    assert kube.get("apps/v1", "Deployment", "gw-istio", ns)["spec"]["replicas"] == 3
    assert ansible.module("istio_gateway", fixed)["changed"] is False

    # An HPA someone made by hand at istiod's name (no ownerReference to the Gateway) is not pruned.
    theirs = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "gw-istio", "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}, "maxReplicas": 2},
    }
    kube.apply(theirs, field_manager="kubectl")
    hand_made = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "gw-istio", ns)
    again = ansible.module("istio_gateway", fixed)
    assert again["changed"] is False and not again.get("failed"), again.get("msg")
    left = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "gw-istio", ns)
    assert left["metadata"]["resourceVersion"] == hand_made["metadata"]["resourceVersion"]


def test_routes_are_delegated_to_labelled_application_namespaces(ansible, kube, testbed, namespace_factory):
    """The shared topology: one Gateway, HTTPRoutes in the application namespaces it selects, TLS kept with it."""
    ns, allowed, other = namespace_factory("gs"), namespace_factory("app"), namespace_factory("app")
    make_namespace(kube, ns)
    tls_secret(kube, ns)
    make_namespace(kube, allowed, {"shared-gateway-access": "true"})
    make_namespace(kube, other)
    routes = {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"shared-gateway-access": "true"}}}}
    result = ansible.module("istio_gateway", api_args(ns, listeners=[https(allowedRoutes=routes)]))
    assert result["changed"] and not result.get("failed"), result.get("msg")
    for namespace in (allowed, other):
        kube.apply(
            {
                "apiVersion": GATEWAY_API,
                "kind": "HTTPRoute",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {
                    "parentRefs": [{"name": "gw", "namespace": ns}],
                    "hostnames": ["www.example.com"],
                    "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}],
                },
            },
            field_manager="app-team",
        )

    def attached():
        gateway = kube.get(GATEWAY_API, "Gateway", "gw", ns)
        counts = [listener.get("attachedRoutes") for listener in gateway.get("status", {}).get("listeners") or []]
        return (counts == [1], counts)

    kube.wait("the allowed namespace's route to attach", attached, 60)
    route = kube.get(GATEWAY_API, "HTTPRoute", "web", other)

    def refused():
        parents = (kube.get(GATEWAY_API, "HTTPRoute", "web", other).get("status") or {}).get("parents") or []
        reasons = {c["reason"] for p in parents for c in p.get("conditions") or [] if c["type"] == "Accepted"}
        return ("NotAllowedByListeners" in reasons, reasons)

    kube.wait("the other namespace's route to be refused", refused, 60)
    # Removal keeps the applications' routes.
    removed = ansible.module("istio_gateway", dict(api_args(ns), state="absent"))
    assert {(r["kind"], r["name"]) for r in removed["removed"]} == {
        ("Gateway", "gw"),
        ("ConfigMap", "gw-gateway-params"),
    }
    assert kube.get(GATEWAY_API, "HTTPRoute", "web", allowed) is not None
    assert kube.get(GATEWAY_API, "HTTPRoute", "web", other)["metadata"]["uid"] == route["metadata"]["uid"]


def test_in_place_revision_upgrade_and_removal(ansible, kube, audit, testbed, namespace_factory):
    ns = namespace_factory("gu")
    first = ansible.module("istio_gateway", api_args(ns, replicas=2, autoscaling={"enabled": False}))
    assert first["changed"] and first.get("namespace_created"), first.get("msg")
    upgrade = api_args(ns, replicas=2, autoscaling={"enabled": False}, revision=testbed.canary_revision)
    results = four_steps_writing_nothing_when_converged(ansible, audit, upgrade)
    assert results[1]["revision"] == {"before": "default", "after": testbed.canary_revision}
    images = proxy_images(kube, ns)
    assert images and all(image.endswith(":" + testbed.canary_version) for image in images), images
    assert kube.get(GATEWAY_API, "Gateway", "gw", ns)["metadata"]["labels"][L.REVISION] == testbed.canary_revision

    gateway, objects = deployed(kube, ns)
    check = ansible.module("istio_gateway", dict(upgrade, state="absent"), check=True)
    assert check["changed"] and kube.get(GATEWAY_API, "Gateway", "gw", ns) is not None
    removed = ansible.module("istio_gateway", dict(upgrade, state="absent"))
    assert removed["changed"] and not removed.get("failed"), removed.get("msg")
    # The module waited for the garbage collector: nothing istiod deployed is left.
    assert ownership.deployed_objects(kube, gateway) == []
    assert all(kube.get(o["apiVersion"], kind, o["metadata"]["name"], ns) is None for kind, o in objects.items())
    assert ansible.module("istio_gateway", dict(upgrade, state="absent"))["changed"] is False


def test_bad_listeners_and_a_missing_certificate_fail_before_any_write(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("gb")
    make_namespace(kube, ns)
    before = snapshot(kube, [ns])
    bad = ansible.module("istio_gateway", api_args(ns, listeners=[HTTP, dict(HTTP, port=8080)]))
    failed_with(bad, "listeners[1].name: 'http' is used by another listener")
    missing = ansible.module("istio_gateway", api_args(ns, listeners=[https("no-such-cert")]))
    failed_with(missing, "listeners[0].tls.certificateRefs[0]: Secret 'no-such-cert' does not exist", "missing_secret")
    assert kube.get(GATEWAY_API, "Gateway", "gw", ns) is None and snapshot(kube, [ns]) == before
    # warn: written anyway (a certificate cert-manager issues later); the listener waits for it.
    warned = ansible.module(
        "istio_gateway", api_args(ns, listeners=[https("no-such-cert")], missing_secret="warn", wait=False)
    )
    assert warned["changed"] and any("no-such-cert" in w for w in warned.get("warnings", [])), warned


def programmed(kube, namespace, name):
    gateway = kube.get(GATEWAY_API, "Gateway", name, namespace) or {}
    return {c["type"]: c["status"] for c in (gateway.get("status") or {}).get("conditions", [])}.get(
        "Programmed"
    ) == "True"


def hand_made_gateway(name, namespace, gateway_class="istio"):
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"networking.istio.io/service-type": "ClusterIP"},
        },
        "spec": {"gatewayClassName": gateway_class, "listeners": [HTTP]},
    }


@pytest.mark.parametrize("foreign", ["Gateway", "ConfigMap", "Deployment under istiod's name"])
def test_objects_of_others_in_the_way_are_refused_and_left_alone(ansible, kube, testbed, namespace_factory, foreign):
    ns = namespace_factory("gf")
    make_namespace(kube, ns)
    if foreign == "Gateway":
        kube.apply(hand_made_gateway("gw", ns), field_manager="kubectl")
        # istiod deploys it at its own pace: the snapshot is taken once it has.
        kube.wait("the hand-made Gateway to be programmed", lambda: (programmed(kube, ns, "gw"), "not yet"), 120)
        kube.wait_rollout("gw-istio", ns, 120)
        expected = "Gateway %s/gw is not this collection's" % ns
    elif foreign == "ConfigMap":
        kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gw-gateway-params", "namespace": ns}},
            field_manager="kubectl",
        )
        expected = "ConfigMap %s/gw-gateway-params is not this collection's" % ns
    else:
        kube.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "gw-istio", "namespace": ns, "labels": {"app": "theirs"}},
                "spec": {
                    "selector": {"matchLabels": {"app": "theirs"}},
                    "template": {
                        "metadata": {"labels": {"app": "theirs"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                    },
                },
            },
            field_manager="kubectl",
        )
        expected = "Deployment %s/gw-istio is not this collection's" % ns
    before = snapshot(kube, [ns])
    gateway_before = kube.get(GATEWAY_API, "Gateway", "gw", ns)
    for check in (True, False):
        result = ansible.module("istio_gateway", api_args(ns), check=check)
        failed_with(result, expected)
    assert snapshot(kube, [ns]) == before
    # Removing the gateway deletes nothing of theirs either (there is no gateway of the collection's here).
    for check in (True, False):
        removed = ansible.module("istio_gateway", api_args(ns, state="absent"), check=check)
        assert removed["changed"] is False and not removed.get("failed"), removed.get("msg")
    assert snapshot(kube, [ns]) == before
    after = kube.get(GATEWAY_API, "Gateway", "gw", ns)
    assert (after or {}).get("metadata", {}).get("resourceVersion") == (gateway_before or {}).get("metadata", {}).get(
        "resourceVersion"
    )


def test_names_joined_from_name_and_class_never_meet(ansible, kube, testbed, namespace_factory):
    """istiod names what it deploys `<gateway>-<class>`: Gateway a of class x-istio and Gateway a-x of class istio
    would share a Deployment. The module refuses the second, naming the first, whichever was there first."""
    ns = namespace_factory("gj")
    make_namespace(kube, ns)
    suffix = uuid.uuid4().hex[:6]
    gateway_class = "x%s-istio" % suffix
    kube.apply(
        {
            "apiVersion": GATEWAY_API,
            "kind": "GatewayClass",
            "metadata": {"name": gateway_class},
            "spec": {"controllerName": "istio.io/gateway-controller"},
        },
        field_manager="test",
    )
    try:
        kube.apply(hand_made_gateway("a", ns, gateway_class), field_manager="kubectl")
        result = ansible.module("istio_gateway", api_args(ns, name="a-x" + suffix))
        failed_with(result, "name: istiod deploys Gateway %s/a " % ns, "as a-x%s-istio" % suffix)
        assert kube.get(GATEWAY_API, "Gateway", "a-x" + suffix, ns) is None
        # And the other way round: the collection's own Gateway a of that class, then a-x of class istio.
        kube.delete(GATEWAY_API, "Gateway", "a", ns)
        ours = ansible.module("istio_gateway", api_args(ns, name="a", gateway_class=gateway_class, wait=False))
        assert ours["changed"] and not ours.get("failed"), ours.get("msg")
        second = ansible.module("istio_gateway", api_args(ns, name="a-x" + suffix))
        failed_with(second, "name: istiod deploys Gateway %s/a " % ns, "as a-x%s-istio" % suffix)
        assert kube.get(GATEWAY_API, "Gateway", "a-x" + suffix, ns) is None
    finally:
        kube.delete(GATEWAY_API, "GatewayClass", gateway_class)


def test_an_istio_api_gateway_and_a_gateway_api_gateway_never_share_a_name(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("gn")
    manifest = {"name": "gw", "namespace": ns, "method": "manifest", "replicas": 1, "autoscaling": {"enabled": False}}
    assert not ansible.module("istio_gateway", manifest).get("failed")
    failed_with(ansible.module("istio_gateway", api_args(ns)), "gateway %s/gw is installed by method manifest" % ns)
    assert kube.get(GATEWAY_API, "Gateway", "gw", ns) is None
    other = namespace_factory("gn")
    assert not ansible.module("istio_gateway", api_args(other)).get("failed")
    failed_with(
        ansible.module("istio_gateway", dict(manifest, namespace=other)),
        "gateway %s/gw is installed by method gateway_api" % other,
    )
    assert kube.get("apps/v1", "Deployment", "gw", other) is None
    # gateway_cleanup removes a Gateway API gateway like any other, waiting for what istiod deployed.
    cleaned = ansible.module("gateway_cleanup", {"name": "gw", "namespace": other})
    assert cleaned["changed"] and cleaned["gateway"]["method"] == "gateway_api", cleaned
    assert kube.get("apps/v1", "Deployment", "gw-istio", other) is None


# -- gateway_canary: a second Gateway on the new revision, with its own address ------------------------------
def canary_args(namespace, testbed, state="present", **extra):
    args = {
        "name": "gw",
        "namespace": namespace,
        "revision": testbed.canary_revision,
        "state": state,
        "wait_timeout": 180,
    }
    args.update(extra)
    return args


def test_canary_gateway_promoted(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("gc")
    installed = ansible.module("istio_gateway", api_args(ns, replicas=2, autoscaling={"enabled": False}))
    assert installed["changed"] and not installed.get("failed"), installed.get("msg")
    stable_before = kube.get(GATEWAY_API, "Gateway", "gw", ns)

    results = ansible.four_steps("gateway_canary", canary_args(ns, testbed))
    assert [r["changed"] for r in results] == [True, True, False, False], [
        r.get("msg") or r.get("actions") for r in results
    ]
    real = results[1]
    assert real["gateway_api"] is True and real["mode"] == "external"
    assert real["canary"]["name"] == "gw-canary-istio" and real["canary"]["revision"] == testbed.canary_revision
    assert real["canary"]["ready_replicas"] == 2  # the stable's parameters: fixed 2 replicas
    stable_address, canary_address = real["services"]["stable"]["address"], real["services"]["canary"]["address"]
    assert stable_address == "gw-istio.%s.svc.cluster.local" % ns
    assert canary_address == "gw-canary-istio.%s.svc.cluster.local" % ns
    images = proxy_images(kube, ns, "gw-canary")
    assert images and all(i.endswith(":" + testbed.canary_version) for i in images), images
    # The stable Gateway is not touched while the canary runs.
    assert (
        kube.get(GATEWAY_API, "Gateway", "gw", ns)["metadata"]["resourceVersion"]
        == (stable_before["metadata"]["resourceVersion"])
    )
    [info] = ansible.module("gateway_info", {"namespace": ns})["gateways"]
    assert info["gateway_api"]["canaries"] == ["gw-canary"]
    assert sorted((d["role"], d["revision"]) for d in info["deployments"]) == [
        ("canary", testbed.canary_revision),
        ("stable", "default"),
    ]

    promote = canary_args(ns, testbed, state="promoted")
    check = ansible.module("gateway_canary", promote, check=True)
    assert check["changed"] and kube.get(GATEWAY_API, "Gateway", "gw-canary", ns) is not None
    canary_gateway = kube.get(GATEWAY_API, "Gateway", "gw-canary", ns)
    promoted = ansible.module("gateway_canary", promote)
    assert promoted["changed"] and not promoted.get("failed"), promoted.get("msg")
    assert any("still names the old one" in w for w in promoted.get("warnings", [])), promoted.get("warnings")
    assert kube.get(GATEWAY_API, "Gateway", "gw-canary", ns) is None
    assert ownership.deployed_objects(kube, canary_gateway) == []  # waited for the garbage collector
    images = proxy_images(kube, ns)
    assert images and all(i.endswith(":" + testbed.canary_version) for i in images), images
    assert ansible.module("gateway_canary", promote)["changed"] is False
    # The istio_gateway task with the new revision agrees with the promoted gateway: nothing to change.
    agreed = ansible.module(
        "istio_gateway", api_args(ns, replicas=2, autoscaling={"enabled": False}, revision=testbed.canary_revision)
    )
    assert agreed["changed"] is False, agreed.get("objects")


def test_canary_gateway_rolled_back_and_refusals(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("gr")
    assert not ansible.module("istio_gateway", api_args(ns, replicas=1, autoscaling={"enabled": False})).get("failed")
    stable_before = kube.get(GATEWAY_API, "Gateway", "gw", ns)
    failed_with(
        ansible.module("gateway_canary", canary_args(ns, testbed, weight=10)),
        "weight: a Gateway API gateway's canary has its own address",
    )
    kube.apply(hand_made_gateway("taken", ns), field_manager="kubectl")
    failed_with(
        ansible.module("gateway_canary", canary_args(ns, testbed, canary_name="taken")),
        "Gateway %s/taken is not this collection's" % ns,
    )
    started = ansible.module("gateway_canary", canary_args(ns, testbed))
    assert started["changed"] and not started.get("failed"), started.get("msg")
    canary_gateway = kube.get(GATEWAY_API, "Gateway", "gw-canary", ns)
    rolled_back = ansible.module("gateway_canary", canary_args(ns, testbed, state="absent"))
    assert rolled_back["changed"] and not rolled_back.get("failed"), rolled_back.get("msg")
    assert ownership.deployed_objects(kube, canary_gateway) == []
    assert (
        kube.get(GATEWAY_API, "Gateway", "gw", ns)["metadata"]["resourceVersion"]
        == (stable_before["metadata"]["resourceVersion"])
    )
    assert ansible.module("gateway_canary", canary_args(ns, testbed, state="absent"))["changed"] is False
    # A hand-made Gateway API gateway is refused unless adopted.
    failed_with(
        ansible.module("gateway_canary", dict(canary_args(ns, testbed), name="taken")),
        "Gateway %s/taken is not this collection's" % ns,
    )


def upgrade_play(**variables):
    return yaml.safe_dump(
        [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {"ansible.builtin.include_role": {"name": "istio_ops.gateways.gateway_upgrade"}, "vars": variables}
                ],
            }
        ]
    )


def test_the_upgrade_role_carries_a_gateway_api_gateway_through_external_canary_and_in_place(
    ansible, kube, testbed, namespace_factory
):
    ns = namespace_factory("gup")
    settings = {"listeners": [HTTP], "service": {"type": "ClusterIP"}, "replicas": 1, "autoscaling": {"enabled": False}}
    assert not ansible.module("istio_gateway", api_args(ns, **settings)).get("failed")
    common = {
        "gateway_upgrade_name": "gw",
        "gateway_upgrade_namespace": ns,
        "gateway_upgrade_method": "gateway_api",
        "gateway_upgrade_gateway": settings,
        "gateway_upgrade_wait_timeout": 180,
        "kubeconfig": str(testbed.kubeconfig),
    }
    # The replica-split canary cannot split a Gateway API gateway's pods: refused, naming the way out.
    rc, _parsed, raw = ansible.playbook(
        upgrade_play(gateway_upgrade_strategy="canary", gateway_upgrade_revision=testbed.canary_revision, **common)
    )
    assert rc != 0 and "set gateway_upgrade_strategy to external" in raw, raw[-2000:]
    assert kube.get(GATEWAY_API, "Gateway", "gw-canary", ns) is None
    for action in ("deploy", "promote"):
        rc, _parsed, raw = ansible.playbook(
            upgrade_play(
                gateway_upgrade_strategy="external",
                gateway_upgrade_external_action=action,
                gateway_upgrade_revision=testbed.canary_revision,
                **common,
            )
        )
        assert rc == 0, raw[-3000:]
        if action == "deploy":
            assert kube.get(GATEWAY_API, "Gateway", "gw-canary", ns) is not None
    assert kube.get(GATEWAY_API, "Gateway", "gw-canary", ns) is None
    images = proxy_images(kube, ns)
    assert images and all(i.endswith(":" + testbed.canary_version) for i in images), images
    # And back in place to the default revision; the run after it changes nothing.
    for expected in (True, False):
        rc, parsed, raw = ansible.playbook(upgrade_play(gateway_upgrade_strategy="in_place", **common))
        assert rc == 0, raw[-3000:]
        (moved,) = [
            t["hosts"]["localhost"] for t in parsed["tasks"] if "Move the gateway to the target revision" in t["name"]
        ]
        assert moved["changed"] is expected, moved.get("objects")
    images = proxy_images(kube, ns)
    assert images and all(i.endswith(":" + testbed.default_version) for i in images), images
