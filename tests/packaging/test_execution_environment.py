"""The execution environment definition: `ansible-builder create` makes a complete build context.

There is no container engine here, so the image is not built. Instead the stages that matter are replayed
from the context: the galaxy stage's `ansible-galaxy collection install -r requirements.yml` (run in the
context's _build directory, as the Containerfile does), ansible-builder's dependency introspection of the
installed collection, and the istioctl download step with a local file:// release (empty, wrong and right
checksums).
"""

import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EE_FILE = ROOT / "execution-environment.yml"
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])
# Where execution-environment.yml expects `ansible-galaxy collection build --output-path` to put the tarball.
EE_BUILD_DIR = ROOT / ".build" / "ee"
ISTIOCTL_VERSION = "1.30.2"


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **kwargs)


@pytest.fixture(scope="module")
def definition():
    return yaml.safe_load(EE_FILE.read_text())


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The build context, made the way the documented build makes it."""
    built = tmp_path_factory.mktemp("galaxy-build")
    proc = run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(built), str(ROOT)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Into place with a rename, so parallel sessions never hand ansible-builder a half-written tarball.
    EE_BUILD_DIR.mkdir(parents=True, exist_ok=True)
    staged = EE_BUILD_DIR / (".%s.%d" % (TARBALL_NAME, os.getpid()))
    shutil.copyfile(built / TARBALL_NAME, staged)
    os.replace(staged, EE_BUILD_DIR / TARBALL_NAME)
    path = tmp_path_factory.mktemp("ee") / "context"
    proc = run(
        [
            str(BIN / "ansible-builder"),
            "create",
            "-f",
            str(EE_FILE),
            "--context",
            str(path),
            "--output-filename",
            "Containerfile",
        ],
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No matches for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return path


@pytest.fixture(scope="module")
def containerfile(context):
    return (context / "Containerfile").read_text()


def test_definition_names_the_built_tarball(definition):
    """The tarball name carries the version: the EE must follow galaxy.yml when the version changes."""
    collections = definition["dependencies"]["galaxy"]["collections"]
    assert collections == [{"name": "collections/" + TARBALL_NAME, "type": "file"}]
    assert {"src": ".build/ee/" + TARBALL_NAME, "dest": "collections"} in definition["additional_build_files"]


def test_context_has_requirements_bindep_and_tarball(context):
    build = context / "_build"
    assert (build / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    assert (build / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()
    assert (build / "collections" / TARBALL_NAME).is_file()
    requirements = yaml.safe_load((build / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": "collections/" + TARBALL_NAME, "type": "file"}]


def test_containerfile_installs_collection_and_dependencies(containerfile):
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==' in containerfile
    assert "ansible-runner==" in containerfile


def test_containerfile_has_checksum_step(containerfile):
    final = containerfile[containerfile.index("FROM base AS final") :]
    for line in ("ARG ISTIOCTL_VERSION", "ARG ISTIOCTL_SHA256", "ARG ISTIOCTL_BASE_URL="):
        assert line in final
    step = istioctl_step(containerfile)
    assert "sha256sum -c -" in step
    # Verified before it is unpacked or installed.
    assert step.index("sha256sum -c -") < step.index("tar -xzf") < step.index("install -m 0755")


def test_galaxy_stage_installs_tarball(context, tmp_path):
    """What the galaxy stage runs, in the directory it runs in; then what introspection finds."""
    collections = tmp_path / "collections"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # Only this path counts: a copy installed elsewhere (~/.ansible/collections) must not make it "already installed".
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    proc = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-r", "requirements.yml", "-p", str(collections)],
        cwd=context / "_build",
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = collections / "ansible_collections" / "istio_ops" / "gateways"
    assert (installed / "meta" / "execution-environment.yml").is_file()
    proc = run([str(BIN / "ansible-builder"), "introspect", str(collections)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deps = yaml.safe_load(proc.stdout.split("---", 1)[1])
    python = [line.split("#")[0].strip() for line in deps["python"]]
    system = [line.split("#")[0].strip() for line in deps["system"]]
    assert "kubernetes>=29.0.0" in python
    assert "tar [platform:rpm]" in system and "gzip [platform:rpm]" in system


def istioctl_step(containerfile):
    """The RUN instruction after ARG ISTIOCTL_BASE_URL, continuation lines joined."""
    lines = containerfile.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ARG ISTIOCTL_BASE_URL")) + 1
    assert lines[start].startswith("RUN "), lines[start]
    parts = []
    for line in lines[start:]:
        parts.append(line[:-1] if line.endswith("\\") else line)
        if not line.endswith("\\"):
            break
    return "\n".join(parts)[len("RUN ") :]


@pytest.fixture
def release(tmp_path):
    """A local stand-in for the Istio release site: BASE/VERSION/istioctl-VERSION-linux-ARCH.tar.gz."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    script = b"#!/bin/sh\necho 'client version: %s'\n" % ISTIOCTL_VERSION.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("istioctl")
        info.size = len(script)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(script))
    folder = tmp_path / "release" / ISTIOCTL_VERSION
    folder.mkdir(parents=True)
    (folder / ("istioctl-%s-linux-%s.tar.gz" % (ISTIOCTL_VERSION, arch))).write_bytes(buffer.getvalue())
    return tmp_path / "release", hashlib.sha256(buffer.getvalue()).hexdigest()


def run_step(containerfile, tmp_path, **args):
    """The step under /bin/sh as the build runs it, build args as environment, installing into tmp_path/bin."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    step = istioctl_step(containerfile).replace("/usr/local/bin", str(bindir))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    env.update({k: v for k, v in args.items() if v is not None})
    return run(["/bin/sh", "-c", step], env=env), bindir / "istioctl"


@pytest.mark.parametrize("sha", [None, "", "not-a-checksum"])
def test_istioctl_step_refuses_missing_checksum(containerfile, release, tmp_path, sha):
    base = release[0]
    proc, binary = run_step(
        containerfile,
        tmp_path,
        ISTIOCTL_VERSION=ISTIOCTL_VERSION,
        ISTIOCTL_SHA256=sha,
        ISTIOCTL_BASE_URL="file://%s" % base,
    )
    assert proc.returncode != 0
    assert "ISTIOCTL_SHA256 must be the SHA-256" in proc.stderr
    assert not binary.exists()


def test_istioctl_step_refuses_missing_version(containerfile, release, tmp_path):
    base, sha = release
    proc, binary = run_step(containerfile, tmp_path, ISTIOCTL_SHA256=sha, ISTIOCTL_BASE_URL="file://%s" % base)
    assert proc.returncode != 0
    assert "ISTIOCTL_VERSION is empty" in proc.stderr
    assert not binary.exists()


def test_istioctl_step_refuses_wrong_checksum(containerfile, release, tmp_path):
    base, sha = release
    wrong = ("0" if sha[0] != "0" else "1") + sha[1:]
    proc, binary = run_step(
        containerfile,
        tmp_path,
        ISTIOCTL_VERSION=ISTIOCTL_VERSION,
        ISTIOCTL_SHA256=wrong,
        ISTIOCTL_BASE_URL="file://%s" % base,
    )
    assert proc.returncode != 0
    assert re.search(r"FAILED", proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert not binary.exists()


def test_istioctl_step_installs_verified_download(containerfile, release, tmp_path):
    base, sha = release
    proc, binary = run_step(
        containerfile,
        tmp_path,
        ISTIOCTL_VERSION=ISTIOCTL_VERSION,
        ISTIOCTL_SHA256=sha,
        ISTIOCTL_BASE_URL="file://%s" % base,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.access(binary, os.X_OK)
    assert "client version: %s" % ISTIOCTL_VERSION in proc.stdout
