"""`make demo` (tests/demo.sh) does not write to a cluster it did not start unless asked (issue #20, item 5), and
everything playbooks/demo.yml creates is demo-named, so an opted-in run cannot touch a real gateway.

demo.sh runs from a copy of the checkout's layout whose .venv/bin/ansible-playbook is a stub that records its
arguments: the behaviour under test is whether the script gets that far, not what the playbook does.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEMO = yaml.safe_load((ROOT / "playbooks" / "demo.yml").read_text())
RECORDER = '#!/bin/sh\necho "$@" >> "$(dirname "$0")/../../called"\n'


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "demo.sh", tmp_path / "tests" / "demo.sh")
    bindir = tmp_path / ".venv" / "bin"
    bindir.mkdir(parents=True)
    for name in ("ansible-playbook", "python"):
        (bindir / name).write_text(RECORDER)
        (bindir / name).chmod(0o755)
    return tmp_path


def run_demo(checkout, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEMO_ON_MY_CLUSTER")}
    done = subprocess.run(
        ["bash", str(checkout / "tests" / "demo.sh")],
        env=dict(environ, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    called = checkout / "called"
    return done.returncode, done.stdout + done.stderr, called.read_text() if called.exists() else ""


def test_refuses_a_cluster_it_did_not_start(checkout, tmp_path):
    kubeconfig = tmp_path / "my-kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    rc, out, called = run_demo(checkout, KUBECONFIG=str(kubeconfig))
    assert rc != 0, out
    assert called == "", "ansible-playbook ran: %s" % called
    assert str(kubeconfig) in out and "DEMO_ON_MY_CLUSTER=yes" in out, out


@pytest.mark.parametrize("answer", ["no", "1", "YES please"])
def test_only_the_exact_opt_in_counts(checkout, tmp_path, answer):
    rc, out, called = run_demo(checkout, KUBECONFIG=str(tmp_path / "my-kubeconfig"), DEMO_ON_MY_CLUSTER=answer)
    assert rc != 0 and called == "", (out, called)


def test_runs_on_a_cluster_of_the_users_choice_when_asked(checkout, tmp_path):
    rc, out, called = run_demo(checkout, KUBECONFIG=str(tmp_path / "my-kubeconfig"), DEMO_ON_MY_CLUSTER="yes")
    assert rc == 0, out
    assert called.startswith("playbooks/demo.yml"), called


def test_runs_on_its_own_test_bed(checkout):
    rc, out, called = run_demo(checkout, KUBECONFIG=str(checkout / ".testbed" / "kubeconfig"))
    assert rc == 0, out
    assert called.startswith("playbooks/demo.yml"), called


def tasks():
    [play] = DEMO
    return play["tasks"]


def created_names():
    """(where, value) of every name, namespace and pod label the demo's roles and modules create or select."""
    for task in tasks():
        role = (task.get("ansible.builtin.include_role") or {}).get("name", "")
        variables = task.get("vars") or {}
        if role == "istio_ops.gateways.shared_gateway":
            for key in ("shared_gateway_name", "shared_gateway_namespace", "shared_gateway_config_name"):
                yield key, variables.get(key, "<role default>")
            labels = variables.get("shared_gateway_labels") or {"istio": "<role default>"}
            yield from (("shared_gateway_labels " + key, value) for key, value in labels.items())
            yield from (("shared_gateway_app_namespaces", ns) for ns in variables["shared_gateway_app_namespaces"])
        elif role == "istio_ops.gateways.dedicated_gateway":
            for app in variables["dedicated_gateway_apps"]:
                yield "dedicated_gateway_apps namespace", app["namespace"]
                yield "dedicated_gateway_apps name", app.get("name", "<role default>")
                labels = app.get("labels") or {"istio": app.get("name", "<role default>")}
                yield from (("dedicated_gateway_apps labels " + key, value) for key, value in labels.items())
        elif role:
            raise AssertionError("demo.yml includes %s: list what it creates here" % role)
        for action, args in task.items():
            if action.startswith("istio_ops.gateways.") and action != "istio_ops.gateways.gateway_info":
                yield action + " name", args.get("name", "<module default>")
                yield action + " namespace", args.get("namespace", "<module default>")


def test_everything_the_demo_creates_is_demo_named():
    found = list(created_names())
    assert len(found) >= 10, found
    wrong = [(where, value) for where, value in found if not str(value).startswith("demo")]
    assert not wrong, wrong
