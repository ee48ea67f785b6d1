# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# The option set is plugins/module_utils/args.py ISTIOCTL_ARG_SPEC; a unit test keeps the two equal.


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  binary_path:
    description:
      - Path of the istioctl binary. Without it, istioctl is looked up on E(PATH).
      - Its major.minor version must match the control plane of the target revision.
      - istioctl reaches the cluster the module reaches (the same kubeconfig and context, or a private kubeconfig
        written from the resolved connection options), with an argument list, never a shell.
      - Every istioctl command has a timeout; C(install) and C(uninstall) get O(wait_timeout) plus a margin of
        10 to 60 seconds, after which istioctl is killed with everything it started and the task fails saying so.
    type: path
  skip_version_check:
    description:
      - Run even when istioctl and the control plane differ in minor version.
    type: bool
    default: false
"""
