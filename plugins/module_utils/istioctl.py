# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one istioctl runner of the collection.

istioctl is always called with an argument list (never a shell). It reaches
the cluster the module reaches: the user's kubeconfig file and context when
that is all the auth there is, else a temporary 0600 kubeconfig written from
the resolved connection (host/api_key, certificates, proxy), removed when the
module exits. stdout/stderr are kept for error messages.

What istioctl prints without changing anything is cached on disk (see
OutputCache): its version, and `manifest generate`, which a converged run
would otherwise spend most of its time on.
"""

import atexit
import hashlib
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

# ISTIO_OPS_GATEWAYS_CACHE: a directory for the cache, or "off"; default $XDG_CACHE_HOME (~/.cache)/istio-ops-gateways.
CACHE_ENV = "ISTIO_OPS_GATEWAYS_CACHE"
CACHE_MAX_AGE = 30 * 24 * 3600  # entries unused this long are removed when a new one is written
# Environment istioctl reads while rendering (operator/pkg/render: GKE detection); part of the cache key.
_RENDER_ENV = ("AUTO_GKE_DETECTION",)


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


class OutputCache(object):
    """istioctl output on disk, keyed by everything that output depends on.

    A scheduled run of a converged gateway renders the same IstioOperator with the same istioctl against
    the same cluster every time; `manifest generate` then costs a process start and a chart render for an
    answer already known. An entry's key is a SHA-256 of the istioctl binary's identity (real path,
    size, mtime, inode), the command's inputs and, for renders, the API server's version (the only thing
    `--cluster-specific` reads that changes the output; its CNI checks only warn). Entries are 0600 JSON
    files in a 0700 directory, written atomically, so parallel runs share them safely. A cache that
    cannot be read or written is skipped: the command runs as it always did.
    """

    def __init__(self, directory=None):
        setting = os.environ.get(CACHE_ENV, "")
        if directory is None and setting.lower() not in ("off", "false", "no", "0"):
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            directory = os.path.expanduser(setting) if setting else os.path.join(base, "istio-ops-gateways")
        self.directory = directory

    @staticmethod
    def key(*parts):
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()

    def get(self, key):
        if not self.directory:
            return None
        path = os.path.join(self.directory, key + ".json")
        try:
            with open(path) as handle:
                value = json.load(handle)
            os.utime(path)  # recently used: keep it past the age limit
            return value
        except (OSError, ValueError):
            return None

    def put(self, key, value):
        if not self.directory:
            return
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):  # e.g. a YAML timestamp; not worth caching
            return
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # 0600
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, os.path.join(self.directory, key + ".json"))
            self._prune()
        except OSError:
            pass

    def _prune(self):
        cutoff = time.time() - CACHE_MAX_AGE
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            try:
                if os.path.getmtime(path) < cutoff:
                    os.unlink(path)
            except OSError:
                pass


class Istioctl(object):
    """Runs one istioctl binary against the module's cluster."""

    def __init__(self, module, kube, binary_path=None):
        self.module = module
        self.kube = kube
        self.path = self._find(binary_path)
        self.commands = []  # what ran, for the result
        self.cached = []  # what the output cache answered instead, for the result
        self.cache = OutputCache()
        self._tmpdir = tempfile.mkdtemp(prefix="istio_ops_")  # 0700
        # At interpreter exit, after exit_json/fail_json: AnsibleModule's cleanup files are unlinked, which
        # fails for a directory, so the kubeconfig (with the token) and the IstioOperator stayed in /tmp.
        atexit.register(self.cleanup)
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

    def _identity(self):
        """What tells one istioctl binary from another without running it."""
        real = os.path.realpath(self.path)
        stat = os.stat(real)
        return [real, stat.st_size, stat.st_mtime_ns, stat.st_ino]

    def version(self):
        """The client version istioctl reports (no cluster access)."""
        if self._version is None:
            key = self.cache.key("version", self._identity())
            cached = self.cache.get(key)
            if cached is not None:
                self._version = cached["version"]
                self.cached.append("version")
                return self._version
            out = self.run(["version", "--remote=false", "-o", "json"], kube=False)
            try:
                self._version = json.loads(out)["clientVersion"]["version"]
            except (ValueError, KeyError, TypeError):
                match = re.search(r"(\d+\.\d+[^\s\"]*)", out)
                if not match:
                    raise IstioctlError("cannot read the istioctl version from %r" % out[:200])
                self._version = match.group(1)
            self.cache.put(key, {"version": self._version})
        return self._version

    def manifest_generate(self, iop_path):
        """The objects `istioctl install -f iop_path` would apply, as dicts (fresh ones on every call)."""
        key = self._manifest_key(iop_path)
        cached = self.cache.get(key) if key else None
        if cached is not None:
            self.cached.append("manifest generate")
            return cached["objects"]
        out = self.run(["manifest", "generate", "-f", iop_path, "--cluster-specific"])
        objects = [doc for doc in yaml.safe_load_all(out) if doc]
        if key:
            self.cache.put(key, {"objects": objects})
        return objects

    def _manifest_key(self, iop_path):
        """The cache key of a render, or None (no cache, or the server's version cannot be read)."""
        if not self.cache.directory:
            return None
        try:
            server = self.kube.server_version()
        except GatewayError:
            return None  # istioctl will say what is wrong with the connection
        with open(iop_path) as handle:
            iop = handle.read()
        env = {name: os.environ.get(name) for name in _RENDER_ENV}
        return self.cache.key("manifest generate --cluster-specific", self._identity(), iop, server, env)

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
