"""An in-memory stand-in for KubeClient and AnsibleModule, for manager tests without a cluster.

It keeps objects by (apiVersion, kind, namespace, name), answers label selectors (k=v and bare `k`
for existence), honours dry_run on writes and delete preconditions (uid, resourceVersion), serves a
discovery of the namespaced kinds it holds, and records every write so tests can prove that check
mode and failed runs wrote nothing.
"""

import copy
import itertools

from ansible_collections.istio_ops.gateways.plugins.module_utils import binary, common
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import Conflict, K8sError, NotFound

# Namespaced kinds every cluster serves (a part of what kube-apiserver lists in discovery).
BUILTIN_NAMESPACED_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Endpoints"),
    ("v1", "Event"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Pod"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("events.k8s.io/v1", "Event"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)
CLUSTER_KINDS = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
_UIDS = itertools.count(1)


def obj(api_version, kind, name, namespace=None, labels=None, **extra):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    for key in ("annotations", "ownerReferences", "deletionTimestamp", "managedFields", "uid", "resourceVersion"):
        if key in extra:
            meta[key] = extra.pop(key)
    item = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    item.update(extra)
    return item


def deployment(name, namespace, labels=None, pod_labels=None, selector=None, annotations=None):
    pod_labels = pod_labels or {"app": name}
    return obj(
        "apps/v1",
        "Deployment",
        name,
        namespace,
        labels,
        spec={
            "selector": {"matchLabels": selector or pod_labels},
            "template": {"metadata": {"labels": pod_labels, "annotations": annotations or {}}, "spec": {}},
        },
    )


def _matches(selector, labels):
    for term in filter(None, (selector or "").split(",")):
        key, sep, value = term.partition("=")
        if sep and labels.get(key) != value:
            return False
        if not sep and key not in labels:
            return False
    return True


def _merged(live, applied):
    """Maps merged key by key (the applied value wins), anything else replaced: server-side apply over others."""
    if not (isinstance(live, dict) and isinstance(applied, dict)):
        return copy.deepcopy(applied)
    result = copy.deepcopy(live)
    for key, value in applied.items():
        result[key] = _merged(live.get(key), value)
    return result


def _merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class FakeKube(object):
    def __init__(self, objects=(), apis=("networking.istio.io/v1",)):
        self.objects = {}
        self.apis = set(apis)
        self.writes = []
        self.applies = []  # (kind, namespace, name, force, dry_run) of every apply
        self.params = {}
        self.before_delete = None  # callable(key) run before each delete: to change the cluster in between
        self.unlistable = {}  # (apiVersion, kind) -> error raised by list(), as a refused or failing LIST
        self.discovery_failures = []  # (group/version, message) discovery could not read
        for item in objects:
            self.add(item)

    def add(self, item):
        """Store a copy; a uid and resourceVersion are made up when the object has none."""
        item = copy.deepcopy(item)
        meta = item["metadata"]
        meta.setdefault("uid", "uid-%d" % next(_UIDS))
        meta.setdefault("resourceVersion", "1")
        self.objects[(item["apiVersion"], item["kind"], meta.get("namespace"), meta["name"])] = item
        return item

    def has(self, api_version, kind, name, namespace=None):
        return (api_version, kind, namespace, name) in self.objects

    def _served(self, api_version):
        group = api_version.rpartition("/")[0]
        if (group.endswith("istio.io") or group == "k8s.cni.cncf.io") and api_version not in self.apis:
            raise NotFound("the API server has no %s" % api_version, status=404)

    def get(self, api_version, kind, name, namespace=None):
        self._served(api_version)
        return copy.deepcopy(self.objects.get((api_version, kind, namespace, name)))

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        self._served(api_version)
        if (api_version, kind) in self.unlistable:
            raise self.unlistable[(api_version, kind)]
        return [
            copy.deepcopy(o)
            for (a, k, ns, _n), o in sorted(self.objects.items(), key=lambda i: str(i[0]))
            if a == api_version
            and k == kind
            and (namespace is None or ns == namespace)
            and _matches(label_selector, o["metadata"].get("labels") or {})
        ]

    def delete(self, api_version, kind, name, namespace=None, dry_run=False, propagation="Background", read=None):
        key = (api_version, kind, namespace, name)
        if self.before_delete is not None:
            self.before_delete(key)
        if key not in self.objects:
            return False
        live = self.objects[key]["metadata"]
        wanted = {k: v for k, v in ((read or {}).get("metadata") or {}).items() if k in ("uid", "resourceVersion")}
        if any(live.get(k) != v for k, v in wanted.items()):
            raise Conflict(
                "%s %s/%s changed after it was read (precondition %s failed), so it was not deleted"
                % (kind, namespace or "", name, wanted),
                status=409,
            )
        if not dry_run:
            self.writes.append(("delete", kind, namespace, name))
            del self.objects[key]
            if kind == "Namespace":
                for other in [k for k in self.objects if k[2] == name]:
                    del self.objects[other]
        return True

    def apply(self, item, field_manager=None, dry_run=False, force=True):
        meta = item["metadata"]
        if meta.get("namespace") and not self.has("v1", "Namespace", meta["namespace"]):
            raise NotFound("namespace %s not found" % meta["namespace"], status=404)
        key = (item["apiVersion"], item["kind"], meta.get("namespace"), meta["name"])
        live = self.objects.get(key)
        self.applies.append((item["kind"], meta.get("namespace"), meta["name"], force, dry_run))
        result = copy.deepcopy(item)
        result["metadata"].update({"uid": "u-" + meta["name"], "resourceVersion": "2", "generation": 2})
        if live is not None:
            others = sorted(
                {m.get("manager") for m in live["metadata"].get("managedFields") or []} - {field_manager, None}
            )
            if others and not force:  # server-side apply: fields other managers own conflict without force
                raise Conflict("Apply failed with conflicts: conflict with %s" % ", ".join(others), status=409)
            labels = dict(live["metadata"].get("labels") or {})
            labels.update(meta.get("labels") or {})
            result["metadata"]["labels"] = labels
            if others and field_manager not in {m.get("manager") for m in live["metadata"].get("managedFields") or []}:
                # Taken over by force: map keys only the former owners set stay, as server-side apply keeps them.
                result["spec"] = _merged(live.get("spec") or {}, result.get("spec") or {})
            result["metadata"]["uid"] = live["metadata"].get("uid")
            result["metadata"]["resourceVersion"] = str(int(live["metadata"].get("resourceVersion") or 1) + 1)
        if not dry_run:
            self.writes.append(("apply", item["kind"], meta.get("namespace"), meta["name"]))
            self.objects[key] = copy.deepcopy(result)
        return result

    def patch(self, api_version, kind, name, namespace, patch, dry_run=False, patch_type="merge", subresource=None):
        """A merge patch (RFC 7386)."""
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            raise NotFound("%s %s/%s not found" % (kind, namespace, name), status=404)
        result = _merge_patch(self.objects[key], patch)
        if not dry_run:
            self.writes.append(("patch", kind, namespace, name))
            self.objects[key] = copy.deepcopy(result)
        return copy.deepcopy(result)

    def has_api(self, api_version):
        return api_version in self.apis

    def discover_namespaced_kinds(self, skip_groups=()):
        """(kinds, failures) as KubeClient serves them: the built-in kinds, those of stored objects, served APIs."""
        kinds = set(BUILTIN_NAMESPACED_KINDS)
        kinds |= {(a, k) for (a, k, ns, _n) in self.objects if ns is not None and k not in CLUSTER_KINDS}
        kinds = {(a, k) for a, k in kinds if self._is_served(a)}
        return sorted(kinds), list(self.discovery_failures)

    def _is_served(self, api_version):
        try:
            self._served(api_version)
        except NotFound:
            return False
        return True

    def wait(self, describe, check, timeout, interval=1.0, clock=None):
        done, detail = check()
        if not done:
            raise K8sError("timed out waiting for %s (%s)" % (describe, detail))
        return detail

    def wait_deleted(self, refs, timeout):
        left = [r for r in refs if self.get(r[0], r[1], r[2], r[3]) is not None]
        if left:
            raise K8sError("still present: %s" % left)


class FakeModule(object):
    def __init__(self, params, check_mode=False, diff=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []
        self.commands = []
        self.cleanup_files = []

    def warn(self, message):
        self.warnings.append(message)

    def add_cleanup_file(self, path):
        self.cleanup_files.append(path)

    def get_bin_path(self, name):
        return None

    def run_command(self, argv, environ_update=None):
        self.commands.append(argv)
        if "version" in argv:
            return 0, '{"clientVersion": {"version": "1.30.0"}}', ""
        return 0, "", ""


def manager(monkeypatch, cls, kube, params, check_mode=False, diff=False):
    """A manager bound to the fake cluster (Manager builds its KubeClient from params)."""
    monkeypatch.setattr(common, "KubeClient", lambda params: kube)
    module = FakeModule(params, check_mode=check_mode, diff=diff)
    # Binaries "run" through the fake module's run_command (tests replace it to play istioctl).
    monkeypatch.setattr(binary, "run_process", lambda argv, env, timeout: module.run_command(argv))
    return cls(module)
