# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""revision_tag: create, move or remove an Istio revision tag, saying first what follows it.

A revision tag is an injection webhook configuration `istio-revision-tag-<tag>` labelled istio.io/tag=<tag> and
istio.io/rev=<revision>: pods labelled istio.io/rev=<tag> (or in namespaces so labelled) get the proxy of that
revision when they start. Gateways of the istio API move only when their pods restart; Gateway API gateways move at
once, since istiod re-renders every Gateway when a tag changes (istio/istio#59959). So the module lists, before it
writes anything, the gateways that follow the tag, which of them a move re-renders now, and how many sidecar pods
follow it (which it never restarts).

What `istioctl tag set --overwrite` would apply comes from `istioctl tag generate` of the revision's istioctl; the
module applies it by server-side apply under its field manager with its own marks, after a dry run says it
differs, so a converged run writes nothing. A tag webhook it did not make (`istioctl tag set`, or the default tag
`istioctl install` made) is refused unless adopt, which takes it over (istioctl's owner labels removed, so that
istioctl install does not move it back). Removing a tag that anything follows is refused unless force: those pods
could not be injected any more.
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import (
    control_plane,
    install_gateway_api,
    inventory,
    owners,
    ownership,
    validate,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import (
    AUTH_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    WAIT_ARG_SPEC,
    merge_specs,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import claim
from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import Istioctl
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import object_diff, rollout_complete, strip_noise
from ansible_collections.istio_ops.gateways.plugins.module_utils.tag_rollout import TagRollout

ARGUMENT_SPEC = merge_specs(
    AUTH_ARG_SPEC,
    WAIT_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    dict(
        name=dict(type="str", required=True),
        revision=dict(type="str"),
        istio_namespace=dict(type="str", default="istio-system"),
        adopt=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        restart=dict(type="bool", default=False),
        batch_size=dict(type="int", default=1),
        min_ready=dict(type="int"),
        rollback_on_failure=dict(type="bool", default=True),
        restart_unmanaged=dict(type="bool", default=False),
    ),
)
MODULE_KWARGS = dict(required_if=[("state", "present", ("revision",))])

MUTATING = ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
# What `istioctl tag generate` renders for a tag: its webhook configurations, and a Service for the tag in the Istio
# namespace (the istiod of the revision behind the tag's name).
TAG_KINDS = (MUTATING, ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"), ("v1", "Service"))
METHOD = "revision_tag"


def marks(tag):
    """The collection's labels on the webhook configurations of a tag it made."""
    return {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTALLED_BY: METHOD, L.INSTALLED_FOR: tag}


def is_ours(obj, tag):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in marks(tag).items())


def check_inputs(params):
    errors = [
        e
        for e in (
            validate.dns1123_label("name", params["name"]),
            validate.dns1123_label("revision", params["revision"]) if params.get("revision") else None,
            validate.dns1123_label("istio_namespace", params["istio_namespace"]),
        )
        if e
    ]
    # istioctl tag generate names a Service istiod-revision-tag-<tag>: 63 characters at most.
    if params["name"] and len("istiod-revision-tag-" + params["name"]) > 63:
        errors.append(
            "name: %r is %d characters; a tag has at most 43 (its Service is istiod-revision-tag-<tag>)"
            % (params["name"], len(params["name"]))
        )
    # The default tag may point at the revision named default; any other tag of a revision's own name is a loop.
    if params.get("revision") == params["name"] != L.DEFAULT_REVISION:
        errors.append("revision: %r is the tag's own name; a tag points at another revision" % params["revision"])
    if params.get("batch_size", 1) < 1:
        errors.append("batch_size: %r; restart at least 1 gateway at a time" % params["batch_size"])
    if params.get("min_ready") is not None and params["min_ready"] < 0:
        errors.append("min_ready: %r; give 0 or more ready endpoints, or leave it unset" % params["min_ready"])
    if params.get("restart") and params.get("state") == "absent":
        errors.append("restart: true with state: absent; the followers of a removed tag have no revision to move to")
    if errors:
        raise InputError("; ".join(errors))


def follows(labels, tag):
    """Whether an istio.io/rev label value (None: none) follows `tag` (no label follows the default tag)."""
    return (labels or {}).get(L.REVISION, L.DEFAULT_REVISION) == tag


class RevisionTagManager(Manager):
    def run(self):
        p = self.params
        check_inputs(p)
        tag = p["name"]
        live = self._live()
        self.result.update({"name": tag, "state": p["state"], "actions": []})
        before = self._revision_of(live)
        after = p.get("revision") if p["state"] == "present" else None
        self.result["revision"] = {"before": before, "after": after}
        followers, deployments = self._followers(tag)
        self.result.update(followers)
        moving = p["state"] == "present" and before != after
        rollout = None
        if p["state"] == "present":
            # Planned before anything is written: a follower the rollout may not restart stops the run here.
            rollout = TagRollout(self) if p["restart"] else None
            planned = rollout.plan(tag, after, deployments) if rollout else []
            self._present(tag, live)
        else:
            self._absent(tag, live, followers)
        if moving and followers["gateway_api_rerendered"]:
            self.module.warn(
                "revision tag %s %s: istiod re-renders the Gateway API gateways that follow it at once, without a "
                "restart: %s" % (tag, "moves to %s" % after, ", ".join(followers["gateway_api_rerendered"]))
            )
            if self.result["changed"] and not self.check_mode and p["wait"]:
                self._wait_rerendered(followers["gateways"], after)
        if rollout is not None:
            self.result["changed"] = self.result["changed"] or bool(planned)
            self.result["rollout"] = rollout.report
            rollout.run(planned, after, before, lambda: self._restore(live))
        return self.result

    def _restore(self, before):
        """Put the tag's objects back as they were before this run (the rollout's rollback)."""
        kept = set()
        for obj in before:
            kept.add((obj["kind"], obj["metadata"]["name"]))
            self.kube.apply(strip_noise(obj), field_manager=L.FIELD_MANAGER)
        for obj in self._live():
            meta = obj["metadata"]
            if (obj["kind"], meta["name"]) not in kept:
                self.kube.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), read=obj)
        self.result["actions"].append(
            "restore tag %s to revision %s" % (self.params["name"], self._revision_of(before))
        )

    @staticmethod
    def _revision_of(objects):
        return ((objects[0]["metadata"].get("labels") or {}).get(L.REVISION)) if objects else None

    # -- reading ----------------------------------------------------------------
    def _live(self):
        """The tag's objects: every webhook configuration labelled istio.io/tag=<tag>, and its Service."""
        selector = "%s=%s" % (L.ISTIO_TAG, self.params["name"])
        found = []
        for api_version, kind in TAG_KINDS:
            namespace = self.params["istio_namespace"] if kind == "Service" else None
            found += self.kube.list(api_version, kind, namespace, label_selector=selector)
        return found

    def _followers(self, tag):
        """Gateways that follow the tag (istio API and Gateway API), and the sidecar pods that do."""
        namespaces = {
            n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in self.kube.list("v1", "Namespace")
        }
        gateways, rerendered = [], []
        deployments = []  # (Deployment, its namespace's labels) of the istio-API followers, for the rollout
        for stable, canaries in inventory.find_gateways(self.kube):
            for dep in [stable] + canaries:
                meta = dep["metadata"]
                template_labels = dep["spec"]["template"]["metadata"].get("labels")
                if inventory.injection_source(template_labels, namespaces.get(meta["namespace"])) == tag:
                    gateways.append({"name": meta["name"], "namespace": meta["namespace"], "api": "istio"})
                    deployments.append((dep, namespaces.get(meta["namespace"])))
        # istiod picks the revision of a Gateway API gateway by the Gateway's label first, then its namespace's.
        for gateway, canaries in inventory.find_gateway_api_gateways(self.kube):
            for each in [gateway] + canaries:
                meta = each["metadata"]
                labels = meta.get("labels") or {}
                namespace_labels = namespaces.get(meta["namespace"]) or {}
                if (
                    L.REVISION in labels
                    and follows(labels, tag)
                    or (L.REVISION not in labels and follows(namespace_labels, tag))
                ):
                    where = "%s/%s" % (meta["namespace"], meta["name"])
                    gateways.append({"name": meta["name"], "namespace": meta["namespace"], "api": "gateway_api"})
                    rerendered.append(where)
        sidecars = 0
        for pod in self.kube.list("v1", "Pod"):
            meta = pod["metadata"]
            labels = meta.get("labels") or {}
            annotations = meta.get("annotations") or {}
            if annotations.get(L.INJECT_TEMPLATES) == "gateway" or labels.get("gateway.networking.k8s.io/gateway-name"):
                continue  # a gateway's pod: counted as its gateway
            if inventory.injection_source(labels, namespaces.get(meta["namespace"])) == tag:
                sidecars += 1
        return {"gateways": gateways, "gateway_api_rerendered": rerendered, "sidecar_pods": sidecars}, deployments

    # -- state: present ---------------------------------------------------------
    def _present(self, tag, live):
        p = self.params
        revisions = self._revisions()
        # `default` is a revision and Istio's default tag at once: the tag picks which istiod the default serves.
        if tag in revisions and tag != L.DEFAULT_REVISION:
            raise InputError("name: %r is a revision, not a tag; give the tag another name" % tag)
        if p["revision"] not in revisions:
            raise InputError(
                "revision: no control plane of revision %r (installed revisions: %s); a tag points at an installed "
                "revision" % (p["revision"], ", ".join(sorted(revisions)) or "none")
            )
        plane = control_plane.find(self.kube, p["revision"], p["istio_namespace"])
        istioctl = Istioctl(self.module, self.kube, p.get("binary_path"))
        if not p["skip_version_check"]:
            mismatch = control_plane.version_mismatch(istioctl.version(), plane)
            if mismatch:
                raise InputError(mismatch)
        desired = istioctl.tag_generate(tag, p["revision"], p["istio_namespace"])
        self.result["istioctl"] = {"path": istioctl.path, "version": istioctl.version(), "commands": istioctl.commands}
        unexpected = [o for o in desired if (o.get("apiVersion"), o.get("kind")) not in TAG_KINDS]
        if unexpected:
            raise InputError(
                "binary_path: istioctl tag generate rendered %s, which is not a revision tag's; use the istioctl of "
                "the revision" % ", ".join("%s %s" % (o.get("kind"), o["metadata"].get("name")) for o in unexpected)
            )
        live_by_name = {(o["kind"], o["metadata"]["name"]): o for o in live}
        for obj in desired:
            key = (obj["kind"], obj["metadata"]["name"])
            if key not in live_by_name:
                other = self.kube.get(
                    obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")
                )
                if other is not None:
                    live_by_name[key] = other
        foreign = [o for o in live_by_name.values() if not is_ours(o, tag)]
        if foreign and not p["adopt"]:
            raise owners.refuse(
                foreign[0],
                "it makes revision tag %r, and revision_tag changes only tags it made" % tag,
                "set adopt: true to take the tag over (istioctl's owner labels go, so istioctl install no longer "
                "resets it), or move it with the tool that made it",
            )
        diffs = []
        for obj in desired:
            obj["metadata"].setdefault("labels", {}).update(marks(tag))
            current = live_by_name.get((obj["kind"], obj["metadata"]["name"]))
            if current is not None and not is_ours(current, tag):
                patch = claim(current, dict(marks(tag), **dict.fromkeys(L.OWNER_LABEL_KEYS)), None, L.FIELD_MANAGER)
                meta = current["metadata"]
                current = self.kube.patch(
                    obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), patch, dry_run=self.check_mode
                )
                self.result.setdefault("adopted", []).append("%s/%s" % (obj["kind"], obj["metadata"]["name"]))
                self.result["changed"] = True
            after = self.kube.apply(obj, field_manager=L.FIELD_MANAGER, dry_run=True)
            if current is not None and strip_noise(after) == strip_noise(current):
                continue
            if not self.check_mode:
                after = self.kube.apply(obj, field_manager=L.FIELD_MANAGER)
            self.result["changed"] = True
            self.result["actions"].append("apply %s/%s" % (obj["kind"], obj["metadata"]["name"]))
            diffs.append(object_diff(current, after))
        if self.module._diff:
            self.result["diff"] = diffs

    def _revisions(self):
        """The installed revisions: the istio.io/rev of every injection webhook that is not a tag's."""
        found = set()
        for hook in self.kube.list(*MUTATING):
            labels = hook["metadata"].get("labels") or {}
            if labels.get(L.REVISION) and not labels.get(L.ISTIO_TAG):
                found.add(labels[L.REVISION])
        return found

    # -- state: absent ----------------------------------------------------------
    def _absent(self, tag, live, followers):
        p = self.params
        if not live:
            return
        foreign = [o for o in live if not is_ours(o, tag)]
        if foreign and not p["adopt"]:
            raise owners.refuse(
                foreign[0],
                "it makes revision tag %r, and revision_tag removes only tags it made" % tag,
                "remove it with the tool that made it (istioctl tag remove), or set adopt: true",
            )
        users = ["%s %s/%s" % (g["api"], g["namespace"], g["name"]) for g in followers["gateways"]]
        if (users or followers["sidecar_pods"]) and not p["force"]:
            raise InputError(
                "state: absent would leave what follows revision tag %r without injection (%s%s); move them to "
                "another revision or tag first, or set force: true"
                % (
                    tag,
                    "gateways " + ", ".join(users) if users else "no gateways",
                    ", %d sidecar pod(s)" % followers["sidecar_pods"] if followers["sidecar_pods"] else "",
                )
            )
        for obj in live:
            meta = obj["metadata"]
            namespace = meta.get("namespace")
            if self.kube.delete(
                obj["apiVersion"], obj["kind"], meta["name"], namespace, dry_run=self.check_mode, read=obj
            ):
                self.result["changed"] = True
                self.result["actions"].append("delete %s/%s" % (obj["kind"], meta["name"]))

    # -- waiting -----------------------------------------------------------------
    def _wait_rerendered(self, gateways, revision):
        """Until istiod of the new revision has re-rendered every Gateway API follower and each has rolled out (the
        Deployment's pod template annotation istio.io/rev names the istiod that rendered it); one wait_timeout for
        them all, as istiod re-renders them at once."""
        deployments = []
        for gateway in [g for g in gateways if g["api"] == "gateway_api"]:
            live = self.kube.get(ownership.GATEWAY_API, "Gateway", gateway["name"], gateway["namespace"])
            if live is not None:
                deployments.append((install_gateway_api.deployed_name_of(live), gateway["namespace"]))

        def check():
            for name, namespace in deployments:
                dep = self.kube.get("apps/v1", "Deployment", name, namespace)
                where = "Deployment %s/%s" % (namespace, name)
                if dep is None:
                    return (False, "%s: not there yet" % where)
                rendered_by = (dep["spec"]["template"]["metadata"].get("annotations") or {}).get(L.REVISION)
                if rendered_by != revision:
                    return (False, "%s: rendered by revision %s" % (where, rendered_by))
                done, detail = rollout_complete(dep)
                if not done:
                    return (False, "%s: %s" % (where, detail))
            return (True, "re-rendered")

        if deployments:
            self.kube.wait(
                "%d Gateway API gateway(s) re-rendered by revision %s" % (len(deployments), revision),
                check,
                self.params["wait_timeout"],
            )
