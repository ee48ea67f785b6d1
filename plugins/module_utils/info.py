# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gateway_info: read-only facts about gateways."""

from ansible_collections.istio_ops.gateways.plugins.module_utils import control_plane, inventory, validate
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import AUTH_ARG_SPEC, merge_specs
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError

ARGUMENT_SPEC = merge_specs(
    AUTH_ARG_SPEC,
    dict(
        name=dict(type="str"),
        namespace=dict(type="str"),
        istio_namespace=dict(type="str", default="istio-system"),
    ),
)


class GatewayInfoManager(Manager):
    def run(self):
        p = self.params
        errors = [
            e
            for e in (
                validate.service_name("name", p["name"]) if p.get("name") else None,
                validate.dns1123_label("namespace", p["namespace"]) if p.get("namespace") else None,
            )
            if e
        ]
        if errors:
            raise InputError("; ".join(errors))
        found = inventory.find_gateways(self.kube, p.get("namespace"), p.get("name"))
        self.result["gateways"] = [
            inventory.describe_gateway(self.kube, stable, canaries) for stable, canaries in found
        ] + [
            inventory.describe_gateway_api(self.kube, gateway, canaries)
            for gateway, canaries in inventory.find_gateway_api_gateways(self.kube, p.get("namespace"), p.get("name"))
        ]
        self.result["control_planes"] = control_plane.all_control_planes(self.kube, p["istio_namespace"])
        # A gateway labelled with a revision tag runs the revision the tag points at: the summary says which, and
        # which tag it follows (a report of a tag upgrade then shows revisions, not the tag's name twice).
        tags = {c["revision"]: c["resolved_revision"] for c in self.result["control_planes"]}
        for facts in self.result["gateways"]:
            summary = facts["summary"]
            summary["follows"] = summary["revision"]
            summary["revision"] = tags.get(summary["revision"], summary["revision"])
        return self.result
