"""The fleet report's HTML page in headless Chromium (Debian's package; `make browser` installs it when missing).

A playbook makes the report with the filter, as a fleet playbook does (the table in the play output, the page and
the JSON written by `copy`); Chromium loads the page from disk: the DOM it builds has the title, every row and the
hostile text as text, and its screenshot (kept as .artifacts/fleet-report.png) shows each status in its colour.
No Chromium is a failure, never a skip.
"""

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.plugins.module_utils.test_fleet_report import gw

from . import png

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / ".artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WINDOW = (1280, 720)
TITLE = "Fleet rollout 1-31"
HOSTILE = '<script>document.title="pwned"</script>'


# The fleet: cluster 1 upgraded, cluster 2 failed and rolled back, cluster 3 not reached.
FLEET = [
    {
        "cluster": "cluster-1",
        "status": "upgraded",
        "error": None,
        "before": [gw("istio-ingressgateway", revision="default", address="10.96.0.10")],
        "after": [
            gw("istio-ingressgateway", revision="1-31", address="10.96.0.10"),
            gw("web", "apps", "1-31", 1, 1, "10.96.0.11", api="gateway_api", method="gateway_api"),
        ],
        "drift": {"istio-ingress/istio-ingressgateway": [], "apps/web": []},
    },
    {
        "cluster": "cluster-2",
        "status": "rolled_back",
        "error": "istio-ingress/istio-ingressgateway: pods on 1-31 not ready " + HOSTILE,
        "before": [gw("istio-ingressgateway", address="10.96.0.20")],
        "after": [gw("istio-ingressgateway", address="10.96.0.20")],
        "drift": {"istio-ingress/istio-ingressgateway": ["update Deployment istio-ingress/istio-ingressgateway"]},
    },
    {"cluster": "cluster-3", "status": "untouched", "error": None, "before": [], "after": None, "drift": {}},
]

PLAYBOOK = """
- name: Fleet report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Report
      ansible.builtin.set_fact:
        report: "{{ fleet | istio_ops.gateways.fleet_report(title=title, generated='2026-12-02T07:00:00Z') }}"
    - name: Table
      ansible.builtin.debug:
        msg: "{{ report.table.splitlines() }}"
    - name: Page
      ansible.builtin.copy:
        content: "{{ report.html }}"
        dest: "{{ artifacts }}/fleet-report.html"
        mode: "0644"
    - name: JSON
      ansible.builtin.copy:
        content: "{{ report | to_nice_json }}"
        dest: "{{ artifacts }}/fleet-report.json"
        mode: "0644"
"""


def chromium(*args, user_data):
    assert Path(CHROMIUM).is_file(), "%s missing: `make browser` installs Debian's chromium" % CHROMIUM
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # root, and no user namespaces in CI containers
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--user-data-dir=%s" % user_data,
        *args,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The playbook's output, the page's path and the report's JSON."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("fleet-report")
    (work / "play.yml").write_text(PLAYBOOK)
    (work / "vars.json").write_text(json.dumps({"fleet": FLEET, "title": TITLE, "artifacts": str(ARTIFACTS)}))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_NOCOLOR="1",
    )
    playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(playbook), "-e", "@%s" % (work / "vars.json"), str(work / "play.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = ARTIFACTS / "fleet-report.html"
    return proc.stdout, html, json.loads((ARTIFACTS / "fleet-report.json").read_text())


@pytest.fixture(scope="module")
def dom(page, tmp_path_factory):
    return chromium("--dump-dom", page[1].as_uri(), user_data=tmp_path_factory.mktemp("chromium-dom"))


@pytest.fixture(scope="module")
def screenshot(page, tmp_path_factory):
    target = ARTIFACTS / "fleet-report.png"
    target.unlink(missing_ok=True)
    chromium(
        "--window-size=%d,%d" % WINDOW,
        "--screenshot=%s" % target,
        page[1].as_uri(),
        user_data=tmp_path_factory.mktemp("chromium-shot"),
    )
    return target.read_bytes()


def test_the_play_prints_the_table(page):
    stdout, report = page[0], page[2]
    for line in report["table"].splitlines():
        if line:
            assert json.dumps(line) in stdout, line  # the debug task shows each line as a JSON string
    assert "cluster-3  untouched" in stdout and "(no gateways seen)" in stdout


def test_chromium_shows_the_title_and_every_row(dom, page):
    report = page[2]
    assert re.search(r"<title>%s</title>" % re.escape(TITLE), dom), dom[:500]
    rows = re.findall(r'<tr class="row-([a-z_]+)" data-cluster="([^"]*)" data-gateway="([^"]*)">', dom)
    assert rows == [
        ("upgraded", "cluster-1", "apps/web"),
        ("upgraded", "cluster-1", "istio-ingress/istio-ingressgateway"),
        ("rolled_back", "cluster-2", "istio-ingress/istio-ingressgateway"),
        ("untouched", "cluster-3", ""),
    ]
    assert len(rows) == len(report["rows"])
    # Cells as Chromium parsed them: cluster 1's gateway went default -> 1-31, cluster 2's stayed on default.
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr class=.*?</tr>", dom)]
    assert cells[1][6:9] == ["default", "1-31", "2/2"]
    assert cells[2][6:9] == ["default", "default", "2/2"]
    assert cells[2][10].startswith("yes (1)<ul><li>update Deployment")
    assert '<span class="status status-untouched">untouched</span>' in cells[3][1]
    assert "2 gateways" not in dom and "3 gateways" in dom


def test_hostile_text_stays_text(dom):
    assert "<script" not in dom  # Chromium made no element of it
    assert '&lt;script&gt;document.title="pwned"&lt;/script&gt;' in dom
    assert "<title>pwned</title>" not in dom


def test_screenshot_is_a_png_showing_each_status_in_its_colour(screenshot):
    width, height, depth = png.header(screenshot)[:3]
    assert (width, height, depth) == (*WINDOW, 8)
    assert len(screenshot) > 20000, len(screenshot)  # a blank page compresses to a few KB
    colours = collections.Counter(png.pixels(screenshot))
    assert len(colours) > 200, "a page with text antialiases into many colours: %d" % len(colours)
    badge = {s: tuple(bytes.fromhex(c)) for s, c in (("upgraded", "dafbe1"), ("rolled_back", "fff8c5"))}
    badge.update(untouched=tuple(bytes.fromhex("eaeef2")), failed=tuple(bytes.fromhex("ffebe9")))
    drifted = tuple(bytes.fromhex("fff1e5"))
    # Badges of the three statuses the fleet has (the summary's and the rows'), the drifted cell; no failed.
    for status in ("upgraded", "rolled_back", "untouched"):
        assert colours[badge[status]] > 500, (status, colours[badge[status]])
    assert colours[drifted] > 1000, colours[drifted]
    assert colours[badge["failed"]] == 0


def test_artifacts_are_kept(page, screenshot):
    for name in ("fleet-report.html", "fleet-report.json", "fleet-report.png"):
        assert (ARTIFACTS / name).stat().st_size > 0, name
