"""istio_gateway's plan without a cluster: foreign objects, adoption and the legacy-name migration."""

import copy

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import gateway, install_istioctl, owners
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import Conflict
from tests.unit.plugins.module_utils.fake_cluster import FakeKube, FakeModule, obj

NS = "payments"
NAME = "api-gw"
CURRENT = L.iop_name(NAME, NS)
LEGACY = L.legacy_iop_name(NAME, NS)


class PlanKube(FakeKube):
    """FakeKube plus the merge patch _plan dry-runs (labels only, as the relabelling sends)."""

    def patch(self, api_version, kind, name, namespace, patch, dry_run=False, patch_type="merge", subresource=None):
        key = (api_version, kind, namespace, name)
        live = copy.deepcopy(self.objects[key])
        assert patch["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
        for field in ("labels", "annotations"):
            merged = dict(live["metadata"].get(field) or {}, **(patch["metadata"].get(field) or {}))
            live["metadata"][field] = {k: v for k, v in merged.items() if v is not None}
        if not dry_run:
            self.writes.append(("patch", kind, namespace, name))
            self.objects[key] = copy.deepcopy(live)
        return live


def owned(kind, api_version, owner, **extra):
    labels = L.owner_labels(owner, "istio-system", None, "1.30.0", "ingress")
    item = obj(api_version, kind, NAME, NS, labels, **extra)
    item["metadata"]["resourceVersion"] = "7"
    return item


def desired():
    return install_istioctl.stamp_owner_labels(
        [obj("apps/v1", "Deployment", NAME, NS), obj("v1", "Service", NAME, NS)],
        {"metadata": {"name": CURRENT, "namespace": "istio-system"}, "spec": {}},
        "1.30.0",
        "ingress",
    )


class Version(object):
    """Stands in for the istioctl runner: the plan asks it for its version only."""

    def version(self):
        return "1.30.0"


def plan_manager(kube, adopt=False, check_mode=False):
    mgr = object.__new__(gateway.IstioGatewayManager)
    mgr.module = FakeModule({}, check_mode=check_mode)
    mgr.params = {
        "name": NAME,
        "namespace": NS,
        "kind": "ingress",
        "adopt": adopt,
        "istio_namespace": "istio-system",
        "revision": None,
        "method": "istioctl",
    }
    mgr.check_mode = check_mode
    mgr.kube = kube
    mgr.result = {"changed": False}
    method = install_istioctl.IstioctlMethod(mgr.module, kube, mgr.params, mgr.result)
    method.istioctl = Version()
    mgr.method = method
    mgr.plan = lambda objects: mgr._plan(method, objects, namespace_exists=True)
    return mgr


def namespace():
    return obj("v1", "Namespace", NS)


def test_a_helm_made_deployment_of_the_same_name_is_refused_with_its_owner():
    helm = obj(
        "apps/v1",
        "Deployment",
        NAME,
        NS,
        {L.MANAGED_BY: "Helm"},
        annotations={L.HELM_RELEASE_NAME: "edge", L.HELM_RELEASE_NAMESPACE: NS},
    )
    kube = PlanKube([namespace(), helm])
    with pytest.raises(owners.ForeignObject) as err:
        plan_manager(kube).plan(desired())
    message = err.value.message
    assert "Deployment payments/api-gw is not this collection's" in message
    assert "Helm release payments/edge" in message and "adopt: true" in message
    assert kube.writes == []


def test_a_gateway_of_another_istio_operator_is_refused():
    other = owned("Deployment", "apps/v1", "ingress")  # a hand-written IstioOperator named "ingress"
    kube = PlanKube([namespace(), other])
    with pytest.raises(owners.ForeignObject) as err:
        plan_manager(kube).plan(desired())
    assert "IstioOperator ingress (istioctl owner label)" in err.value.message


def test_adopt_claims_the_foreign_object_and_reports_it():
    kube = PlanKube([namespace(), obj("v1", "Service", NAME, NS, {L.MANAGED_BY: "Helm"}, resourceVersion="3")])
    mgr = plan_manager(kube, adopt=True)
    changes, migrations = mgr.plan(desired())
    assert {c["kind"]: c["action"] for c in changes} == {"Deployment": "create", "Service": "none"}
    assert mgr.result["adopted"] == [{"kind": "Service", "namespace": NS, "name": NAME}]
    assert "adopt: taking over Service api-gw (app.kubernetes.io/managed-by=Helm)" in mgr._adopting
    [claim] = migrations
    assert claim["from"] == "hand" and claim["after"]["metadata"]["labels"][L.OWNING_RESOURCE] == CURRENT
    assert kube.writes == [], "the plan claims by dry run only"


def test_legacy_owned_objects_are_migrated_by_dry_run_in_the_plan_and_stale_ones_pruned():
    stale = owned("HorizontalPodAutoscaler", "autoscaling/v2", LEGACY)
    kube = PlanKube([namespace(), owned("Deployment", "apps/v1", LEGACY), owned("Service", "v1", LEGACY), stale])
    changes, migrations = plan_manager(kube).plan(desired())
    assert sorted(m["live"]["kind"] for m in migrations) == ["Deployment", "Service"]
    assert all(m["after"]["metadata"]["labels"][L.OWNING_RESOURCE] == CURRENT for m in migrations)
    # Relabelled, the objects equal what istioctl would apply: no install, no restart.
    assert {c["kind"]: c["action"] for c in changes} == {
        "Deployment": "none",
        "Service": "none",
        "HorizontalPodAutoscaler": "prune",
    }
    assert kube.writes == []


def test_legacy_objects_of_another_namespace_or_kind_are_not_taken():
    elsewhere = owned("Deployment", "apps/v1", LEGACY)
    elsewhere["metadata"]["namespace"] = "other"
    kube = PlanKube([namespace(), obj("v1", "Namespace", "other"), elsewhere])
    changes, migrations = plan_manager(kube).plan(desired())
    assert migrations == [] and {c["action"] for c in changes} == {"create"}


class BumpingKube(PlanKube):
    """A controller updates the object's status once between the plan and the claim (its resourceVersion moves)."""

    bumped = False

    def patch(self, api_version, kind, name, namespace, patch, dry_run=False, patch_type="merge", subresource=None):
        key = (api_version, kind, namespace, name)
        if not dry_run and not self.bumped:
            self.bumped = True
            self.objects[key]["metadata"]["resourceVersion"] = "8"
        if patch["metadata"]["resourceVersion"] != self.objects[key]["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified")
        return super(BumpingKube, self).patch(
            api_version, kind, name, namespace, patch, dry_run, patch_type, subresource
        )


def test_a_claim_raced_by_a_status_update_is_read_again_and_made():
    hpa = owned("HorizontalPodAutoscaler", "autoscaling/v2", LEGACY, uid="u-1")
    kube = BumpingKube([namespace(), hpa])
    mgr = plan_manager(kube)
    claimed = mgr._claim(mgr.method, kube.objects[("autoscaling/v2", "HorizontalPodAutoscaler", NS, NAME)], False)
    assert claimed["metadata"]["labels"][L.OWNING_RESOURCE] == CURRENT
    assert kube.writes == [("patch", "HorizontalPodAutoscaler", NS, NAME)]


def test_a_claim_of_an_object_replaced_meanwhile_fails():
    hpa = owned("HorizontalPodAutoscaler", "autoscaling/v2", LEGACY, uid="u-1")
    kube = BumpingKube([namespace(), hpa])
    mgr = plan_manager(kube)
    read = copy.deepcopy(kube.objects[("autoscaling/v2", "HorizontalPodAutoscaler", NS, NAME)])
    kube.objects[("autoscaling/v2", "HorizontalPodAutoscaler", NS, NAME)]["metadata"]["uid"] = "u-2"
    with pytest.raises(Conflict):
        mgr._claim(mgr.method, read, False)
    assert kube.writes == []
