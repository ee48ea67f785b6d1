# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio_ops.gateways.fleet_report: the fleet report of a rollout's clusters (docs: fleet_report.yml beside it)."""

from ansible.errors import AnsibleFilterError

from ansible_collections.istio_ops.gateways.plugins.module_utils import fleet_report as report
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError


def fleet_report(clusters, title=report.DEFAULT_TITLE, generated=None):
    try:
        return report.build(clusters, title=title, generated=generated)
    except InputError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"fleet_report": fleet_report}
