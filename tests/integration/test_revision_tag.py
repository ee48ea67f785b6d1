"""revision_tag on the test bed (issues #15 and #16): a tag created, moved and removed with `istioctl tag generate`
of the real istioctl and the bed's real istiods; what follows it listed first; Gateway API followers re-rendered by
istiod at once on a move (and waited for), istio-API gateways left to their next restart; a tag that others made,
or that something follows, refused."""

import uuid

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L

from .test_gateway_api import GATEWAY_API, api_args, failed_with, proxy_images

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
