# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding the Istio control plane a gateway depends on."""

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError
from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import major_minor

WEBHOOK = ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")


class ControlPlaneError(GatewayError):
    pass


def all_control_planes(kube, istio_namespace):
    """Every revision (or tag) with an injection webhook, described as find() does."""
    return [
        find(kube, None if rev == L.DEFAULT_REVISION else rev, istio_namespace) for rev in installed_revisions(kube)
    ]


def installed_revisions(kube):
    """Revision names (and revision tags) that have an injection webhook."""
    found = set()
    for hook in kube.list(*WEBHOOK):
        meta_labels = hook["metadata"].get("labels") or {}
        for key in (L.REVISION, L.ISTIO_TAG):
            if meta_labels.get(key):
                found.add(meta_labels[key])
    return sorted(found)


def find(kube, revision, istio_namespace):
    """The control plane serving `revision` (None = default), as a dict; raise ControlPlaneError if absent.

    A revision exists when an injection webhook carries its istio.io/rev label, or a
    revision tag (istio.io/tag) of that name points at one. Its version comes from the
    istiod Deployment (istioctl's operator.istio.io/version label, else the image tag).
    """
    wanted = revision or L.DEFAULT_REVISION
    hooks = kube.list(*WEBHOOK, label_selector="%s=%s" % (L.REVISION, wanted))
    resolved = wanted
    if not hooks:
        tags = kube.list(*WEBHOOK, label_selector="%s=%s" % (L.ISTIO_TAG, wanted))
        if tags:
            hooks = tags
            resolved = (tags[0]["metadata"].get("labels") or {}).get(L.REVISION, wanted)
    if not hooks:
        known = installed_revisions(kube)
        raise ControlPlaneError(
            "revision: no Istio control plane serves revision %r (no injection webhook labelled %s=%s); "
            "installed revisions: %s. Install istiod for it first (istioctl install --revision %s) or pick "
            "an installed revision" % (wanted, L.REVISION, wanted, ", ".join(known) or "none", wanted)
        )
    istiods = kube.list(
        "apps/v1", "Deployment", istio_namespace, label_selector="app=istiod,%s=%s" % (L.REVISION, resolved)
    )
    version = None
    for dep in istiods:
        version = (dep["metadata"].get("labels") or {}).get(L.OPERATOR_VERSION)
        if not version:
            for container in dep["spec"]["template"]["spec"].get("containers", []):
                image = container.get("image", "")
                if ":" in image.rsplit("/", 1)[-1]:
                    version = image.rsplit(":", 1)[1]
        if version:
            break
    return {
        "revision": wanted,
        "resolved_revision": resolved,
        "webhooks": sorted(h["metadata"]["name"] for h in hooks),
        "istiod": sorted(d["metadata"]["name"] for d in istiods),
        "version": version,
    }


def version_mismatch(istioctl_version, control_plane):
    """An error message when istioctl and the control plane differ in major.minor, else None."""
    cp_version = control_plane.get("version")
    if not cp_version:
        return None  # no istiod found in istio_namespace to compare with; nothing to check
    if major_minor(istioctl_version) != major_minor(cp_version):
        return (
            "binary_path: istioctl %s does not match the control plane of revision %r (version %s); use an "
            "istioctl of the same minor version (binary_path), or set skip_version_check: true"
            % (istioctl_version, control_plane["revision"], cp_version)
        )
    return None
