"""The fleet report's pure logic: rows from gateway_info before/after and drift, the text table, the HTML page
(escaped, self-contained, deterministic), the input checks; and gateway_info's summary it reads."""

import copy
import re

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import fleet_report, inventory
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError

ROW_KEYS = set(fleet_report.ROW_KEYS)  # the contract itself: the first test spells out a whole row


def gw(name, namespace="istio-ingress", revision="default", ready=2, desired=2, address="10.96.0.10", **extra):
    """A gateway_info `gateways` entry as the report reads it: its summary (other facts left out)."""
    summary = dict(
        name=name,
        namespace=namespace,
        api="istio",
        method="istioctl",
        revision=revision,
        ready=ready,
        desired=desired,
        address=address,
        managed_by_collection=True,
    )
    summary.update(extra)
    return {"name": name, "namespace": namespace, "summary": summary}


def cluster(name, status="upgraded", before=(), after=(), drift=None, error=None):
    return {
        "cluster": name,
        "status": status,
        "error": error,
        "before": None if before is None else list(before),
        "after": None if after is None else list(after),
        "drift": drift,
    }


def rows_of(report, cluster_name):
    return [r for r in report["rows"] if r["cluster"] == cluster_name]


def fleet():
    """Cluster 1 upgraded (one gateway on the new revision, one Gateway API gateway new after), cluster 2 rolled
    back with an error and drift, cluster 3 untouched with no gateways."""
    return [
        cluster(
            "cluster-1",
            before=[gw("istio-ingressgateway")],
            after=[
                gw("istio-ingressgateway", revision="1-31", ready=3, desired=3),
                gw("web", namespace="apps", revision="1-31", api="gateway_api", method="gateway_api", address=None),
            ],
            drift={"istio-ingress/istio-ingressgateway": []},
        ),
        cluster(
            "cluster-2",
            status="rolled_back",
            error="gateway istio-ingress/istio-ingressgateway: pods on 1-31 not ready after 120 s",
            before=[gw("istio-ingressgateway")],
            after=[gw("istio-ingressgateway", ready=1)],
            drift={"istio-ingress/istio-ingressgateway": ["update Deployment istio-ingressgateway"]},
        ),
        cluster("cluster-3", status="untouched"),
    ]


def test_a_row_per_cluster_and_gateway_with_before_and_after():
    report = fleet_report.build(fleet())
    assert all(set(r) == ROW_KEYS for r in report["rows"])
    assert [(r["cluster"], r["namespace"], r["gateway"]) for r in report["rows"]] == [
        ("cluster-1", "apps", "web"),
        ("cluster-1", "istio-ingress", "istio-ingressgateway"),
        ("cluster-2", "istio-ingress", "istio-ingressgateway"),
        ("cluster-3", None, None),
    ]
    web, upgraded = rows_of(report, "cluster-1")
    assert upgraded == dict(
        cluster="cluster-1",
        cluster_status="upgraded",
        error=None,
        namespace="istio-ingress",
        gateway="istio-ingressgateway",
        api="istio",
        method="istioctl",
        revision_before="default",
        revision_after="1-31",
        ready=3,
        desired=3,
        address="10.96.0.10",
        drift=False,
        drift_details=[],
    )
    # Present only after: no revision before, the rest from after.
    assert (web["revision_before"], web["revision_after"], web["api"], web["address"]) == (
        None,
        "1-31",
        "gateway_api",
        None,
    )
    [rolled_back] = rows_of(report, "cluster-2")
    assert rolled_back["error"].startswith("gateway istio-ingress/istio-ingressgateway")
    assert (rolled_back["revision_before"], rolled_back["revision_after"], rolled_back["ready"]) == (
        "default",
        "default",
        1,
    )
    assert report["summary"] == {
        "clusters": {"upgraded": 1, "rolled_back": 1, "failed": 0, "untouched": 1, "unchanged": 0},
        "gateways": 3,
        "drifted": 1,
    }


@pytest.mark.parametrize("before, after", [([], []), (None, None), ([], None), (None, [])])
def test_a_cluster_without_gateways_still_gets_a_row(before, after):
    report = fleet_report.build([cluster("cluster-3", status="untouched", before=before, after=after)])
    [row] = report["rows"]
    assert row == dict(dict.fromkeys(ROW_KEYS), cluster="cluster-3", cluster_status="untouched", drift_details=[])
    assert report["summary"]["gateways"] == 0
    assert re.search(r"^cluster-3 +untouched +- +\(no gateways seen\)", report["table"], re.M), report["table"]
    assert 'data-cluster="cluster-3"' in report["html"] and "(no gateways seen)" in report["html"]


def test_a_gateway_gone_after_has_no_state_but_one_not_read_after_keeps_the_one_before():
    gone, unread = fleet_report.build(
        [
            cluster("gone", before=[gw("a", ready=2)], after=[]),
            cluster("unread", status="failed", before=[gw("a", ready=2)], after=None, error="unreachable"),
        ]
    )["rows"]
    assert (gone["revision_before"], gone["revision_after"], gone["ready"], gone["desired"], gone["address"]) == (
        "default",
        None,
        None,
        None,
        None,
    )
    assert gone["method"] == "istioctl"  # what it was stays known
    assert (unread["revision_after"], unread["ready"], unread["desired"], unread["address"]) == (
        None,
        2,
        2,
        "10.96.0.10",
    )


def test_drift_not_checked_none_and_some():
    report = fleet_report.build(
        [
            cluster(
                "c",
                after=[gw("checked-clean"), gw("drifted"), gw("not-checked"), gw("null-is-not-checked")],
                drift={
                    "istio-ingress/checked-clean": [],
                    "istio-ingress/drifted": ["update Deployment drifted", "create PodDisruptionBudget drifted"],
                    "istio-ingress/null-is-not-checked": None,
                    # A gateway a check would create is missing from the cluster: drift, and a row.
                    "istio-ingress/missing": ["create Deployment missing"],
                },
            )
        ]
    )
    by_name = {r["gateway"]: r for r in report["rows"]}
    assert {n: (r["drift"], r["drift_details"]) for n, r in by_name.items()} == {
        "checked-clean": (False, []),
        "drifted": (True, ["update Deployment drifted", "create PodDisruptionBudget drifted"]),
        "missing": (True, ["create Deployment missing"]),
        "not-checked": (None, []),
        "null-is-not-checked": (None, []),
    }
    assert by_name["missing"]["revision_before"] is None and by_name["missing"]["revision_after"] is None
    assert report["summary"]["drifted"] == 2
    table = report["table"].splitlines()
    drift_column = {line.split()[3]: line.split()[-1] for line in table if line.startswith("c ")}
    assert drift_column["checked-clean"] == "no"
    assert drift_column["drifted"] == "(2)" and drift_column["not-checked"] == "checked"  # "yes (2)", "not checked"
    assert "  c istio-ingress/drifted: create PodDisruptionBudget drifted" in table
    html = report["html"]
    assert html.count('class="drift-yes"') == 2 and html.count('class="drift-no"') == 1
    assert "<li>create PodDisruptionBudget drifted</li>" in html


def test_everything_is_escaped_in_html_and_kept_on_one_line_in_the_table():
    evil = "<script>alert('x')</script>"
    report = fleet_report.build(
        [
            cluster(
                "c<b>1</b>",
                status="failed",
                error='istioctl said:\n%s & "quotes"' % evil,
                after=[gw(evil, namespace="ns", method=evil, address='"><img src=x onerror=alert(1)>')],
                drift={"ns/" + evil: [evil]},
            )
        ],
        title="Fleet " + evil,
        generated=evil,
    )
    html = report["html"]
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<title>Fleet &lt;script&gt;" in html
    assert 'data-gateway="ns/&lt;script&gt;' in html  # attributes too
    assert "&amp; &quot;quotes&quot;" in html
    # The rows keep the raw values (JSON consumers escape for themselves).
    assert report["rows"][0]["gateway"] == evil
    table = report["table"].splitlines()
    [error_line] = [line for line in table if line.startswith("  c<b>1</b>: ")]
    assert error_line.endswith('istioctl said: %s & "quotes"' % evil)  # the newline became a space


def test_html_is_a_self_contained_deterministic_document():
    first = fleet_report.build(fleet(), title="Release 1.31", generated="2026-12-02T06:00:00Z")
    again = fleet_report.build(copy.deepcopy(fleet()), title="Release 1.31", generated="2026-12-02T06:00:00Z")
    assert first == again
    html = first["html"]
    assert html.startswith("<!DOCTYPE html>\n<html") and html.rstrip().endswith("</html>")
    assert "<title>Release 1.31</title>" in html and "Generated 2026-12-02T06:00:00Z" in html
    for external in ("http:", "https:", "src=", "href=", "url(", "@import", "<script", "<link"):
        assert external not in html, external
    assert "Content-Security-Policy" in html and "default-src &#x27;none&#x27;" in html
    # Status coloured: each row's status in a badge of its class, and every class has a colour rule.
    assert html.count('<span class="status status-rolled_back">rolled_back</span>') == 1
    for status in fleet_report.STATUSES:
        assert re.search(r"\.status-%s \{ background: #[0-9a-f]{6}" % status, html), status
    assert len(re.findall(r"<tr class=\"row-", html)) == len(first["rows"])
    assert "<dt>cluster-2</dt><dd><pre>gateway istio-ingress/istio-ingressgateway" in html
    # No time unless given.
    assert "Generated" not in fleet_report.build(fleet())["html"]


def test_table_columns_are_fixed_width():
    report = fleet_report.build(fleet(), generated="2026-12-02T06:00:00Z")
    lines = report["table"].splitlines()
    assert lines[0] == "Istio gateway fleet report (2026-12-02T06:00:00Z)"
    assert lines[1] == "3 clusters (upgraded 1, rolled_back 1, untouched 1), 3 gateways, 1 drifted"
    header = lines[3]
    assert re.split(r" {2,}", header) == [h.upper() for h in fleet_report.HEADERS]
    assert header.startswith("CLUSTER  ") and "REVISION BEFORE  REVISION AFTER" in header
    grid = lines[4:8]
    for column in ("NAMESPACE", "REVISION AFTER", "READY", "ADDRESS", "DRIFT"):
        start = header.index(column)
        for line in grid:
            assert line[start - 2 : start] == "  " and line[start] != " ", (column, line)
    assert grid[1].split()[6:10] == ["default", "1-31", "3/3", "10.96.0.10"]
    assert lines[-2:] == [
        "errors:",
        "  cluster-2: gateway istio-ingress/istio-ingressgateway: pods on 1-31 not ready after 120 s",
    ]


def test_clusters_keep_their_order_and_gateways_are_sorted():
    names = [r["cluster"] for r in fleet_report.build([cluster("z"), cluster("a"), cluster("m")])["rows"]]
    assert names == ["z", "a", "m"]


@pytest.mark.parametrize(
    "clusters, field, value",
    [
        ({"cluster": "c"}, "clusters", "{'cluster': 'c'}"),
        (["c1"], "clusters[0]", "'c1'"),
        ([{"status": "upgraded"}], "clusters[0].cluster", "None"),
        ([dict(cluster("c"), status="done")], "clusters[0].status", "'done'"),
        ([cluster("c"), cluster("c")], "clusters[1].cluster", "'c'"),
        ([cluster("c", error=3)], "clusters[0].error", "3"),
        ([dict(cluster("c"), before="gateways")], "clusters[0].before", "'gateways'"),
        ([cluster("c", after=[{"name": "gw"}])], "clusters[0].after[0].summary", "None"),
        ([cluster("c", after=[gw("")])], "clusters[0].after[0].summary.name", "''"),
        ([cluster("c", before=[gw("a"), gw("b", ready="2")])], "clusters[0].before[1].summary.ready", "'2'"),
        ([cluster("c", after=[gw("a", revision=131)])], "clusters[0].after[0].summary.revision", "131"),
        ([cluster("c", after=[gw("a"), gw("a")])], "clusters[0].after[1].summary", "'istio-ingress/a'"),
        ([cluster("c", drift=["ns/gw"])], "clusters[0].drift", "['ns/gw']"),
        ([cluster("c", drift={"gw": []})], "clusters[0].drift key", "'gw'"),
        ([cluster("c", drift={"ns/gw": "update"})], "clusters[0].drift['ns/gw']", "'update'"),
        ([cluster("c", drift={"ns/gw": [1]})], "clusters[0].drift['ns/gw']", "[1]"),
    ],
)
def test_bad_input_names_the_field_and_the_value(clusters, field, value):
    with pytest.raises(InputError) as raised:
        fleet_report.build(clusters)
    assert str(raised.value).startswith("fleet_report: %s is %s; expected " % (field, value)), str(raised.value)


@pytest.mark.parametrize("kwargs, field", [({"title": None}, "title"), ({"generated": 1700000000}, "generated")])
def test_bad_title_or_time(kwargs, field):
    with pytest.raises(InputError, match=r"^fleet_report: %s is " % field):
        fleet_report.build([], **kwargs)


def facts(deployments, method="istioctl", gateway_api=None):
    result = {
        "name": "gw",
        "namespace": "ns",
        "revision": "1-31",
        "method": method,
        "deployments": deployments,
        "owner": {"managed_by_collection": False},
    }
    if gateway_api is not None:
        result["gateway_api"] = gateway_api
    return result


def service(load_balancer=(), cluster_ip="10.96.0.7"):
    return {"name": "gw", "load_balancer": list(load_balancer), "cluster_ip": cluster_ip}


def test_gateway_summary_counts_all_deployments_and_takes_the_stable_service_address():
    deployments = [
        {"role": "stable", "replicas": 3, "ready_replicas": 2},
        {"role": "canary", "replicas": 1, "ready_replicas": 0},
    ]
    assert inventory.gateway_summary(facts(deployments), service()) == {
        "name": "gw",
        "namespace": "ns",
        "api": "istio",
        "method": "istioctl",
        "revision": "1-31",
        "ready": 2,
        "desired": 4,
        "address": "10.96.0.7",
        "managed_by_collection": False,
    }
    api = inventory.gateway_summary(facts([], method="gateway_api", gateway_api={}), service(["203.0.113.9"]))
    assert (api["api"], api["ready"], api["desired"], api["address"]) == ("gateway_api", 0, 0, "203.0.113.9")


@pytest.mark.parametrize(
    "svc, address",
    [
        (service(["lb.example.com", "203.0.113.9"]), "lb.example.com"),
        (service([None], "10.96.0.7"), "10.96.0.7"),  # an ingress entry without ip or hostname
        (service([], "None"), None),  # headless
        (service([], None), None),
        (None, None),
    ],
)
def test_address_of(svc, address):
    assert inventory.address_of(svc) == address
