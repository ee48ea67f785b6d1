"""istio_gateway touches only what it owns (issue 12, items 1, 2, 6 and 7), on the test bed.

Injective IstioOperator names (two gateways whose names joined by '-' are equal both survive), the
refusal of an owner name used in another namespace, the migration of a gateway installed under the
legacy name without a restart, foreign objects of the same names (Helm's, a hand-written
IstioOperator's) refused unless `adopt: true`, values that would undo the safety pins, and a planted
cache entry that must not make the module delete anything.
"""

import json
import os
import subprocess
import uuid

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import gateway, install_istioctl
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.labels import HELM_RELEASE_NAME, HELM_RELEASE_NAMESPACE
from ansible_collections.istio_ops.gateways.plugins.module_utils.ownership import OWNED_KINDS

from .conftest import snapshot
from .test_istio_gateway import _expect_failure

pytestmark = pytest.mark.integration

GW = "istio-ingressgateway"


def gateway_args(testbed, namespace, name=GW, **extra):
    args = {
        "name": name,
        "namespace": namespace,
        "labels": {"istio": "ingressgateway"},
        "binary_path": str(testbed.istioctl),
        "wait_timeout": 180,
    }
    args.update(extra)
    return args


def module_params(args):
    """The parameters render_iop sees for `args` (the module's defaults filled in)."""
    params = {key: spec.get("default") for key, spec in gateway.ARGUMENT_SPEC.items()}
    params.update(args)
    return params


def istioctl(testbed, tmp_path, *argv, document=None):
    """Run the bed's istioctl (optionally with an IstioOperator file); return stdout."""
    command = [str(testbed.istioctl)] + list(argv)
    if document is not None:
        path = tmp_path / ("iop-%s.yaml" % uuid.uuid4().hex[:6])
        path.write_text(yaml.safe_dump(document))
        command += ["-f", str(path)]
    proc = subprocess.run(
        command + ["--kubeconfig", str(testbed.kubeconfig)], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def subcommands(result):
    return [" ".join(c["argv"][1:3]) for c in result["istioctl"]["commands"]]


def chart_objects(kube, namespace):
    """{kind/name: object} of the chart's kinds in a namespace."""
    found = {}
    for api_version, kind in OWNED_KINDS:
        for obj in kube.list(api_version, kind, namespace):
            found["%s/%s" % (kind, obj["metadata"]["name"])] = obj
    return found


def owned_chart_objects(kube, namespace):
    """{kind/name: object} of the chart's kinds in a namespace that carry an istioctl owner label."""
    return {
        k: o
        for k, o in chart_objects(kube, namespace).items()
        if L.OWNING_RESOURCE in (o["metadata"].get("labels") or {})
    }


def owners_of(kube, namespace):
    """{kind/name: istioctl owner name} of the chart's kinds in a namespace that carry one."""
    found = {
        k: (o["metadata"].get("labels") or {}).get(L.OWNING_RESOURCE) for k, o in chart_objects(kube, namespace).items()
    }
    return {key: owner for key, owner in found.items() if owner}


def ok(result):
    assert not result.get("failed"), result.get("msg")
    return result


# -- item 1: injective names -------------------------------------------------------------------------------
def colliding_pair(namespace_factory):
    """(ns_a, gw_a, ns_b, gw_b) with ns_a-gw_a == ns_b-gw_b, the legacy scheme's collision."""
    ns_a = namespace_factory("pay")
    while True:
        ns_b = namespace_factory(ns_a)  # "<ns_a>-<hex>"
        suffix = ns_b[len(ns_a) + 1 :]
        if suffix[0].isalpha():  # a gateway name starts with a letter
            return ns_a, suffix + "-gw", ns_b, "gw"


def test_gateways_whose_dash_joined_names_collide_both_survive(ansible, kube, testbed, namespace_factory):
    ns_a, gw_a, ns_b, gw_b = colliding_pair(namespace_factory)
    assert L.legacy_iop_name(gw_a, ns_a) == L.legacy_iop_name(gw_b, ns_b)
    first = ok(ansible.module("istio_gateway", gateway_args(testbed, ns_a, gw_a)))
    second = ok(ansible.module("istio_gateway", gateway_args(testbed, ns_b, gw_b)))
    assert first["iop"]["metadata"]["name"] == "%s.%s" % (ns_a, gw_a)
    assert second["iop"]["metadata"]["name"] == "%s.%s" % (ns_b, gw_b)
    # Before the fix, the second install pruned the first gateway: same owner name, same version and revision.
    dep_a = kube.get("apps/v1", "Deployment", gw_a, ns_a)
    assert dep_a is not None, "installing %s/%s pruned %s/%s" % (ns_b, gw_b, ns_a, gw_a)
    assert dep_a["metadata"]["labels"][L.OWNING_RESOURCE] == "%s.%s" % (ns_a, gw_a)
    assert set(owners_of(kube, ns_a).values()) == {"%s.%s" % (ns_a, gw_a)}
    assert set(owners_of(kube, ns_b).values()) == {"%s.%s" % (ns_b, gw_b)}
    for ns, gw in ((ns_a, gw_a), (ns_b, gw_b)):
        rerun = ok(ansible.module("istio_gateway", gateway_args(testbed, ns, gw)))
        assert rerun["changed"] is False and "install -y" not in subcommands(rerun)

    # istioctl prunes by the new owner name too: turning the first gateway's HPA off prunes only its HPA.
    hpa_before = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", gw_b, ns_b)
    changed = ok(
        ansible.module("istio_gateway", gateway_args(testbed, ns_a, gw_a, replicas=1, autoscaling={"enabled": False}))
    )
    assert {o["kind"]: o["action"] for o in changed["objects"]}["HorizontalPodAutoscaler"] == "prune"
    assert kube.get("autoscaling/v2", "HorizontalPodAutoscaler", gw_a, ns_a) is None
    hpa_after = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", gw_b, ns_b)
    assert hpa_after["metadata"]["uid"] == hpa_before["metadata"]["uid"]
    assert kube.get("apps/v1", "Deployment", gw_b, ns_b) is not None


def test_owner_name_already_used_in_another_namespace_is_refused(ansible, kube, testbed, namespace_factory):
    ns, other = namespace_factory("own"), namespace_factory("other")
    for name in (ns, other):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # A hand-written IstioOperator that happens to carry this gateway's name installed something elsewhere.
    labels = {L.OWNING_RESOURCE: L.iop_name(GW, ns), "app": "other"}
    kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "elsewhere", "namespace": other, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "other"}},
                "template": {
                    "metadata": {"labels": {"app": "other"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
        }
    )
    for check in (True, False):
        _expect_failure(
            ansible,
            kube,
            [ns, other],
            gateway_args(testbed, ns),
            ["the IstioOperator name %r" % L.iop_name(GW, ns), "Deployment(s) %s/elsewhere" % other, "prune"],
            check=check,
        )


# -- item 1: migration from the legacy name -----------------------------------------------------------------
def install_legacy(testbed, tmp_path, args):
    """What collection 0.1.0 did: istioctl install of the same IstioOperator under the name <namespace>-<name>."""
    iop = install_istioctl.render_iop(module_params(args))
    iop["metadata"]["name"] = L.legacy_iop_name(args["name"], args["namespace"])
    istioctl(testbed, tmp_path, "install", "-y", "--readiness-timeout", "180s", document=iop)
    return iop["metadata"]["name"]


def pods_and_replicasets(kube, namespace):
    pods = sorted(p["metadata"]["name"] for p in kube.list("v1", "Pod", namespace))
    sets = sorted((r["metadata"]["name"], r["metadata"]["uid"]) for r in kube.list("apps/v1", "ReplicaSet", namespace))
    return pods, sets


def test_legacy_gateway_is_migrated_without_restart(ansible, kube, testbed, namespace_factory, tmp_path):
    ns = namespace_factory("legacy")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    args = gateway_args(testbed, ns)
    legacy = install_legacy(testbed, tmp_path, args)
    new = L.iop_name(GW, ns)
    assert set(owners_of(kube, ns).values()) == {legacy}
    before = owned_chart_objects(kube, ns)
    workload_before = pods_and_replicasets(kube, ns)
    assert workload_before[0], "the legacy install made pods"

    # Found as the collection's by gateway_info and gateway_cleanup before the migration.
    [info] = ok(ansible.module("gateway_info", {"namespace": ns}))["gateways"]
    assert info["owner"]["managed_by_collection"] is True and info["owner"]["iop"] == legacy
    cleanup = ok(ansible.module("gateway_cleanup", {"name": GW, "namespace": ns}, check=True))
    assert cleanup["gateway"]["installed_by"] == "collection"
    assert "Deployment/" + GW in {"%s/%s" % (r["kind"], r["name"]) for r in cleanup["removed"]}

    # Check mode reports the migration, writes nothing.
    frozen = snapshot(kube, [ns])
    check = ok(ansible.module("istio_gateway", args, check=True, diff=True))
    assert check["changed"] is True
    assert {"kind": "Deployment", "namespace": ns, "name": GW, "from": "istioctl", "to": "istioctl"} in check["migrated"]
    assert {o["action"] for o in check["objects"]} == {"none"}, check["objects"]
    assert any(new in d["after"] for d in check["diff"])
    assert snapshot(kube, [ns]) == frozen

    real = ok(ansible.module("istio_gateway", args))
    assert real["changed"] is True
    assert sorted(real["migrated"], key=json.dumps) == sorted(check["migrated"], key=json.dumps)
    assert len(real["migrated"]) == len(before), "every chart object is relabelled"
    assert "install -y" not in subcommands(real), "a pure migration needs no istioctl install"
    after = owned_chart_objects(kube, ns)
    assert set(after) == set(before), "nothing pruned or added"
    assert set(owners_of(kube, ns).values()) == {new}
    for key, obj in after.items():
        assert obj["metadata"]["uid"] == before[key]["metadata"]["uid"], key
    dep_key = "Deployment/" + GW
    assert after[dep_key]["spec"]["template"] == before[dep_key]["spec"]["template"]
    assert after[dep_key]["metadata"].get("generation") == before[dep_key]["metadata"].get("generation")
    assert pods_and_replicasets(kube, ns) == workload_before, "pods and ReplicaSets unchanged: no restart"
    # istioctl keeps no in-cluster state named after the IstioOperator (no installed-state IstioOperator).
    if kube.has_api("install.istio.io/v1alpha1"):
        names = [o["metadata"]["name"] for o in kube.list("install.istio.io/v1alpha1", "IstioOperator")]
        assert not [n for n in names if legacy in n], names

    rerun = ok(ansible.module("istio_gateway", args))
    assert rerun["changed"] is False and "migrated" not in rerun
    [info] = ok(ansible.module("gateway_info", {"namespace": ns}))["gateways"]
    assert info["owner"]["managed_by_collection"] is True and info["owner"]["iop"] == new


# -- item 2: foreign objects --------------------------------------------------------------------------------
def helm_copy(obj, namespace):
    """A rendered chart object as Helm would have made it: its release annotations, no istioctl owner labels."""
    meta = obj["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in L.OWNER_LABEL_KEYS}
    labels[L.MANAGED_BY] = "Helm"
    meta["labels"] = labels
    meta["annotations"] = dict(
        meta.get("annotations") or {}, **{HELM_RELEASE_NAME: "edge", HELM_RELEASE_NAMESPACE: namespace}
    )
    return obj


def test_helm_made_gateway_is_refused_unless_adopted(ansible, kube, testbed, namespace_factory, tmp_path):
    ns = namespace_factory("helm")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    args = gateway_args(testbed, ns)
    iop = install_istioctl.render_iop(module_params(args))
    rendered = [d for d in yaml.safe_load_all(istioctl(testbed, tmp_path, "manifest", "generate", document=iop)) if d]
    for obj in rendered:
        if obj["kind"] in ("Deployment", "Service"):
            kube.create(helm_copy(obj, ns))
    for check in (True, False):
        _expect_failure(
            ansible,
            kube,
            [ns],
            args,
            [
                "Deployment %s/%s is not this collection's (Helm release %s/edge" % (ns, GW, ns),
                "the same holds for Service %s (Helm release %s/edge" % (GW, ns),
                "adopt: true",
            ],
            check=check,
        )

    adopted = ok(ansible.module("istio_gateway", dict(args, adopt=True)))
    assert adopted["changed"] is True
    assert {"kind": "Deployment", "namespace": ns, "name": GW} in adopted["adopted"]
    assert {"kind": "Service", "namespace": ns, "name": GW} in adopted["adopted"]
    assert any("adopt: taking over" in w for w in adopted.get("warnings", []))
    for kind, api_version in (("Deployment", "apps/v1"), ("Service", "v1")):
        labels = kube.get(api_version, kind, GW, ns)["metadata"]["labels"]
        assert labels[L.OWNING_RESOURCE] == L.iop_name(GW, ns), kind
    # Owned now: a rerun without adopt converges.
    assert ok(ansible.module("istio_gateway", args))["changed"] is False


def test_gateway_of_a_hand_written_istio_operator_is_refused(ansible, kube, testbed, namespace_factory, tmp_path):
    ns = namespace_factory("handiop")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    args = gateway_args(testbed, ns)
    iop = install_istioctl.render_iop(module_params(args))
    hand_name = "hand-" + uuid.uuid4().hex[:6]
    iop["metadata"]["name"] = hand_name
    istioctl(testbed, tmp_path, "install", "-y", "--readiness-timeout", "180s", document=iop)
    assert set(owners_of(kube, ns).values()) == {hand_name}
    _expect_failure(
        ansible,
        kube,
        [ns],
        args,
        [
            "Deployment %s/%s is not this collection's (" % (ns, GW),
            "IstioOperator %s (istioctl owner label)" % hand_name,
            "set adopt: true",
        ],
    )
    # gateway_info does not count it as the collection's either.
    [info] = ok(ansible.module("gateway_info", {"namespace": ns}))["gateways"]
    assert info["owner"]["managed_by_collection"] is False


# -- item 6: values that would undo the pins -----------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, fragments",
    [
        (
            {"values": {"global": {"istioNamespace": "istio-ingress"}}},
            ["values.global.istioNamespace", "istio_namespace"],
        ),
        ({"values": {"global": {"operatorManageWebhooks": False}}}, ["values.global.operatorManageWebhooks"]),
        ({"values": {"revision": "1-31"}}, ["values.revision: '1-31'", "use the option revision"]),
        (
            {"values": {"gateways": {"istio-egressgateway": {"enabled": True}}}},
            ["values.gateways.istio-egressgateway.enabled"],
        ),
        (
            {
                "k8s": {
                    "overlays": [
                        {"kind": "Service", "name": GW, "patches": [{"path": "metadata.namespace", "value": "x"}]}
                    ]
                }
            },
            ["k8s.overlays[0].patches[0].path", "use the option namespace"],
        ),
        (
            # Past the key checks: an overlay replacing the whole metadata moves the ServiceAccount to istio-system.
            {
                "k8s": {
                    "overlays": [
                        {
                            "kind": "ServiceAccount",
                            "name": GW + "-service-account",
                            "patches": [{"path": "metadata", "value": {"name": "moved", "namespace": "istio-system"}}],
                        }
                    ]
                }
            },
            ["istioctl would render ServiceAccount istio-system/moved (outside namespace", "Nothing was applied"],
        ),
    ],
)
def test_values_that_undo_the_pins_fail_before_anything_is_applied(
    ansible, kube, testbed, namespace_factory, extra, fragments
):
    ns = namespace_factory("pins")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    _expect_failure(ansible, kube, [ns], gateway_args(testbed, ns, **extra), fragments)
    assert kube.get("v1", "ServiceAccount", "moved", "istio-system") is None


# -- item 7: the istioctl output cache ----------------------------------------------------------------------
def render_entries(directory):
    """{path: entry} of the cached renders."""
    found = {}
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        with open(path) as handle:
            entry = json.load(handle)
        if isinstance(entry, dict) and "objects" in entry:
            found[path] = entry
    return found


def test_planted_cache_entry_does_not_make_the_module_delete(ansible, kube, testbed, namespace_factory, tmp_path):
    ns = namespace_factory("cache")
    cache = tmp_path / "cache"
    env = {"ISTIO_OPS_GATEWAYS_CACHE": str(cache)}
    args = gateway_args(testbed, ns)
    assert ansible.module("istio_gateway", args, env=env)["changed"]
    service = kube.get("v1", "Service", GW, ns)
    entries = render_entries(cache)
    assert len(entries) == 1, entries
    path, entry = entries.popitem()
    # Planted (or stale): a render of this IstioOperator without the Service. The file stays 0600 and ours.
    entry["objects"] = [o for o in entry["objects"] if o["kind"] != "Service"]
    with open(path, "w") as handle:
        json.dump(entry, handle)

    result = ok(ansible.module("istio_gateway", args, env=env))
    assert "manifest generate" in subcommands(result), "the planted render was checked against a fresh one"
    assert {o["kind"]: o["action"] for o in result["objects"]}["Service"] == "none"
    assert result["changed"] is False and "install -y" not in subcommands(result)
    assert kube.get("v1", "Service", GW, ns)["metadata"]["uid"] == service["metadata"]["uid"]
    # The fresh render replaced the planted entry.
    assert any(o["kind"] == "Service" for o in render_entries(cache)[path]["objects"])

    # A cache directory others may write to is not used at all.
    os.chmod(cache, 0o777)
    shared = ok(ansible.module("istio_gateway", args, env=env))
    assert shared["istioctl"]["cached"] == [] and "manifest generate" in subcommands(shared)
    assert any("istioctl output cache not used" in w and "writable by group or others" in w for w in shared["warnings"])
    assert shared["changed"] is False
