"""Build the bed's binaries from Go modules into the versioned binary cache.

Four build groups, each one `go build` invocation so packages shared by the
binaries of a group compile once:
  kube          etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
                (from gomod/k8s, which pins k8s.io/kubernetes and etcd)
  kwok          sigs.k8s.io/kwok/cmd/kwok, built in its own module
  toxiproxy     toxiproxy-server (github.com/Shopify/toxiproxy/v2), in its own module
  helm          helm (helm.sh/helm/v3), in its own module
  istio-charts  no Go: the base and gateway charts of each pinned Istio commit,
                `helm package`d into a chart repository (charts/, index.yaml)
  gateway-api   no Go: the standard-channel CRDs of sigs.k8s.io/gateway-api (gateway-api/)
  istio-MINOR   istioctl + pilot-discovery, one group per pinned Istio commit,
                built in the istio.io/istio module itself, or in gomod/istio-MINOR
                when the proxy lacks some of the commit's own dependencies
Each group has its own cache entry, keyed by what shapes its build (its packages,
outputs, the pins it uses, the source of its ldflags/finish recipe, its gomod/ files),
so changing or adding one group rebuilds only that group. A finished group leaves a
stamp, so an interrupted build resumes where it stopped and a complete cache builds
nothing. bin_dir() is a directory of links to every group's outputs, one per set of
group keys, so the rest of the bed sees one bin/ as before.
"""

import fcntl
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .common import GOMOD_DIR, K8S_GOMOD_DIR, TESTBED_DIR, cache_root, fmt_elapsed, istio_minor, load_versions, log

HEARTBEAT_SECONDS = 30
GO_BUILD_FLAGS = ["-trimpath", "-buildvcs=false"]


def go_env():
    # Static binaries; no go.work or GOFLAGS (e.g. -mod=vendor) of the caller leaking in.
    env = dict(os.environ, CGO_ENABLED="0", GOWORK="off")
    env.pop("GOFLAGS", None)
    return env


def module_info(module, version):
    """Download module@version into the module cache; return `go mod download -json`."""
    cache_root().mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=cache_root(),
        env=go_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def module_time(module, version):
    """Commit time the proxy reports, used as a reproducible build date."""
    info = json.loads(Path(module_info(module, version)["Info"]).read_text())
    return info["Time"]


def pseudo_version_hash(version):
    return version.rsplit("-", 1)[-1]


def istio_gomod(version):
    """Wrapper module for an Istio commit whose own dependencies are not all served.

    When gomod/istio-MINOR exists the commit is built there (its go.mod replaces
    the missing dependencies); otherwise in the istio.io/istio module itself.
    """
    gomod = GOMOD_DIR / f"istio-{istio_minor(version)}"
    return gomod if gomod.exists() else None


def check_gomod_pins(versions):
    """Each module under gomod/ must build exactly what versions.env announces."""
    pins = [
        (K8S_GOMOD_DIR, "k8s.io/kubernetes", "KUBERNETES_VERSION"),
        (K8S_GOMOD_DIR, "go.etcd.io/etcd/server/v3", "ETCD_VERSION"),
    ]
    for prefix in ("ISTIO", "ISTIO_CANARY"):
        gomod = istio_gomod(versions[f"{prefix}_VERSION"])
        if gomod:
            pins.append((gomod, "istio.io/istio", f"{prefix}_MODULE"))
    for gomod, module, key in pins:
        pattern = rf"^(require)?\s*{re.escape(module)} {re.escape(versions[key])}\s*$"
        if not re.search(pattern, (gomod / "go.mod").read_text(), re.MULTILINE):
            raise SystemExit(
                f"{gomod}/go.mod does not require {module} {versions[key]} ({key} in versions.env); update one of them"
            )


def kube_ldflags(versions):
    k8s = versions["KUBERNETES_VERSION"]
    major, minor = k8s.lstrip("v").split(".")[:2]
    # The module proxy serves no VCS origin, so gitCommit stays unset.
    stamp = {
        "gitVersion": k8s,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": module_time("k8s.io/kubernetes", k8s),
    }
    flags = [
        f"-X k8s.io/{pkg}.{name}={value}"
        for pkg in ("component-base/version", "client-go/pkg/version")
        for name, value in stamp.items()
    ]
    return " ".join(flags)


def istio_ldflags(version, module_version):
    revision = pseudo_version_hash(module_version)
    stamp = {
        "buildVersion": version,
        "buildGitRevision": revision,
        "buildTag": version,
        "buildHub": "docker.io/istio",
        "buildStatus": "Clean",
        "buildOS": "linux",
        "buildArch": "amd64",
    }
    return " ".join(f"-X istio.io/istio/pkg/version.{k}={v}" for k, v in stamp.items())


@dataclass
class Group:
    """One `go build` invocation and where its binaries land in its bin/."""

    name: str
    workdir: Callable[[], Path]
    packages: list
    ldflags: Callable[[], str]
    outputs: dict  # name `go build` gives the binary -> path under bin/
    finish: Callable[[Path], None] = lambda bindir: None
    # What else shapes the binaries: the pins the group uses and the source of the
    # functions that turn them into ldflags or extra files.
    inputs: tuple = ()
    gomod: Path | None = None  # a module under gomod/ whose files are part of the key

    def key(self):
        digest = hashlib.sha256()
        parts = [self.name, *GO_BUILD_FLAGS, *self.packages, *map(repr, sorted(self.outputs.items())), *self.inputs]
        for part in parts:
            digest.update(part.encode() + b"\0")
        if self.gomod:
            for path in sorted(p for p in self.gomod.rglob("*") if p.is_file()):
                digest.update(str(path.relative_to(TESTBED_DIR)).encode() + b"\0")
                digest.update(path.read_bytes())
        return f"{self.name}-{digest.hexdigest()[:12]}"

    def dir(self):
        return cache_root() / "groups" / self.key()

    def done(self):
        return (self.dir() / "done").exists()


def source(*functions):
    return tuple(inspect.getsource(f) for f in functions)


# kwokctl's default stages (node initialize, node heartbeat with lease, pod
# ready/complete/delete); copied next to the binary so `up` needs no module cache.
KWOK_STAGES = [
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
]


def module_dir(module, version):
    return Path(module_info(module, version)["Dir"])


def kwok_dir(versions):
    return module_dir("sigs.k8s.io/kwok", versions["KWOK_VERSION"])


def helm_ldflags(versions):
    version = versions["HELM_VERSION"]
    # As helm's Makefile: the k8s version `helm template` assumes is that of its client-go.
    gomod = (module_dir("helm.sh/helm/v3", version) / "go.mod").read_text()
    major, minor = "1", re.search(r"k8s.io/client-go v0\.(\d+)\.", gomod)[1]
    flags = {
        "internal/version.version": version,
        "internal/version.gitTreeState": "clean",
        "pkg/lint/rules.k8sVersionMajor": major,
        "pkg/lint/rules.k8sVersionMinor": minor,
        "pkg/chartutil.k8sVersionMajor": major,
        "pkg/chartutil.k8sVersionMinor": minor,
    }
    return " ".join(f"-X helm.sh/helm/v3/{k}={v}" for k, v in flags.items())


# Charts of each pinned Istio commit served by the bed's chart repository.
ISTIO_CHARTS = ["base", "gateway"]


def chart_version(version):
    """'1.30-alpha.9739e10eb9d7' -> '1.30.0-alpha.9739e10eb9d7' (charts need full semver)."""
    release, _sep, pre = version.partition("-")
    return f"{release}.0" + (f"-{pre}" if pre else "")


def package_istio_charts(helm, pins, repo):
    """`helm package` the charts of each Istio commit's module, then `helm repo index`."""
    repo.mkdir(parents=True, exist_ok=True)
    home = repo.parent / "helm-home"
    env = dict(go_env(), **{f"HELM_{d}_HOME": str(home / d.lower()) for d in ("CACHE", "CONFIG", "DATA")})
    for version, module_version in pins:
        charts = module_dir("istio.io/istio", module_version) / "manifests" / "charts"
        for chart in ISTIO_CHARTS:
            cmd = [str(helm), "package", str(charts / chart), "--destination", str(repo)]
            cmd += ["--version", chart_version(version), "--app-version", version]
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    subprocess.run([str(helm), "repo", "index", str(repo)], env=env, check=True, capture_output=True, text=True)
    shutil.rmtree(home, ignore_errors=True)


def copy_gateway_api_crds(version, istio_modules, bindir):
    """The standard channel's CRDs, as `kubectl apply -f standard-install.yaml` installs them."""
    for module_version in istio_modules:
        gomod = (module_dir("istio.io/istio", module_version) / "go.mod").read_text()
        wanted = re.search(r"^\s*sigs\.k8s\.io/gateway-api (\S+)", gomod, re.MULTILINE)[1]
        if wanted != version:
            raise SystemExit(f"istio {module_version} requires gateway-api {wanted}; versions.env pins {version}")
    crds = module_dir("sigs.k8s.io/gateway-api", version) / "config" / "crd" / "standard"
    target = bindir / "gateway-api"
    target.mkdir(parents=True)
    for path in sorted(crds.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            shutil.copyfile(path, target / path.name)


def toxiproxy_ldflags(versions):
    return f"-X github.com/Shopify/toxiproxy/v2.Version={versions['TOXIPROXY_VERSION'].lstrip('v')}"


def copy_kwok_stages(versions, bindir):
    docs = [(kwok_dir(versions) / stage).read_text() for stage in KWOK_STAGES]
    (bindir / "kwok-stages.yaml").write_text("\n---\n".join(docs))


def own_module_group(name, module, version_key, package, output, ldflags, versions):
    """One main package built in its own module at the pinned version."""
    version = versions[version_key]
    return Group(
        name,
        lambda: module_dir(module, version),
        [package],
        lambda: ldflags(versions),
        {package.rsplit("/", 1)[-1]: output},
        inputs=(version, *source(ldflags)),
    )


def build_groups(versions):
    groups = [
        Group(
            "kube",
            lambda: K8S_GOMOD_DIR,
            [
                "go.etcd.io/etcd/server/v3",
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
                "k8s.io/kubernetes/cmd/kubectl",
            ],
            lambda: kube_ldflags(versions),
            # `go build` names the .../server/v3 main package "server".
            {
                "server": "etcd",
                "kube-apiserver": "kube-apiserver",
                "kube-controller-manager": "kube-controller-manager",
                "kube-scheduler": "kube-scheduler",
                "kubectl": "kubectl",
            },
            inputs=(versions["KUBERNETES_VERSION"], versions["ETCD_VERSION"], *source(kube_ldflags)),
            gomod=K8S_GOMOD_DIR,
        ),
        Group(
            "kwok",
            lambda: kwok_dir(versions),
            ["./cmd/kwok"],
            lambda: "",
            {"kwok": "kwok"},
            lambda bindir: copy_kwok_stages(versions, bindir),
            inputs=(versions["KWOK_VERSION"], *KWOK_STAGES, *source(copy_kwok_stages)),
        ),
    ]
    toxiproxy = ("github.com/Shopify/toxiproxy/v2", "TOXIPROXY_VERSION", "./cmd/server", "toxiproxy-server")
    groups.append(own_module_group("toxiproxy", *toxiproxy, toxiproxy_ldflags, versions))
    helm = own_module_group("helm", "helm.sh/helm/v3", "HELM_VERSION", "./cmd/helm", "helm", helm_ldflags, versions)
    groups.append(helm)
    for prefix in ("ISTIO", "ISTIO_CANARY"):
        module_version = versions[f"{prefix}_MODULE"]
        version = versions[f"{prefix}_VERSION"]
        sub = f"istio-{istio_minor(version)}"
        groups.append(
            Group(
                sub,
                lambda v=version, mv=module_version: istio_gomod(v) or Path(module_info("istio.io/istio", mv)["Dir"]),
                ["istio.io/istio/istioctl/cmd/istioctl", "istio.io/istio/pilot/cmd/pilot-discovery"],
                lambda v=version, mv=module_version: istio_ldflags(v, mv),
                {"istioctl": f"{sub}/istioctl", "pilot-discovery": f"{sub}/pilot-discovery"},
                inputs=(version, module_version, *source(istio_ldflags)),
                gomod=istio_gomod(version),
            )
        )
    pins = [(versions[f"{p}_VERSION"], versions[f"{p}_MODULE"]) for p in ("ISTIO", "ISTIO_CANARY")]
    groups.append(
        Group(
            "istio-charts",
            cache_root,
            [],
            lambda: "",
            {},
            lambda bindir: package_istio_charts(helm.dir() / "bin" / "helm", pins, bindir / "charts"),
            inputs=(helm.key(), *(f"{v} {mv}" for v, mv in pins), *ISTIO_CHARTS, *source(package_istio_charts)),
        )
    )
    gateway_api, istio_modules = versions["GATEWAY_API_VERSION"], [mv for _v, mv in pins]
    groups.append(
        Group(
            "gateway-api",
            cache_root,
            [],
            lambda: "",
            {},
            lambda bindir: copy_gateway_api_crds(gateway_api, istio_modules, bindir),
            inputs=(gateway_api, *istio_modules, *source(copy_gateway_api_crds)),
        )
    )
    return groups


def bin_dir(versions=None, groups=None):
    """The bed's bin/: links to every group's outputs, named after the set of group keys."""
    groups = groups or build_groups(versions or load_versions())
    digest = hashlib.sha256(" ".join(g.key() for g in groups).encode()).hexdigest()[:12]
    return cache_root() / "bin" / digest


def link_bin_dir(groups, bindir):
    """(Re)create bindir as links to the files of each group's bin/."""
    staging = bindir.with_name(bindir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for group in groups:
        group_bin = group.dir() / "bin"
        for path in sorted(p for p in group_bin.rglob("*") if p.is_file()):
            link = staging / path.relative_to(group_bin)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    shutil.rmtree(bindir, ignore_errors=True)
    os.replace(staging, bindir)


def run_with_heartbeat(cmd, cwd, logfile, label):
    """Run a `go build -v`, printing a progress line every HEARTBEAT_SECONDS."""
    start = time.monotonic()
    with open(logfile, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=go_env(), stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                proc.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                lines = Path(logfile).read_text(errors="replace").splitlines()
                last = lines[-1] if lines else "resolving modules"
                log(
                    f"  ... {label}: {fmt_elapsed(time.monotonic() - start)} elapsed, "
                    f"{len(lines)} packages compiled, last {last}"
                )
    if proc.returncode:
        tail = "\n".join(Path(logfile).read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"building {label} failed (exit {proc.returncode}); last lines of {logfile}:\n{tail}")


def build_group(group):
    name, group_dir = group.name, group.dir()
    if group.done():
        return
    bindir, staging = group_dir / "bin", group_dir / "staging"
    for stale in (bindir, staging):
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"building {name}: {', '.join(group.outputs.values()) or 'files only'} (into {group_dir})")
    start = time.monotonic()
    if group.packages:
        jobs = str(os.cpu_count() or 2)
        ldflags = f"-s -w {group.ldflags()}".strip()
        cmd = ["go", "build", "-v", "-p", jobs, *GO_BUILD_FLAGS, "-ldflags", ldflags, "-o", f"{staging}/"]
        run_with_heartbeat([*cmd, *group.packages], group.workdir(), group_dir / "build.log", name)
    for built, target in group.outputs.items():
        (bindir / target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / built, bindir / target)
    bindir.mkdir(exist_ok=True)
    group.finish(bindir)
    shutil.rmtree(staging)
    elapsed = time.monotonic() - start
    (group_dir / "done").write_text(f"{elapsed:.0f}\n")
    log(f"built {name} in {fmt_elapsed(elapsed)}")


def ensure_built(versions=None):
    """Build whatever the cache lacks; return the bin dir. Builds nothing when complete.

    The cache is shared by every checkout and bed cluster of the user: one build at a time."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_built(versions)


def _ensure_built(versions):
    versions = versions or load_versions()
    groups = build_groups(versions)
    bindir = bin_dir(versions, groups)
    missing = [g for g in groups if not g.done()]
    if not missing:
        if not bindir.is_dir():
            link_bin_dir(groups, bindir)
        return bindir
    check_gomod_pins(versions)
    if shutil.which("go") is None:
        raise SystemExit("the test bed builds its binaries with Go; install Go >= 1.26")
    log(f"building test bed groups {', '.join(g.name for g in missing)} (a cold build of all takes ~30 min on 2 cores)")
    start = time.monotonic()
    for group in missing:
        build_group(group)
    link_bin_dir(groups, bindir)
    log(f"all binaries built in {fmt_elapsed(time.monotonic() - start)}; bin/ is {bindir}")
    return bindir
