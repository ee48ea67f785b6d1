"""Faults injected on the test bed while a module runs.

For each: the run either succeeds or fails with a message that says what went wrong, and a re-run converges
(the faulted run or its first re-run changes, the next reports no change) to the desired state, with nothing
in the namespace but what the gateway owns (and its canary), their controllers' children and Kubernetes'
own objects.
"""

import threading
import time

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L

from . import faults
from .common import COUNTS, assert_no_orphans, desired_objects, uid

pytestmark = pytest.mark.integration

GW = "gw"
CANARY = GW + "-canary"


def gateway_args(testbed, namespace, replicas=2, **extra):
    args = {
        "name": GW,
        "namespace": namespace,
        "labels": {"istio": "rel-fault-" + uid()},
        "binary_path": str(testbed.istioctl),
        "replicas": replicas,
        "autoscaling": {"enabled": False},
        "wait_timeout": 120,
    }
    args.update(extra)
    return args


def install(ansible, args):
    result = ansible.module("istio_gateway", args)
    assert result["changed"] and not result.get("failed"), result.get("msg")
    return result


def assert_clear(result, *fragments):
    """A failed run names what went wrong (one of the fragments); a successful one is fine too."""
    if result.get("failed"):
        assert any(f in result["msg"] for f in fragments), "unclear failure: %s" % result["msg"]


def converge(ansible, module, args, faulted):
    """Re-run twice: the faulted run or the first re-run reports a change, the second reports none."""
    rerun = ansible.module(module, args)
    assert not rerun.get("failed"), "the re-run after the fault failed: %s" % rerun.get("msg")
    assert faulted.get("changed") or rerun["changed"], "neither the faulted run nor its re-run changed anything"
    again = ansible.module(module, args)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False, "a third run still changes: %s" % (again.get("actions") or again.get("objects"))
    return rerun, again


def ready_by_revision(kube, namespace, service=GW):
    endpoints = inventory.endpoints_by_revision(kube, service, namespace)
    return {rev: e["ready"] for rev, e in endpoints.items() if e["ready"]}


def injected_images(kube, namespace, selector):
    pods = kube.list("v1", "Pod", namespace, label_selector=L.selector_string(selector))
    return {c["image"] for p in pods for c in p["spec"]["containers"] if c["name"] == "istio-proxy"}


def test_apiserver_restart_during_install(ansible, kube, testbed, namespace_factory, tmp_path):
    ns = namespace_factory("rel-f-api")
    binary, log = faults.istioctl_recorder(tmp_path, testbed.istioctl)
    args = gateway_args(testbed, ns, binary_path=binary)
    COUNTS["faults_injected"] += 1
    run = faults.Background(ansible.module, "istio_gateway", args)
    faults.wait_until("istioctl install to start", lambda: "install" in faults.recorded_runs(log) or run.done())
    time.sleep(1)  # istioctl is applying the manifest
    away = faults.restart_apiserver()
    faulted = run.result()
    print("API server away %ss during the install; the run %s" % (away, faulted.get("msg") or "succeeded"))
    assert_clear(faulted, "cannot reach the Kubernetes API server", "istioctl install", "timed out after")

    rerun, again = converge(ansible, "istio_gateway", dict(args, binary_path=str(testbed.istioctl)), faulted)
    assert again["deployment"]["ready_replicas"] == 2
    assert injected_images(kube, ns, args["labels"]) == {"docker.io/istio/proxyv2:" + testbed.default_version}
    assert_no_orphans(kube, ns, desired_objects(again))
    COUNTS["faults_survived"] += 1


def test_apiserver_restart_during_canary_step(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("rel-f-apic")
    installed = install(ansible, gateway_args(testbed, ns, replicas=4))
    args = {"name": GW, "namespace": ns, "revision": testbed.canary_revision, "weight": 50, "wait_timeout": 120}
    COUNTS["faults_injected"] += 1
    run = faults.Background(ansible.module, "gateway_canary", args)
    faults.wait_until(
        "the canary Deployment", lambda: kube.get("apps/v1", "Deployment", CANARY, ns) is not None or run.done()
    )
    away = faults.restart_apiserver()
    faulted = run.result()
    print("API server away %ss during the canary step; the run %s" % (away, faulted.get("msg") or "succeeded"))
    assert_clear(faulted, "cannot reach the Kubernetes API server", "timed out after")

    rerun, again = converge(ansible, "gateway_canary", args, faulted)
    assert (again["stable"]["replicas"], again["canary"]["replicas"]) == (2, 2)
    assert ready_by_revision(kube, ns) == {"default": 2, testbed.canary_revision: 2}
    assert_no_orphans(kube, ns, desired_objects(installed), {"Deployment/" + CANARY})
    COUNTS["faults_survived"] += 1


def test_istioctl_killed_during_install(ansible, kube, testbed, namespace_factory, tmp_path):
    ns = namespace_factory("rel-f-kill")
    args = gateway_args(testbed, ns)
    COUNTS["faults_injected"] += 1
    faulted = ansible.module(
        "istio_gateway", dict(args, binary_path=faults.istioctl_killer(tmp_path, testbed.istioctl, 1))
    )
    assert faulted.get("failed"), "istioctl was killed, yet the run succeeded"
    # Killed by SIGKILL (or rc 137 from a shell in between), with istioctl's output up to then.
    said = ("istioctl install -y was killed by signal SIGKILL", "istioctl install -y failed (rc=137)")
    assert any(text in faulted["msg"] for text in said), faulted["msg"]

    rerun, again = converge(ansible, "istio_gateway", args, faulted)
    assert again["deployment"]["ready_replicas"] == 2
    assert_no_orphans(kube, ns, desired_objects(again))
    COUNTS["faults_survived"] += 1


def test_conflict_409_on_canary_writes(ansible, kube, testbed, namespace_factory):
    """The API server answers the canary's first writes to the gateway Deployment with 409 Conflict, as it
    does when the object was modified meanwhile: the module retries them."""
    ns = namespace_factory("rel-f-409")
    installed = install(ansible, gateway_args(testbed, ns, replicas=2))
    args = {"name": GW, "namespace": ns, "revision": testbed.canary_revision, "weight": 50, "wait_timeout": 120}
    rule = {"method": "PATCH", "path": "/deployments/%s\\?" % GW, "status": 409, "times": 2}
    COUNTS["faults_injected"] += 1
    with faults.ApiProxy(fail=[rule]) as proxy:
        faulted = ansible.module("gateway_canary", dict(args, host=proxy.url), env={"K8S_AUTH_KUBECONFIG": ""})
    conflicts = [s for s in proxy.served if s[2] == 409]
    assert len(conflicts) == 2, proxy.served
    assert_clear(faulted, "HTTP 409", "Conflict")
    rerun, again = converge(ansible, "gateway_canary", args, faulted)
    assert (again["stable"]["replicas"], again["canary"]["replicas"]) == (1, 1)
    assert_no_orphans(kube, ns, desired_objects(installed), {"Deployment/" + CANARY})
    COUNTS["faults_survived"] += 1


def install_through_proxy(ansible, args, rule):
    """istio_gateway with ARGS reaching the bed only through an ApiProxy that answers as RULE says (counted as an
    injected fault): (result, proxy)."""
    COUNTS["faults_injected"] += 1
    with faults.ApiProxy(fail=[rule]) as proxy:
        result = ansible.module("istio_gateway", dict(args, host=proxy.url), env={"K8S_AUTH_KUBECONFIG": ""})
    return result, proxy


# The module's first request of an install: does the gateway's namespace exist?
NAMESPACE_READ = "^/api/v1/namespaces/%s(\\?|$)"


def test_throttled_429_with_retry_after_is_waited_out(ansible, kube, testbed, namespace_factory):
    """API Priority and Fairness answers 429 with Retry-After when the server is busy: the module waits as long
    as it is told, then goes on; the install completes."""
    ns = namespace_factory("rel-f-429")
    args = gateway_args(testbed, ns)
    rule = {
        "method": "GET",
        "path": NAMESPACE_READ % ns,
        "status": 429,
        "reason": "TooManyRequests",
        "message": "Too many requests, please try again later.",
        "times": 2,
        "headers": {"Retry-After": "1"},
    }
    faulted, proxy = install_through_proxy(ansible, args, rule)
    assert not faulted.get("failed"), faulted.get("msg")
    throttled = [i for i, s in enumerate(proxy.served) if s[2] == 429]
    assert len(throttled) == 2, proxy.served
    for i in throttled:  # the next request to the same path came after the second it was asked to wait
        later = next(j for j in range(i + 1, len(proxy.served)) if proxy.served[j][1] == proxy.served[i][1])
        assert proxy.stamps[later] - proxy.stamps[i] >= 0.9, (proxy.served[i], proxy.stamps[later] - proxy.stamps[i])
    converge(ansible, "istio_gateway", args, faulted)
    assert_no_orphans(kube, ns, desired_objects(faulted))
    COUNTS["faults_survived"] += 1


def test_a_run_of_503_longer_than_the_retries_fails_clearly_and_a_rerun_converges(
    ansible, kube, testbed, namespace_factory
):
    """An API server that answers 503 for longer than the retries last (an overloaded or restarting control
    plane behind a load balancer): the run fails naming the request and the status, and a re-run converges."""
    ns = namespace_factory("rel-f-503")
    args = gateway_args(testbed, ns)
    rule = {
        "method": "GET",
        "path": NAMESPACE_READ % ns,
        "status": 503,
        "reason": "ServiceUnavailable",
        "message": "the server is currently unable to handle the request",
        "times": 50,
    }
    faulted, proxy = install_through_proxy(ansible, args, rule)
    assert faulted.get("failed"), "a run answered 503 throughout succeeded"
    assert_clear(faulted, "HTTP 503")
    assert "/api/v1/namespaces/%s" % ns in faulted["msg"], faulted["msg"]
    assert len([s for s in proxy.served if s[2] == 503]) == 6, proxy.served  # the request and its 5 retries
    assert kube.get("v1", "Namespace", ns) is None  # it failed on its first request, before any write
    rerun, _again = converge(ansible, "istio_gateway", args, faulted)
    assert_no_orphans(kube, ns, desired_objects(rerun))
    COUNTS["faults_survived"] += 1


def test_an_answer_that_is_not_json_fails_naming_the_server(ansible, kube, testbed, namespace_factory):
    """A 200 that is an HTML page (a login portal or web proxy in front of the API): the run fails saying the
    server is not the API server, before it writes anything."""
    ns = namespace_factory("rel-f-html")
    args = gateway_args(testbed, ns)
    page = b"<html><head><title>Sign in</title></head><body>Corporate proxy</body></html>"
    rule = {
        "method": "GET",
        "path": NAMESPACE_READ % ns,
        "status": 200,
        "times": 1,
        "body": page,
        "content_type": "text/html",
    }
    faulted, proxy = install_through_proxy(ansible, args, rule)
    assert [s for s in proxy.served if s[2] == 200 and s[1].startswith("/api/v1/namespaces/" + ns)], proxy.served
    assert faulted.get("failed"), faulted
    assert_clear(faulted, "not JSON")
    assert "text/html" in faulted["msg"] and proxy.url in faulted["msg"], faulted["msg"]
    writes = [s for s in proxy.served if s[0] in ("POST", "PUT", "PATCH", "DELETE") and "dryRun=" not in s[1]]
    assert writes == [], writes
    assert kube.get("v1", "Namespace", ns) is None
    converge(ansible, "istio_gateway", args, faulted)
    COUNTS["faults_survived"] += 1


def test_a_namespace_stuck_terminating_is_named_not_blamed_on_permissions(ansible, kube, testbed, namespace_factory):
    """A namespace being deleted whose content a finalizer holds (a controller that is gone): istio_gateway refuses
    it before writing, and a write of another module that meets the API server's refusal says the namespace is being
    deleted, not that a permission is missing. Once it is gone, a re-run creates it and converges."""
    ns = namespace_factory("rel-f-term")
    hold = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": ns, "finalizers": ["istio-ops.test/hold"]},
    }
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.apply(hold)
    kube.delete("v1", "Namespace", ns)
    faults.wait_until(
        "namespace %s terminating" % ns,
        lambda: (kube.get("v1", "Namespace", ns) or {}).get("status", {}).get("phase") == "Terminating",
    )
    args = gateway_args(testbed, ns)
    serving = gateway_args(testbed, namespace_factory("rel-f-term-gw"), replicas=1, method="manifest", binary_path=None)
    install(ansible, serving)
    COUNTS["faults_injected"] += 1
    try:
        refused = ansible.module("istio_gateway", args)
        assert refused.get("failed") and "namespace: %r is being deleted" % ns in refused["msg"], refused.get("msg")
        assert [o["metadata"]["name"] for o in kube.list("v1", "ServiceAccount", ns)] in ([], ["default"])
        config = ansible.module(
            "gateway_config",
            {
                "name": "app",
                "namespace": ns,
                "gateway_namespace": serving["namespace"],
                "selector": serving["labels"],
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
            },
        )
        assert config.get("failed"), config
        assert "the namespace is being deleted" in config["msg"] and "rbac" not in config["msg"], config["msg"]
    finally:
        kube.patch("v1", "ConfigMap", "held", ns, {"metadata": {"finalizers": None}})
    faults.wait_until("namespace %s gone" % ns, lambda: kube.get("v1", "Namespace", ns) is None, timeout=120)
    rerun, _again = converge(ansible, "istio_gateway", args, refused)
    assert_no_orphans(kube, ns, desired_objects(rerun))
    COUNTS["faults_survived"] += 1


def test_deployment_edited_during_canary_step(ansible, kube, testbed, namespace_factory):
    """Another actor labels the gateway Deployment over and over while a canary step runs: both writes land,
    neither side's is lost."""
    ns = namespace_factory("rel-f-edit")
    installed = install(ansible, gateway_args(testbed, ns, replicas=4))
    args = {"name": GW, "namespace": ns, "revision": testbed.canary_revision, "weight": 25, "wait_timeout": 120}
    stop = threading.Event()
    written = []

    def edit():
        while not stop.is_set():
            value = str(len(written))
            # A label: an annotation bumps a Deployment's generation, so ten a second would keep any rollout
            # wait (the module's, kubectl's) from ever seeing the controller catch up.
            kube.patch("apps/v1", "Deployment", GW, ns, {"metadata": {"labels": {"team.example.com/edit": value}}})
            written.append(value)
            stop.wait(0.2)

    COUNTS["faults_injected"] += 1
    editor = threading.Thread(target=edit, daemon=True)
    editor.start()
    try:
        faulted = ansible.module("gateway_canary", args)
    finally:
        stop.set()
        editor.join()
    assert_clear(faulted, "HTTP 409")
    assert len(written) > 5, "the editor hardly ran"
    live = kube.get("apps/v1", "Deployment", GW, ns)
    assert live["metadata"]["labels"]["team.example.com/edit"] == written[-1], "the other actor's write was lost"
    rerun, again = converge(ansible, "gateway_canary", args, faulted)
    assert (again["stable"]["replicas"], again["canary"]["replicas"]) == (3, 1)
    assert L.STATE in kube.get("apps/v1", "Deployment", GW, ns)["metadata"]["annotations"]
    assert_no_orphans(kube, ns, desired_objects(installed), {"Deployment/" + CANARY})
    COUNTS["faults_survived"] += 1


def test_conflict_409_on_restart(ansible, kube, testbed, namespace_factory):
    """istio_gateway's own write (a rolling restart) answered with 409 Conflict is retried."""
    ns = namespace_factory("rel-f-409r")
    args = gateway_args(testbed, ns)
    installed = install(ansible, args)
    rule = {"method": "PATCH", "path": "/deployments/%s\\?" % GW, "status": 409, "times": 1}
    COUNTS["faults_injected"] += 1
    with faults.ApiProxy(fail=[rule]) as proxy:
        faulted = ansible.module(
            "istio_gateway", dict(args, restart=True, host=proxy.url), env={"K8S_AUTH_KUBECONFIG": ""}
        )
    assert [s for s in proxy.served if s[2] == 409], proxy.served
    assert not faulted.get("failed"), faulted.get("msg")
    assert faulted["restarted"] and faulted["deployment"]["ready_replicas"] == 2
    again = ansible.module("istio_gateway", args)
    assert not again.get("failed") and again["changed"] is False, again.get("msg")
    assert_no_orphans(kube, ns, desired_objects(installed))
    COUNTS["faults_survived"] += 1


def test_injection_webhook_unavailable(ansible, kube, testbed, namespace_factory):
    """istiod of the canary revision is down, so its injection webhook (failurePolicy Fail) refuses the pods
    of an install on that revision and of a canary onto it: both fail naming what they waited for; once istiod
    is back, re-runs converge."""
    rev = testbed.canary_revision
    ns_install, ns_canary = namespace_factory("rel-f-wh"), namespace_factory("rel-f-whc")
    install_args = gateway_args(
        testbed, ns_install, revision=rev, binary_path=str(testbed.istioctl_canary), wait_timeout=15
    )
    installed = install(ansible, gateway_args(testbed, ns_canary, replicas=2))
    canary_args = {"name": GW, "namespace": ns_canary, "revision": rev, "weight": 50, "wait_timeout": 15}
    COUNTS["faults_injected"] += 2
    with faults.istiod_stopped(rev):
        runs = [
            faults.Background(ansible.module, "istio_gateway", install_args),
            faults.Background(ansible.module, "gateway_canary", canary_args),
        ]
        faulted_install, faulted_canary = [r.result() for r in runs]
    assert faulted_install.get("failed"), "pods cannot be created, yet the install succeeded"
    for fragment in ("istioctl install -y failed", "Deployment/%s/%s" % (ns_install, GW), "not ready after 15s"):
        assert fragment in faulted_install["msg"], faulted_install["msg"]
    assert faulted_canary.get("failed"), "pods cannot be created, yet the canary step succeeded"
    for fragment in ("timed out after 15s waiting for rollout of Deployment %s/%s" % (ns_canary, CANARY),):
        assert fragment in faulted_canary["msg"], faulted_canary["msg"]

    rerun, again = converge(ansible, "istio_gateway", dict(install_args, wait_timeout=120), faulted_install)
    assert rerun["deployment"]["ready_replicas"] == 2, "the re-run reported success before the gateway was ready"
    assert injected_images(kube, ns_install, install_args["labels"]) == {
        "docker.io/istio/proxyv2:" + testbed.canary_version
    }
    assert_no_orphans(kube, ns_install, desired_objects(again))
    COUNTS["faults_survived"] += 1

    rerun, again = converge(ansible, "gateway_canary", dict(canary_args, wait_timeout=120), faulted_canary)
    assert ready_by_revision(kube, ns_canary) == {"default": 1, rev: 1}
    assert_no_orphans(kube, ns_canary, desired_objects(installed), {"Deployment/" + CANARY})
    COUNTS["faults_survived"] += 1
