"""The helm runner against the bed: upgrade_install installs Istio's gateway chart from the bed's chart
repository, release() reads it back, and helm behaves as install_helm relies on (field manager "helm" with
Update patches, a new release Secret on every upgrade even when nothing changed, adoption only of objects
carrying the release's marks)."""

import os

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import helm, install_helm
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import strip_noise

pytestmark = pytest.mark.integration


class TaskModule(object):
    def __init__(self, tmpdir):
        self.tmpdir = str(tmpdir)

    def get_bin_path(self, name):
        return None


@pytest.fixture
def runner(testbed, kube, tmp_path):
    if not testbed.chart_repo:
        pytest.fail("the bed serves no chart repository (state has no chart_repo): run make testbed-up")
    run = helm.Helm(TaskModule(tmp_path), kube, str(testbed.helm))
    yield run
    run.cleanup()


@pytest.fixture
def namespace(kube, namespace_factory):
    name = namespace_factory("helm")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def records(kube, release, namespace):
    selector = L.selector_string({L.HELM_RECORD_OWNER[0]: L.HELM_RECORD_OWNER[1], L.HELM_RECORD_NAME: release})
    return sorted(s["metadata"]["name"] for s in kube.list("v1", "Secret", namespace, label_selector=selector))


def test_upgrade_install_then_release_reads_it_back(testbed, kube, runner, namespace, monkeypatch, tmp_path):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))  # helm must not write the user's ~/.cache/helm or ~/.config/helm
    params = {
        "name": "gw",
        "namespace": namespace,
        "kind": "ingress",
        "service": {"type": "ClusterIP"},
        "autoscaling": {"enabled": False},
        "replicas": 2,
    }
    values = install_helm.chart_values(params)
    path = runner.write_file("values.yaml", yaml.safe_dump(values))
    args = (testbed.chart_repo, "gateway", testbed.default_chart_version, path)
    assert runner.release("gw", namespace) is None

    runner.upgrade_install("gw", namespace, *args, labels=install_helm.method_marks("gw"))

    record = runner.release("gw", namespace)
    assert record["status"] == "deployed" and record["revision"] == 1
    assert record["config"] == values
    stored = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(record["manifest"]) if o}
    assert ("Deployment", "gw") in stored and ("ServiceAccount", "gw-service-account") in stored
    chart_label = stored[("Deployment", "gw")]["metadata"]["labels"]["helm.sh/chart"]
    assert chart_label == "gateway-" + testbed.default_chart_version

    dep = kube.get("apps/v1", "Deployment", "gw", namespace)
    meta = dep["metadata"]
    assert meta["annotations"][L.HELM_RELEASE_NAME] == "gw"
    assert meta["annotations"][L.HELM_RELEASE_NAMESPACE] == namespace
    assert meta["labels"][L.MANAGED_BY] == "Helm" and meta["labels"][L.INSTALLED_FOR] == "gw"
    assert dep["spec"]["replicas"] == 2
    assert {(m["manager"], m["operation"]) for m in meta["managedFields"]} >= {("helm", "Update")}
    assert install_helm.HelmMethod.field_manager == "helm"

    # The release record: Secret sh.helm.release.v1.<release>.v<N>, labelled owner=helm, name=<release>, and
    # the method's marks given with --labels.
    assert records(kube, "gw", namespace) == ["sh.helm.release.v1.gw.v1"]
    secret = kube.get("v1", "Secret", "sh.helm.release.v1.gw.v1", namespace)
    assert secret["type"] == "helm.sh/release.v1"
    secret_labels = secret["metadata"]["labels"]
    assert secret_labels["owner"] == "helm" and secret_labels["name"] == "gw" and secret_labels["status"] == "deployed"
    assert secret_labels[L.INSTALLED_BY] == "helm" and secret_labels[L.INSTALLED_FOR] == "gw"

    # helm's own re-run with nothing changed still writes a new release record: why the method never runs it
    # on a converged gateway.
    runner.upgrade_install("gw", namespace, *args, labels=install_helm.method_marks("gw"))
    assert records(kube, "gw", namespace) == ["sh.helm.release.v1.gw.v1", "sh.helm.release.v1.gw.v2"]
    assert runner.release("gw", namespace)["revision"] == 2
    old = kube.get("v1", "Secret", "sh.helm.release.v1.gw.v1", namespace)
    assert old["metadata"]["labels"]["status"] == "superseded"
    assert not home.exists() or not any(home.rglob("*helm*"))


def test_helm_refuses_an_object_without_the_release_marks_and_adopts_a_claimed_one(testbed, kube, runner, namespace):
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "gw-service-account", "namespace": namespace, "labels": {"x": "y"}},
    }
    kube.create(account)
    params = {"name": "gw", "namespace": namespace, "kind": "ingress", "service": {"type": "ClusterIP"}}
    path = runner.write_file("values.yaml", yaml.safe_dump(install_helm.chart_values(params)))
    args = (testbed.chart_repo, "gateway", testbed.default_chart_version, path)
    with pytest.raises(helm.HelmError, match="invalid ownership metadata"):
        runner.upgrade_install("gw", namespace, *args)

    live = kube.get("v1", "ServiceAccount", "gw-service-account", namespace)
    method = install_helm.HelmMethod(None, kube, dict(params, helm=None), {})
    kube.patch("v1", "ServiceAccount", "gw-service-account", namespace, method.claim_patch(live))
    runner.upgrade_install("gw", namespace, *args, labels=install_helm.method_marks("gw"))
    adopted = kube.get("v1", "ServiceAccount", "gw-service-account", namespace)
    assert adopted["metadata"]["uid"] == live["metadata"]["uid"]
    assert method.owns(adopted)
    assert runner.release("gw", namespace)["status"] == "deployed"
    assert os.path.basename(runner.path) == "helm"


def test_a_converged_release_compares_equal_and_nothing_is_pending(testbed, kube, namespace, tmp_path):
    """What the plan relies on: after helm installed the render, a server-side dry run of each rendered object
    under helm's field manager equals the live object, and the release holds the render's manifest."""
    params = {
        "name": "gw",
        "namespace": namespace,
        "kind": "ingress",
        "labels": {"team": "edge"},
        "service": {"type": "ClusterIP"},
        "autoscaling": {"enabled": True, "min": 2, "max": 3},
        "pod_disruption_budget": {"min_available": 1},
        "helm": {"repository": testbed.chart_repo, "binary_path": str(testbed.helm)},
    }
    method = install_helm.HelmMethod(TaskModule(tmp_path), kube, params, {})
    method.preflight({"version": testbed.default_version, "revision": "default"})
    desired = method.render(params)
    assert method.pending() == ["Helm release %s/gw does not exist" % namespace]
    method.apply(desired, [])
    for obj in desired:
        meta = obj["metadata"]
        live = kube.get(obj["apiVersion"], obj["kind"], meta["name"], namespace)
        assert strip_noise(method.dry_run(obj)) == strip_noise(live), "%s %s" % (obj["kind"], meta["name"])
    again = install_helm.HelmMethod(TaskModule(tmp_path), kube, params, {})
    again.preflight({"version": testbed.default_version, "revision": "default"})
    again.render(params)
    assert again.pending() == []
    assert again.describe()["release"]["revision"] == 1
