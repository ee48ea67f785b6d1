# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helm install method: Istio's `gateway` chart as a Helm release named after the gateway, in its namespace.

Idempotent without trusting helm: `helm upgrade --install` always writes a new release record (a Secret
sh.helm.release.v1.<name>.v<N>) even when no object changes, so the plan renders with `helm template`,
compares each object with the live one by a server-side dry run, and runs helm only when something differs
or the release itself needs it (pending()).

What helm 3 does that the plan relies on (helm.sh/helm/v3 v3.22.0):
- It adopts an existing object only when the object already carries label app.kubernetes.io/managed-by=Helm
  and annotations meta.helm.sh/release-name/-namespace naming this release (pkg/action/validate.go
  checkOwnership, called by existingResourceConflict from install.go and upgrade.go for every object not in
  the previous release's manifest); claim_patch() sets exactly those.
- It writes objects with a three-way strategic merge patch (old release manifest, new manifest, live object;
  pkg/kube/client.go createPatch/updateResource) under field manager "helm" (cmd/helm/helm.go sets
  kube.ManagedFieldsManager), not by server-side apply. A field the new render drops is removed only because
  the old manifest had it; a server-side dry run cannot see that, so pending() also compares the release's
  stored manifest with the render.

The same options give the same objects as the istioctl method, except where the chart cannot (see
chart_values): its Deployment and PodDisruptionBudget selectors hold only `app` and `istio`, the Role and
RoleBinding are named after the ServiceAccount, the pod template carries the chart's labels (and the
method's marks, which the chart puts on every object through its `labels` value), and spec.replicas is
rendered only while autoscaling is off.
"""

import copy

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError, InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.helm import Helm
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import (
    CHART_SERVICE_TYPE,
    InstallMethod,
    budget_spec,
    claim,
    deep_merge,
    pinned_path_errors,
    pod_labels,
    rolling_strategy,
    service_ports,
)

try:
    import yaml
except ImportError:  # pragma: no cover - reported by run_module
    yaml = None

DEFAULT_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
DEFAULT_CHART = "gateway"
METHOD = "helm"
SUPPORTED_HELM_MAJOR = "3"  # helm 4 applies server-side by default: other field ownership, other comparison

# The chart's own selector keys (templates/_helpers.tpl gateway.selectorLabels): only these are in the
# Deployment's and the PodDisruptionBudget's selector; other labels reach the Service's via selectorLabels.
CHART_SELECTOR_KEYS = ("app", "istio")

# istioctl's gateway charts roll a gateway out with all new pods up before old ones go (rollingMaxSurge 100%,
# rollingMaxUnavailable 25%); Istio's gateway chart leaves the strategy to Kubernetes' 25%/25% unless told.

# helm.values keys the module sets itself: (path, fix). A path ending in None stands for any key under it.
PINNED_VALUES = (
    (("name",), "remove it: the release and every object are named after the option name"),
    (("revision",), "remove it and use the option revision"),
    (("labels", "app"), "remove it and use the option labels"),
    (("labels", "istio"), "remove it and use the option labels"),
    (("labels", L.INSTALLED_BY), "remove it: the module marks what it installs"),
    (("labels", L.INSTALLED_FOR), "remove it: the module marks what it installs"),
    (("serviceAccount", "name"), "remove it: the ServiceAccount is <name>-service-account whatever the method"),
    (("kind",), "remove it: a gateway is a Deployment"),
    (("podAnnotations", L.INJECT_TEMPLATES), "remove it and use the option injection_template"),
    (("_internal_defaults_do_not_set",), "set those values directly, as the chart's values.yaml says"),
)


def helm_options(params):
    """The option `helm` with its defaults (version None: the control plane's, set by the method)."""
    given = params.get("helm") or {}
    return {
        "repository": given.get("repository") or DEFAULT_REPOSITORY,
        "chart": given.get("chart") or DEFAULT_CHART,
        "version": given.get("version"),
        "values": given.get("values") or {},
        "binary_path": given.get("binary_path"),
    }


def pinned_value_errors(values):
    """Errors for helm.values keys that would undo what the module pins."""
    return pinned_path_errors(values, PINNED_VALUES, "helm.values")


def method_marks(name):
    """The collection's labels on every object (and the release record) the helm method installs for `name`."""
    return ownership.method_marks(METHOD, name)


def chart_values(params):
    """Values of Istio's `gateway` chart that render the gateway's canonical objects; helm.values merged last.

    Raise InputError when helm.values sets what the module pins (PINNED_VALUES).
    """
    kind, name = params["kind"], params["name"]
    extra = helm_options(params)["values"]
    selector = pod_labels(params)
    service = params.get("service") or {}
    chart_service = {
        "type": service.get("type") or CHART_SERVICE_TYPE[kind],
        "ports": service_ports(params),
        # The chart's Service selector is app and istio; the rest of the labels make it equal istioctl's.
        "selectorLabels": {k: v for k, v in selector.items() if k not in CHART_SELECTOR_KEYS},
    }
    if service.get("annotations"):
        chart_service["annotations"] = service["annotations"]
    if service.get("load_balancer_ip"):
        chart_service["loadBalancerIP"] = service["load_balancer_ip"]
    if service.get("external_traffic_policy"):
        chart_service["externalTrafficPolicy"] = service["external_traffic_policy"]
    values = {
        "labels": dict(selector, **method_marks(name)),
        "serviceAccount": {"name": name + "-service-account"},
        "podAnnotations": dict(
            {L.INJECT_TEMPLATES: params.get("injection_template") or "gateway", L.SIDECAR_INJECT: "true"},
            **(params.get("pod_annotations") or {}),
        ),
        "service": chart_service,
    }
    if "strategy" not in extra:  # a strategy of helm.values replaces this one (Recreate takes no rollingUpdate)
        values["strategy"] = rolling_strategy(params)
    if params.get("revision"):
        values["revision"] = params["revision"]
    if params.get("replicas") is not None:
        values["replicaCount"] = params["replicas"]
    scaling = params.get("autoscaling")
    if scaling is not None:
        values["autoscaling"] = {"enabled": scaling.get("enabled", True)}
        if scaling.get("min") is not None:
            values["autoscaling"]["minReplicas"] = scaling["min"]
        if scaling.get("max") is not None:
            values["autoscaling"]["maxReplicas"] = scaling["max"]
    if params.get("resources"):
        values["resources"] = params["resources"]  # merged into the chart's defaults, as istioctl's k8s.resources
    if budget_spec(params):
        values["podDisruptionBudget"] = budget_spec(params)
    return deep_merge(values, extra)


def stamp_release_marks(objects, release, namespace):
    """Add what helm itself sets on every object it applies (pkg/action/validate.go setMetadataVisitor)."""
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        meta["labels"] = dict(meta.get("labels") or {}, **{L.MANAGED_BY: L.HELM_MANAGED_BY_VALUE})
        meta["annotations"] = dict(
            meta.get("annotations") or {}, **{L.HELM_RELEASE_NAME: release, L.HELM_RELEASE_NAMESPACE: namespace}
        )
    return objects


def _by_key(objects):
    return {(o.get("apiVersion"), o.get("kind"), (o.get("metadata") or {}).get("name")): o for o in objects}


def chart_version_of(plane_version):
    """The chart version of a control plane version: full semver (Istio's development builds report 1.30-alpha.x
    for chart 1.30.0-alpha.x), without an image variant (-distroless, -debug)."""
    if not plane_version:
        return plane_version
    for variant in ("-distroless", "-debug"):
        if plane_version.endswith(variant):
            plane_version = plane_version[: -len(variant)]
    release, sep, pre = plane_version.partition("-")
    if release.count(".") == 1:
        release += ".0"
    return release + sep + pre


class HelmMethod(InstallMethod):
    name = METHOD
    field_manager = "helm"  # helm 3's, for its creates and patches (cmd/helm/helm.go: kube.ManagedFieldsManager)
    binary = Helm

    def __init__(self, module, kube, params, result):
        super(HelmMethod, self).__init__(module, kube, params, result)
        self.options = helm_options(params)
        self.helm = None
        self.chart_version = self.options["version"]
        self.values = None  # the chart values of the last render
        self.values_path = None
        self.template = None  # the last `helm template` output, as helm stores it in the release's manifest
        self.record = None  # the release as pending() read it
        self._release_read = False

    def preflight(self, plane):
        self.helm = self.binary(self.module, self.kube, self.options["binary_path"])
        version = self.helm.version()
        if version.split(".", 1)[0] != SUPPORTED_HELM_MAJOR:
            raise InputError(
                "helm.binary_path: helm %s at %s is not supported; use Helm %s.x"
                % (version, self.helm.path, SUPPORTED_HELM_MAJOR)
            )
        if not self.chart_version:
            self.chart_version = chart_version_of((plane or {}).get("version"))
            if not self.chart_version:
                raise InputError(
                    "helm.version: not set, and the control plane's version is unknown (no istiod of revision %r "
                    "with a version label or image tag in %r); set helm.version to the chart version to install"
                    % ((plane or {}).get("revision"), self.params.get("istio_namespace"))
                )

    def render(self, params, fresh=False):
        """What `helm upgrade --install` would apply: `helm template` of the chart with chart_values(params),
        plus the marks helm adds when it applies. `fresh` changes nothing: helm's output is not cached."""
        name, namespace = params["name"], params["namespace"]
        self.values = chart_values(params)
        self.values_path = self.helm.write_file("values.yaml", yaml.safe_dump(self.values, sort_keys=False))
        self.template = self.helm.template(
            name,
            namespace,
            self.options["repository"],
            self.options["chart"],
            self.chart_version,
            self.values_path,
            kube_version=self._server_version(),
        )
        return stamp_release_marks(copy.deepcopy(self.template), name, namespace)

    def _server_version(self):
        try:
            return (self.kube.server_version() or {}).get("gitVersion")
        except GatewayError:
            return None  # helm template then assumes its own default; the install reads the server itself

    def owns(self, obj):
        return ownership.owner_of(obj, self.params["name"], self.params["namespace"]) == METHOD

    def release(self):
        """The gateway's release record (read once per run), or None."""
        if not self._release_read:
            self.record = self.helm.release(self.params["name"], self.params["namespace"])
            self._release_read = True
        return self.record

    def pending(self):
        """Why helm must run although every object matches: no release, a release not deployed, or one whose
        manifest differs from the render (helm's three-way patch would remove what the render dropped)."""
        p = self.params
        record = self.release()
        what = "Helm release %s/%s" % (p["namespace"], p["name"])
        if record is None:
            return ["%s does not exist" % what]
        if record["status"] != "deployed":
            return ["%s is %s (revision %s)" % (what, record["status"], record["revision"])]
        if self.template is not None:
            stored = _by_key(doc for doc in yaml.safe_load_all(record["manifest"]) if doc)
            rendered = _by_key(self.template)
            if stored != rendered:
                changed = sorted(
                    "%s %s" % (key[1], key[2])
                    for key in set(stored) | set(rendered)
                    if stored.get(key) != rendered.get(key)
                )
                return [
                    "%s (revision %s) holds another manifest for %s" % (what, record["revision"], ", ".join(changed))
                ]
        return []

    def apply(self, desired, changes):
        """helm upgrade --install with the rendered values. No --wait: helm 3 would also wait for a LoadBalancer
        Service's address, which a cluster without a load balancer never gives; the manager awaits the rollout."""
        p = self.params
        self.helm.upgrade_install(
            p["name"],
            p["namespace"],
            self.options["repository"],
            self.options["chart"],
            self.chart_version,
            self.values_path,
            labels=method_marks(p["name"]),
        )
        self._release_read = False

    def claim_patch(self, obj):
        """A metadata merge patch that makes helm adopt obj into this gateway's release: its ownership marks and
        the method's, istioctl's owner labels removed (the manifest method's marks are overwritten); guarded by
        the resourceVersion read. Metadata only, so the pods stay as they are."""
        p = self.params
        labels = dict.fromkeys(L.OWNER_LABEL_KEYS)
        labels.update(method_marks(p["name"]))
        labels[L.MANAGED_BY] = L.HELM_MANAGED_BY_VALUE
        # No field transfer: helm patches three-way from its own manifests and never reads managedFields.
        return claim(obj, labels, {L.HELM_RELEASE_NAME: p["name"], L.HELM_RELEASE_NAMESPACE: p["namespace"]})

    def describe(self):
        described = {
            "repository": self.options["repository"],
            "chart": self.options["chart"],
            "chart_version": self.chart_version,
            "values": self.values,
        }
        if self.helm is not None:
            described.update(path=self.helm.path, version=self.helm.version(), commands=self.helm.commands)
        if self.record is not None:
            described["release"] = {k: v for k, v in self.record.items() if k not in ("manifest", "config")}
        return described
