"""revision_tag on the test bed (issues #15 and #16): a tag created, moved and removed with `istioctl tag generate`
of the real istioctl and the bed's real istiods; what follows it listed first; Gateway API followers re-rendered by
istiod at once on a move (and waited for), istio-API gateways left to their next restart; a tag that others made,
or that something follows, refused."""

import uuid

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.config import new_client_from_config

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from tests.testbed import istio

from .test_gateway_api import GATEWAY_API, api_args, failed_with, make_namespace, proxy_images

pytestmark = pytest.mark.integration

WEBHOOKS = "admissionregistration.k8s.io/v1"


def tag_args(testbed, name, revision, **extra):
    istioctl = testbed.istioctl_canary if revision == testbed.canary_revision else testbed.istioctl
    args = {"name": name, "revision": revision, "binary_path": str(istioctl), "wait_timeout": 180}
    args.update(extra)
    return args


def webhook(kube, tag):
    return kube.get(WEBHOOKS, "MutatingWebhookConfiguration", "istio-revision-tag-" + tag)


def test_a_tag_created_moved_and_removed_with_its_followers_listed(ansible, kube, testbed, namespace_factory):
    tag = "t" + uuid.uuid4().hex[:6]
    create = tag_args(testbed, tag, "default")
    try:
        results = ansible.four_steps("revision_tag", create)
        assert [r["changed"] for r in results] == [True, True, False, False], [r.get("msg") for r in results]
        assert results[1]["revision"] == {"before": None, "after": "default"} and results[1]["gateways"] == []
        hook = webhook(kube, tag)
        assert hook["metadata"]["labels"][L.ISTIO_TAG] == tag and hook["metadata"]["labels"][L.REVISION] == "default"
        assert hook["metadata"]["labels"][L.INSTALLED_BY] == "revision_tag"

        # Followers: a Gateway API gateway and an istio-API one, both on the tag.
        api_ns, istio_ns = namespace_factory("tg"), namespace_factory("tg")
        api_gateway = ansible.module(
            "istio_gateway", api_args(api_ns, replicas=1, autoscaling={"enabled": False}, revision=tag)
        )
        assert api_gateway["changed"] and not api_gateway.get("failed"), api_gateway.get("msg")
        manifest = {"name": "mgw", "namespace": istio_ns, "method": "manifest", "revision": tag, "replicas": 1}
        manifest["autoscaling"] = {"enabled": False}
        assert not ansible.module("istio_gateway", manifest).get("failed")
        pods_before = {p["metadata"]["name"] for p in kube.list("v1", "Pod", istio_ns)}
        assert all(i.endswith(":" + testbed.default_version) for i in proxy_images(kube, api_ns)), proxy_images(
            kube, api_ns
        )

        move = tag_args(testbed, tag, testbed.canary_revision)
        check = ansible.module("revision_tag", move, check=True)
        assert check["changed"] and check["revision"] == {"before": "default", "after": testbed.canary_revision}
        assert sorted((g["api"], g["namespace"], g["name"]) for g in check["gateways"]) == sorted(
            [("gateway_api", api_ns, "gw"), ("istio", istio_ns, "mgw")]
        )
        assert check["gateway_api_rerendered"] == ["%s/gw" % api_ns]
        assert any("%s/gw" % api_ns in w for w in check.get("warnings", [])), check.get("warnings")
        assert webhook(kube, tag)["metadata"]["resourceVersion"] == hook["metadata"]["resourceVersion"]

        moved = ansible.module("revision_tag", move)
        assert moved["changed"] and not moved.get("failed"), moved.get("msg")
        # istiod re-rendered the Gateway API gateway on the new revision at once (the module waited for it) ...
        rendered = kube.get("apps/v1", "Deployment", "gw-istio", api_ns)
        assert rendered["spec"]["template"]["metadata"]["annotations"][L.REVISION] == testbed.canary_revision
        images = proxy_images(kube, api_ns)
        assert images and all(i.endswith(":" + testbed.canary_version) for i in images), images
        # ... while the istio-API gateway's pods are the same pods until they restart.
        assert {p["metadata"]["name"] for p in kube.list("v1", "Pod", istio_ns)} == pods_before
        assert ansible.module("revision_tag", move)["changed"] is False

        # Removing a tag that gateways follow is refused, and changes nothing.
        refused = ansible.module("revision_tag", {"name": tag, "state": "absent"})
        failed_with(refused, "would leave what follows revision tag %r without injection" % tag, "mgw")
        assert webhook(kube, tag) is not None
    finally:
        removed = ansible.module("revision_tag", {"name": tag, "state": "absent", "force": True})
        assert not removed.get("failed"), removed.get("msg")
    assert webhook(kube, tag) is None
    assert ansible.module("revision_tag", {"name": tag, "state": "absent"})["changed"] is False


def test_a_tag_others_made_and_bad_names_are_refused(ansible, kube, testbed):
    default_tag = webhook(kube, "default")
    assert default_tag is not None and default_tag["metadata"]["labels"].get(L.OWNING_RESOURCE), "istioctl install's"
    for check in (True, False):
        result = ansible.module("revision_tag", tag_args(testbed, "default", testbed.canary_revision), check=check)
        failed_with(result, "MutatingWebhookConfiguration istio-revision-tag-default is not this collection's", "adopt")
    assert webhook(kube, "default")["metadata"]["resourceVersion"] == default_tag["metadata"]["resourceVersion"]
    failed_with(
        ansible.module("revision_tag", tag_args(testbed, testbed.canary_revision, "default")),
        "name: %r is a revision, not a tag" % testbed.canary_revision,
    )
    failed_with(
        ansible.module("revision_tag", tag_args(testbed, "t-x", "no-such")),
        "revision: no control plane of revision 'no-such'",
    )
    failed_with(
        ansible.module("revision_tag", tag_args(testbed, "Bad_Tag", "default")), "name: 'Bad_Tag' is not a valid name"
    )
    assert GATEWAY_API  # the Gateway API's group, for the followers above


# -- the rollout: restart what follows a tag, verified, rolled back on a failure (issue #16) -------------------------
GATEWAYS = ("gw-a", "gw-b", "gw-c")


def manifest_gateway(ansible, namespace, name, tag):
    args = {"name": name, "namespace": namespace, "method": "manifest", "revision": tag, "replicas": 2}
    args.update(autoscaling={"enabled": False}, wait_timeout=120)
    result = ansible.module("istio_gateway", args)
    assert result["changed"] and not result.get("failed"), result.get("msg")


def live_pods(kube, namespace, name):
    dep = kube.get("apps/v1", "Deployment", name, namespace)
    selector = L.selector_string(dep["spec"]["selector"]["matchLabels"])
    return [
        p
        for p in kube.list("v1", "Pod", namespace, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]


def injected(kube, namespace, name):
    """{pod name: (injected revision, ready)} of a gateway's pods."""
    return {
        p["metadata"]["name"]: (
            inventory.injected_revision(p),
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []),
        )
        for p in live_pods(kube, namespace, name)
    }


def ready_since(pod):
    [ready] = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    return ready["lastTransitionTime"]


def test_a_tag_rollout_moves_its_gateways_one_by_one_and_rolls_back_when_one_fails(
    ansible, kube, testbed, namespace_factory
):
    tag, canary = "r" + uuid.uuid4().hex[:6], testbed.canary_revision
    namespaces = dict(zip(GATEWAYS, (namespace_factory("tr") for each in GATEWAYS)))
    # The rollout goes by namespace/name: `order` is the gateways in that order, `refs` their namespace/name.
    order = sorted(GATEWAYS, key=lambda name: "%s/%s" % (namespaces[name], name))
    refs = ["%s/%s" % (namespaces[name], name) for name in order]
    first, *later = order
    api = new_client_from_config(str(testbed.kubeconfig))
    assert not ansible.module("revision_tag", tag_args(testbed, tag, "default")).get("failed")
    try:
        for name in GATEWAYS:
            manifest_gateway(ansible, namespaces[name], name, tag)
        # An Istio Gateway resource selecting the first gateway's pods: it must still select ready pods after each
        # restart.
        pod_labels = kube.get("apps/v1", "Deployment", first, namespaces[first])["spec"]["template"]["metadata"]
        kube.apply(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "web", "namespace": namespaces[first]},
                "spec": {
                    "selector": {k: v for k, v in pod_labels["labels"].items() if k != L.REVISION},
                    "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
                },
            },
            field_manager="test",
        )
        before = {name: injected(kube, namespaces[name], name) for name in GATEWAYS}
        assert all(state == ("default", True) for pods in before.values() for state in pods.values()), before

        # The new revision's proxy is broken: the first gateway's new pods crash, the tag goes back, it is restarted
        # onto the old revision, and the two others are never restarted.
        move = tag_args(testbed, tag, canary, restart=True, wait_timeout=120)
        istio.fail_injected_pods(CoreV1Api(api), canary, "crashloop")
        try:
            failed = ansible.module("revision_tag", move)
        finally:
            istio.fail_injected_pods(CoreV1Api(api), canary, None)
        failed_with(
            failed,
            "gateway %s failed on revision %s" % (refs[0], canary),
            "CrashLoopBackOff",
            "the tag was moved back to default",
            "and verified",
        )
        assert failed["rollout"]["failed"]["gateway"] == refs[0] and failed["rollout"]["rolled_back"] == [refs[0]]
        assert failed["rollout"]["batches"] == [[refs[0]]]
        assert webhook(kube, tag)["metadata"]["labels"][L.REVISION] == "default"
        after_rollback = {name: injected(kube, namespaces[name], name) for name in GATEWAYS}
        assert all(state == ("default", True) for pods in after_rollback.values() for state in pods.values())
        assert set(after_rollback[first]) != set(before[first])  # restarted twice, back on default
        assert all(after_rollback[name] == before[name] for name in later)  # never restarted

        # The role's tag strategy in check mode lists the same plan and writes nothing.
        role_vars = {"gateway_upgrade_strategy": "tag", "gateway_upgrade_tag": tag, "gateway_upgrade_revision": canary}
        role_vars["gateway_upgrade_istioctl_path"] = str(testbed.istioctl_canary)
        planned = ansible.role("gateway_upgrade", role_vars, check=True)
        assert planned["changed"] and not planned["failed"], planned["msg"]
        said = planned["tasks"]["What followed the tag"]["msg"]
        assert "Tag %s: would restart %s onto revision %s; 0 sidecar pod(s)" % (tag, ", ".join(refs), canary) in said
        assert webhook(kube, tag)["metadata"]["labels"][L.REVISION] == "default"

        # Healed: check, real, check, real. The real run moves them one at a time, each verified before the next.
        results = ansible.four_steps("revision_tag", move)
        assert [r["changed"] for r in results] == [True, True, False, False], [r.get("msg") for r in results]
        check, moved = results[0], results[1]
        assert check["rollout"]["restart_planned"] == refs and check["rollout"]["batches"] == []
        assert moved["rollout"]["batches"] == [[ref] for ref in refs]
        assert [v["gateway"] for v in moved["rollout"]["verified"]] == refs
        assert all(v["min_ready"] >= v["bound"] == 2 for v in moved["rollout"]["verified"]), moved["rollout"]
        assert results[3]["rollout"]["restart_planned"] == []
        pods = {name: live_pods(kube, namespaces[name], name) for name in GATEWAYS}
        assert all(
            inventory.injected_revision(p) == canary and ready_since(p) for group in pods.values() for p in group
        )
        # gateway_info's summary says what a tag follower runs, and which tag it follows.
        info = ansible.module("gateway_info", {"namespace": namespaces[first]})
        assert {(g["summary"]["revision"], g["summary"]["follows"]) for g in info["gateways"]} == {(canary, tag)}
        for previous, following in zip(order, order[1:]):
            # The next gateway's new pods were created only once the previous one's were all ready.
            assert min(p["metadata"]["creationTimestamp"] for p in pods[following]) >= max(
                ready_since(p) for p in pods[previous]
            ), (previous, following)
    finally:
        removed = ansible.module("revision_tag", {"name": tag, "state": "absent", "force": True})
        assert not removed.get("failed"), removed.get("msg")


def test_a_rollout_refuses_followers_the_collection_did_not_install(ansible, kube, testbed, namespace_factory):
    """A hand-made gateway Deployment on the tag stops the rollout before the tag moves."""
    tag, namespace = "u" + uuid.uuid4().hex[:6], namespace_factory("tu")
    assert not ansible.module("revision_tag", tag_args(testbed, tag, "default")).get("failed")
    try:
        make_namespace(kube, namespace)
        labels = {"app": "hand", L.REVISION: tag, L.SIDECAR_INJECT: "true"}
        kube.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "hand-gw", "namespace": namespace},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "hand"}},
                    "template": {
                        "metadata": {"labels": labels, "annotations": {L.INJECT_TEMPLATES: "gateway"}},
                        "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]},
                    },
                },
            },
            field_manager="test",
        )
        hand = kube.get("apps/v1", "Deployment", "hand-gw", namespace)
        for check in (True, False):
            refused = ansible.module(
                "revision_tag", tag_args(testbed, tag, testbed.canary_revision, restart=True), check=check
            )
            failed_with(refused, "Deployment %s/hand-gw is not this collection's" % namespace, "restart_unmanaged")
        assert webhook(kube, tag)["metadata"]["labels"][L.REVISION] == "default"
        assert (
            kube.get("apps/v1", "Deployment", "hand-gw", namespace)["metadata"]["generation"]
            == hand["metadata"]["generation"]
        )
    finally:
        removed = ansible.module("revision_tag", {"name": tag, "state": "absent", "force": True})
        assert not removed.get("failed"), removed.get("msg")


def test_gateways_without_a_revision_label_follow_the_default_tag(ansible, kube, testbed, namespace_factory):
    """Check mode of a move of the default tag (istioctl install's, so adopt): a gateway with no istio.io/rev label
    and a labelled one in a namespace labelled istio-injection=enabled follow it; one labelled with another tag does
    not; nothing is written."""
    plain, enabled = namespace_factory("td"), namespace_factory("td")
    make_namespace(kube, enabled, {L.INJECTION: L.INJECTION_ENABLED})
    for namespace, name, revision in ((plain, "plain", None), (enabled, "enabled", testbed.canary_revision)):
        args = {"name": name, "namespace": namespace, "method": "manifest", "replicas": 1}
        args.update(autoscaling={"enabled": False}, revision=revision)
        if revision is None:
            del args["revision"]
        result = ansible.module("istio_gateway", args)
        assert not result.get("failed"), result.get("msg")
    default_tag = webhook(kube, "default")
    # restart_unmanaged: other tests' hand-made gateways on the shared bed follow the default tag too.
    move = tag_args(testbed, "default", testbed.canary_revision, adopt=True, restart=True, restart_unmanaged=True)
    check = ansible.module("revision_tag", move, check=True)
    assert check["changed"] and not check.get("failed"), check.get("msg")
    followers = {(g["namespace"], g["name"]) for g in check["gateways"]}
    assert {(plain, "plain"), (enabled, "enabled")} <= followers, followers
    planned = check["rollout"]["restart_planned"]
    assert "%s/plain" % plain in planned and "%s/enabled" % enabled in planned, planned
    assert webhook(kube, "default")["metadata"]["resourceVersion"] == default_tag["metadata"]["resourceVersion"]
