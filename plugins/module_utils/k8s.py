# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Kubernetes client adapter of the collection.

It talks to the REST API through the `kubernetes` package's ApiClient (auth,
TLS, proxies, exec plugins), with raw JSON in and out: no generated models and
no discovery round-trips for the kinds the collection uses. Errors are typed;
429, 5xx and connection errors are retried with backoff; check mode uses
server-side dry-run.
"""

import datetime
import json
import socket
import ssl
import time

try:
    import urllib3
    from kubernetes import client as k8s_client
    from kubernetes.client.rest import ApiException
    from urllib3._collections import HTTPHeaderDict

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

    class ApiException(Exception):
        pass


try:
    import yaml
except ImportError:  # pragma: no cover - reported by run_module
    yaml = None

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.connection import (
    ConfigError,
    build_configuration,
    normalise,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError

RETRY_STATUSES = (429, 500, 502, 503, 504)
REQUEST_TIMEOUT = (10, 60)  # seconds to connect, to read
APPLY_PATCH = "application/apply-patch+yaml"
# Metadata the server owns: differences there are noise, not change.
NOISY_METADATA = ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp", "selfLink")
DEPLOYMENT_REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


class K8sError(GatewayError):
    """A failed Kubernetes request, with what a user needs to act on it."""

    def __init__(self, message, status=None, reason=None):
        super(K8sError, self).__init__(message)
        self.status = status
        self.reason = reason


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
    Resource("gateway.networking.k8s.io/v1", "Gateway", "gateways", True),
    Resource("gateway.networking.k8s.io/v1", "GatewayClass", "gatewayclasses", False),
]
KNOWN_RESOURCES = {(r.api_version, r.kind): r for r in _KNOWN}


class KubeClient(object):
    """JSON requests against one API server, with typed errors and retries."""

    def __init__(self, params, retries=5, backoff=0.5, sleep=time.sleep):
        self.params = normalise(params)
        self.configuration = build_configuration(self.params)
        self.api = k8s_client.ApiClient(self.configuration)
        if self.params.get("impersonate_user"):
            self.api.set_default_header("Impersonate-User", self.params["impersonate_user"])
        # One Impersonate-Group header per group: the API server does not split a comma-joined value.
        self.impersonate_groups = list(self.params.get("impersonate_groups") or [])
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self._discovered = {}

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
            try:
                data, answer_type = self._send(method, path, list((query or {}).items()), headers, body)
            except ApiException as exc:
                retryable = exc.status in RETRY_STATUSES or (exc.status == 409 and retry_conflict)
                if retryable and attempt <= self.retries:
                    self.sleep(self._delay(attempt, exc))
                    continue
                raise self._error(method, path, exc)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                problem = connection_problem(exc, self.configuration)
                if not problem.retry or attempt > self.retries:
                    raise problem.error("%s %s" % (method, path))
                self.sleep(self._delay(attempt))
                continue
            return self._decode(method, path, data, answer_type)

    def _decode(self, method, path, data, answer_type):
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise K8sError(
                "%s %s at %s answered with content that is not JSON (Content-Type %s, starting %r); host (or the "
                "kubeconfig's server) must be the Kubernetes API server itself, not a login page, proxy portal or "
                "other web server" % (method, path, self.configuration.host, answer_type or "none", _head(data))
            )

    def _send(self, method, path, query, headers, body):
        """One HTTP exchange through the kubernetes package's ApiClient: (raw response bytes, Content-Type).

        kubernetes >= 35 (OpenAPI generator 7) splits serialising from sending and no longer raises
        for HTTP errors; older releases do both in call_api (and send impersonated groups comma-joined).
        """
        api = self.api
        if hasattr(api, "param_serialize"):
            method, url, headers, body, post = api.param_serialize(
                method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            if self.impersonate_groups:
                headers = HTTPHeaderDict(headers)
                for group in self.impersonate_groups:
                    headers.add("Impersonate-Group", group)
            response = api.call_api(
                method, url, header_params=headers, body=body, post_params=post, _request_timeout=REQUEST_TIMEOUT
            )
            data = response.read()
            if not 200 <= response.status <= 299:
                raise ApiException(http_resp=response)
            return data, (response.getheaders() or {}).get("Content-Type")
        if self.impersonate_groups:
            headers = dict(headers, **{"Impersonate-Group": ",".join(self.impersonate_groups)})
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
        return response.data, (response.getheaders() or {}).get("Content-Type")

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
        causes = [c.get("reason") for c in (body.get("details") or {}).get("causes") or [] if isinstance(c, dict)]
        if cls is Forbidden and "NamespaceTerminating" in causes:
            text += "; the namespace is being deleted: wait until it is gone, then run again"
        elif cls is Forbidden:
            text += "; the identity needs this permission (see docs/rbac.md)"
        elif cls is Unauthorized:
            text += "; the credentials were rejected: check api_key, client_cert/client_key or kubeconfig"
        return cls(text, status=exc.status, reason=body.get("reason"))

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
            retry_conflict=force,  # without force, a conflict with another field manager is the answer
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

    def delete(self, api_version, kind, name, namespace=None, dry_run=False, propagation="Background", read=None):
        """Delete; True when something was (or would be) deleted, False when it was already gone.

        `read` is the object as it was read for the decision to delete it: its uid and resourceVersion
        become preconditions, so an object deleted and recreated, or changed, since is never removed (409:
        Conflict). A change that cannot touch the decision (status only, e.g. an autoscaler's report) is read
        again and the delete retried (a PodDisruptionBudget's status can change several times in a second while pods
        come and go); anything else fails.
        Without `read`, the delete is by name only.
        """
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if dry_run:
            body["dryRun"] = ["All"]
        path = self.resource(api_version, kind).path(namespace, name)
        attempts = 4
        for attempt in range(1, attempts + 1):
            meta = (read or {}).get("metadata") or {}
            preconditions = {k: meta[k] for k in ("uid", "resourceVersion") if meta.get(k)}
            if preconditions:
                body["preconditions"] = preconditions
            try:
                self.request("DELETE", path, body=body, retry_conflict=not preconditions)
                return True
            except NotFound:
                return False
            except Conflict as exc:
                if attempt == attempts:
                    now = None
                else:
                    now = self.get(api_version, kind, name, namespace)
                    if now is None:
                        return False  # gone meanwhile (another tool's prune, say): what the delete was for
                if now is not None and _decision_marks(now) == _decision_marks(read):
                    read = now
                    self.sleep(0.2 * attempt)
                    continue
                raise Conflict(
                    "%s %s%s changed after it was read (precondition %s failed), so it was not deleted; run again "
                    "to decide on what it is now" % (kind, namespace + "/" if namespace else "", name, preconditions),
                    status=409,
                    reason=exc.reason,
                )
        return True  # pragma: no cover - the loop returns or raises

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
        """Wait as `kubectl rollout status` does; return the Deployment's final status. Pods of the new template
        that crash-loop fail the wait at once (naming them): the old pods keep serving, and waiting would not heal
        them. A wait that times out names the new pods that are not ready and why."""

        def check():
            dep = self.get("apps/v1", "Deployment", name, namespace)
            if dep is None:
                return (False, "the Deployment does not exist")
            done, detail = rollout_complete(dep)
            if done or not observed(dep):
                return done, detail  # until the controller observed the spec, the newest pods may be the old ones
            pods = self.rollout_pods(dep)
            crashing = [pod_problem(p) for p in pods if crash_looping(p)]
            if crashing:
                raise K8sError(
                    "rollout of Deployment %s/%s stopped: its new pods crash (%s); the pods of the previous template "
                    "keep serving. See the pods' logs (kubectl logs -n %s %s -c istio-proxy --previous), fix the cause "
                    "and run again" % (namespace, name, "; ".join(crashing), namespace, crashing[0].split(" ", 1)[0])
                )
            waiting = [pod_problem(p) for p in pods if not is_ready(p)]
            return False, "; ".join([detail] + waiting[:3])

        self.wait("rollout of Deployment %s/%s" % (namespace, name), check, timeout)
        return self.get("apps/v1", "Deployment", name, namespace)

    def rollout_pods(self, dep):
        """The pods of a Deployment's current template: those of its ReplicaSet of the same revision, by that
        ReplicaSet's pod-template-hash. [] while the controller has not made it yet."""
        meta = dep["metadata"]
        selector = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
        revision = (meta.get("annotations") or {}).get(DEPLOYMENT_REVISION_ANNOTATION)
        if not selector or revision is None:
            return []
        namespace = meta["namespace"]
        for rs in self.list("apps/v1", "ReplicaSet", namespace, label_selector=L.selector_string(selector)):
            owned = any(o.get("uid") == meta.get("uid") for o in rs["metadata"].get("ownerReferences") or [])
            rs_revision = (rs["metadata"].get("annotations") or {}).get(DEPLOYMENT_REVISION_ANNOTATION)
            template_hash = (rs["metadata"].get("labels") or {}).get("pod-template-hash")
            if owned and rs_revision == revision and template_hash:
                pods = dict(selector, **{"pod-template-hash": template_hash})
                return self.list("v1", "Pod", namespace, label_selector=L.selector_string(pods))
        return []

    def wait_deleted(self, refs, timeout):
        """Wait until every (apiVersion, kind, name, namespace) is gone."""

        def check():
            left = [r for r in refs if self.get(r[0], r[1], r[2], r[3]) is not None]
            return (not left, "still present: " + ", ".join("%s %s/%s" % (r[1], r[3] or "", r[2]) for r in left))

        if refs:
            self.wait("deletion", check, timeout)

    # -- discovery (gateway_cleanup: what a namespace holds) -------------
    def discover_namespaced_kinds(self, skip_groups=()):
        """([(apiVersion, kind)], [(groupVersion, error)]): every namespaced kind the server serves and can list.

        The core group and each other group's preferred version (GET /api/v1, /apis, /apis/<group>/<version>),
        resources with the verb `list` and no '/' in their name (no subresources). A group version whose
        discovery fails (an aggregated API that is down) is returned among the failures, not raised, so the
        caller knows what it could not see. `skip_groups` are groups not to ask about at all.
        """
        versions = ["v1"]
        for group in (self.request("GET", "/apis") or {}).get("groups") or []:
            if group.get("name") in skip_groups or not group.get("versions"):
                continue
            preferred = (group.get("preferredVersion") or {}).get("groupVersion")
            versions.append(preferred or group["versions"][0]["groupVersion"])
        kinds, failures = [], []
        for api_version in versions:
            try:
                listing = self.request("GET", ("/api/" if "/" not in api_version else "/apis/") + api_version) or {}
            except K8sError as exc:
                failures.append((api_version, str(exc)))
                continue
            for item in listing.get("resources") or []:
                if "/" in item["name"] or not item.get("namespaced") or "list" not in (item.get("verbs") or []):
                    continue
                key = (api_version, item["kind"])
                if key not in kinds:
                    self._discovered.setdefault(key, Resource(api_version, item["kind"], item["name"], True))
                    kinds.append(key)
        return kinds, failures


class ConnectionProblem(object):
    """What went wrong reaching the API server: the message's subject, the fix, and whether a retry can help."""

    def __init__(self, cls, what, fix, retry):
        self.cls, self.what, self.fix, self.retry = cls, what, fix, retry

    def error(self, request):
        return self.cls("%s (%s): %s" % (self.what, request, self.fix))


def _causes(exc):
    """exc and what it wraps (urllib3: MaxRetryError.reason, NewConnectionError.__cause__, SSLError.args)."""
    seen = []
    todo = [exc]
    while todo and len(seen) < 12:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__]
        todo += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
    return seen


def connection_problem(exc, cfg):
    """Classify a transport failure; never raises itself (any exception shape is handled)."""
    host = cfg.host
    causes = _causes(exc)

    def first(*types):
        return next((c for c in causes if isinstance(c, types)), None)

    if first(urllib3.exceptions.LocationValueError):
        return ConnectionProblem(
            ConfigError, "host: %r is not a URL" % host, "give e.g. https://api.example.com:6443", False
        )
    proxy_error = first(urllib3.exceptions.ProxyError)
    if proxy_error is not None:
        denied = "407" in str(proxy_error)
        return ConnectionProblem(
            ConfigError if denied else Unreachable,
            "proxy: cannot reach %s through proxy %s: %s" % (host, _strip_auth(cfg.proxy), _short(proxy_error)),
            "give the proxy's credentials (proxy_headers.proxy_basic_auth)"
            if denied
            else "check proxy, or list the API server in no_proxy if it must be reached directly",
            not denied,
        )
    verify = first(ssl.SSLCertVerificationError, ssl.CertificateError)
    if verify is not None:
        hostname = "hostname" in str(verify).lower() or "ip address mismatch" in str(verify).lower()
        return ConnectionProblem(
            ConfigError,
            "TLS verification of the API server at %s failed: %s" % (host, _short(verify)),
            "give the CA that signed its certificate (ca_cert, or certificate-authority in the kubeconfig)"
            + (", or the name its certificate is for (tls-server-name in the kubeconfig)" if hostname else "")
            + ", or set validate_certs: false to skip verification",
            False,
        )
    tls = first(ssl.SSLError)
    if tls is not None:
        return ConnectionProblem(
            ConfigError,
            "TLS handshake with the API server at %s failed: %s" % (host, _short(tls)),
            "check that host is the API server's https URL and that client_cert/client_key (or the kubeconfig's "
            "client certificate) are what it accepts",
            False,
        )
    dns = first(socket.gaierror, getattr(urllib3.exceptions, "NameResolutionError", socket.gaierror))
    if dns is not None:
        return ConnectionProblem(
            Unreachable,
            "host: cannot resolve the API server's name in %s" % host,
            "check the spelling of host (or the kubeconfig's server) and DNS",
            False,
        )
    if first(ConnectionRefusedError):
        return ConnectionProblem(
            Unreachable,
            "cannot reach the Kubernetes API server at %s: connection refused" % host,
            "check host and port, and that the API server is up",
            True,
        )
    # NewConnectionError subclasses ConnectTimeoutError (urllib3 2); a refusal was handled above.
    timeouts = (urllib3.exceptions.ConnectTimeoutError, socket.timeout)
    if any(isinstance(c, timeouts) and not isinstance(c, urllib3.exceptions.NewConnectionError) for c in causes):
        return ConnectionProblem(
            Unreachable,
            "cannot reach the Kubernetes API server at %s: timed out connecting" % host,
            "check host, firewalls and proxy",
            True,
        )
    if first(urllib3.exceptions.ReadTimeoutError):
        return ConnectionProblem(
            Unreachable, "the API server at %s did not answer in time" % host, "check the server's health", True
        )
    return ConnectionProblem(
        Unreachable,
        "cannot reach the Kubernetes API server at %s: %s" % (host, _short(exc)),
        "check host/kubeconfig and that the server is up",
        True,
    )


def _strip_auth(url):
    """A proxy URL without its user:password part, for messages."""
    scheme, sep, rest = (url or "").partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else url


def _head(data):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return text[:80]


def _decision_marks(obj):
    """What a decision to delete an object rests on: its identity and everything but status and server noise."""
    return ((obj or {}).get("metadata") or {}).get("uid"), strip_noise(obj)


def field_owners(obj, path):
    """The field managers whose managedFields own `path` (a tuple of field names, e.g. ("spec", "replicas"))."""
    owners = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        fields = entry.get("fieldsV1") or {}
        for name in path:
            fields = fields.get("f:" + name) if isinstance(fields, dict) else None
        if fields is not None:
            owners.append(entry.get("manager"))
    return owners


def restart_patch():
    """The merge patch of `kubectl rollout restart`: a new pod-template annotation, so every pod is replaced."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {L.RESTARTED_AT: now}}}}}


# Restarts after which a CrashLoopBackOff counts as crash-looping (one crash at start may heal).
CRASH_RESTARTS = 2


def pod_problem(pod):
    """Why a pod is not ready, as kubectl shows it (CrashLoopBackOff and restarts, or not ready)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return "%s %s (%s restarts)" % (pod["metadata"]["name"], waiting["reason"], status.get("restartCount", 0))
    return "%s not ready" % pod["metadata"]["name"]


def crash_looping(pod):
    """A pod whose container keeps crashing (CrashLoopBackOff after a second restart): waiting will not help, as a
    broken proxy of the new revision does not heal, so a rollout fails at once rather than at its timeout."""
    return any(
        ((status.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        and status.get("restartCount", 0) >= CRASH_RESTARTS
        for status in (pod.get("status") or {}).get("containerStatuses") or []
    )


def is_ready(pod):
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def observed(dep):
    """Whether a Deployment's controller has seen its current spec (its status and revision are of it)."""
    return (dep.get("status") or {}).get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)


def rollout_complete(dep):
    """(done, detail) for a Deployment, by the rules of `kubectl rollout status`."""
    spec_replicas = dep.get("spec", {}).get("replicas", 1)
    status = dep.get("status", {})
    if not observed(dep):
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
