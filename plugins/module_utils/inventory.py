# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading gateways off the cluster: their status, pods and endpoints by revision, who installed them.

What a gateway owns, and removing it, is ownership.py's.
"""

import json

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import owners, ownership


def revision_of(obj):
    """The control-plane revision of a workload: its pod template's istio.io/rev (what injection reads), else its
    own label (istioctl stamps both; the Helm chart only the pods'), else the pod template's annotation (what
    istiod renders for a Gateway API gateway), else the default revision."""
    template = ((obj or {}).get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    for marks in (
        template_meta.get("labels"),
        ((obj or {}).get("metadata") or {}).get("labels"),
        template_meta.get("annotations"),
    ):
        if (marks or {}).get(L.REVISION):
            return marks[L.REVISION]
    return L.DEFAULT_REVISION


def deployment_summary(dep):
    if dep is None:
        return None
    status = dep.get("status", {})
    meta = dep["metadata"]
    return {
        "name": meta["name"],
        "revision": revision_of(dep),
        "replicas": dep["spec"].get("replicas"),
        "ready_replicas": status.get("readyReplicas", 0),
        "available_replicas": status.get("availableReplicas", 0),
        "updated_replicas": status.get("updatedReplicas", 0),
    }


def service_summary(svc):
    if svc is None:
        return None
    ingress = (svc.get("status", {}).get("loadBalancer", {}) or {}).get("ingress") or []
    return {
        "name": svc["metadata"]["name"],
        "type": svc["spec"].get("type"),
        "cluster_ip": svc["spec"].get("clusterIP"),
        "load_balancer": [i.get("ip") or i.get("hostname") for i in ingress],
        "selector": svc["spec"].get("selector") or {},
        "ports": [
            {
                "name": p.get("name"),
                "port": p.get("port"),
                "target_port": p.get("targetPort"),
                "node_port": p.get("nodePort"),
                "protocol": p.get("protocol"),
            }
            for p in svc["spec"].get("ports", [])
        ],
    }


def service_report(kube, svc):
    """A Service's summary with its address (the load balancer's, else the cluster IP) and endpoints by revision."""
    if svc is None:
        return None
    summary = service_summary(svc)
    summary["address"] = address_of(summary)
    summary["endpoints_by_revision"] = endpoints_by_revision(kube, summary["name"], svc["metadata"]["namespace"])
    return summary


def address_of(service):
    """A Service summary's address: its load balancer's, else its cluster IP; None for none (or a headless one)."""
    for address in (service or {}).get("load_balancer", []) + [(service or {}).get("cluster_ip")]:
        if address and address != "None":
            return address
    return None


def gateway_summary(facts, service):
    """The flat `summary` of a gateway's facts (what a fleet report shows): its pods are those of all its
    Deployments, stable and canary, and its address is its stable Service's (service_summary, or None)."""
    return {
        "name": facts["name"],
        "namespace": facts["namespace"],
        "api": "gateway_api" if "gateway_api" in facts else "istio",
        "method": facts["method"],
        "revision": facts["revision"],
        "ready": sum(d["ready_replicas"] or 0 for d in facts["deployments"]),
        "desired": sum(d["replicas"] or 0 for d in facts["deployments"]),
        "address": address_of(service),
        "managed_by_collection": facts["owner"]["managed_by_collection"],
    }


def workload_status(kube, name, namespace):
    """The `deployment` and `service` keys of a module result."""
    return {
        "deployment": deployment_summary(kube.get("apps/v1", "Deployment", name, namespace)),
        "service": service_summary(kube.get("v1", "Service", name, namespace)),
    }


def pod_facts(kube, namespace, selector):
    """The `pods_by_revision` ({revision: [pod names]}) and `terminating_pods` ([pod names]) keys of a gateway's
    facts, for the pods a selector picks. A pod being deleted (draining, or held by a finalizer) is in the second
    only: it no longer counts for the revision the gateway serves."""
    by_revision, terminating = {}, []
    for pod in kube.list("v1", "Pod", namespace, label_selector=L.selector_string(selector)) if selector else []:
        if pod["metadata"].get("deletionTimestamp"):
            terminating.append(pod["metadata"]["name"])
        else:
            by_revision.setdefault(pod_revision_of(pod), []).append(pod["metadata"]["name"])
    return {"pods_by_revision": {k: sorted(v) for k, v in by_revision.items()}, "terminating_pods": sorted(terminating)}


def pod_revision_of(pod):
    """A pod's revision: its istio.io/rev label, else annotation (Gateway API gateways' pods), else default."""
    meta = pod["metadata"]
    return (
        (meta.get("labels") or {}).get(L.REVISION)
        or (meta.get("annotations") or {}).get(L.REVISION)
        or (L.DEFAULT_REVISION)
    )


def injected_revision(pod):
    """The revision of the istiod that injected a pod (what it runs), from the injector's status; None if none."""
    status = (pod["metadata"].get("annotations") or {}).get(L.INJECTION_STATUS)
    try:
        return (json.loads(status) or {}).get("revision") if status else None
    except (ValueError, AttributeError):
        return None


def injection_source(pod_labels, namespace_labels):
    """The revision or tag whose webhook injects a pod with these labels in a namespace with these, or None.

    Istio's injection webhooks decide in this order: a pod labelled sidecar.istio.io/inject=false never; a namespace
    labelled istio-injection (enabled: the default tag; else never); a namespace's istio.io/rev, which wins over the
    pod's; the pod's istio.io/rev; a pod labelled sidecar.istio.io/inject=true (as gateways are): the default tag.
    """
    pod_labels, namespace_labels = pod_labels or {}, namespace_labels or {}
    if pod_labels.get(L.SIDECAR_INJECT) == "false":
        return None
    if L.INJECTION in namespace_labels:
        return L.DEFAULT_REVISION if namespace_labels[L.INJECTION] == L.INJECTION_ENABLED else None
    for labels in (namespace_labels, pod_labels):
        if labels.get(L.REVISION):
            return labels[L.REVISION]
    return L.DEFAULT_REVISION if pod_labels.get(L.SIDECAR_INJECT) == "true" else None


def endpoints_by_revision(kube, service_name, namespace):
    """{revision: {"ready": n, "not_ready": n, "pods": [...]}} behind a Service, from its EndpointSlices.

    What `kubectl get endpoints` shows in the seed's canary step, attributed to revisions
    through each endpoint's pod.
    """
    slices = kube.list(
        "discovery.k8s.io/v1", "EndpointSlice", namespace, label_selector="kubernetes.io/service-name=%s" % service_name
    )
    pod_revision = {}
    if slices:
        for pod in kube.list("v1", "Pod", namespace):
            pod_revision[pod["metadata"]["name"]] = pod_revision_of(pod)
    result = {}
    seen = set()
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            target = endpoint.get("targetRef") or {}
            pod = target.get("name")
            if pod in seen:  # an endpoint appears once per address family slice
                continue
            seen.add(pod)
            rev = pod_revision.get(pod, "unknown")
            entry = result.setdefault(rev, {"ready": 0, "not_ready": 0, "pods": []})
            ready = (endpoint.get("conditions") or {}).get("ready", True)
            entry["ready" if ready else "not_ready"] += 1
            entry["pods"].append(pod)
    for entry in result.values():
        entry["pods"].sort()
    return result


def is_gateway(dep):
    """A Deployment istioctl installed as a gateway, or one injected with the gateway template."""
    labels = dep["metadata"].get("labels") or {}
    template = dep["spec"]["template"]["metadata"]
    return (
        labels.get(L.OPERATOR_COMPONENT) in L.KIND_BY_COMPONENT
        or (template.get("annotations") or {}).get(L.INJECT_TEMPLATES) == "gateway"
    )


def owner_facts(dep):
    """Who installed a gateway's Deployment: the method's own marks, and whether the collection did it."""
    meta = dep["metadata"]
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return {
        "iop": labels.get(L.OWNING_RESOURCE),
        "iop_namespace": labels.get(L.OWNING_RESOURCE_NAMESPACE),
        "istio_version": labels.get(L.OPERATOR_VERSION),
        "helm_release": annotations.get(L.HELM_RELEASE_NAME),
        "helm_release_namespace": annotations.get(L.HELM_RELEASE_NAMESPACE),
        "description": owners.describe_owner(dep),
        "managed_by_collection": ownership.owner_of(dep, meta["name"], meta["namespace"]) is not None,
    }


def find_gateways(kube, namespace=None, name=None):
    """[(stable Deployment, [canary Deployments])] for the gateways in a namespace or the cluster."""
    deployments = [d for d in kube.list("apps/v1", "Deployment", namespace) if is_gateway(d)]
    canaries = {}
    stables = []
    for dep in deployments:
        meta = dep["metadata"]
        stable_name = (meta.get("labels") or {}).get(L.CANARY_OF)
        if stable_name:
            canaries.setdefault((meta["namespace"], stable_name), []).append(dep)
        elif name is None or meta["name"] == name:
            stables.append(dep)
    return [(d, canaries.get((d["metadata"]["namespace"], d["metadata"]["name"]), [])) for d in stables]


def hpa_summary(hpa):
    spec = hpa.get("spec", {})
    return {
        "name": hpa["metadata"]["name"],
        "target": spec.get("scaleTargetRef", {}).get("name"),
        "min_replicas": spec.get("minReplicas"),
        "max_replicas": spec.get("maxReplicas"),
        "current_replicas": hpa.get("status", {}).get("currentReplicas"),
    }


def describe_gateway(kube, stable, canaries):
    """The facts gateway_info returns for one gateway."""
    meta = stable["metadata"]
    namespace = meta["namespace"]
    labels = meta.get("labels") or {}
    selector = stable["spec"].get("selector", {}).get("matchLabels") or {}
    workloads = [stable] + canaries
    names = {d["metadata"]["name"] for d in workloads}
    hpas = [
        hpa_summary(h)
        for h in kube.list("autoscaling/v2", "HorizontalPodAutoscaler", namespace)
        if h["spec"].get("scaleTargetRef", {}).get("name") in names
    ]
    services = [kube.get("v1", "Service", meta["name"], namespace)]
    services += kube.list("v1", "Service", namespace, label_selector="%s=%s" % (L.CANARY_OF, meta["name"]))
    service_facts = []
    for svc in services:
        if svc is None:
            continue
        summary = service_summary(svc)
        summary["endpoints_by_revision"] = endpoints_by_revision(kube, svc["metadata"]["name"], namespace)
        service_facts.append(summary)
    deployments = []
    for dep in workloads:
        summary = deployment_summary(dep)
        summary["role"] = "canary" if dep is not stable else "stable"
        deployments.append(summary)
    component = labels.get(L.OPERATOR_COMPONENT)
    facts = {
        "name": meta["name"],
        "namespace": namespace,
        "kind": L.KIND_BY_COMPONENT.get(component, "egress" if "egress" in meta["name"] else "ingress"),
        "selector": selector,
        "revision": revision_of(stable),
        "revisions": sorted({d["revision"] for d in deployments}),
        "deployments": deployments,
        "services": service_facts,
        "hpa": hpas,
        "method": ownership.installed_by(stable),
        "owner": owner_facts(stable),
    }
    facts.update(pod_facts(kube, namespace, selector))
    stable_service = [svc for svc in service_facts if svc["name"] == meta["name"]]
    facts["summary"] = gateway_summary(facts, stable_service[0] if stable_service else None)
    return facts


# -- Gateway API gateways (istiod deploys them) ---------------------------------------------------------------
ISTIO_GATEWAY_CONTROLLER = "istio.io/gateway-controller"


def find_gateway_api_gateways(kube, namespace=None, name=None):
    """[(Gateway, [canary Gateways])] of Istio's GatewayClasses in a namespace or the cluster ([] without the
    CRDs); a canary Gateway (gateway_canary's) is listed with its stable one."""
    if not kube.has_api(ownership.GATEWAY_API):
        return []
    istio_classes = {
        c["metadata"]["name"]
        for c in kube.list(ownership.GATEWAY_API, "GatewayClass")
        if c.get("spec", {}).get("controllerName") == ISTIO_GATEWAY_CONTROLLER
    }
    found = [
        g
        for g in kube.list(ownership.GATEWAY_API, "Gateway", namespace)
        if g.get("spec", {}).get("gatewayClassName") in istio_classes
    ]
    canaries = {}
    for gateway in found:
        meta = gateway["metadata"]
        stable = (meta.get("labels") or {}).get(L.CANARY_OF)
        if stable:
            canaries.setdefault((meta["namespace"], stable), []).append(gateway)
    return [
        (g, canaries.get((g["metadata"]["namespace"], g["metadata"]["name"]), []))
        for g in found
        if not (g["metadata"].get("labels") or {}).get(L.CANARY_OF) and name in (None, g["metadata"]["name"])
    ]


def describe_gateway_api(kube, gateway, canaries=()):
    """The facts gateway_info returns for a Gateway API gateway: those of every gateway, from what istiod deployed
    for it (and for its canary Gateways), plus the Gateway's class, conditions, addresses and listeners."""
    meta = gateway["metadata"]
    namespace = meta["namespace"]
    selector = {ownership.GATEWAY_NAME_LABEL: meta["name"]}
    deployments, services, hpas = [], [], []
    stable_service = None
    for role, each in [("stable", gateway)] + [("canary", c) for c in canaries]:
        deployed = {o["kind"]: o for o in ownership.deployed_objects(kube, each)}
        if deployed.get("Deployment") is not None:
            deployments.append(dict(deployment_summary(deployed["Deployment"]), role=role))
        if deployed.get("Service") is not None:
            summary = service_summary(deployed["Service"])
            summary["endpoints_by_revision"] = endpoints_by_revision(kube, summary["name"], namespace)
            services.append(summary)
            stable_service = summary if role == "stable" else stable_service
        if deployed.get("HorizontalPodAutoscaler") is not None:
            hpas.append(hpa_summary(deployed["HorizontalPodAutoscaler"]))
    stable = [d for d in deployments if d["role"] == "stable"]
    status = gateway.get("status") or {}
    revision = (meta.get("labels") or {}).get(L.REVISION) or (stable[0]["revision"] if stable else L.DEFAULT_REVISION)
    facts = {
        "name": meta["name"],
        "namespace": namespace,
        "kind": "ingress",
        "selector": selector,
        "revision": revision,
        "revisions": sorted({d["revision"] for d in deployments}) or [revision],
        "deployments": deployments,
        "services": services,
        "hpa": hpas,
        "method": ownership.installed_by(gateway),
        "owner": owner_facts(gateway),
        "gateway_api": {
            "gateway_class": gateway.get("spec", {}).get("gatewayClassName"),
            "conditions": {c["type"]: c.get("status") for c in status.get("conditions") or []},
            "addresses": [a.get("value") for a in status.get("addresses") or []],
            "listeners": [
                {
                    "name": listener.get("name"),
                    "attached_routes": listener.get("attachedRoutes"),
                    "conditions": {c["type"]: c.get("status") for c in listener.get("conditions") or []},
                }
                for listener in status.get("listeners") or []
            ],
            "canaries": [c["metadata"]["name"] for c in canaries],
        },
    }
    facts.update(pod_facts(kube, namespace, selector))
    facts["summary"] = gateway_summary(facts, stable_service)
    return facts
