"""The filter plugin: registered as fleet_report, Ansible's error for bad input, and run by Ansible's templar."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.istio_ops.gateways.plugins.filter import fleet_report as plugin


def test_filter_is_registered():
    assert plugin.FilterModule().filters() == {"fleet_report": plugin.fleet_report}


def test_bad_input_is_an_ansible_filter_error_naming_field_and_value():
    with pytest.raises(AnsibleFilterError, match=r"fleet_report: clusters\[0\]\.status is 'done'; expected one of"):
        plugin.fleet_report([{"cluster": "c", "status": "done"}])


def test_title_and_time_reach_the_page():
    report = plugin.fleet_report(
        [{"cluster": "c", "status": "unchanged", "error": None, "before": [], "after": [], "drift": {}}],
        title="Nightly",
        generated="2026-12-02T06:00:00Z",
    )
    assert "<title>Nightly</title>" in report["html"] and report["table"].startswith("Nightly (2026-12-02T06:00:00Z)")
    assert report["summary"]["clusters"]["unchanged"] == 1
