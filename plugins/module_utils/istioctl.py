# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one istioctl runner of the collection.

istioctl is always called with an argument list (never a shell). It reaches
the cluster the module reaches: the user's kubeconfig file and context when
that is all the auth there is, else a temporary 0600 kubeconfig written from
the resolved connection (host/api_key, certificates, proxy), removed when the
module exits. stdout/stderr are kept for error messages.
"""

import json
import os
import re
import shutil
import tempfile
import time

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_YAML = False

from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError

# Auth options that a plain `--kubeconfig/--context` pass-through cannot carry.
_OVERRIDES = (
    "host",
    "api_key",
    "username",
    "password",
    "validate_certs",
    "ca_cert",
    "client_cert",
    "client_key",
    "proxy",
    "no_proxy",
    "proxy_headers",
)
_VERSION_RE = re.compile(r"(\d+)\.(\d+)")


class IstioctlError(GatewayError):
    def __init__(self, message, command=None, rc=None, stdout="", stderr=""):
        super(IstioctlError, self).__init__(message, command=command, rc=rc, stdout=stdout, stderr=stderr)


def major_minor(version):
    """(major, minor) of an Istio version string such as 1.30.2 or 1.31-alpha.abc, or None."""
    match = _VERSION_RE.search(version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class Istioctl(object):
    """Runs one istioctl binary against the module's cluster."""

    def __init__(self, module, kube, binary_path=None):
        self.module = module
        self.kube = kube
        self.path = self._find(binary_path)
        self.commands = []  # what ran, for the result
        self._tmpdir = tempfile.mkdtemp(prefix="istio_ops_")  # 0700
        module.add_cleanup_file(self._tmpdir)
        self._kube_args = None
        self._version = None

    def _find(self, binary_path):
        if binary_path:
            if not (os.path.isfile(binary_path) and os.access(binary_path, os.X_OK)):
                raise IstioctlError(
                    "binary_path: %r is not an executable file; point it at an istioctl binary whose version "
                    "matches the control plane" % binary_path
                )
            return binary_path
        found = self.module.get_bin_path("istioctl")
        if not found:
            raise IstioctlError(
                "binary_path: istioctl was not found on PATH; install istioctl matching the control plane "
                "version or set binary_path"
            )
        return found

    def cleanup(self):
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    # -- connection ----------------------------------------------------
    def kube_args(self):
        if self._kube_args is None:
            self._kube_args = self._connection_args()
        return list(self._kube_args)

    def _connection_args(self):
        params = self.kube.params
        kubeconfig = params.get("kubeconfig")
        args = []
        if (
            isinstance(kubeconfig, dict)
            or any(params.get(k) not in (None, {}, "") for k in _OVERRIDES)
            or not (kubeconfig or os.path.exists(os.path.expanduser("~/.kube/config")) or os.environ.get("KUBECONFIG"))
        ):
            args += ["--kubeconfig", self._temp_kubeconfig()]
        else:
            if kubeconfig:
                args += ["--kubeconfig", os.path.expanduser(kubeconfig)]
            if params.get("context"):
                args += ["--context", params["context"]]
        if params.get("impersonate_user"):
            args += ["--as", params["impersonate_user"]]
        for group in params.get("impersonate_groups") or []:
            args += ["--as-group", group]
        return args

    def _temp_kubeconfig(self):
        """A kubeconfig for exactly the connection the Python client uses."""
        cfg = self.kube.configuration
        cluster = {"server": cfg.host}
        if cfg.ssl_ca_cert:
            cluster["certificate-authority"] = cfg.ssl_ca_cert
        if not cfg.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
        if cfg.proxy:
            cluster["proxy-url"] = cfg.proxy
        user = {}
        token = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
        if token:
            user["token"] = token.split(" ", 1)[1] if token.lower().startswith("bearer ") else token
        if cfg.cert_file and cfg.key_file:
            user["client-certificate"] = cfg.cert_file
            user["client-key"] = cfg.key_file
        if cfg.username and cfg.password:
            user["username"] = cfg.username
            user["password"] = cfg.password
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "istio-ops",
            "clusters": [{"name": "istio-ops", "cluster": cluster}],
            "users": [{"name": "istio-ops", "user": user}],
            "contexts": [{"name": "istio-ops", "context": {"cluster": "istio-ops", "user": "istio-ops"}}],
        }
        path = os.path.join(self._tmpdir, "kubeconfig")
        _write_private(path, json.dumps(config))
        return path

    def write_file(self, name, text):
        """A 0600 file in the runner's private directory (IstioOperator specs)."""
        path = os.path.join(self._tmpdir, name)
        if os.path.exists(path):
            os.unlink(path)
        _write_private(path, text)
        return path

    # -- running -------------------------------------------------------
    def run(self, args, timeout=None, kube=True):
        """Run istioctl with args; return stdout. Raise IstioctlError on failure."""
        command = [self.path] + list(args) + (self.kube_args() if kube else [])
        started = time.monotonic()
        rc, out, err = self.module.run_command(command, environ_update={"ISTIOCTL_XDS_ADDRESS": ""})
        elapsed = round(time.monotonic() - started, 3)
        self.commands.append({"argv": command, "rc": rc, "seconds": elapsed})
        if rc != 0:
            raise IstioctlError(
                "istioctl %s failed (rc=%s): %s" % (" ".join(args[:2]), rc, (err or out).strip()[-2000:]),
                command=command,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return out

    def version(self):
        """The client version istioctl reports (no cluster access)."""
        if self._version is None:
            out = self.run(["version", "--remote=false", "-o", "json"], kube=False)
            try:
                self._version = json.loads(out)["clientVersion"]["version"]
            except (ValueError, KeyError, TypeError):
                match = re.search(r"(\d+\.\d+[^\s\"]*)", out)
                if not match:
                    raise IstioctlError("cannot read the istioctl version from %r" % out[:200])
                self._version = match.group(1)
        return self._version

    def manifest_generate(self, iop_path):
        """The objects `istioctl install -f iop_path` would apply, as dicts."""
        out = self.run(["manifest", "generate", "-f", iop_path, "--cluster-specific"])
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def install(self, iop_path, wait_timeout=None):
        args = ["install", "-y", "-f", iop_path]
        if wait_timeout:
            args += ["--readiness-timeout", "%ss" % int(wait_timeout)]
        return self.run(args)

    def uninstall(self, iop_path=None, purge=False, istio_namespace=None):
        args = ["uninstall", "-y"]
        if purge:
            args.append("--purge")
        if iop_path:
            args += ["-f", iop_path]
        if istio_namespace:
            args += ["--istioNamespace", istio_namespace]
        return self.run(args)
