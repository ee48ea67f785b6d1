"""The Istio side of the bed: control planes installed by the real istioctl, with
istiod run as a local process per revision so sidecar injection and config
validation really happen.

On kwok the istiod Deployment's pods turn Ready but run nothing. The bed therefore
runs the pilot-discovery binary of the same Istio commit on 127.0.0.1 (as the istiod
ServiceAccount, with the same env as the Deployment) and publishes it on the bed's
cluster network (clusternet.py) as the endpoint of the Deployment's pods, so the API
server reaches it through the istiod Service exactly as the webhooks istioctl writes
say (`clientConfig.service`), revision tags included. Its serving certificate is for
istiod-REV.istio-system.svc, issued by the bed's webhook CA, which it is also given as
--caCertFile: istiod's own patchers write that CA into its webhooks' caBundle.
"""

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import clusternet, pki, procs, stages
from .cluster import KUBECONFIG, PKI_DIR, api_client, write_kubeconfig
from .common import LOG_DIR, STATE_DIR, fmt_elapsed, istioctl_path, log, pilot_path

NAMESPACE = "istio-system"
REV_LABEL = "istio.io/rev"
TOKEN_SECONDS = 30 * 24 * 3600
WEBHOOK_CA = "istiod-webhook-ca"


@dataclass
class ControlPlane:
    revision: str  # "default" for the primary control plane
    version: str
    istioctl: Path
    pilot: Path

    @property
    def suffix(self):
        return "" if self.revision == "default" else f"-{self.revision}"

    @property
    def istiod(self):
        return f"istiod{self.suffix}"

    def operator(self):
        spec = {"profile": "minimal"}
        if self.revision != "default":
            spec["revision"] = self.revision
        return {
            "apiVersion": "install.istio.io/v1alpha1",
            "kind": "IstioOperator",
            "metadata": {"name": f"control-plane{self.suffix}", "namespace": NAMESPACE},
            "spec": spec,
        }


def control_planes(versions, bindir):
    """The default revision from ISTIO_VERSION, the canary revision from ISTIO_CANARY_VERSION."""
    planes = []
    for revision, version in (
        ("default", versions["ISTIO_VERSION"]),
        (versions["ISTIO_CANARY_REVISION"], versions["ISTIO_CANARY_VERSION"]),
    ):
        planes.append(ControlPlane(revision, version, istioctl_path(bindir, version), pilot_path(bindir, version)))
    return planes


def install_gateway_api_crds(bindir, version):
    """The Gateway API CRDs as users install them (`kubectl apply --server-side`), before istiod starts,
    so each istiod runs its Gateway API controllers (GatewayClasses, deployment controller) from the start."""
    crds = bindir / "gateway-api"
    log(f"installing the Gateway API {version} CRDs (standard channel) from {crds}")
    kubectl = [str(bindir / "kubectl"), f"--kubeconfig={KUBECONFIG}"]
    for args in (["apply", "--server-side", "-f", str(crds)], ["wait", "--for=condition=Established", "crd", "--all"]):
        result = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=120, check=False)
        if result.returncode:
            raise RuntimeError(f"kubectl {args[0]} of the Gateway API CRDs failed:\n{result.stdout}{result.stderr}")


def istioctl_install(plane):
    """`istioctl install` of a minimal control plane, exactly as on a real cluster."""
    iop = STATE_DIR / f"control-plane{plane.suffix}.yaml"
    iop.write_text(yaml.safe_dump(plane.operator()))
    logfile = LOG_DIR / f"istioctl-install{plane.suffix or '-default'}.log"
    log(f"istioctl install of the {plane.revision} revision ({plane.version}), log {logfile}")
    start = time.monotonic()
    with open(logfile, "w") as out:
        result = subprocess.run(
            [str(plane.istioctl), "install", "-y", "-f", str(iop), f"--kubeconfig={KUBECONFIG}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode:
        raise RuntimeError(f"istioctl install failed (exit {result.returncode}):\n" + logfile.read_text()[-3000:])
    log(f"istioctl install of {plane.revision}: done in {fmt_elapsed(time.monotonic() - start)}")


def discovery_container(apps, plane):
    """The istiod Deployment's pod template and its discovery container."""
    template = apps.read_namespaced_deployment(plane.istiod, NAMESPACE).spec.template
    return template, next(c for c in template.spec.containers if c.name == "discovery")


def service_account_kubeconfig(core, server, plane, service_account):
    """Kubeconfig with a token of istiod's ServiceAccount, so istiod gets its real RBAC."""
    from kubernetes import client

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
    )
    token = core.create_namespaced_service_account_token(service_account, NAMESPACE, request).status.token
    return write_kubeconfig(STATE_DIR / f"{plane.istiod}.kubeconfig", server, PKI_DIR / "ca.crt", token=token)


def start_istiod(state, plane, webhook_ca, core, apps):
    template, container = discovery_container(apps, plane)
    env = {e.name: e.value for e in container.env or [] if e.value is not None}  # the literal values
    service_account = template.spec.service_account_name
    kubeconfig = service_account_kubeconfig(core, state["server"], plane, service_account)
    cert, key = webhook_ca.issue(
        plane.istiod, plane.istiod, server=True, ips=["127.0.0.1"], dns=[f"{plane.istiod}.{NAMESPACE}.svc"]
    )
    http, https, grpc, secure_grpc, monitoring, ctrlz = procs.free_ports(6)
    workdir = STATE_DIR / plane.istiod  # empty: mesh and injection config come from ConfigMaps
    workdir.mkdir(exist_ok=True)
    # What the Deployment sets from fieldRefs.
    env.update(POD_NAME=f"{plane.istiod}-local", POD_NAMESPACE=NAMESPACE, SERVICE_ACCOUNT=service_account)
    procs.start(
        state,
        plane.istiod,
        [
            str(plane.pilot),
            "discovery",
            f"--kubeconfig={kubeconfig}",
            "--domain=cluster.local",
            f"--httpAddr=127.0.0.1:{http}",
            f"--httpsAddr=127.0.0.1:{https}",
            f"--grpcAddr=127.0.0.1:{grpc}",
            f"--secureGRPCAddr=127.0.0.1:{secure_grpc}",
            f"--monitoringAddr=127.0.0.1:{monitoring}",
            "--ctrlz_address=127.0.0.1",
            f"--ctrlz_port={ctrlz}",
            f"--tlsCertFile={cert}",
            f"--tlsKeyFile={key}",
            f"--caCertFile={webhook_ca.cert_path}",
        ],
        env=env,
        cwd=workdir,
    )
    state.setdefault("istiod", {})[plane.revision] = {"https_port": https, "http_port": http}
    procs.save_state(state)
    procs.wait_for(
        f"{plane.istiod} /ready", lambda: procs.http_get(f"http://127.0.0.1:{http}/ready")[0] == 200, state, timeout=120
    )
    # In the pod these listen on the container ports; the Service's targetPorts name those (or their names).
    local = {8080: http, 15017: https, 15010: grpc, 15012: secure_grpc, 15014: monitoring}
    named = {p.name: local[p.container_port] for p in container.ports or [] if p.name and p.container_port in local}
    ports = {**local, **named}
    clusternet.publish(clusternet.ENDPOINTS, f"{plane.istiod}-local", NAMESPACE, template.metadata.labels, ports)


def fail_injected_pods(core, revision, mode):
    """From now on every pod REVISION's istiod injects fails the way MODE says ("notready" or "crashloop",
    see stages.py), as pods do when a new revision's proxy is broken; MODE None heals the revision.

    istiod adds the injector config's `injectedAnnotations` to every pod it injects and reloads the
    config when its ConfigMap changes, so pods created after this (e.g. by a rollout onto the revision)
    carry the bed's fail annotation. Pods injected before keep what they had."""
    from kubernetes.client.rest import ApiException

    name = "istio-sidecar-injector" + ("" if revision == "default" else f"-{revision}")
    for _attempt in range(5):  # istiod or istioctl may write the ConfigMap meanwhile
        configmap = core.read_namespaced_config_map(name, NAMESPACE)
        config = yaml.safe_load(configmap.data["config"])
        annotations = dict(config.get("injectedAnnotations") or {})
        annotations.pop(stages.FAIL_ANNOTATION, None)
        if mode:
            annotations[stages.FAIL_ANNOTATION] = mode
        config["injectedAnnotations"] = annotations
        body = {
            "metadata": {"resourceVersion": configmap.metadata.resource_version},
            "data": {"config": yaml.safe_dump(config)},
        }
        try:
            core.patch_namespaced_config_map(name, NAMESPACE, body)
            break
        except ApiException as exc:
            if exc.status != 409:
                raise
    else:
        raise RuntimeError(f"could not update ConfigMap {NAMESPACE}/{name}: conflicts kept coming")

    def in_effect():
        annotations = injection_probe(core, revision).metadata.annotations or {}
        return annotations.get(stages.FAIL_ANNOTATION) == mode

    # istiod reloads its injector config within a second or two.
    procs.wait_for(f"istiod of {revision} taking up the injector config", in_effect, procs.load_state(), timeout=60)


def injection_probe(core, revision):
    """A dry-run gateway pod of REVISION, as its injector returns it."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "injection-probe-",
            "labels": {"sidecar.istio.io/inject": "true", REV_LABEL: revision},
            "annotations": {"inject.istio.io/templates": "gateway"},
        },
        "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]},
    }
    return core.create_namespaced_pod("default", pod, dry_run="All")


def injected_image(core, plane):
    """Image the injector gives a dry-run pod of this revision ('auto' if not injected)."""
    return next(c.image for c in injection_probe(core, plane.revision).spec.containers if c.name == "istio-proxy")


def up(state, versions, bindir):
    from kubernetes import client

    api = api_client(KUBECONFIG)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    webhook_ca = pki.CA(PKI_DIR, WEBHOOK_CA)
    planes = control_planes(versions, bindir)
    install_gateway_api_crds(bindir, versions["GATEWAY_API_VERSION"])
    for plane in planes:
        istioctl_install(plane)
    for plane in planes:
        start_istiod(state, plane, webhook_ca, core, apps)
        image = procs.wait_for(
            f"sidecar injection by {plane.istiod}",
            lambda p=plane: (img := injected_image(core, p)) != "auto" and img,
            state,
            timeout=60,
        )
        log(f"{plane.revision} injects {image}")
