"""Ansible's role argument validation catches a typo inside a dict variable (issue #20, item 8): an unknown key of
a dedicated_gateway_apps entry or of gateway_upgrade_gateway fails naming it, and the keys the roles read pass.

Each run is ansible-playbook on a play that imports the role with `--tags none-selected`: only the argument
validation (tagged always) runs, so nothing touches a cluster.
"""

import pytest

from tests.unit.roles.role_play import COLLECTIONS, run_role

CASES = {
    "dedicated_gateway": (
        "dedicated_gateway_apps",
        lambda extra: [dict({"namespace": "shop", "name": "shop-gw", "hosts": ["shop.example.com"]}, **extra)],
        {"tls_secret": "shop-cert", "service_type": "ClusterIP", "labels": {"istio": "shop-gw"}},
        {"tls-secret": "shop-cert"},
    ),
    "gateway_upgrade": (
        "gateway_upgrade_gateway",
        lambda extra: dict({"labels": {"istio": "ingressgateway"}}, **extra),
        # As an AWX survey or extra vars pass them: replicas as a string.
        {"kind": "ingress", "replicas": "2", "autoscaling": {"enabled": False}, "service": {"type": "ClusterIP"}},
        {"replica": 2},
    ),
}


@pytest.fixture(autouse=True)
def collection_built():
    assert (COLLECTIONS / "ansible_collections" / "istio_ops" / "gateways").exists(), "run `make collection` first"


@pytest.mark.parametrize("role", sorted(CASES))
def test_an_unknown_key_fails_validation_naming_it(tmp_path, role):
    variable, value, _good, typo = CASES[role]
    rc, out = run_role(tmp_path, role, {variable: value(typo)}, tags="none-selected")
    assert rc != 0, out[-3000:]
    [key] = typo
    assert "%s.%s. Supported parameters include" % (variable, key) in out, out[-3000:]


@pytest.mark.parametrize("role", sorted(CASES))
def test_the_keys_the_role_reads_pass_validation(tmp_path, role):
    variable, value, good, _typo = CASES[role]
    rc, out = run_role(tmp_path, role, {variable: value(good)}, tags="none-selected")
    assert rc == 0, out[-3000:]
    assert "Validating arguments against arg spec 'main'" in out and "ok=1" in out, out[-3000:]
