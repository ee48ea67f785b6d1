# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gateway_canary for a Gateway API gateway: a second Gateway on the new revision, with its own address.

The external traffic shifting variant of Istio's canary upgrade. A Gateway API gateway's pods are selected by its
own Gateway's name, so a canary cannot share its Service: the canary is a copy of the Gateway (same class,
listeners and parameters ConfigMap) named `canary_name`, labelled with the new revision, which istiod deploys with
its own Service and address. An external load balancer or DNS shifts traffic between the two addresses.

- state present: the canary Gateway is applied and waited for (Accepted, Programmed, its Deployment rendered on the
  new revision and rolled out). The stable Gateway is not touched.
- state promoted: the canary must serve on the revision; then the stable Gateway's revision label moves (a merge
  patch: istiod re-renders it and its Deployment rolls under its own strategy, while the canary still serves), is
  waited for, and the canary Gateway goes (the garbage collector removes what istiod deployed for it).
- state absent: the canary Gateway goes; the stable was never changed.
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import (
    install_gateway_api,
    inventory,
    owners,
    ownership,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError

GATEWAY_API = ownership.GATEWAY_API
# Options of gateway_canary that split a shared Service's pods: a Gateway API canary has an address of its own.
SPLIT_OPTIONS = ("weight", "total_replicas", "stable_replicas", "canary_replicas")


def canary_gateway(stable, canary_name, revision):
    """The canary Gateway: the stable's class, listeners, addresses and infrastructure (its parameters ConfigMap
    too), on `revision`, marked as the stable's canary and as nobody's install."""
    meta, spec = stable["metadata"], stable["spec"]
    infrastructure = dict(spec.get("infrastructure") or {})
    infrastructure["labels"] = dict(infrastructure.get("labels") or {}, **{L.REVISION: revision})
    infrastructure.setdefault("annotations", {})
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k == install_gateway_api.SERVICE_TYPE_ANNOTATION
    }
    canary_spec = {"gatewayClassName": spec["gatewayClassName"], "listeners": spec["listeners"]}
    canary_spec["infrastructure"] = infrastructure
    labels = {L.CANARY_OF: meta["name"], L.MANAGED_BY: L.MANAGED_BY_VALUE, L.REVISION: revision}
    metadata = {"name": canary_name, "namespace": meta["namespace"], "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": metadata, "spec": canary_spec}


def revision_patch(revision):
    """The merge patch that moves a Gateway (and what istiod deploys for it) to `revision` (`default` included, as
    istio_gateway renders it)."""
    return {
        "metadata": {"labels": {L.REVISION: revision}},
        "spec": {"infrastructure": {"labels": {L.REVISION: revision}}},
    }


def gateway_revision(gateway):
    return ((gateway or {}).get("metadata", {}).get("labels") or {}).get(L.REVISION) or L.DEFAULT_REVISION


def attached_routes(gateway):
    return sum(
        listener.get("attachedRoutes") or 0 for listener in ((gateway or {}).get("status") or {}).get("listeners") or []
    )


deployed_name = install_gateway_api.deployed_name_of


class GatewayApiCanary(object):
    """Runs gateway_canary's states for one Gateway API gateway, writing through the canary manager's recorders."""

    def __init__(self, manager, stable):
        self.manager = manager
        self.kube = manager.kube
        self.params = manager.params
        self.ns = self.params["namespace"]
        self.stable = stable
        self.canary_name = manager.canary_name
        self.canary = self.kube.get(GATEWAY_API, "Gateway", self.canary_name, self.ns)

    def run(self):
        self._preflight()
        {"present": self._present, "promoted": self._promote, "absent": self._rollback}[self.params["state"]]()
        return self._report()

    # -- checks before any write ------------------------------------------------
    def _preflight(self):
        p = self.params
        errors = [
            "%s: a Gateway API gateway's canary has its own address (a second Gateway), so no replica split applies; "
            "drop %s and shift traffic between the two addresses with the load balancer or DNS" % (key, key)
            for key in SPLIT_OPTIONS
            if p.get(key) is not None
        ]
        if errors:
            raise InputError("; ".join(errors))
        if ownership.owner_of(self.stable, p["name"], self.ns) != "gateway_api" and not p["adopt"]:
            raise owners.refuse(
                self.stable,
                "gateway_canary moves a gateway's revision, and the collection did not install this Gateway",
                "install it with istio_ops.gateways.istio_gateway method gateway_api, or set adopt: true",
            )
        canary_labels = (self.canary or {}).get("metadata", {}).get("labels") or {}
        mine = canary_labels.get(L.CANARY_OF) == p["name"] and canary_labels.get(L.MANAGED_BY) == L.MANAGED_BY_VALUE
        if self.canary is not None and not mine:
            raise owners.refuse(
                self.canary,
                "it has the canary's name (canary_name %r) and the canary would be written over it" % self.canary_name,
                "remove it, or give the canary another canary_name",
            )
        if p["state"] == "present":
            self._preflight_present()
        elif p["state"] == "promoted" and self.canary is None and gateway_revision(self.stable) != p["revision"]:
            raise InputError(
                "state: promoted needs the canary Gateway %r of %r, and there is none (the gateway runs revision %r); "
                "create it with state: present first" % (self.canary_name, p["name"], gateway_revision(self.stable))
            )
        elif p["state"] == "promoted" and self.canary is not None and gateway_revision(self.canary) != p["revision"]:
            raise InputError(
                "revision: the canary %r runs revision %r, not %r; promote it with revision: %s"
                % (self.canary_name, gateway_revision(self.canary), p["revision"], gateway_revision(self.canary))
            )

    def _preflight_present(self):
        p = self.params
        errors = install_gateway_api.deployed_name_errors(
            "canary_name", self.canary_name, self.stable["spec"]["gatewayClassName"]
        )
        if errors:
            raise InputError("; ".join(errors))
        if gateway_revision(self.stable) == p["revision"]:
            raise InputError(
                "revision: the gateway %r already runs revision %r; a canary needs another revision"
                % (p["name"], p["revision"])
            )
        # What istiod would deploy for the canary must not land on someone else's objects.
        target = deployed_name(canary_gateway(self.stable, self.canary_name, p["revision"]))
        canary_uid = (self.canary or {}).get("metadata", {}).get("uid")
        for api_version, kind in ownership.DEPLOYED_KINDS:
            live = self.kube.get(api_version, kind, target, self.ns)
            refs = (live or {}).get("metadata", {}).get("ownerReferences") or []
            if live is not None and not (canary_uid and any(r.get("uid") == canary_uid for r in refs)):
                raise owners.refuse(
                    live,
                    "istiod would deploy the canary Gateway %r's %s under this name" % (self.canary_name, kind),
                    "remove it, or give the canary another canary_name",
                )

    # -- states -----------------------------------------------------------------
    def _present(self):
        p = self.params
        desired = canary_gateway(self.stable, self.canary_name, p["revision"])
        self.canary = self.manager._apply(desired, self.canary, "apply canary Gateway")
        if p["wait"] and not self.manager.check_mode:
            self._wait(self.canary, p["revision"])
            self._warn_unrouted()

    def _warn_unrouted(self):
        """Routes attach to a Gateway by name: the stable's do not reach the canary until their owners add it."""
        canary = self.kube.get(GATEWAY_API, "Gateway", self.canary_name, self.ns) or {}
        stable_routes, canary_routes = attached_routes(self.stable), attached_routes(canary)
        if stable_routes and not canary_routes:
            self.manager.module.warn(
                "canary Gateway %s/%s serves no route (the gateway's listeners hold %d): routes attach by parentRefs, "
                "so its address answers 404 until the routes' owners add a parentRef to %s; shift no traffic to it "
                "before then" % (self.ns, self.canary_name, stable_routes, self.canary_name)
            )

    def _promote(self):
        p = self.params
        manager = self.manager
        if self.canary is not None and not manager.check_mode:
            # The canary serves on the new revision before the gateway itself rolls.
            self._wait(self.canary, p["revision"])
        before = self.stable
        self.stable = manager._patch(
            self.stable, revision_patch(p["revision"]), "move stable Gateway to the new revision"
        )
        if not manager.check_mode:
            self._wait(self.stable, p["revision"])
        if self.canary is not None:
            removed = ownership.delete_objects(
                self.kube,
                [self.canary],
                check_mode=manager.check_mode,
                wait_timeout=p["wait_timeout"] if p["wait"] else 0,
            )
            if removed:
                manager._record(self.canary, None, "delete canary Gateway")
            self.canary = None
        if self.stable is not before:
            manager.module.warn(
                "gateway %s/%s now runs revision %s, but the istio_gateway task it was installed with still names the "
                "old one: run istio_ops.gateways.istio_gateway with revision: %s next, otherwise its next run moves "
                "the gateway back" % (self.ns, p["name"], p["revision"], p["revision"])
            )

    def _rollback(self):
        p = self.params
        if self.canary is None:
            return
        removed = ownership.delete_objects(
            self.kube,
            [self.canary],
            check_mode=self.manager.check_mode,
            wait_timeout=p["wait_timeout"] if p["wait"] else 0,
        )
        if removed:
            self.manager._record(self.canary, None, "delete canary Gateway")
        self.canary = None

    def _wait(self, gateway, revision):
        """Until the Gateway serves on `revision` with its parameters (what istio_gateway waits for, too)."""
        install_gateway_api.wait_serving(
            self.kube,
            gateway["metadata"]["name"],
            self.ns,
            revision,
            install_gateway_api.live_patches(self.kube, gateway),
            self.params["wait_timeout"],
            parameters_written=False,
            deployed=deployed_name(gateway),
        )

    # -- result -------------------------------------------------------------------
    def _report(self):
        p = self.params
        manager = self.manager
        if not manager.check_mode:
            self.stable = self.kube.get(GATEWAY_API, "Gateway", p["name"], self.ns)
            self.canary = self.kube.get(GATEWAY_API, "Gateway", self.canary_name, self.ns)
        sides = {"stable": self.stable, "canary": self.canary}
        deployments, services, hpas, ready = {}, {}, {}, {}
        for side, gateway in sides.items():
            missing = {"name": self.canary_name, "gateway_class": self.stable["spec"]["gatewayClassName"]}
            name = deployed_name(gateway) if gateway else install_gateway_api.deployed_name(missing)
            deployment = self.kube.get("apps/v1", "Deployment", name, self.ns) if gateway else None
            summary = inventory.deployment_summary(deployment) or dict(
                dict.fromkeys(("replicas", "ready_replicas", "available_replicas", "updated_replicas"), 0),
                name=name,
                revision=None,
            )
            summary["exists"] = deployment is not None
            summary["gateway"] = gateway["metadata"]["name"] if gateway else self.canary_name
            summary["gateway_revision"] = gateway_revision(gateway) if gateway else None
            deployments[side] = summary
            service = self.kube.get("v1", "Service", name, self.ns) if gateway else None
            services[side] = _service_report(self.kube, service, gateway)
            hpa = self.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", name, self.ns) if gateway else None
            hpas[side] = inventory.hpa_summary(hpa) if hpa else None
            ready[side] = summary["ready_replicas"] or 0
        total = ready["stable"] + ready["canary"]
        manager.result.update(
            {
                "state": p["state"],
                "mode": "external",
                "gateway_api": True,
                "stable": deployments["stable"],
                "canary": deployments["canary"],
                "split": {
                    "stable": deployments["stable"]["replicas"],
                    "canary": deployments["canary"]["replicas"],
                    "ready": ready,
                    # The pods' share; the traffic's is the load balancer's or DNS's.
                    "effective_weight": round(100.0 * ready["canary"] / total, 1) if total else None,
                },
                "endpoints_by_revision": (services["stable"] or {}).get("endpoints_by_revision") or {},
                # Routes attach to each Gateway by name: a canary without any serves nothing yet.
                "attached_routes": {side: attached_routes(gateway) for side, gateway in sides.items()},
                "hpa": hpas,
                "services": services,
                "actions": manager.actions,
            }
        )
        if manager.module._diff:
            manager.result["diff"] = manager.diffs
        return manager.result


def _service_report(kube, service, gateway):
    """The Service istiod deployed, with the Gateway's own address (what a load balancer or DNS points at)."""
    if service is None:
        return None
    summary = inventory.service_report(kube, service)
    addresses = [a.get("value") for a in ((gateway or {}).get("status") or {}).get("addresses") or []]
    if addresses:
        summary["address"] = addresses[0]
    return summary
