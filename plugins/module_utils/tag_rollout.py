# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""revision_tag's rollout: restart the istio-API gateways that follow a tag, a batch at a time, each verified.

Moving a tag changes nothing in a running pod: a gateway of the istio API runs the new revision's proxy once its
pods restart. The rollout restarts every follower whose pods do not all run the tag's revision yet (so a converged
or a resumed run restarts only what is left), a batch at a time, and verifies each before the next batch:

- its rollout completes and every pod left was injected by the tag's revision (the injector's status annotation);
- its Services' ready endpoints among its pods never fall below the bound (the Deployment's own promise,
  replicas - maxUnavailable, unless min_ready says otherwise), sampled at every poll;
- every Istio Gateway resource that selected its pods before still selects a ready one.

When a gateway fails, the tag moves back (the manager's restore), every follower that had moved is restarted
again onto the old revision and verified the same way, and the module fails naming the gateway and why.
"""

import time

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory, owners
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import (
    K8sError,
    crash_looping,
    is_ready,
    pod_problem,
    restart_patch,
    rollout_complete,
)

ISTIO_GATEWAY = ("networking.istio.io/v1", "Gateway")
# Deployment's default rollingUpdate.maxUnavailable.
DEFAULT_MAX_UNAVAILABLE = "25%"


class RolloutFailed(GatewayError):
    """A gateway that did not pass its verification after a restart."""


def ready_bound(deployment, min_ready=None):
    """The fewest ready endpoints a gateway may have while it restarts: min_ready, else replicas - maxUnavailable."""
    replicas = deployment["spec"].get("replicas", 1)
    if min_ready is not None:
        return min(min_ready, replicas)
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    unavailable = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE)
    if isinstance(unavailable, str) and unavailable.endswith("%"):
        # Kubernetes rounds a percentage of maxUnavailable down.
        unavailable = int(replicas * int(unavailable[:-1]) // 100)
    return max(replicas - int(unavailable), 0)


def selects(selector, labels):
    return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())


class Follower(object):
    """One istio-API gateway Deployment that follows the tag, and what its verification compares against."""

    def __init__(self, deployment, namespace_labels):
        self.deployment = deployment
        meta = deployment["metadata"]
        self.name, self.namespace = meta["name"], meta["namespace"]
        self.ref = "%s/%s" % (self.namespace, self.name)
        self.namespace_labels = namespace_labels
        self.selector = (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
        self.pod_labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        self.services = []
        self.istio_gateways = []
        self.bound = 0
        self.min_ready_seen = None


class TagRollout(object):
    def __init__(self, manager):
        self.kube = manager.kube
        self.module = manager.module
        self.params = manager.params
        self.check_mode = manager.check_mode
        self.report = {"restart_planned": [], "batches": [], "verified": [], "failed": None, "rolled_back": []}

    # -- planning ----------------------------------------------------------------
    def plan(self, tag, revision, deployments):
        """Of the followers of `tag` ((Deployment, namespace labels) pairs), those whose pods do not all run
        `revision` yet, checked as restartable."""
        followers = [Follower(dep, namespace_labels) for dep, namespace_labels in deployments]
        # In the order of namespace/name, so that a run and its re-run (or its check mode) agree on the order.
        planned = sorted((f for f in followers if self._pods_behind(f, revision)), key=lambda f: f.ref)
        unmanaged = [f for f in planned if not inventory.owner_facts(f.deployment)["managed_by_collection"]]
        if unmanaged and not self.params["restart_unmanaged"]:
            raise owners.refuse(
                unmanaged[0].deployment,
                "it follows tag %r and the rollout would restart it" % tag,
                "restart it with the tool that installed it, or set restart_unmanaged: true (%d such gateway(s): %s)"
                % (len(unmanaged), ", ".join(f.ref for f in unmanaged)),
            )
        self.report["restart_planned"] = [f.ref for f in planned]
        return planned

    def _pods(self, follower, terminating=False):
        pods = self.kube.list("v1", "Pod", follower.namespace, label_selector=L.selector_string(follower.selector))
        return [p for p in pods if terminating or not p["metadata"].get("deletionTimestamp")]

    def _pods_behind(self, follower, revision):
        return [p for p in self._pods(follower) if inventory.injected_revision(p) != revision]

    # -- the rollout -----------------------------------------------------------
    def run(self, followers, revision, old_revision, restore_tag):
        """Restart and verify `followers` batch by batch; on a failure roll back and raise RolloutFailed."""
        if self.check_mode or not followers:
            return self.report
        size = self.params["batch_size"]
        moved = []
        for start in range(0, len(followers), size):
            batch = followers[start : start + size]
            self.report["batches"].append([f.ref for f in batch])
            moved += batch
            try:
                self._restart_and_verify(batch, revision)
            except (RolloutFailed, K8sError) as exc:
                failed = getattr(exc, "follower", batch[0])
                self.report["failed"] = {"gateway": failed.ref, "revision": revision, "reason": str(exc.message)}
                if not self.params["rollback_on_failure"]:
                    raise RolloutFailed(
                        "gateway %s failed on revision %s: %s; rollback_on_failure is false, so the tag stays and %s "
                        "stay(s) as they are" % (failed.ref, revision, exc.message, ", ".join(f.ref for f in moved)),
                        rollout=self.report,
                    )
                self._roll_back(moved, old_revision, restore_tag, failed, exc.message)
        return self.report

    def _roll_back(self, moved, old_revision, restore_tag, failed, reason):
        restore_tag()
        size = self.params["batch_size"]
        trouble = []
        for start in range(0, len(moved), size):
            batch = moved[start : start + size]
            try:
                self._restart_and_verify(batch, old_revision, rollback=True)
            except (RolloutFailed, K8sError) as exc:
                trouble.append(exc.message)
            self.report["rolled_back"] += [f.ref for f in batch]
        raise RolloutFailed(
            "gateway %s failed on revision %s: %s; the tag was moved back to %s and %s restarted onto it%s"
            % (
                failed.ref,
                self.report["failed"]["revision"],
                reason,
                old_revision,
                ", ".join(f.ref for f in moved),
                "; the rollback did not verify: %s" % "; ".join(trouble) if trouble else " and verified",
            ),
            rollout=self.report,
        )

    def _restart_and_verify(self, batch, revision, rollback=False):
        for follower in batch:
            self._observe(follower)
        for follower in batch:
            self.kube.patch("apps/v1", "Deployment", follower.name, follower.namespace, restart_patch())
        started = time.monotonic()
        pending = list(batch)

        def check():
            for follower in list(pending):
                done, detail = self._verify(follower, revision)
                if not done:
                    return False, "%s: %s" % (follower.ref, detail)
                pending.remove(follower)
                if not rollback:
                    self.report["verified"].append(
                        {
                            "gateway": follower.ref,
                            "revision": revision,
                            "min_ready": follower.min_ready_seen,
                            "bound": follower.bound,
                            "seconds": round(time.monotonic() - started, 1),
                        }
                    )
            return True, "verified"

        what = "gateways %s restarted onto revision %s" % (", ".join(f.ref for f in batch), revision)
        try:
            self.kube.wait(what, check, self.params["wait_timeout"])
        except K8sError as exc:
            exc.follower = pending[0] if pending else batch[0]
            raise

    def _observe(self, follower):
        """Before a restart: the gateway's Services and Istio Gateways (those selecting its pods), its bound."""
        follower.deployment = self.kube.get("apps/v1", "Deployment", follower.name, follower.namespace)
        if follower.deployment is None:
            raise RolloutFailed("Deployment %s disappeared during the rollout" % follower.ref)
        follower.bound = ready_bound(follower.deployment, self.params.get("min_ready"))
        follower.services = [
            s["metadata"]["name"]
            for s in self.kube.list("v1", "Service", follower.namespace)
            if selects(s["spec"].get("selector"), follower.pod_labels)
        ]
        follower.istio_gateways = []
        if self.kube.has_api(ISTIO_GATEWAY[0]):
            follower.istio_gateways = [
                "%s/%s" % (g["metadata"]["namespace"], g["metadata"]["name"])
                for g in self.kube.list(*ISTIO_GATEWAY)
                if selects((g.get("spec") or {}).get("selector"), follower.pod_labels)
            ]
        follower.min_ready_seen = None

    def _ready_endpoints(self, follower, pod_names):
        """Serving endpoints among the gateway's own pods, in its least-served Service: ready ones, and terminating
        ones that still serve while they drain (as a gateway's pods do for their drain duration)."""
        counts = []
        for service in follower.services:
            slices = self.kube.list(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                follower.namespace,
                label_selector="kubernetes.io/service-name=%s" % service,
            )
            ready = {
                (e.get("targetRef") or {}).get("name")
                for s in slices
                for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready", True) or (e.get("conditions") or {}).get("serving")
            }
            counts.append(len(ready & pod_names))
        return min(counts) if counts else None

    def _verify(self, follower, revision):
        dep = self.kube.get("apps/v1", "Deployment", follower.name, follower.namespace)
        if dep is None:
            raise RolloutFailed("Deployment %s disappeared during the rollout" % follower.ref)
        every_pod = self._pods(follower, terminating=True)
        pods = [p for p in every_pod if not p["metadata"].get("deletionTimestamp")]
        ready = self._ready_endpoints(follower, {p["metadata"]["name"] for p in every_pod})
        if ready is not None:
            seen = follower.min_ready_seen
            follower.min_ready_seen = ready if seen is None else min(seen, ready)
            if ready < follower.bound:
                failure = RolloutFailed(
                    "ready endpoints fell to %d, below the bound of %d (%s)"
                    % (ready, follower.bound, "; ".join(pod_problem(p) for p in pods if not is_ready(p)) or "no pod")
                )
                failure.follower = follower
                raise failure
        crashing = [p for p in pods if inventory.injected_revision(p) == revision and crash_looping(p)]
        if crashing:
            failure = RolloutFailed("its pods on revision %s crash: %s" % (revision, pod_problem(crashing[0])))
            failure.follower = follower
            raise failure
        done, detail = rollout_complete(dep)
        if not done:
            not_ready = [pod_problem(p) for p in pods if not is_ready(p)]
            return False, detail + ("; " + "; ".join(not_ready) if not_ready else "")
        behind = [p["metadata"]["name"] for p in pods if inventory.injected_revision(p) != revision]
        if behind:
            return False, "pods not on revision %s: %s" % (revision, ", ".join(behind))
        ready_labels = [p["metadata"].get("labels") or {} for p in pods if is_ready(p)]
        for ref in follower.istio_gateways:
            namespace, name = ref.split("/", 1)
            gateway = self.kube.get(ISTIO_GATEWAY[0], ISTIO_GATEWAY[1], name, namespace)
            selector = ((gateway or {}).get("spec") or {}).get("selector")
            if gateway is not None and not any(selects(selector, labels) for labels in ready_labels):
                return False, "Istio Gateway %s selects none of its ready pods" % ref
        return True, "on revision %s" % revision
