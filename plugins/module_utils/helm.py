# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one helm runner of the collection.

How it runs (argument lists, timeouts, the module's connection, private files, job cancels) is
binary.Binary's; this file adds helm's commands and what helm needs on top:

- helm spells the connection flags differently (--kube-context, --kube-as-user, --kube-as-group);
  kube_args() translates binary.py's, so the same options win in the same way as for istioctl.
- helm keeps repositories, caches, registry logins and plugins under HELM_*_HOME (default the user's
  ~/.config/helm, ~/.cache/helm, ~/.local/share/helm) and reads HELM_KUBE* overrides from the
  environment. Every run gets its own empty homes in the runner's private directory and no HELM_*
  variable from the environment, so the user's repositories are never read or written, no plugin runs,
  and only the resolved connection decides which cluster helm talks to.
"""

import json
import os
import re

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_YAML = False

from ansible_collections.istio_ops.gateways.plugins.module_utils.binary import (
    Binary,
    BinaryError,
    kill_after,
)

# binary.py's kubectl-style connection flags and helm's names for them (helm's pkg/cli/environment.go).
KUBE_FLAGS = {"--context": "--kube-context", "--as": "--kube-as-user", "--as-group": "--kube-as-group"}
# helm's default, stated so that HELM_MAX_HISTORY in the environment cannot change it.
HISTORY_MAX = 10
_VERSION_RE = re.compile(r"v?(\d+\.\d+\.\d+\S*)")


class HelmError(BinaryError):
    pass


class Helm(Binary):
    """Runs one helm binary against the module's cluster."""

    name = "helm"
    install_hint = " (Helm 3, https://helm.sh/docs/intro/install/)"
    path_option = "helm.binary_path"
    error_class = HelmError

    def __init__(self, module, kube, binary_path=None):
        super(Helm, self).__init__(module, kube, binary_path)
        self._version = None
        self._homes = {}
        for variable, directory in (
            ("HELM_CACHE_HOME", "helm-cache"),
            ("HELM_CONFIG_HOME", "helm-config"),
            ("HELM_DATA_HOME", "helm-data"),
        ):
            path = os.path.join(self._tmpdir, directory)
            os.mkdir(path, 0o700)
            self._homes[variable] = path

    def kube_args(self):
        """binary.py's --kubeconfig/--context/--as/--as-group, spelled as helm wants them."""
        return [KUBE_FLAGS.get(arg, arg) if index % 2 == 0 else arg for index, arg in enumerate(super().kube_args())]

    def environment(self):
        env = {k: v for k, v in super(Helm, self).environment().items() if not k.startswith("HELM_")}
        env.update(self._homes)
        env["HELM_NO_PLUGINS"] = "1"
        env["HELM_DRIVER"] = "secret"  # release records as Secrets: what release() and removal read
        return env

    def version(self):
        """The client version helm reports (no cluster access), e.g. 3.22.0."""
        if self._version is None:
            out = self.run(["version", "--template", "{{.Version}}"], kube=False)
            match = _VERSION_RE.search(out)
            if not match:
                raise HelmError("cannot read the helm version from %r" % out[:200])
            self._version = match.group(1)
        return self._version

    @staticmethod
    def chart_args(repository, chart, version):
        """The chart reference: a local chart (directory or .tgz; its own version), an OCI one, or a chart in a
        repository."""
        if os.path.exists(chart):
            return [chart]
        if not repository:
            args = [chart]
        elif repository.startswith("oci://"):
            args = ["%s/%s" % (repository.rstrip("/"), chart)]
        else:
            args = [chart, "--repo", repository]
        if version:
            args += ["--version", version]
        return args

    def template(self, release, namespace, repository, chart, version, values_path, kube_version=None):
        """The objects `helm upgrade --install` would apply, as dicts; no cluster access.

        No hooks and no tests (a gateway chart has none; what they would create is not the gateway's
        lasting state), no CRDs. `kube_version` (the API server's) makes the chart see the capabilities
        the install sees.
        """
        args = ["template", release] + self.chart_args(repository, chart, version)
        args += ["--namespace", namespace, "-f", values_path, "--skip-tests", "--no-hooks"]
        if kube_version:
            args += ["--kube-version", kube_version]
        out = self.run(args, kube=False)
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def upgrade_install(
        self, release, namespace, repository, chart, version, values_path, wait_timeout=None, labels=None
    ):
        """helm upgrade --install: the release's objects made, updated or removed, and a new release record.

        No --create-namespace (the manager creates and marks namespaces), no CRDs; `labels` go on the
        release record (helm stores them as labels of its release Secrets); --wait only with a wait_timeout.
        """
        args = ["upgrade", release] + self.chart_args(repository, chart, version)
        args += ["--install", "--namespace", namespace, "-f", values_path, "--skip-crds"]
        args += ["--history-max", str(HISTORY_MAX)]
        if labels:
            args += ["--labels", ",".join("%s=%s" % item for item in sorted(labels.items()))]
        if wait_timeout:
            args += ["--wait", "--timeout", "%ss" % int(wait_timeout)]
        return self.run(args, timeout=kill_after(wait_timeout))

    def release(self, release, namespace):
        """The latest record of a release (any status), or None when there is none.

        A dict: name, namespace, revision, status (deployed, failed, pending-upgrade, ...), description, manifest
        (the objects helm last applied, as YAML), config (the values given). `helm status` leaves the chart out
        (cmd/helm/status.go sets rel.Chart = nil); the manifest's objects carry its name and version.
        """
        try:
            out = self.run(["status", release, "--namespace", namespace, "-o", "json"])
        except HelmError as error:
            if "release: not found" in (error.details.get("stderr") or ""):
                return None
            raise
        record = json.loads(out)
        info = record.get("info") or {}
        return {
            "name": record.get("name"),
            "namespace": record.get("namespace"),
            "revision": record.get("version"),
            "status": info.get("status"),
            "description": info.get("description"),
            "manifest": record.get("manifest") or "",
            "config": record.get("config") or {},
        }
