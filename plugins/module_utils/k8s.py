# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Kubernetes client adapter of the collection.

It talks to the REST API through the `kubernetes` package's ApiClient (auth,
TLS, proxies, exec plugins), with raw JSON in and out: no generated models and
no discovery round-trips for the kinds the collection uses. Errors are typed;
429, 5xx and connection errors are retried with backoff; check mode uses
server-side dry-run.
"""

import json
import os
import ssl
import time

try:
    import urllib3
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

    class ApiException(Exception):
        pass

    class ConfigException(Exception):
        pass


try:
    import yaml
except ImportError:  # pragma: no cover - reported by run_module
    yaml = None

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError

_YAML_ERROR = yaml.YAMLError if yaml is not None else ValueError

RETRY_STATUSES = (429, 500, 502, 503, 504)
REQUEST_TIMEOUT = (10, 60)  # seconds to connect, to read
APPLY_PATCH = "application/apply-patch+yaml"
# Metadata the server owns: differences there are noise, not change.
NOISY_METADATA = ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp", "selfLink")
DEPLOYMENT_REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


class K8sError(GatewayError):
    """A failed Kubernetes request, with what a user needs to act on it."""

    def __init__(self, message, status=None, reason=None, details=None):
        super(K8sError, self).__init__(message)
        self.status = status
        self.reason = reason
        self.api_details = details or {}


class ConfigError(K8sError):
    """The connection options cannot make a client (kubeconfig, host, certs)."""


class Unreachable(K8sError):
    """The API server did not answer."""


class NotFound(K8sError):
    pass


class Conflict(K8sError):
    pass


class Forbidden(K8sError):
    pass


class Unauthorized(K8sError):
    pass


class Invalid(K8sError):
    pass


_ERROR_BY_STATUS = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 422: Invalid}


class Resource(object):
    """Where a kind lives in the REST API."""

    def __init__(self, api_version, kind, plural, namespaced):
        self.api_version = api_version
        self.kind = kind
        self.plural = plural
        self.namespaced = namespaced

    def path(self, namespace=None, name=None, subresource=None):
        base = "/api/" + self.api_version if "/" not in self.api_version else "/apis/" + self.api_version
        parts = [base]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


_KNOWN = [
    Resource("v1", "Namespace", "namespaces", False),
    Resource("v1", "Pod", "pods", True),
    Resource("v1", "Service", "services", True),
    Resource("v1", "ServiceAccount", "serviceaccounts", True),
    Resource("v1", "ConfigMap", "configmaps", True),
    Resource("v1", "Secret", "secrets", True),
    Resource("v1", "Endpoints", "endpoints", True),
    Resource("apps/v1", "Deployment", "deployments", True),
    Resource("apps/v1", "ReplicaSet", "replicasets", True),
    Resource("apps/v1", "StatefulSet", "statefulsets", True),
    Resource("apps/v1", "DaemonSet", "daemonsets", True),
    Resource("batch/v1", "Job", "jobs", True),
    Resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True),
    Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    Resource("rbac.authorization.k8s.io/v1", "Role", "roles", True),
    Resource("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True),
    Resource("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    Resource("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
    Resource("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True),
    Resource("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False),
    Resource(
        "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False
    ),
    Resource("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    Resource("networking.istio.io/v1", "Gateway", "gateways", True),
]
KNOWN_RESOURCES = {(r.api_version, r.kind): r for r in _KNOWN}


def build_configuration(params):
    """A kubernetes.client.Configuration from the shared auth options.

    Order as kubernetes.core: a kubeconfig (given, or the default one when no
    host is given), else in-cluster config; explicit options then override.
    """
    if not HAS_KUBERNETES:
        raise ConfigError("the 'kubernetes' Python package is required (pip install kubernetes)")
    cfg = k8s_client.Configuration()
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    host = params.get("host")
    default_kubeconfig = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    try:
        if isinstance(kubeconfig, dict):
            k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg)
        elif kubeconfig or context or (not host and os.path.exists(default_kubeconfig)):
            path = os.path.expanduser(kubeconfig) if kubeconfig else None
            if path and not os.access(path, os.R_OK):
                raise ConfigError(
                    "kubeconfig: cannot read %r; give a readable kubeconfig file (option kubeconfig or "
                    "K8S_AUTH_KUBECONFIG), or host and api_key" % kubeconfig
                )
            k8s_config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=cfg,
                persist_config=bool(params.get("persist_config")),
            )
        elif not host:
            k8s_config.load_incluster_config(client_configuration=cfg)
    except (ConfigException, OSError, ValueError, TypeError, AttributeError, KeyError, _YAML_ERROR) as exc:
        # Not only ConfigException: a directory, a YAML syntax error or a file that is no mapping raise others.
        raise ConfigError(
            "cannot build a Kubernetes client from kubeconfig=%r context=%r: %s; set kubeconfig (or "
            "K8S_AUTH_KUBECONFIG) to a valid file, or host and api_key" % (kubeconfig, context, exc)
        )
    if host:
        cfg.host = host
    if params.get("api_key"):
        cfg.api_key = {"authorization": "Bearer " + params["api_key"]}
        cfg.api_key_prefix = {}
    if params.get("username"):
        cfg.username = params["username"]
    if params.get("password"):
        cfg.password = params["password"]
    if params.get("validate_certs") is not None:
        cfg.verify_ssl = params["validate_certs"]
    for option, attr in (("ca_cert", "ssl_ca_cert"), ("client_cert", "cert_file"), ("client_key", "key_file")):
        if params.get(option):
            if not os.access(params[option], os.R_OK):
                raise ConfigError("%s: cannot read %r; give a readable PEM file" % (option, params[option]))
            setattr(cfg, attr, params[option])
    if params.get("proxy"):
        cfg.proxy = params["proxy"]
    if params.get("no_proxy"):
        cfg.no_proxy = params["no_proxy"]
    headers = params.get("proxy_headers") or {}
    if any(headers.values()):
        cfg.proxy_headers = urllib3.util.make_headers(**{k: v for k, v in headers.items() if v})
    if not cfg.host:
        raise ConfigError("no API server: give kubeconfig, or host (K8S_AUTH_HOST) with credentials")
    return cfg


class KubeClient(object):
    """JSON requests against one API server, with typed errors and retries."""

    def __init__(self, params, retries=5, backoff=0.5, sleep=time.sleep):
        self.params = params
        self.configuration = build_configuration(params)
        self.api = k8s_client.ApiClient(self.configuration)
        if params.get("impersonate_user"):
            self.api.set_default_header("Impersonate-User", params["impersonate_user"])
        for group in params.get("impersonate_groups") or []:
            # ApiClient keeps one value per header name; urllib3 accepts a comma-joined list.
            existing = self.api.default_headers.get("Impersonate-Group")
            self.api.set_default_header("Impersonate-Group", group if not existing else existing + "," + group)
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self._discovered = {}
        self.requests = []  # (method, path) of every request sent, for reports and tests

    # -- transport -----------------------------------------------------
    def request(self, method, path, query=None, body=None, content_type=None, retry_conflict=False):
        """Send one request; return the decoded JSON body (None for an empty one)."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None and content_type == APPLY_PATCH:
            # The REST client JSON-encodes only JSON content types; an apply patch goes as text (JSON is YAML).
            body = json.dumps(body)
        attempt = 0
        while True:
            attempt += 1
            self.requests.append((method, path))
            try:
                data = self._send(method, path, list((query or {}).items()), headers, body)
                return json.loads(data) if data else None
            except ApiException as exc:
                retryable = exc.status in RETRY_STATUSES or (exc.status == 409 and retry_conflict)
                if retryable and attempt <= self.retries:
                    self.sleep(self._delay(attempt, exc))
                    continue
                raise self._error(method, path, exc)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                _raise_if_not_transient(exc, self.configuration.host)
                if attempt <= self.retries:
                    self.sleep(self._delay(attempt))
                    continue
                raise Unreachable(
                    "cannot reach the Kubernetes API server at %s (%s %s): %s; check host/kubeconfig and "
                    "that the server is up" % (self.configuration.host, method, path, _short(exc))
                )

    def _send(self, method, path, query, headers, body):
        """One HTTP exchange through the kubernetes package's ApiClient; raw response bytes.

        kubernetes >= 35 (OpenAPI generator 7) splits serialising from sending and no longer raises
        for HTTP errors; older releases do both in call_api.
        """
        api = self.api
        if hasattr(api, "param_serialize"):
            method, url, headers, body, post = api.param_serialize(
                method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            response = api.call_api(
                method, url, header_params=headers, body=body, post_params=post, _request_timeout=REQUEST_TIMEOUT
            )
            data = response.read()
            if not 200 <= response.status <= 299:
                raise ApiException(http_resp=response)
            return data
        response = api.call_api(
            path,
            method,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return response.data

    def _delay(self, attempt, exc=None):
        retry_after = exc is not None and exc.headers and exc.headers.get("Retry-After")
        if retry_after and str(retry_after).isdigit():
            return min(int(retry_after), 10)
        return min(self.backoff * (2 ** (attempt - 1)), 8)

    def _error(self, method, path, exc):
        try:
            body = json.loads(exc.body)
        except (TypeError, ValueError):
            body = {}
        message = body.get("message") or exc.reason or str(exc)
        cls = _ERROR_BY_STATUS.get(exc.status, K8sError)
        text = "%s %s: %s (HTTP %s)" % (method, path, message, exc.status)
        if cls is Forbidden:
            text += "; the identity needs this permission (see docs/rbac.md)"
        elif cls is Unauthorized:
            text += "; the credentials were rejected: check api_key, client_cert/client_key or kubeconfig"
        return cls(text, status=exc.status, reason=body.get("reason"), details=body.get("details"))

    # -- resources -----------------------------------------------------
    def resource(self, api_version, kind):
        key = (api_version, kind)
        if key in KNOWN_RESOURCES:
            return KNOWN_RESOURCES[key]
        if key not in self._discovered:
            base = "/api/" if "/" not in api_version else "/apis/"
            listing = self.request("GET", base + api_version)
            for item in listing.get("resources", []):
                if "/" not in item["name"]:
                    res = Resource(api_version, item["kind"], item["name"], item["namespaced"])
                    self._discovered[(api_version, item["kind"])] = res
            if key not in self._discovered:
                raise NotFound("the API server has no kind %s in %s" % (kind, api_version), status=404)
        return self._discovered[key]

    def get(self, api_version, kind, name, namespace=None):
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", self.resource(api_version, kind).path(namespace, name))
        except NotFound:
            return None

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        query = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        result = self.request("GET", self.resource(api_version, kind).path(namespace), query=query)
        items = result.get("items", [])
        for item in items:  # list items lack apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj, field_manager=L.FIELD_MANAGER, dry_run=False, force=True):
        """Server-side apply; returns the object as the server has (or would have) it."""
        meta = obj["metadata"]
        res = self.resource(obj["apiVersion"], obj["kind"])
        query = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request(
            "PATCH",
            res.path(meta.get("namespace"), meta["name"]),
            query=query,
            body=obj,
            content_type=APPLY_PATCH,
            retry_conflict=True,
        )

    def patch(self, api_version, kind, name, namespace, patch, dry_run=False, patch_type="merge", subresource=None):
        """A merge (or strategic merge) patch. A metadata.resourceVersion in `patch` guards it."""
        query = {"fieldManager": L.FIELD_MANAGER}
        if dry_run:
            query["dryRun"] = "All"
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[patch_type]
        guarded = bool(isinstance(patch, dict) and patch.get("metadata", {}).get("resourceVersion"))
        return self.request(
            "PATCH",
            self.resource(api_version, kind).path(namespace, name, subresource),
            query=query,
            body=patch,
            content_type=content_type,
            retry_conflict=not guarded,
        )

    def create(self, obj, dry_run=False):
        res = self.resource(obj["apiVersion"], obj["kind"])
        query = {"fieldManager": L.FIELD_MANAGER}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("POST", res.path(obj["metadata"].get("namespace")), query=query, body=obj)

    def delete(self, api_version, kind, name, namespace=None, dry_run=False, propagation="Background"):
        """Delete; True when something was (or would be) deleted, False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            self.request(
                "DELETE", self.resource(api_version, kind).path(namespace, name), body=body, retry_conflict=True
            )
        except NotFound:
            return False
        return True

    def server_version(self):
        return self.request("GET", "/version")

    def has_api(self, api_version):
        """Whether the server serves this group/version (e.g. Istio's CRDs are installed)."""
        try:
            base = "/api/" if "/" not in api_version else "/apis/"
            self.request("GET", base + api_version)
            return True
        except NotFound:
            return False

    # -- waiting -------------------------------------------------------
    def wait(self, describe, check, timeout, interval=1.0, clock=time.monotonic):
        """Poll `check()`, which returns (done, detail), until done; raise K8sError naming what was awaited."""
        deadline = clock() + timeout
        while True:
            done, detail = check()
            if done:
                return detail
            if clock() >= deadline:
                raise K8sError(
                    "timed out after %ss waiting for %s (%s); raise wait_timeout or check the "
                    "cluster" % (timeout, describe, detail)
                )
            self.sleep(interval)

    def wait_rollout(self, name, namespace, timeout):
        """Wait as `kubectl rollout status` does; return the Deployment's final status."""

        def check():
            dep = self.get("apps/v1", "Deployment", name, namespace)
            if dep is None:
                return (False, "the Deployment does not exist")
            return rollout_complete(dep)

        self.wait("rollout of Deployment %s/%s" % (namespace, name), check, timeout)
        return self.get("apps/v1", "Deployment", name, namespace)

    def wait_deleted(self, refs, timeout):
        """Wait until every (apiVersion, kind, name, namespace) is gone."""

        def check():
            left = [r for r in refs if self.get(r[0], r[1], r[2], r[3]) is not None]
            return (not left, "still present: " + ", ".join("%s %s/%s" % (r[1], r[3] or "", r[2]) for r in left))

        if refs:
            self.wait("deletion", check, timeout)


def _raise_if_not_transient(exc, host):
    """A certificate the client does not trust, or a host that is no URL, will not heal by retrying."""
    cause = exc
    for _depth in range(4):  # urllib3 wraps it: MaxRetryError(reason=SSLError(SSLCertVerificationError))
        if cause is None or isinstance(cause, ssl.CertificateError):
            break
        cause = getattr(cause, "reason", None) or next((a for a in cause.args if isinstance(a, Exception)), None)
    if isinstance(cause, ssl.CertificateError):
        raise ConfigError(
            "TLS verification of the API server at %s failed: %s; give the CA that signed its certificate "
            "(ca_cert, or certificate-authority in the kubeconfig), or set validate_certs: false to skip "
            "verification" % (host, _short(cause))
        )
    if isinstance(exc, urllib3.exceptions.LocationValueError):
        raise ConfigError("host: %r is not a URL (%s); give e.g. https://api.example.com:6443" % (host, _short(exc)))


def rollout_complete(dep):
    """(done, detail) for a Deployment, by the rules of `kubectl rollout status`."""
    spec_replicas = dep.get("spec", {}).get("replicas", 1)
    status = dep.get("status", {})
    if status.get("observedGeneration", 0) < dep["metadata"].get("generation", 0):
        return False, "controller has not observed generation %s yet" % dep["metadata"].get("generation")
    updated = status.get("updatedReplicas", 0)
    if updated < spec_replicas:
        return False, "%s of %s new replicas updated" % (updated, spec_replicas)
    if status.get("replicas", 0) > updated:
        return False, "%s old replicas pending termination" % (status.get("replicas", 0) - updated)
    available = status.get("availableReplicas", 0)
    if available < updated:
        return False, "%s of %s updated replicas available" % (available, updated)
    return True, "%s replicas ready" % available


def strip_noise(obj):
    """A copy of obj without server-owned metadata and status, for comparing and diffs."""
    if obj is None:
        return None
    clean = json.loads(json.dumps(obj))
    meta = clean.get("metadata", {})
    for key in NOISY_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop(DEPLOYMENT_REVISION_ANNOTATION, None)
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if "annotations" in meta and not annotations:
        meta.pop("annotations")
    clean.pop("status", None)
    return clean


def object_diff(before, after):
    """An Ansible diff entry for one object: YAML before and after, without server-owned noise."""
    header = ref(before or after) if (before or after) else ""
    return {
        "before_header": header,
        "after_header": header,
        "before": yaml.safe_dump(strip_noise(before), sort_keys=True) if before else "",
        "after": yaml.safe_dump(strip_noise(after), sort_keys=True) if after else "",
    }


def ref(obj):
    """kind/namespace/name of an object, as reports show it."""
    meta = obj["metadata"]
    return (
        "%s/%s/%s" % (obj["kind"], meta.get("namespace", ""), meta["name"])
        if meta.get("namespace")
        else "%s/%s" % (obj["kind"], meta["name"])
    )


def _short(exc):
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
