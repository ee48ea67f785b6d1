"""Secrets: tokens, passwords and keys never show up in task output, results, -vvv logs, command lines or files
left behind; the temporary kubeconfig istioctl gets is 0600 in a 0700 directory and gone afterwards; TLS
verification is on unless validate_certs: false says otherwise.

The identity is a ServiceAccount bound to copies of the ClusterRoles of docs/rbac/rbac.yml (renamed, so that
tests/integration/test_rbac.py, which applies and deletes the originals, can run at the same time), with a token
minted by the TokenRequest API. RBAC itself (least privilege works, a missing permission's 403 is readable) is
tests/integration/test_rbac.py's subject.
"""

import base64
import copy
import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from . import faults
from .common import COUNTS, token_connection, uid

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RBAC = yaml.safe_load((ROOT / "docs" / "rbac" / "rbac.yml").read_text())["items"]
GW = "sec-gw"


@pytest.fixture(scope="module")
def identity(kube, testbed):
    """host, ca_cert and a real token of a ServiceAccount bound to docs/rbac/rbac.yml's ClusterRoles."""
    sfx = uid()
    ns = "rel-sec-sa-" + sfx
    account = "automation"
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": ns}},
    ]
    # The read and write roles; the optional Helm role (Secret writes for release records) is not bound.
    for role in (o for o in RBAC if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith(("-read", "-write"))):
        role = copy.deepcopy(role)
        role["metadata"]["name"] += "-rel-" + sfx
        objects.append(role)
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role["metadata"]["name"]},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role["metadata"]["name"],
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
            }
        )
    for obj in objects:
        kube.apply(obj)
    try:
        yield token_connection(kube, testbed, ns, account)
    finally:
        for obj in reversed(objects):
            meta = obj["metadata"]
            kube.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


PLAY = textwrap.dedent(
    """\
    - hosts: localhost
      gather_facts: false
      module_defaults:
        group/istio_ops.gateways.gateways:
          host: "{{ sec_host }}"
          api_key: "{{ sec_api_key }}"
          ca_cert: "{{ sec_ca_cert }}"
          password: "{{ sec_password }}"
          proxy_headers:
            proxy_basic_auth: "{{ sec_proxy_basic_auth }}"
            basic_auth: "{{ sec_basic_auth }}"
      tasks:
        - name: Install a gateway as the automation account
          istio_ops.gateways.istio_gateway:
            name: sec-gw
            namespace: "{{ sec_namespace }}"
            labels: {istio: "{{ sec_namespace }}"}
            binary_path: "{{ sec_istioctl }}"
            replicas: 1
            autoscaling: {enabled: false}
            wait_timeout: 120
          register: install
        - name: Read it
          istio_ops.gateways.gateway_info:
            namespace: "{{ sec_namespace }}"
          register: info
        - name: A Gateway resource for it
          istio_ops.gateways.gateway_config:
            name: sec-listener
            gateway_name: sec-gw
            gateway_namespace: "{{ sec_namespace }}"
            servers:
              - port: {number: 8080, name: http, protocol: HTTP}
                hosts: ["*"]
          register: config
        - name: A canary with no pods
          istio_ops.gateways.gateway_canary:
            name: sec-gw
            namespace: "{{ sec_namespace }}"
            revision: "{{ sec_canary_revision }}"
            weight: 0
            wait_timeout: 120
          register: canary
        - name: Roll it back
          istio_ops.gateways.gateway_canary:
            name: sec-gw
            namespace: "{{ sec_namespace }}"
            state: absent
            wait_timeout: 120
          register: rollback
        - name: Scale without verifying the server's certificate (validate_certs false, no CA)
          istio_ops.gateways.istio_gateway:
            name: sec-gw
            namespace: "{{ sec_namespace }}"
            labels: {istio: "{{ sec_namespace }}"}
            binary_path: "{{ sec_istioctl }}"
            replicas: 2
            autoscaling: {enabled: false}
            ca_cert: "{{ omit }}"
            validate_certs: false
          register: insecure
        - name: No CA and verification on (the default) fails
          istio_ops.gateways.gateway_info:
            namespace: "{{ sec_namespace }}"
            ca_cert: "{{ omit }}"
          register: untrusted
          ignore_errors: true
        - name: A rejected token fails
          istio_ops.gateways.gateway_info:
            namespace: "{{ sec_namespace }}"
            api_key: "{{ sec_bad_token }}"
          register: rejected
          ignore_errors: true
        - name: An istioctl that does not match fails after connecting
          istio_ops.gateways.istio_gateway:
            name: sec-gw
            namespace: "{{ sec_namespace }}"
            labels: {istio: "{{ sec_namespace }}"}
            binary_path: "{{ sec_istioctl_canary }}"
          register: mismatch
          ignore_errors: true
        - name: Remove it all
          istio_ops.gateways.gateway_cleanup:
            name: sec-gw
            namespace: "{{ sec_namespace }}"
            gateway_configs: true
          register: cleanup
        - name: Keep every result for the search
          ansible.builtin.copy:
            content: "{{ {'install': install, 'info': info, 'config': config, 'canary': canary,
                          'rollback': rollback, 'insecure': insecure, 'untrusted': untrusted,
                          'rejected': rejected, 'mismatch': mismatch, 'cleanup': cleanup} | to_nice_json }}"
            dest: "{{ sec_results_file }}"
            mode: "0600"
    """
)


def forms(secret):
    """A secret and the forms a careless leak would take: base64, and each part of a JWT."""
    found = {secret, base64.b64encode(secret.encode()).decode()}
    if secret.count(".") == 2:  # a JWT: a leaked signature alone is as bad
        found.add(secret.rsplit(".", 1)[1])
    return found


def files_under(path):
    return [p for p in Path(path).rglob("*") if p.is_file()] if Path(path).exists() else []


def test_no_secret_leaks_and_private_temp_files(ansible, kube, testbed, identity, namespace_factory, tmp_path):
    namespace = namespace_factory("rel-sec")
    binary, log = faults.istioctl_recorder(tmp_path, testbed.istioctl)
    sfx = uid()
    secrets = {
        "api_key": identity["api_key"],
        "password": "rel-password-" + sfx,
        "proxy_basic_auth": "proxyuser:rel-proxy-secret-" + sfx,
        "basic_auth": "basicuser:rel-basic-secret-" + sfx,
        "bad_token": "rel-rejected-token-" + sfx,
    }
    results_file = tmp_path / "results.json"
    remote_tmp, local_tmp, log_path = tmp_path / "remote-tmp", tmp_path / "local-tmp", tmp_path / "ansible.log"
    extra_vars = dict(
        secrets,
        host=identity["host"],
        ca_cert=identity["ca_cert"],
        namespace=namespace,
        istioctl=binary,
        istioctl_canary=str(testbed.istioctl_canary),
        canary_revision=testbed.canary_revision,
        results_file=str(results_file),
    )
    extra_vars = {"sec_" + k: v for k, v in extra_vars.items()}
    env = {
        "ANSIBLE_STDOUT_CALLBACK": "default",  # what a user (or AWX) sees at -vvv
        "ANSIBLE_LOG_PATH": str(log_path),
        "ANSIBLE_REMOTE_TMP": str(remote_tmp),
        "ANSIBLE_LOCAL_TEMP": str(local_tmp),
        "K8S_AUTH_KUBECONFIG": "",
        "KUBECONFIG": "",
    }
    rc, _parsed, output = ansible.playbook(PLAY, extra_vars=extra_vars, env=env, verbosity=3)
    assert rc == 0, output[-5000:]
    results = json.loads(results_file.read_text())

    # The runs did what they should, as the ServiceAccount.
    assert results["install"]["changed"] and results["install"]["deployment"]["ready_replicas"] == 1
    assert results["canary"]["changed"] and results["rollback"]["changed"]
    assert results["cleanup"]["removed"]
    assert results["insecure"]["changed"] and results["insecure"]["deployment"]["ready_replicas"] == 2
    assert "TLS verification of the API server" in results["untrusted"]["msg"]
    assert "validate_certs: false" in results["untrusted"]["msg"]
    assert "HTTP 401" in results["rejected"]["msg"]
    assert "does not match the control plane" in results["mismatch"]["msg"]

    # No secret, in any form, anywhere: -vvv output, the log file, the results, istioctl's command lines,
    # Ansible's temporary directories.
    places = {"-vvv output": output, "ansible log": log_path.read_text(), "results": results_file.read_text()}
    places["istioctl command lines"] = Path(log).read_text()
    for directory in (remote_tmp, local_tmp):
        for path in files_under(directory):
            places[str(path)] = path.read_text(errors="replace")
    for place, control in (("-vvv output", namespace), ("results", namespace), ("istioctl command lines", "--")):
        assert control in places[place], "the search does not see %s in %s" % (control, place)
    leaks = []
    for name, secret in secrets.items():
        for form in forms(secret):
            for place, text in places.items():
                COUNTS["secret_markers_searched"] += 1
                if form in text:
                    leaks.append("%s (%s...) in %s" % (name, form[:6], place))
    COUNTS["secrets_leaked"] += len(leaks)
    assert not leaks, leaks
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output, "no_log masking did not show in the -vvv output"

    # istioctl got a private kubeconfig (and IstioOperator file), each removed when the module exited.
    files = faults.recorded_files(log)
    kubeconfigs = [f for f in files if f[0] == "--kubeconfig"]
    assert kubeconfigs and [f for f in files if f[0] == "-f"], files
    me = Path.home().owner()
    for option, path, mode, owner, dir_mode, _insecure in files:
        assert (mode, owner, dir_mode) == ("600", me, "700"), (option, path, mode, owner, dir_mode)
        assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path)), "left behind: %s" % path
    # TLS verification stays on unless the task turned it off: exactly the validate_certs: false task's calls.
    insecure_calls = [f for f in kubeconfigs if f[5]]
    assert insecure_calls and len(insecure_calls) < len(kubeconfigs), kubeconfigs
    assert not kube.list("apps/v1", "Deployment", namespace), "cleanup left the gateway"
