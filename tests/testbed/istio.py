"""The Istio side of the bed: control planes installed by the real istioctl, with
istiod run as a local process per revision so sidecar injection and config
validation really happen.

On kwok the istiod Deployment's pods turn Ready but run nothing, so the webhooks
istioctl creates would point at a Service nobody serves. The bed therefore runs
the pilot-discovery binary of the same Istio commit on 127.0.0.1 (as the istiod
ServiceAccount, with the same env as the Deployment) and rewrites each webhook's
clientConfig from `service:` to `url: https://127.0.0.1:PORT/<same path>` with the
bed's webhook CA. istiod's own cert patchers only rewrite caBundle (and the
validator's failurePolicy), and they patch in the CA given by --caCertFile, which
is that same CA, so they keep the URL form intact.
"""

import base64
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from . import pki, procs
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


def deployment_env(apps, plane):
    """Literal env of the istiod Deployment's discovery container, and its ServiceAccount."""
    deploy = apps.read_namespaced_deployment(plane.istiod, NAMESPACE)
    container = next(c for c in deploy.spec.template.spec.containers if c.name == "discovery")
    env = {e.name: e.value for e in container.env or [] if e.value is not None}
    return env, deploy.spec.template.spec.service_account_name


def service_account_kubeconfig(core, server, plane, service_account):
    """Kubeconfig with a token of istiod's ServiceAccount, so istiod gets its real RBAC."""
    from kubernetes import client

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
    )
    token = core.create_namespaced_service_account_token(service_account, NAMESPACE, request).status.token
    return write_kubeconfig(STATE_DIR / f"{plane.istiod}.kubeconfig", server, PKI_DIR / "ca.crt", token=token)


def start_istiod(state, plane, webhook_ca, core, apps):
    env, service_account = deployment_env(apps, plane)
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
    return https


def point_webhooks_at(revision, port):
    """Rewrite every webhook configuration of this revision to call the local istiod.

    Only configurations still in another form are written, so this is cheap to
    repeat (`up` on a running bed does, to catch ones istioctl applied since).
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    admission = client.AdmissionregistrationV1Api(api_client(KUBECONFIG))
    ca_bundle = base64.b64encode((PKI_DIR / f"{WEBHOOK_CA}.crt").read_bytes()).decode()
    base = f"https://127.0.0.1:{port}"
    kinds = {
        "mutating": (
            admission.list_mutating_webhook_configuration,
            admission.read_mutating_webhook_configuration,
            admission.replace_mutating_webhook_configuration,
        ),
        "validating": (
            admission.list_validating_webhook_configuration,
            admission.read_validating_webhook_configuration,
            admission.replace_validating_webhook_configuration,
        ),
    }
    for kind, (list_configs, read, replace) in kinds.items():
        for listed in list_configs(label_selector=f"{REV_LABEL}={revision}").items:
            name = listed.metadata.name
            for _attempt in range(10):  # istiod's own patchers may update it concurrently
                config = read(name)
                hooks = [w.client_config for w in config.webhooks]
                if all(cc.url and cc.url.startswith(f"{base}/") and cc.ca_bundle == ca_bundle for cc in hooks):
                    break
                for cc in hooks:
                    path = cc.service.path if cc.service else urlsplit(cc.url).path
                    cc.service, cc.url, cc.ca_bundle = None, base + (path or "/"), ca_bundle
                try:
                    replace(name, config)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                else:
                    log(f"{kind} webhook {name} -> {base}")
                    break
            else:
                raise RuntimeError(f"could not update {kind} webhook {name}: conflicts kept coming")


def repoint_webhooks(state):
    """Point webhook configurations applied since `up` (e.g. by istioctl) at the local istiods."""
    for revision, istiod in state.get("istiod", {}).items():
        point_webhooks_at(revision, istiod["https_port"])


def injected_image(core, plane):
    """Image the injector gives a dry-run pod of this revision ('auto' if not injected)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "injection-probe-",
            "labels": {"sidecar.istio.io/inject": "true", REV_LABEL: plane.revision},
            "annotations": {"inject.istio.io/templates": "gateway"},
        },
        "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]},
    }
    created = core.create_namespaced_pod("default", pod, dry_run="All")
    return next(c.image for c in created.spec.containers if c.name == "istio-proxy")


def up(state, versions, bindir):
    from kubernetes import client

    api = api_client(KUBECONFIG)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    webhook_ca = pki.CA(PKI_DIR, WEBHOOK_CA)
    planes = control_planes(versions, bindir)
    for plane in planes:
        istioctl_install(plane)
    for plane in planes:
        port = start_istiod(state, plane, webhook_ca, core, apps)
        point_webhooks_at(plane.revision, port)
        image = procs.wait_for(
            f"sidecar injection by {plane.istiod}",
            lambda p=plane: (img := injected_image(core, p)) != "auto" and img,
            state,
            timeout=60,
        )
        log(f"{plane.revision} injects {image}")
