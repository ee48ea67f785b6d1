# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# The option set is plugins/module_utils/args.py WAIT_ARG_SPEC; a unit test keeps the two equal.


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  wait:
    description:
      - Wait until the change has taken effect (rollouts complete, objects gone) before returning.
      - A timeout fails the task and names what was awaited.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait.
    type: int
    default: 300
"""
