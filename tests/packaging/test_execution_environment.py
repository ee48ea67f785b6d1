"""The execution environment definition: `ansible-builder create` makes a complete build context.

There is no container engine here, so the image is not built. Instead the stages that matter are replayed
from the context: the galaxy stage's `ansible-galaxy collection install -r requirements.yml` (run in the
context's _build directory, as the Containerfile does), ansible-builder's dependency introspection of the
installed collection, and the istioctl and helm download steps with local file:// releases (empty, wrong and
right checksums, a helm of another major, HELM_VERSION=none); then whether the image carries the binary each
install method runs (InstallMethod.binary).
"""

import ast
import hashlib
import importlib
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

from ansible_collections.istio_ops.gateways.plugins.module_utils import ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils.binary import Binary
from ansible_collections.istio_ops.gateways.plugins.module_utils.helm import Helm
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_helm import SUPPORTED_HELM_MAJOR
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import method_class
from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import Istioctl

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EE_FILE = ROOT / "execution-environment.yml"
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])
# Where execution-environment.yml expects `ansible-galaxy collection build --output-path` to put the tarball.
EE_BUILD_DIR = ROOT / ".build" / "ee"
ISTIOCTL_VERSION = "1.30.2"
HELM_VERSION = "3.22.0"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
MODULE_UTILS = "ansible_collections.istio_ops.gateways.plugins.module_utils"
# The final stage's download steps, by the executable each installs in /usr/local/bin (its build args: NAME_*),
# in order, and the version the tests download.
VERSIONS = {"istioctl": ISTIOCTL_VERSION, "helm": HELM_VERSION}
STEPS = tuple(VERSIONS)


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


@pytest.mark.parametrize("name", STEPS)
def test_containerfile_has_checksum_step(containerfile, name):
    prefix = name.upper()
    final = containerfile[containerfile.index("FROM base AS final") :]
    for line in ("ARG %s_VERSION" % prefix, "ARG %s_SHA256" % prefix, "ARG %s_BASE_URL=" % prefix):
        assert line in final
    step = binary_step(containerfile, name)
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


def binary_step(containerfile, name):
    """The RUN instruction that installs executable `name`: the one after ARG <NAME>_BASE_URL, lines joined."""
    lines = containerfile.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ARG %s_BASE_URL" % name.upper())) + 1
    assert lines[start].startswith("RUN "), lines[start]
    parts = []
    for line in lines[start:]:
        parts.append(line[:-1] if line.endswith("\\") else line)
        if not line.endswith("\\"):
            break
    return "\n".join(parts)[len("RUN ") :]


def run_step(containerfile, directory, name, **args):
    """The step of executable `name` under /bin/sh as the build runs it, build args as environment, installing into
    directory/bin; returns the process and the path it installs `name` at."""
    bindir = directory / "bin"
    bindir.mkdir(exist_ok=True)
    step = binary_step(containerfile, name).replace("/usr/local/bin", str(bindir))
    env = {"PATH": os.environ["PATH"], "HOME": str(directory), "TMPDIR": str(directory)}
    env.update({k: v for k, v in args.items() if v is not None})
    return run(["/bin/sh", "-c", step], env=env), bindir / name


def tarball(members):
    """A .tar.gz of {path: file content}; executables are the files whose content starts with #!."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755 if content.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def publish(path, data):
    """data written at path (folders made); returns its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def make_istioctl_release(root):
    """A local stand-in for the Istio release site: BASE/VERSION/istioctl-VERSION-linux-ARCH.tar.gz."""
    script = b"#!/bin/sh\necho 'client version: %s'\n" % ISTIOCTL_VERSION.encode()
    name = "istioctl-%s-linux-%s.tar.gz" % (ISTIOCTL_VERSION, ARCH)
    return root, publish(root / ISTIOCTL_VERSION / name, tarball({"istioctl": script}))


def make_helm_release(root, version=HELM_VERSION):
    """A local stand-in for get.helm.sh: BASE/helm-vVERSION-linux-ARCH.tar.gz holding linux-ARCH/helm (a script
    whose `version --short` reports vVERSION), LICENSE and README.md, as Helm's do."""
    script = b"#!/bin/sh\necho 'v%s+g0123abc'\n" % version.encode()
    members = {
        "linux-%s/helm" % ARCH: script,
        "linux-%s/LICENSE" % ARCH: b"Apache\n",
        "linux-%s/README.md" % ARCH: b"Helm\n",
    }
    return root, publish(root / ("helm-v%s-linux-%s.tar.gz" % (version, ARCH)), tarball(members))


def make_release(name, root):
    """The stand-in release of step `name` below root: (base URL's path, SHA-256 of its tarball)."""
    return {"istioctl": make_istioctl_release, "helm": make_helm_release}[name](root / (name + "-release"))


def build_args(name, base, version, sha):
    """Step `name`'s build args: <NAME>_VERSION, _SHA256 and _BASE_URL (a file:// URL of base)."""
    prefix = name.upper()
    return {prefix + "_VERSION": version, prefix + "_SHA256": sha, prefix + "_BASE_URL": "file://%s" % base}


def wrong(sha):
    return ("0" if sha[0] != "0" else "1") + sha[1:]


@pytest.mark.parametrize("name", STEPS)
@pytest.mark.parametrize("sha", [None, "", "not-a-checksum"])
def test_step_refuses_missing_checksum(containerfile, tmp_path, name, sha):
    base = make_release(name, tmp_path)[0]
    proc, binary = run_step(containerfile, tmp_path, name, **build_args(name, base, VERSIONS[name], sha))
    assert proc.returncode != 0
    assert "%s_SHA256 must be the SHA-256" % name.upper() in proc.stderr
    assert not binary.exists()


@pytest.mark.parametrize("name", STEPS)
@pytest.mark.parametrize("version", [None, ""])
def test_step_refuses_missing_version(containerfile, tmp_path, name, version):
    base, sha = make_release(name, tmp_path)
    proc, binary = run_step(containerfile, tmp_path, name, **build_args(name, base, version, sha))
    assert proc.returncode != 0
    assert "%s_VERSION is empty" % name.upper() in proc.stderr
    assert not binary.exists()


def test_istioctl_step_has_no_none(containerfile, tmp_path):
    """No image without istioctl: method istioctl, revision_tag and gateway_cleanup's purge all run it."""
    base, sha = make_release("istioctl", tmp_path)
    proc, binary = run_step(containerfile, tmp_path, "istioctl", **build_args("istioctl", base, "none", sha))
    assert proc.returncode != 0
    assert not binary.exists()


@pytest.mark.parametrize("name", STEPS)
def test_step_refuses_wrong_checksum(containerfile, tmp_path, name):
    base, sha = make_release(name, tmp_path)
    proc, binary = run_step(containerfile, tmp_path, name, **build_args(name, base, VERSIONS[name], wrong(sha)))
    assert proc.returncode != 0
    assert re.search(r"FAILED", proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert not binary.exists()


@pytest.mark.parametrize("name", STEPS)
def test_step_installs_verified_download(containerfile, tmp_path, name):
    base, sha = make_release(name, tmp_path)
    proc, binary = run_step(containerfile, tmp_path, name, **build_args(name, base, VERSIONS[name], sha))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.access(binary, os.X_OK)
    # The step runs what it installed: the stand-in's version line.
    assert VERSIONS[name] in proc.stdout


def test_helm_step_takes_version_with_v(containerfile, tmp_path):
    """HELM_VERSION as Helm's tags spell it (v3.x.y) names the same tarball; the version is Helm 3."""
    base, sha = make_release("helm", tmp_path)
    proc, binary = run_step(containerfile, tmp_path, "helm", **build_args("helm", base, "v" + HELM_VERSION, sha))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.access(binary, os.X_OK)
    assert "v%s+g0123abc" % HELM_VERSION in proc.stdout
    assert HELM_VERSION.split(".", 1)[0] == SUPPORTED_HELM_MAJOR


def test_helm_step_refuses_other_major(containerfile, tmp_path):
    """A verified download of a helm whose major is not the one install_helm supports is not installed."""
    version = "%d.0.0" % (int(SUPPORTED_HELM_MAJOR) + 1)
    base, sha = make_helm_release(tmp_path / "helm-release", version=version)
    proc, binary = run_step(containerfile, tmp_path, "helm", **build_args("helm", base, version, sha))
    assert proc.returncode != 0
    assert "reports v%s+g0123abc, not Helm %s" % (version, SUPPORTED_HELM_MAJOR) in proc.stderr, proc.stderr
    assert not binary.exists()


def test_helm_step_none_builds_without_helm(containerfile, tmp_path):
    """HELM_VERSION=none: no download (no base URL is reachable here), no binary, and the build log says so."""
    proc, binary = run_step(containerfile, tmp_path, "helm", HELM_VERSION="none", HELM_BASE_URL="file:///nonexistent")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "method helm will not work in it" in proc.stdout
    assert not binary.exists()


@pytest.fixture(scope="module")
def image_bin(containerfile, tmp_path_factory):
    """The final stage's binary steps replayed, in order, into one bin directory: what the image's PATH holds."""
    root = tmp_path_factory.mktemp("image")
    steps = re.findall(r"^ARG (\w+)_BASE_URL=", containerfile[containerfile.index("FROM base AS final") :], re.M)
    assert [step.lower() for step in steps] == list(STEPS), steps
    for name in STEPS:
        base, sha = make_release(name, root)
        proc, binary = run_step(containerfile, root, name, **build_args(name, base, VERSIONS[name], sha))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert os.access(binary, os.X_OK)
    return root / "bin"


def runner_imports(module_name):
    """The binary runners (binary.Binary subclasses) a module_utils module imports by name."""
    tree = ast.parse((ROOT / "plugins" / "module_utils" / (module_name + ".py")).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(MODULE_UTILS + "."):
            source = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(source, alias.name, None)
                if isinstance(value, type) and issubclass(value, Binary):
                    found.add(value)
    return found


def collection_runners():
    """Every binary runner in module_utils: what the collection can run."""
    found = set()
    for path in (ROOT / "plugins" / "module_utils").glob("*.py"):
        module = importlib.import_module("%s.%s" % (MODULE_UTILS, path.stem))
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Binary) and value is not Binary:
                found.add(value)
    return found


@pytest.mark.parametrize("method", ownership.METHODS)
def test_image_carries_what_each_method_runs(image_bin, method):
    """Each method's class names the binary it runs (InstallMethod.binary), the image holds it, and the method's
    module uses no other runner: a method that needs a binary the EE lacks fails here."""
    cls = method_class(method)
    assert runner_imports(cls.__module__.rsplit(".", 1)[1]) <= {cls.binary}
    if cls.binary is not None:
        assert os.access(image_bin / cls.binary.name, os.X_OK), "the EE installs no %s for method %s" % (
            cls.binary.name,
            method,
        )
    # docs/awx.md's table says what the image needs for every method.
    assert re.search(r"^\| `%s` " % method, (ROOT / "docs" / "awx.md").read_text(), re.M), method


def test_image_carries_every_binary_the_collection_runs(image_bin):
    names = {runner.name for runner in collection_runners()}
    assert names >= {"istioctl", "helm"}
    for name in names:
        assert os.access(image_bin / name, os.X_OK), "the EE installs no %s" % name


def test_helm_is_only_method_helms():
    """HELM_VERSION=none is safe only while method helm is helm's one user; istioctl has no such option (its step
    refuses `none`), so revision_tag and gateway_cleanup's purge always find it."""
    users = {
        path.stem for path in (ROOT / "plugins" / "module_utils").glob("*.py") if Helm in runner_imports(path.stem)
    }
    assert users == {method_class("helm").__module__.rsplit(".", 1)[1]}
    for module_name in ("revision_tag", "cleanup"):
        assert runner_imports(module_name) == {Istioctl}
