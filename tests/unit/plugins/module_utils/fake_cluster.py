"""An in-memory stand-in for KubeClient and AnsibleModule, for manager tests without a cluster.

It keeps objects by (apiVersion, kind, namespace, name), answers label selectors (k=v and bare `k`
for existence), honours dry_run on writes, and records every write so tests can prove that check
mode and failed runs wrote nothing.
"""

import copy

from ansible_collections.istio_ops.gateways.plugins.module_utils import common
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import K8sError, NotFound


def obj(api_version, kind, name, namespace=None, labels=None, **extra):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    for key in ("annotations", "ownerReferences", "deletionTimestamp"):
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


class FakeKube(object):
    def __init__(self, objects=(), apis=("networking.istio.io/v1",)):
        self.objects = {}
        self.apis = set(apis)
        self.writes = []
        self.params = {}
        for item in objects:
            self.add(item)

    def add(self, item):
        meta = item["metadata"]
        self.objects[(item["apiVersion"], item["kind"], meta.get("namespace"), meta["name"])] = copy.deepcopy(item)

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
        return [
            copy.deepcopy(o)
            for (a, k, ns, _n), o in sorted(self.objects.items(), key=lambda i: str(i[0]))
            if a == api_version
            and k == kind
            and (namespace is None or ns == namespace)
            and _matches(label_selector, o["metadata"].get("labels") or {})
        ]

    def delete(self, api_version, kind, name, namespace=None, dry_run=False, propagation="Background"):
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            return False
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
        result = copy.deepcopy(item)
        result["metadata"].update({"uid": "u-" + meta["name"], "resourceVersion": "2", "generation": 2})
        if live is not None:
            labels = dict(live["metadata"].get("labels") or {})
            labels.update(meta.get("labels") or {})
            result["metadata"]["labels"] = labels
        if not dry_run:
            self.writes.append(("apply", item["kind"], meta.get("namespace"), meta["name"]))
            self.objects[key] = copy.deepcopy(result)
        return result

    def has_api(self, api_version):
        return api_version in self.apis

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
    return cls(FakeModule(params, check_mode=check_mode, diff=diff))
