"""gateway_config's logic: input checks, rendering, selector resolution, Secret checks, idempotence."""

import copy

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import gateway_config as gc
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError, InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import Conflict
from ansible_collections.istio_ops.gateways.plugins.module_utils.owners import ForeignObject
from tests.unit.plugins.module_utils.fake_cluster import FakeKube, deployment, manager, obj

NS = "istio-ingress"
SEED = {"istio": "ingressgateway"}
GATEWAY_LABELS = {L.OPERATOR_COMPONENT: "IngressGateways"}


def server(number=443, protocol="HTTPS", hosts=("*.example.com",), tls=None, **extra):
    item = {
        "port": {"number": number, "name": "p%d" % number, "protocol": protocol},
        "hosts": list(hosts),
        "tls": tls,
        "name": None,
        "bind": None,
    }
    item.update(extra)
    return item


def tls(mode="SIMPLE", credential_name="cert", **extra):
    item = dict.fromkeys(gc.TLS_OPTIONS)
    item.update(mode=mode, credential_name=credential_name, **extra)
    return item


def params(**overrides):
    base = dict(
        name="public",
        namespace=None,
        gateway_name="istio-ingressgateway",
        gateway_namespace=NS,
        selector=None,
        servers=[server(tls=tls())],
        missing_secret="fail",
        state="present",
        adopt=False,
    )
    base.update(overrides)
    return base


def gateway(name, namespace, pod_labels):
    return deployment(name, namespace, GATEWAY_LABELS, pod_labels=pod_labels)


def tls_secret(name, namespace, **data):
    return obj("v1", "Secret", name, namespace, data=dict({"tls.crt": "x", "tls.key": "y"}, **data))


def cluster(*extra):
    return FakeKube(
        [
            obj("v1", "Namespace", NS),
            obj("v1", "Namespace", "shop"),
            gateway("istio-ingressgateway", NS, SEED),
            gateway("other", "elsewhere", {"istio": "other"}),
            tls_secret("cert", NS),
        ]
        + list(extra)
    )


# -- pure parts -----------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"servers": [server(tls=None)]}, "servers[0].tls.mode: a HTTPS port needs a TLS mode"),
        ({"servers": [server(tls=tls(credential_name=None))]}, "servers[0].tls.credential_name: mode SIMPLE"),
        ({"servers": [server(protocol="TLS", tls=tls(mode="PASSTHROUGH"))]}, "only modes SIMPLE/MUTUAL"),
        ({"servers": [server(hosts=["Bad_Host"], tls=tls())]}, "servers[0].hosts: 'Bad_Host' is not a host"),
        ({"servers": [server(hosts=["Bad_NS/x.io"], tls=tls())]}, "invalid namespace part 'Bad_NS'"),
        ({"servers": [server(number=70000, tls=tls())]}, "servers[0].port.number: 70000 is not a port"),
        ({"gateway_name": None, "selector": None}, "selector: give gateway_name and gateway_namespace"),
        ({"gateway_name": None, "gateway_namespace": None, "selector": SEED}, "namespace: give the namespace"),
        ({"gateway_name": None, "selector": {}}, "selector: must hold at least one label"),
        ({"name": "Public"}, "name: 'Public' is not a valid resource name"),
    ],
)
def test_bad_input_is_named(overrides, fragment):
    with pytest.raises(InputError) as err:
        gc.check_inputs(params(**overrides))
    assert fragment in err.value.message


def test_good_hosts_pass():
    for host in ("*", "*.example.com", "example.com", "shop/shop.example.com", "./a.io", "*/a.io", "shop/*"):
        assert gc.host_error("hosts", host) is None, host


def test_render_uses_istio_field_names_and_labels_the_owner():
    servers = [
        server(tls=tls(min_protocol_version="TLSV1_2", https_redirect=None), name="https"),
        server(number=80, protocol="HTTP", tls=dict(dict.fromkeys(gc.TLS_OPTIONS), https_redirect=True)),
    ]
    rendered = gc.render_gateway("public", NS, SEED, servers, {"name": "gw", "namespace": NS})
    assert rendered["metadata"]["labels"] == {
        L.GATEWAY_OF: "gw",
        L.GATEWAY_NAMESPACE_OF: NS,
        L.MANAGED_BY: L.MANAGED_BY_VALUE,
    }
    assert rendered["spec"] == {
        "selector": SEED,
        "servers": [
            {
                "port": {"number": 443, "name": "p443", "protocol": "HTTPS"},
                "hosts": ["*.example.com"],
                "tls": {"mode": "SIMPLE", "credentialName": "cert", "minProtocolVersion": "TLSV1_2"},
                "name": "https",
            },
            {
                "port": {"number": 80, "name": "p80", "protocol": "HTTP"},
                "hosts": ["*.example.com"],
                "tls": {"httpsRedirect": True},
            },
        ],
    }


def test_delegations_group_hosts_by_application_namespace():
    servers = [
        server(hosts=["shop/shop.example.com", "blog/*.blog.io", "*/any.io", "./own.io", "plain.io"]),
        server(number=80, protocol="HTTP", hosts=["shop/shop.example.com"]),
    ]
    assert gc.delegations(servers) == {"shop": ["shop.example.com"], "blog": ["*.blog.io"]}


def gateways(*deps):
    return [(d, []) for d in deps]


def test_selector_comes_from_the_named_gateway():
    seed = gateway("istio-ingressgateway", NS, SEED)
    selector, owner, matched = gc.resolve(gateways(seed), params())
    assert selector == SEED and owner is seed and matched == [seed]


def test_a_selector_that_picks_nothing_lists_what_could_be_used():
    found = gateways(gateway("istio-ingressgateway", NS, SEED), gateway("egress", NS, {"istio": "egressgateway"}))
    with pytest.raises(InputError) as err:
        gc.resolve(found, params(gateway_name=None, selector={"istio": "nope"}))
    message = err.value.message
    assert "selects no gateway pods in namespace 'istio-ingress'" in message
    assert '{"istio": "ingressgateway"} (istio-ingress/istio-ingressgateway)' in message
    assert '{"istio": "egressgateway"} (istio-ingress/egress)' in message


def test_an_explicit_selector_must_pick_the_named_gateway():
    with pytest.raises(InputError, match="does not select the pods of gateway istio-ingress/istio-ingressgateway"):
        gc.resolve(gateways(gateway("istio-ingressgateway", NS, SEED)), params(selector={"istio": "x"}))


def test_an_unknown_gateway_name_lists_the_gateways_there():
    with pytest.raises(InputError, match="gateway_name: no gateway Deployment 'nope' in namespace 'istio-ingress'"):
        gc.resolve(gateways(gateway("istio-ingressgateway", NS, SEED)), params(gateway_name="nope"))


def test_a_selector_picking_several_gateways_needs_a_name():
    found = gateways(gateway("a", NS, SEED), gateway("b", "other", SEED))
    with pytest.raises(InputError, match="picks several gateways"):
        gc.resolve(found, params(gateway_name=None, gateway_namespace=None, namespace="shop", selector=SEED))
    # In the Gateway's own namespace, the local gateway wins.
    _s, owner, matched = gc.resolve(
        found, params(gateway_name=None, gateway_namespace=None, namespace=NS, selector=SEED)
    )
    assert owner["metadata"]["name"] == "a" and len(matched) == 2


def test_secret_problems():
    assert gc.secret_problem(None, "c", "SIMPLE", None) == "Secret 'c' does not exist"
    assert "neither tls.crt" in gc.secret_problem(obj("v1", "Secret", "c", NS, data={"x": "y"}), "c", "SIMPLE", None)
    assert gc.secret_problem(tls_secret("c", NS), "c", "SIMPLE", None) is None
    assert "no client CA for mode MUTUAL" in gc.secret_problem(tls_secret("c", NS), "c", "MUTUAL", None)
    assert gc.secret_problem(tls_secret("c", NS, **{"ca.crt": "z"}), "c", "MUTUAL", None) is None
    assert gc.secret_problem(tls_secret("c", NS), "c", "MUTUAL", obj("v1", "Secret", "c-cacert", NS)) is None


# -- the manager on a fake cluster ------------------------------------------


def run(monkeypatch, kube, check_mode=False, diff=False, **overrides):
    mgr = manager(monkeypatch, gc.GatewayConfigManager, kube, params(**overrides), check_mode=check_mode, diff=diff)
    return mgr.run(), mgr.module


def test_four_steps_and_removal(monkeypatch):
    kube = cluster()
    check, _m = run(monkeypatch, kube, check_mode=True, diff=True)
    assert check["changed"] and check["operation"] == "create" and not kube.writes
    assert "credentialName: cert" in check["diff"]["after"] and check["diff"]["before"] == ""
    real, _m = run(monkeypatch, kube)
    assert real["changed"] and kube.writes == [("apply", "Gateway", NS, "public")]
    assert real["gateway"] == {"name": "istio-ingressgateway", "namespace": NS}
    assert real["matched_gateways"] == [{"name": "istio-ingressgateway", "namespace": NS, "role": "stable", "pods": 0}]
    assert real["secrets"] == [{"name": "cert", "namespace": NS, "found": True, "problem": None}]
    for check_mode in (True, False):
        again, _m = run(monkeypatch, kube, check_mode=check_mode)
        assert not again["changed"] and again["operation"] == "none"
    assert len(kube.writes) == 1
    changed, _m = run(monkeypatch, kube, servers=[server(tls=tls()), server(number=80, protocol="HTTP")])
    assert changed["operation"] == "update"
    gone, _m = run(monkeypatch, kube, state="absent", servers=None)
    assert gone["changed"] and gone["operation"] == "delete"
    assert not kube.has("networking.istio.io/v1", "Gateway", "public", NS)
    assert not run(monkeypatch, kube, state="absent", servers=None)[0]["changed"]


def test_missing_secret_fails_or_warns(monkeypatch):
    kube = cluster()
    servers = [server(tls=tls(credential_name="absent-cert"))]
    with pytest.raises(InputError) as err:
        run(monkeypatch, kube, servers=servers)
    assert "servers[0].tls.credential_name: Secret 'absent-cert' does not exist in namespace 'istio-ingress'" in (
        err.value.message
    )
    assert not kube.writes
    result, module = run(monkeypatch, kube, servers=servers, missing_secret="warn")
    assert result["changed"] and "absent-cert" in module.warnings[0]


def test_secret_is_looked_up_in_the_gateway_namespace_not_the_resource_namespace(monkeypatch):
    kube = cluster(tls_secret("shop-cert", "shop"))
    with pytest.raises(InputError, match="Secret 'shop-cert' does not exist in namespace 'istio-ingress'"):
        run(monkeypatch, kube, namespace="shop", servers=[server(tls=tls(credential_name="shop-cert"))])


def test_delegation_to_a_missing_namespace_warns(monkeypatch):
    kube = cluster()
    result, module = run(monkeypatch, kube, servers=[server(hosts=["shop/a.io", "later/b.io"], tls=tls())])
    assert result["delegated_hosts"] == {"shop": ["a.io"], "later": ["b.io"]}
    assert len(module.warnings) == 1 and "namespace 'later', which does not exist yet" in module.warnings[0]


def test_selector_shared_with_other_namespaces_warns(monkeypatch):
    kube = cluster(gateway("copy", "elsewhere", SEED))
    result, module = run(monkeypatch, kube)
    assert [g["name"] for g in result["matched_gateways"]] == ["istio-ingressgateway", "copy"]
    assert "also selects gateways in other namespaces" in module.warnings[0]


def test_no_istio_crds_fails_clearly(monkeypatch):
    kube = cluster()
    kube.apis = set()
    with pytest.raises(GatewayError, match="does not serve networking.istio.io/v1"):
        run(monkeypatch, kube)


def test_missing_resource_namespace_fails(monkeypatch):
    with pytest.raises(InputError, match="namespace: 'nowhere' does not exist"):
        run(monkeypatch, cluster(), namespace="nowhere")


# -- only its own Gateways: foreign ones are refused unless adopt ------------------------------------------

API = "networking.istio.io/v1"
MARKS = {L.GATEWAY_OF: "istio-ingressgateway", L.GATEWAY_NAMESPACE_OF: NS, L.MANAGED_BY: L.MANAGED_BY_VALUE}


def live_gateway(labels=None, annotations=None, managers=("helm",)):
    return obj(
        API,
        "Gateway",
        "public",
        NS,
        labels,
        annotations=annotations or {},
        managedFields=[{"manager": m, "operation": "Apply"} for m in managers],
        spec={"selector": {"team": "payments"}, "servers": []},
    )


HELM = {"meta.helm.sh/release-name": "payments", "meta.helm.sh/release-namespace": NS}
FOREIGN = [
    ("unmarked", {"team": "payments"}, "it lacks the labels gateway_config puts on the Gateways it makes"),
    ("managed-by only", {L.MANAGED_BY: L.MANAGED_BY_VALUE}, "it lacks the labels"),
    (
        "another gateway",
        dict(MARKS, **{L.GATEWAY_OF: "other"}),
        "gateway_config made it for gateway istio-ingress/other",
    ),
    (
        "another gateway namespace",
        dict(MARKS, **{L.GATEWAY_NAMESPACE_OF: "elsewhere"}),
        "made it for gateway elsewhere/istio-ingressgateway",
    ),
]


@pytest.mark.parametrize("labels, why", [f[1:] for f in FOREIGN], ids=[f[0] for f in FOREIGN])
@pytest.mark.parametrize("check_mode", [True, False])
def test_a_foreign_gateway_is_neither_updated_nor_deleted(monkeypatch, labels, why, check_mode):
    kube = cluster(live_gateway(labels, HELM))
    before = copy.deepcopy(kube.objects)
    with pytest.raises(ForeignObject) as err:
        run(monkeypatch, kube, check_mode=check_mode)
    message = err.value.message
    assert message.startswith(
        "Gateway istio-ingress/public is not this collection's (Helm release istio-ingress/payments"
    )
    assert why in message and "adopt: true" in message
    with pytest.raises(ForeignObject, match="delete it with the tool that made it, or set adopt: true"):
        run(monkeypatch, kube, check_mode=check_mode, state="absent", servers=None)
    assert kube.objects == before and not kube.writes and not kube.applies, "not even a dry-run"


def test_absent_without_a_gateway_name_deletes_any_gateway_the_collection_made(monkeypatch):
    kube = cluster(live_gateway(dict(MARKS, **{L.GATEWAY_OF: "other"}), managers=(L.FIELD_MANAGER,)))
    with pytest.raises(ForeignObject):
        run(monkeypatch, kube, state="absent", servers=None)
    result, _m = run(monkeypatch, kube, state="absent", servers=None, gateway_name=None, namespace=NS)
    assert result["changed"] and not kube.has(API, "Gateway", "public", NS)


def test_adopt_takes_a_foreign_gateway_over_or_deletes_it(monkeypatch):
    kube = cluster(live_gateway({"team": "payments"}, HELM))
    check, module = run(monkeypatch, kube, check_mode=True, adopt=True)
    assert check["operation"] == "update" and check["adopted"] and not kube.writes
    assert "Helm release istio-ingress/payments" in module.warnings[0]
    assert check["resource"]["spec"]["selector"] == SEED, "the plan drops the former owner's selector key"
    result, _m = run(monkeypatch, kube, adopt=True)
    assert result["changed"] and kube.applies[-1] == ("Gateway", NS, "public", True, False)
    adopted = kube.get(API, "Gateway", "public", NS)
    assert MARKS.items() <= adopted["metadata"]["labels"].items(), "adopted: it carries the collection's marks now"
    # A forced apply keeps map keys only the former owner set: its selector key would select no pod.
    assert adopted["spec"]["selector"] == SEED and result["resource"]["spec"]["selector"] == SEED
    assert kube.writes[-1] == ("patch", "Gateway", NS, "public")
    again, module = run(monkeypatch, kube)
    assert not again["changed"] and "adopted" not in again and not module.warnings

    kube = cluster(live_gateway({"team": "payments"}, HELM))
    gone, _m = run(monkeypatch, kube, state="absent", servers=None, adopt=True)
    assert gone["changed"] and gone["adopted"] and not kube.has(API, "Gateway", "public", NS)


def test_force_only_over_its_own_gateway(monkeypatch):
    kube = cluster()
    run(monkeypatch, kube)
    assert [a[3] for a in kube.applies] == [False, False], "a create does not force"
    # Someone edited the collection's Gateway: the update takes the fields back (force), as its owner.
    item = kube.objects[(API, "Gateway", NS, "public")]
    item["metadata"]["managedFields"] = [{"manager": "kubectl-edit"}, {"manager": L.FIELD_MANAGER}]
    item["spec"]["servers"] = []
    result, _m = run(monkeypatch, kube)
    assert result["operation"] == "update" and kube.applies[-1][3] is True


def test_a_gateway_created_meanwhile_by_someone_else_is_not_taken_over(monkeypatch):
    kube = cluster()
    real_apply = kube.apply

    def race(item, field_manager=None, dry_run=False, force=True):
        if not kube.has(API, "Gateway", "public", NS):
            kube.add(live_gateway({"team": "payments"}, managers=("kubectl",)))
        return real_apply(item, field_manager=field_manager, dry_run=dry_run, force=force)

    kube.apply = race
    with pytest.raises(ForeignObject, match="created by someone else while this run wrote it"):
        run(monkeypatch, kube)
    assert kube.get(API, "Gateway", "public", NS)["metadata"]["labels"] == {"team": "payments"}


def test_absent_does_not_delete_a_gateway_replaced_after_it_was_read(monkeypatch):
    kube = cluster(live_gateway(MARKS, managers=(L.FIELD_MANAGER,)))

    def replace(key):
        if key[1] == "Gateway":
            kube.objects.pop(key)
            kube.add(live_gateway({"team": "payments"}))  # same name, new uid: another team's

    kube.before_delete = replace
    with pytest.raises(Conflict, match="precondition"):
        run(monkeypatch, kube, state="absent", servers=None)
    assert kube.get(API, "Gateway", "public", NS)["metadata"]["labels"] == {"team": "payments"}
