from ansible_collections.istio_ops.gateways.plugins.module_utils import k8s


def dep(generation=2, observed=2, replicas=3, updated=3, total=3, available=3):
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
        },
    }


def test_rollout_complete_follows_kubectl_rules():
    assert k8s.rollout_complete(dep())[0]
    assert k8s.rollout_complete(dep(observed=1)) == (False, "controller has not observed generation 2 yet")
    assert k8s.rollout_complete(dep(updated=1))[1] == "1 of 3 new replicas updated"
    assert k8s.rollout_complete(dep(total=4))[1] == "1 old replicas pending termination"
    assert k8s.rollout_complete(dep(available=2))[1] == "2 of 3 updated replicas available"


def test_strip_noise_drops_server_owned_fields_only():
    obj = {
        "kind": "Service",
        "metadata": {
            "name": "a",
            "resourceVersion": "5",
            "uid": "u",
            "managedFields": [],
            "generation": 3,
            "creationTimestamp": "t",
            "labels": {"x": "y"},
            "annotations": {k8s.DEPLOYMENT_REVISION_ANNOTATION: "4"},
        },
        "spec": {"type": "ClusterIP"},
        "status": {"loadBalancer": {}},
    }
    assert k8s.strip_noise(obj) == {
        "kind": "Service",
        "metadata": {"name": "a", "labels": {"x": "y"}},
        "spec": {"type": "ClusterIP"},
    }
    assert obj["metadata"]["resourceVersion"] == "5"


def test_resource_paths():
    dep_res = k8s.KNOWN_RESOURCES[("apps/v1", "Deployment")]
    assert dep_res.path("ns", "gw") == "/apis/apps/v1/namespaces/ns/deployments/gw"
    ns_res = k8s.KNOWN_RESOURCES[("v1", "Namespace")]
    assert ns_res.path(None, "x") == "/api/v1/namespaces/x"
    assert dep_res.path("ns", "gw", "scale") == "/apis/apps/v1/namespaces/ns/deployments/gw/scale"


def test_ref_formats():
    assert k8s.ref({"kind": "Service", "metadata": {"name": "a", "namespace": "b"}}) == "Service/b/a"
    assert k8s.ref({"kind": "Namespace", "metadata": {"name": "a"}}) == "Namespace/a"


def test_wait_names_what_it_waited_for():
    clock = iter([0, 0, 5, 11]).__next__
    client = k8s.KubeClient.__new__(k8s.KubeClient)
    client.sleep = lambda s: None
    try:
        client.wait("rollout of Deployment ns/gw", lambda: (False, "1 of 2 ready"), 10, clock=clock)
    except k8s.K8sError as exc:
        assert "rollout of Deployment ns/gw (1 of 2 ready)" in exc.message
        assert "wait_timeout" in exc.message
    else:
        raise AssertionError("wait did not time out")


class _Cfg(object):
    host = "https://api.example:6443"
    proxy = "http://proxy.example:3128"


def _wrapped(reason):
    """What urllib3 raises after its own retries: MaxRetryError with the cause as `reason`."""
    import urllib3

    return urllib3.exceptions.MaxRetryError(None, "/version", reason=reason)


def test_connection_problems_are_classified_and_never_crash():
    import socket
    import ssl

    import urllib3

    cases = [
        (_wrapped(ssl.SSLCertVerificationError("certificate verify failed")), "TLS verification", False),
        (
            _wrapped(urllib3.exceptions.SSLError(ssl.SSLError(1, "tlsv13 alert certificate required"))),
            "TLS handshake",
            False,
        ),
        (
            _wrapped(urllib3.exceptions.NameResolutionError("api.example", None, socket.gaierror(-2, "no name"))),
            "cannot resolve",
            False,
        ),
        (_wrapped(urllib3.exceptions.NewConnectionError(None, "refused")), "cannot reach", True),
        (
            _wrapped(
                urllib3.exceptions.ProxyError(
                    "Unable to connect to proxy", OSError("407 Proxy Authentication Required")
                )
            ),
            "proxy: cannot reach",
            False,
        ),
        (ConnectionRefusedError(111, "Connection refused"), "at https://api.example:6443: connection refused", True),
        (
            _wrapped(urllib3.exceptions.ReadTimeoutError(None, "/version", "read timed out")),
            "did not answer in time",
            True,
        ),
        (urllib3.exceptions.LocationValueError("no host"), "is not a URL", False),
        (OSError("some text cause"), "cannot reach the Kubernetes API server", True),
    ]
    for exc, fragment, retry in cases:
        problem = k8s.connection_problem(exc, _Cfg())
        assert fragment in problem.error("GET /version").message, (exc, problem.what)
        assert problem.retry is retry, exc


def test_a_string_reason_does_not_crash_the_error_path():
    import urllib3

    # MaxRetryError.reason may be a string (an SSL error text): the old walk called .args on it.
    problem = k8s.connection_problem(_wrapped("[SSL] PEM lib"), _Cfg())
    assert "cannot reach the Kubernetes API server at https://api.example:6443" in problem.error("GET /").message
    assert isinstance(urllib3.exceptions.HTTPError(), Exception)


def test_pod_problem_says_what_kubectl_shows():
    crashing = {
        "metadata": {"name": "gw-1"},
        "status": {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 3}]},
    }
    assert k8s.pod_problem(crashing) == "gw-1 CrashLoopBackOff (3 restarts)"
    assert k8s.pod_problem({"metadata": {"name": "gw-2"}, "status": {}}) == "gw-2 not ready"


def test_a_pod_crash_looping_after_a_second_restart_fails_the_rollout_at_once():
    def container(reason, restarts):
        return {
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{"state": {"waiting": {"reason": reason}}, "restartCount": restarts}]},
        }

    assert k8s.crash_looping(container("CrashLoopBackOff", 2))
    assert not k8s.crash_looping(container("CrashLoopBackOff", 1))  # one crash at start may heal
    assert not k8s.crash_looping(container("ContainerCreating", 5))
    assert not k8s.crash_looping({"metadata": {"name": "p"}})
