import json
import os
import stat

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import control_plane, istioctl
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import KubeClient


class FileOnlyModule(object):
    """Only the AnsibleModule surface the runner uses to find binaries and register temp files."""

    def __init__(self, binary):
        self.binary = binary
        self.cleanup = []

    def add_cleanup_file(self, path):
        self.cleanup.append(path)

    def get_bin_path(self, name):
        return self.binary


@pytest.fixture
def fake_binary(tmp_path):
    path = tmp_path / "istioctl"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def test_host_and_token_go_to_a_private_temp_kubeconfig(fake_binary, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kube = KubeClient({"host": "https://127.0.0.1:6443", "api_key": "s3cr3t-token", "validate_certs": True})
    runner = istioctl.Istioctl(FileOnlyModule(fake_binary), kube)
    args = runner.kube_args()
    assert args[0] == "--kubeconfig" and "s3cr3t-token" not in " ".join(args)
    path = args[1]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path) as handle:
        config = json.load(handle)
    assert config["users"][0]["user"] == {"token": "s3cr3t-token"}
    assert config["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443"}
    runner.cleanup()
    assert not os.path.exists(path)


def test_plain_kubeconfig_is_passed_through_with_impersonation(fake_binary, tmp_path):
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    kube = KubeClient(
        {"kubeconfig": str(kubeconfig), "context": "c", "impersonate_user": "alice", "impersonate_groups": ["g1", "g2"]}
    )
    runner = istioctl.Istioctl(FileOnlyModule(fake_binary), kube)
    assert runner.kube_args() == [
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        "c",
        "--as",
        "alice",
        "--as-group",
        "g1",
        "--as-group",
        "g2",
    ]


def test_missing_binary_names_the_parameter_and_fix():
    kube = KubeClient({"host": "https://127.0.0.1:1"})
    with pytest.raises(istioctl.IstioctlError) as err:
        istioctl.Istioctl(FileOnlyModule(None), kube)
    assert "binary_path" in err.value.message and "PATH" in err.value.message
    with pytest.raises(istioctl.IstioctlError) as err:
        istioctl.Istioctl(FileOnlyModule(None), kube, binary_path="/nonexistent/istioctl")
    assert "'/nonexistent/istioctl' is not an executable file" in err.value.message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1.30.2", (1, 30)),
        ("1.31-alpha.b01690e6db7d", (1, 31)),
        ("unknown", None),
        (None, None),
    ],
)
def test_major_minor(text, expected):
    assert istioctl.major_minor(text) == expected


def test_version_mismatch_message():
    plane = {"revision": "default", "version": "1.30.1"}
    assert control_plane.version_mismatch("1.30.9", plane) is None
    message = control_plane.version_mismatch("1.31.0", plane)
    assert message.startswith("binary_path: istioctl 1.31.0 does not match") and "skip_version_check" in message
    assert control_plane.version_mismatch("1.31.0", {"revision": "x", "version": None}) is None


def test_unreadable_kubeconfig_names_parameter(tmp_path):
    from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import ConfigError

    with pytest.raises(ConfigError) as err:
        KubeClient({"kubeconfig": str(tmp_path / "missing")})
    assert err.value.message.startswith("kubeconfig: cannot read")


def test_tag_generate_keeps_istioctls_log_lines_out_of_the_yaml(monkeypatch):
    """istioctl logs to stdout; a watch error between the documents is warned about, not parsed."""
    from ansible_collections.istio_ops.gateways.plugins.module_utils import istioctl as istioctl_module

    out = (
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n"
        "  name: istio-revision-tag-prod\n---\n"
        "2026-12-02T07:50:01.123456Z\terror\twatch error in cluster Kubernetes: cannot watch resource\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: istiod-revision-tag-prod\n"
    )
    warnings = []

    class Module(object):
        def warn(self, message):
            warnings.append(message)

    runner = istioctl_module.Istioctl.__new__(istioctl_module.Istioctl)
    runner.module = Module()
    monkeypatch.setattr(runner, "run", lambda args, **kwargs: out, raising=False)
    docs = runner.tag_generate("prod", "1-31", "istio-system")
    assert [d["kind"] for d in docs] == ["MutatingWebhookConfiguration", "Service"]
    assert warnings == [
        "istioctl tag generate logged: 2026-12-02T07:50:01.123456Z error watch error in cluster "
        "Kubernetes: cannot watch resource"
    ]
