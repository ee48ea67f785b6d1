"""The Galaxy tarball: what `ansible-galaxy collection build` puts in it, and that the installed copy works.

Builds into a temporary directory, installs the tarball into a fresh collections path and runs the modules
from there (ANSIBLE_COLLECTIONS_PATH points only at it), so nothing comes from the checkout.
"""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])

# Local state that must never ship: virtualenvs, test-bed state, build output, tool caches.
FORBIDDEN_TOP = (
    ".venv",
    ".venv-sanity",
    ".build",
    ".testbed",
    ".ansible",
    ".git",
    "tests/output",
    "context",
    ".artifacts",
)
FORBIDDEN_ANYWHERE = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".cache", ".ansible")
REQUIRED_FILES = (
    "README.md",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "requirements.txt",
    "bindep.txt",
    "MANIFEST.json",
    "FILES.json",
)


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **kwargs)


def clean_env(collections_path):
    """Ansible sees only the installed copy: no checkout link, no cluster settings from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_")) and k != "KUBECONFIG"}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    return env


def tracked(*paths):
    """Files git tracks or would track (not ignored) under paths: what the tarball must carry."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in out.splitlines() if line and (ROOT / line).is_file()}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("galaxy-build")
    proc = run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = out / TARBALL_NAME
    assert path.is_file(), "expected %s, got %s" % (TARBALL_NAME, sorted(p.name for p in out.iterdir()))
    return path


@pytest.fixture(scope="module")
def members(tarball):
    with tarfile.open(tarball) as tar:
        return {m.name.rstrip("/") for m in tar.getmembers()}


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """A fresh collections path holding only the installed tarball."""
    path = tmp_path_factory.mktemp("collections")
    proc = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(path), str(tarball)],
        env=clean_env(path),
        cwd=path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (path / "ansible_collections" / "istio_ops" / "gateways" / "MANIFEST.json").is_file()
    return path


def test_no_local_state_in_tarball(members):
    leaked = sorted(
        m
        for m in members
        if any(m == top or m.startswith(top + "/") for top in FORBIDDEN_TOP)
        or any(part in FORBIDDEN_ANYWHERE for part in m.split("/"))
        or m.endswith((".pyc", ".tar.gz"))
    )
    assert not leaked, "local state in the tarball (add it to galaxy.yml build_ignore): %s" % leaked[:30]


def test_tarball_carries_the_collection(members):
    expected = tracked("plugins/modules", "plugins/module_utils", "plugins/doc_fragments", "roles", "playbooks")
    assert {p for p in expected if p.startswith("plugins/modules/") and p.endswith(".py")}, "no modules found"
    assert {p for p in expected if p.startswith("roles/")}, "no roles found"
    assert {p for p in expected if p.startswith("playbooks/")}, "no playbooks found"
    missing = sorted((expected | set(REQUIRED_FILES)) - members)
    assert not missing, "missing from the tarball: %s" % missing


def test_manifest_version_is_galaxy_version(tarball):
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (
        GALAXY["namespace"],
        GALAXY["name"],
        GALAXY["version"],
    )


def test_ansible_doc_reads_installed_copy(installed):
    proc = run(
        [str(BIN / "ansible-doc"), "-t", "module", "istio_ops.gateways.istio_gateway"],
        env=clean_env(installed),
        cwd=installed,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "istio_ops.gateways.istio_gateway" in proc.stdout
    # ansible-doc names the file it read: the installed copy, not the checkout.
    assert str(installed / "ansible_collections" / "istio_ops" / "gateways" / "plugins" / "modules") in proc.stdout


def test_module_runs_from_installed_copy(installed):
    """gateway_info against a port nobody listens on: loading and running it ends in the client's own error."""
    proc = run(
        [
            str(BIN / "ansible"),
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            "istio_ops.gateways.gateway_info",
            "-a",
            "host=https://127.0.0.1:9",
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
            "-vvv",
        ],
        env=clean_env(installed),
        cwd=installed,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "cannot reach the Kubernetes API server" in output, output[-3000:]
    module_file = (
        installed / "ansible_collections" / "istio_ops" / "gateways" / "plugins" / "modules" / "gateway_info.py"
    )
    assert "Using module file %s" % module_file in output, output[-3000:]
