"""Fixtures of the reliability suite (the integration harness's own), and the hook that reports its counts."""

import json
from pathlib import Path

import pytest

# The integration harness's fixtures (ansible, kube, namespace_factory), registered here by import.
from tests.integration.conftest import ansible, kube, namespace_factory

from .common import COUNTS

__all__ = ["ansible", "kube", "namespace_factory", "counts"]

OUTPUT = Path(__file__).resolve().parents[1] / "output" / "reliability.json"


@pytest.fixture(scope="session")
def counts():
    return COUNTS


def pytest_terminal_summary(terminalreporter):
    if not any(COUNTS.values()):
        return
    line = (
        "reliability: {inputs_tried} bad inputs tried ({inputs_rejected_cleanly} rejected cleanly), "
        "{faults_injected} faults injected ({faults_survived} survived), "
        "{objects_lost} foreign objects lost ({foreign_objects_checked} checked), "
        "{secrets_leaked} secrets leaked ({secret_markers_searched} marker searches)".format(**COUNTS)
    )
    terminalreporter.write_sep("-", "reliability counts")
    terminalreporter.write_line(line)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(COUNTS, indent=2, sort_keys=True) + "\n")
    terminalreporter.write_line("written to %s" % OUTPUT)
