"""The ansible-core versions the collection claims are the ones it is tested with (issue #20, item 10):
meta/runtime.yml's requires_ansible, the roles' min_ansible_version and docs/quickstart.md name the minor of the
ansible-core that requirements-dev.txt pins (the one every test runs on)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def pinned_minor():
    [pin] = re.findall(r"^ansible-core==(\d+\.\d+)\.\d+$", (ROOT / "requirements-dev.txt").read_text(), re.M)
    return pin


def test_requires_ansible_starts_at_the_pinned_minor():
    claim = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    assert claim == ">=%s.0" % pinned_minor(), claim


def test_roles_and_quickstart_name_the_same_minimum():
    minor = pinned_minor()
    for meta in sorted(ROOT.glob("roles/*/meta/main.yml")):
        assert str(yaml.safe_load(meta.read_text())["galaxy_info"]["min_ansible_version"]) == minor, meta
    assert (
        "| ansible-core | %s or later (`meta/runtime.yml`; the version the tests run on) |" % minor
        in (ROOT / "docs" / "quickstart.md").read_text()
    )
