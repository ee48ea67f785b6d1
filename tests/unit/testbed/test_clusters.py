"""Cluster names and state directories of the test bed (tests/testbed/common.py): pure path logic."""

import pytest

from tests.testbed import common


def test_without_testbed_cluster_the_primary_in_dot_testbed():
    assert common.cluster_name({}) == common.PRIMARY_CLUSTER == "cluster-1"
    assert common.cluster_name({"TESTBED_CLUSTER": ""}) == "cluster-1"
    assert common.state_dir("cluster-1") == common.REPO_ROOT / ".testbed"


def test_other_clusters_live_under_dot_testbed_clusters():
    assert common.cluster_name({"TESTBED_CLUSTER": "reliability"}) == "reliability"
    assert common.state_dir("cluster-2") == common.REPO_ROOT / ".testbed" / "clusters" / "cluster-2"


@pytest.mark.parametrize("name", ["../etc", "a/b", "Cluster-2", "-x", "x-", "x" * 41, "a_b", "."])
def test_a_name_that_is_no_dns_label_is_refused(name):
    with pytest.raises(SystemExit, match="TESTBED_CLUSTER="):
        common.cluster_name({"TESTBED_CLUSTER": name})


def test_of_cluster_is_the_same_file_in_the_other_clusters_directory():
    kubeconfig = common.STATE_DIR / "kubeconfig"
    assert common.of_cluster(kubeconfig, "cluster-3") == common.state_dir("cluster-3") / "kubeconfig"
    assert common.of_cluster(common.STATE_DIR / "pki" / "ca.crt", "cluster-1") == common.BED_ROOT / "pki" / "ca.crt"
