# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module does around its manager: build the module, map errors to fail_json."""

import os
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.istio_ops.gateways.plugins.module_utils.binary import install_signal_handlers
from ansible_collections.istio_ops.gateways.plugins.module_utils.connection import kubeconfig_secrets, proxy_secrets
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KubeClient,
)

try:
    import yaml  # istioctl output and IstioOperator files

    HAS_YAML = bool(yaml)
    YAML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover
    HAS_YAML = False
    YAML_IMPORT_ERROR = exc


class GatewayModule(AnsibleModule):
    """AnsibleModule that masks an inline kubeconfig's secrets and a proxy URL's password in everything it logs
    or returns.

    The mask is set as soon as the raw parameters are read, so that it also covers the invocation an
    argument-validation failure reports; the proxy's environment fallback (an AWX credential) is not applied
    yet then, so it is read here too.
    """

    def _set_internal_properties(self, *args, **kwargs):
        super(GatewayModule, self)._set_internal_properties(*args, **kwargs)
        self.no_log_values.update(kubeconfig_secrets(self.params.get("kubeconfig")))
        for proxy in (self.params.get("proxy"), os.environ.get("K8S_AUTH_PROXY")):
            self.no_log_values.update(proxy_secrets(proxy))


def run_module(manager_cls, argument_spec, **module_kwargs):
    """Build the module, run manager_cls(module).run(), exit or fail with its result."""
    module = GatewayModule(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    install_signal_handlers(module)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    started = time.monotonic()
    manager = None
    try:
        manager = manager_cls(module)
        result = manager.run()
    except GatewayError as exc:
        extra = dict(exc.details)
        if manager is not None:
            extra.update(manager.partial_result())
        module.fail_json(msg=exc.message, **extra)
    result.setdefault("timings", {})["total_seconds"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


class Manager(object):
    """Base of the modules' managers: the module, a Kubernetes client, and a result being built."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.kube = KubeClient(module.params)
        self.result = {"changed": False}

    def partial_result(self):
        """What a failure still reports (e.g. what had been done before it)."""
        return {"changed": self.result.get("changed", False)}

    def run(self):  # pragma: no cover - abstract
        raise NotImplementedError
