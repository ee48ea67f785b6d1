"""The playbooks as AWX / Automation Controller runs them: ansible-runner with a private data dir.

Every job gets what an AWX job gets: the project (the playbooks), env/extravars with survey-shaped answers (text
answers as strings, "true" for booleans, steps as "10,50,100"), env/envvars with the credential only as the
variables AWX's Kubernetes bearer-token credential injects (K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL,
K8S_AUTH_SSL_CA_CERT), istioctl on PATH as in the execution environment, and no kubeconfig anywhere (KUBECONFIG
names a missing file, HOME is empty). The identity is the least-privilege ServiceAccount of docs/rbac/rbac.yml.

After every job, each file ansible-runner wrote (artifacts: job_events, stdout, command, ...) and everything left
in HOME and TMPDIR is searched for the token, the bed's CA key and the proxy credentials: none may appear.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import ansible_runner
import pytest
import yaml

from .test_rbac import SA_NAME, SA_NAMESPACE, bind_optional_role, rbac  # the fixture  # noqa: F401  # pylint: disable=unused-import

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".build" / "collections"
# Secrets handed to jobs besides the token: a proxy password in the environment (loopback is never proxied, so
# the runs still reach the bed) and proxy basic-auth credentials.
PROXY_PASSWORD = "awx-proxy-pw-" + uuid.uuid4().hex
BASIC_AUTH_PASSWORD = "awx-basic-pw-" + uuid.uuid4().hex
# Variables of the test process that would hand a job a kubeconfig or other credentials.
INHERITED = ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "TESTBED_KUBECONFIG")

RUNS = {"jobs": 0, "playbooks": set(), "canceled": 0, "files_scanned": 0, "secrets_found": 0}


@pytest.fixture(scope="module")
def credential(request, testbed):
    """The ServiceAccount of docs/rbac/rbac.yml (test_rbac's fixture) and the variables AWX's Kubernetes credential
    injects for it."""
    account = request.getfixturevalue("rbac")
    token = account["api_key"]
    env = {
        "K8S_AUTH_HOST": account["host"],
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": account["ca_cert"],
        "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH": "awx-user:" + BASIC_AUTH_PASSWORD,
        "HTTPS_PROXY": "http://awx-proxy:%s@proxy.invalid:3128" % PROXY_PASSWORD,
    }
    ca_key = Path(testbed.kubeconfig).parent / "pki" / "ca.key"
    key_lines = [line for line in ca_key.read_text().splitlines() if line and not line.startswith("-----")]
    secrets = {"token": token, "proxy password": PROXY_PASSWORD, "basic-auth password": BASIC_AUTH_PASSWORD}
    secrets.update({"CA key line %d" % i: line for i, line in enumerate(key_lines[:3])})
    return {"env": env, "secrets": secrets}


class Job:
    """One AWX job: a private data dir, ansible_runner.run on it, its events, and the secret scan of what it left."""

    def __init__(self, base, credential, istioctl):
        self.base = Path(base)
        self.credential = credential
        self.istioctl = Path(istioctl)

    def run(self, playbook, extravars, verbosity=0, env=None, cancel_callback=None, injected=None):
        """Run PLAYBOOK as a job; INJECTED replaces the credential's variables (the job pod's, in a container group)."""
        ident = "%s-%s" % (Path(playbook).stem, uuid.uuid4().hex[:6])
        pdd = self.base / ident
        home, tmp = pdd.parent / (ident + "-home"), pdd.parent / (ident + "-tmp")
        for path in (pdd / "env", pdd / "inventory", home, tmp):
            path.mkdir(parents=True)
        shutil.copytree(ROOT / "playbooks", pdd / "project")  # the project sync
        (pdd / "inventory" / "hosts").write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "hosts": {
                            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                        }
                    }
                }
            )
        )
        (pdd / "env" / "extravars").write_text(json.dumps(extravars))
        envvars = dict(
            KUBECONFIG=str(home / "no-such-kubeconfig"),
            HOME=str(home),
            TMPDIR=str(tmp),
            # the execution environment's PATH: istioctl and ansible-playbook
            PATH=os.pathsep.join([str(self.istioctl.parent), str(Path(sys.executable).parent), os.environ["PATH"]]),
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),  # the collection, as installed in the execution environment
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
            ANSIBLE_NOCOLOR="1",
            # Ansible's temporary files (module payloads, the modules' private directories) in the job's HOME,
            # which is scanned; left alone, Ansible puts them in the account's home directory, not $HOME
            ANSIBLE_REMOTE_TMP=str(home / ".ansible" / "tmp"),
            ANSIBLE_LOCAL_TEMP=str(home / ".ansible" / "local"),
        )
        envvars.update(self.credential["env"] if injected is None else injected)
        envvars.update(env or {})
        (pdd / "env" / "envvars").write_text(json.dumps(envvars))
        (pdd / "env" / "envvars").chmod(0o600)
        (pdd / "env" / "settings").write_text(json.dumps({"pexpect_timeout": 1}))
        saved = {name: os.environ.pop(name) for name in INHERITED if name in os.environ}
        try:
            runner = ansible_runner.run(
                private_data_dir=str(pdd),
                playbook=playbook,
                ident=ident,
                verbosity=verbosity or None,
                quiet=True,
                cancel_callback=cancel_callback,
            )
        finally:
            os.environ.update(saved)
        RUNS["jobs"] += 1
        RUNS["playbooks"].add(playbook)
        RUNS["canceled"] += runner.status == "canceled"
        found, RUNS["files_scanned"] = scan(pdd, home, tmp, self.credential["secrets"], RUNS["files_scanned"])
        RUNS["secrets_found"] += len(found)
        assert not found, "secrets in what job %s left: %s" % (ident, found)
        runner.home, runner.tmp = home, tmp
        return runner

    @staticmethod
    def failed_tasks(runner):
        return [e["event_data"] for e in runner.events if e["event"] == "runner_on_failed"]

    @staticmethod
    def task_names(runner):
        return [e["event_data"].get("task") for e in runner.events if e["event"] == "runner_on_ok"]


def scan(pdd, home, tmp, secrets, scanned=0):
    """(file, secret name) for every secret in a file of the job: all of the private data dir and whatever the job
    left in HOME and TMPDIR. Two places hold the injected environment by design and are checked without it:
    env/envvars (AWX writes the credential there) and artifacts/<ident>/command, where ansible-runner records the
    command, its cwd and the environment it was given (always, mode 0600; docs/awx.md)."""
    found = []
    files = [p for root in (pdd, home, tmp) for p in root.rglob("*") if p.is_file()]
    files = [p for p in files if p != pdd / "env" / "envvars"]
    assert any("job_events" in p.parts for p in files), "ansible-runner wrote no job events"
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        if path.name == "command" and path.parent.parent.name == "artifacts":
            assert path.stat().st_mode & 0o077 == 0, "%s is readable by others" % path
            recorded = json.loads(text)
            assert set(recorded) == {"command", "cwd", "env"}, sorted(recorded)
            text = json.dumps([recorded["command"], recorded["cwd"]])
        scanned += 1
        found += [(str(path.relative_to(pdd.parent)), name) for name, value in secrets.items() if value in text]
    return found, scanned


@pytest.fixture(scope="module")
def job(tmp_path_factory, credential, testbed):
    return Job(tmp_path_factory.mktemp("awx-jobs"), credential, testbed.istioctl)


def ready_endpoints(kube, namespace, service):
    slices = kube.list(
        "discovery.k8s.io/v1", "EndpointSlice", namespace, label_selector="kubernetes.io/service-name=" + service
    )
    return sum(1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))


def settings(labels):
    """The gateway_upgrade_gateway template variable: how the gateway was installed, so upgrades change only it."""
    return {
        "kind": "ingress",
        "labels": labels,
        "replicas": 2,
        "autoscaling": {"enabled": False},
        "service": {"type": "ClusterIP"},
    }


def test_playbooks_run_under_ansible_runner_with_injected_credentials(job, kube, testbed):
    """shared, dedicated, canary (at -vvv), in-place and cleanup jobs, each with survey-shaped answers."""
    suffix = uuid.uuid4().hex[:6]
    shared_ns, app_ns = "awx-shared-" + suffix, "awx-app-" + suffix
    labels = {"istio": "awx-" + suffix}
    try:
        shared = job.run(
            "shared_gateway.yml",
            {
                # survey answers: text and multiple choice arrive as strings, an empty answer as ""
                "shared_gateway_namespace": shared_ns,
                "shared_gateway_revision": "",
                "shared_gateway_tls_secret": "",
                "shared_gateway_service_type": "ClusterIP",
                # template variables
                "shared_gateway_labels": labels,
                "shared_gateway_autoscaling": {"enabled": False},
                "shared_gateway_replicas": 2,
                "shared_gateway_hosts": ["awx.example.com"],
            },
        )
        assert shared.status == "successful", job.failed_tasks(shared)
        deployment = kube.get("apps/v1", "Deployment", "istio-ingressgateway", shared_ns)
        assert deployment["status"].get("readyReplicas") == 2

        dedicated = job.run(
            "dedicated_gateway.yml",
            {
                "dedicated_gateway_revision": "",
                "dedicated_gateway_service_type": "ClusterIP",
                "dedicated_gateway_apps": [{"namespace": app_ns, "name": "awx-app", "hosts": ["app.example.com"]}],
                "dedicated_gateway_autoscaling": {"enabled": False},
                "dedicated_gateway_replicas": 1,
            },
        )
        assert dedicated.status == "successful", job.failed_tasks(dedicated)
        assert kube.get("apps/v1", "Deployment", "awx-app", app_ns)["status"].get("readyReplicas") == 1

        # The upgrade jobs run in the execution environment of the target minor: its istioctl on PATH.
        upgrade = Job(job.base, job.credential, testbed.istioctl_canary)
        canary = upgrade.run(
            "upgrade_canary.yml",
            {
                "istio_ops_upgrade_strategy": "canary",
                "gateway_upgrade_revision": testbed.canary_revision,
                "gateway_upgrade_steps": "50,100",  # a text question
                "gateway_upgrade_total_replicas": 2,  # integer questions arrive as integers
                "gateway_upgrade_pause_seconds": 0,
                "gateway_upgrade_rollback_on_failure": "true",  # multiple choice true/false: a string
                "gateway_upgrade_adopt": "false",
                "gateway_upgrade_name": "istio-ingressgateway",
                "gateway_upgrade_namespace": shared_ns,
                "gateway_upgrade_gateway": settings(labels),
            },
            verbosity=3,
        )
        assert canary.status == "successful", job.failed_tasks(canary)
        assert "Canary step, percent of pods on the new revision 50" in job.task_names(canary)
        assert "<localhost> EXEC" in Path(canary.stdout.name).read_text(), "not a -vvv run"
        deployment = kube.get("apps/v1", "Deployment", "istio-ingressgateway", shared_ns)
        assert deployment["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] == testbed.canary_revision
        assert kube.get("apps/v1", "Deployment", "istio-ingressgateway-canary", shared_ns) is None

        in_place = upgrade.run(
            "upgrade_in_place.yml",
            {
                "gateway_upgrade_name": "istio-ingressgateway",
                "gateway_upgrade_namespace": shared_ns,
                "gateway_upgrade_revision": testbed.canary_revision,
                "gateway_upgrade_restart": "true",
                "gateway_upgrade_gateway": settings(labels),
            },
        )
        assert in_place.status == "successful", job.failed_tasks(in_place)
        [restart] = [
            e["event_data"]["res"]
            for e in in_place.events
            if e["event"] == "runner_on_ok" and e["event_data"]["task"].startswith("Move the gateway")
        ]
        assert restart["changed"] is True, "gateway_upgrade_restart 'true' must roll the pods"

        cleanup = job.run(
            "cleanup.yml",
            {
                "gateway_cleanup_name": "istio-ingressgateway",
                "gateway_cleanup_namespace": shared_ns,
                "gateway_cleanup_delete_namespace": "false",
                "gateway_cleanup_force": "false",
            },
        )
        assert cleanup.status == "successful", job.failed_tasks(cleanup)
        assert kube.get("apps/v1", "Deployment", "istio-ingressgateway", shared_ns) is None
        assert kube.get("v1", "Namespace", shared_ns) is not None, "delete_namespace 'false' keeps the namespace"
    finally:
        for namespace in (shared_ns, app_ns):
            kube.delete("v1", "Namespace", namespace)


def test_a_tag_upgrade_job_moves_the_tag_and_rolls_its_gateway(job, ansible, kube, testbed):
    """upgrade_tag.yml as the ServiceAccount with the optional revision-tags role bound cluster-wide (docs/rbac.md):
    the tag moves to the canary revision and the gateway that follows it is restarted onto it."""
    suffix = uuid.uuid4().hex[:6]
    tag, namespace = "awx-" + suffix, "awx-tag-" + suffix
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "istio-ops-gateways-revision-tags-" + suffix},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "istio-ops-gateways-revision-tags",
        },
        "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}],
    }
    created = ansible.module("revision_tag", {"name": tag, "revision": "default", "binary_path": str(testbed.istioctl)})
    assert not created.get("failed"), created.get("msg")
    try:
        kube.apply(binding)
        gateway = {"name": "gw", "namespace": namespace, "method": "manifest", "revision": tag, "replicas": 1}
        installed = ansible.module("istio_gateway", dict(gateway, autoscaling={"enabled": False}))
        assert not installed.get("failed"), installed.get("msg")
        upgrade = Job(job.base, job.credential, testbed.istioctl_canary)
        moved = upgrade.run(
            "upgrade_tag.yml",
            {
                "gateway_upgrade_tag": tag,
                "gateway_upgrade_revision": testbed.canary_revision,
                "gateway_upgrade_tag_batch_size": 1,
            },
        )
        assert moved.status == "successful", job.failed_tasks(moved)
        hook = kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "istio-revision-tag-" + tag)
        assert hook["metadata"]["labels"]["istio.io/rev"] == testbed.canary_revision
        pods = kube.list("v1", "Pod", namespace)
        assert pods and all(
            json.loads(p["metadata"]["annotations"]["sidecar.istio.io/status"])["revision"] == testbed.canary_revision
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        )
    finally:
        kube.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", binding["metadata"]["name"])
        kube.delete("v1", "Namespace", namespace)
        removed = ansible.module("revision_tag", {"name": tag, "state": "absent", "force": True})
        assert not removed.get("failed"), removed.get("msg")


def test_a_failing_job_at_vvv_echoes_no_secret(job, kube):
    """A proxy with credentials nobody listens on: the job fails naming the problem, -vvv, and no secret leaks."""
    namespace = "awx-fail-" + uuid.uuid4().hex[:6]
    proxy = "http://awx-proxy:%s@127.0.0.1:9" % PROXY_PASSWORD  # port 9 (discard): nothing listens
    failing = job.run(
        "shared_gateway.yml",
        {"shared_gateway_namespace": namespace, "shared_gateway_service_type": "ClusterIP"},
        verbosity=3,
        env={"K8S_AUTH_PROXY": proxy},
    )
    assert failing.status == "failed"
    [failure] = job.failed_tasks(failing)
    assert "127.0.0.1:9" in failure["res"]["msg"], failure["res"]["msg"]
    assert kube.get("v1", "Namespace", namespace) is None, "a failed job must leave the cluster untouched"


READY_AFTER = "testbed.istio-ops.io/ready-after"  # tests/testbed/stages.py: this pod turns Ready after that long


def test_a_canceled_canary_step_leaves_the_gateway_serving_and_a_rerun_converges(job, ansible, kube, testbed):
    """AWX's cancel: ansible-runner's cancel_callback returns True while the canary's pods are not Ready yet (they
    take 15 s), and the runner kills ansible-playbook's process group. The stable pods still serve; the same job
    launched again finishes the upgrade."""
    namespace = "awx-cancel-" + uuid.uuid4().hex[:6]
    labels = {"istio": namespace}
    gateway = dict(settings(labels), name="awx-cancel", namespace=namespace, binary_path=str(testbed.istioctl))
    gateway.update(pod_annotations={READY_AFTER: "15s"}, wait_timeout=180)
    upgrade = Job(job.base, job.credential, testbed.istioctl_canary)
    extravars = {
        "istio_ops_upgrade_strategy": "canary",
        "gateway_upgrade_revision": testbed.canary_revision,
        "gateway_upgrade_steps": "50,100",
        "gateway_upgrade_total_replicas": 2,
        "gateway_upgrade_rollback_on_failure": "true",
        "gateway_upgrade_name": "awx-cancel",
        "gateway_upgrade_namespace": namespace,
        "gateway_upgrade_gateway": dict(settings(labels), pod_annotations={READY_AFTER: "15s"}),
    }
    seen = {"waiting": False}

    def cancel():
        """True once the canary Deployment exists and none of its pods is Ready: the step is waiting."""
        canary = kube.get("apps/v1", "Deployment", "awx-cancel-canary", namespace)
        seen["waiting"] = seen["waiting"] or bool(canary and not canary.get("status", {}).get("readyReplicas"))
        return seen["waiting"]

    try:
        installed = ansible.module("istio_gateway", gateway)
        assert not installed.get("failed"), installed.get("msg")
        canceled = upgrade.run("upgrade_canary.yml", extravars, cancel_callback=cancel)
        assert canceled.status == "canceled" and seen["waiting"]
        assert kube.get("apps/v1", "Deployment", "awx-cancel-canary", namespace), "canceled before the step began"
        assert ready_endpoints(kube, namespace, "awx-cancel") >= 1, "the canceled step left the gateway unserved"

        rerun = upgrade.run("upgrade_canary.yml", extravars)
        assert rerun.status == "successful", job.failed_tasks(rerun)
        deployment = kube.get("apps/v1", "Deployment", "awx-cancel", namespace)
        assert deployment["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] == testbed.canary_revision
        assert kube.get("apps/v1", "Deployment", "awx-cancel-canary", namespace) is None
        assert ready_endpoints(kube, namespace, "awx-cancel") == 2
    finally:
        kube.delete("v1", "Namespace", namespace)


def kubeconfig_args(value):
    """Every path a binary was given with --kubeconfig, in a task result (the commands' argv)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in kubeconfig_args(v)]
    if isinstance(value, list):
        found = [value[i + 1] for i, v in enumerate(value[:-1]) if v == "--kubeconfig"]
        return found + [p for v in value for p in kubeconfig_args(v)]
    return []


def test_container_group_in_cluster_auth_reaches_istioctl_and_helm(job, kube, testbed, credential, tmp_path):
    """A job pod's ServiceAccount: token and CA files, KUBERNETES_SERVICE_HOST/PORT, nothing else. The modules use
    the kubernetes client's in-cluster loader (pointed at a directory of the test by tests/integration/incluster);
    istioctl and helm get that connection in a kubeconfig in the module's private directory, gone after the job."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(credential["secrets"]["token"])
    shutil.copy(credential["env"]["K8S_AUTH_SSL_CA_CERT"], account / "ca.crt")
    server = urlparse(credential["env"]["K8S_AUTH_HOST"])
    pod = {
        "KUBERNETES_SERVICE_HOST": server.hostname,
        "KUBERNETES_SERVICE_PORT": str(server.port),
        "ISTIO_OPS_TEST_SA_DIR": str(account),
        "PYTHONPATH": str(Path(__file__).resolve().parent / "incluster"),
        # the execution environment carries istioctl and helm
        "PATH": os.pathsep.join(
            [
                str(testbed.istioctl.parent),
                str(testbed.helm.parent),
                str(Path(sys.executable).parent),
                os.environ["PATH"],
            ]
        ),
    }
    suffix = uuid.uuid4().hex[:6]
    istioctl_ns, helm_ns = "awx-pod-" + suffix, "awx-pod-helm-" + suffix
    common = {"autoscaling": {"enabled": False}, "replicas": 1, "service_type": "ClusterIP"}
    try:
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": helm_ns}})
        bind_optional_role(kube, "istio-ops-gateways-helm", helm_ns)  # helm's release Secrets (docs/rbac.md)
        runs = {
            "istioctl": job.run(
                "shared_gateway.yml",
                dict(
                    {"shared_gateway_" + k: v for k, v in common.items()},
                    shared_gateway_namespace=istioctl_ns,
                    shared_gateway_labels={"istio": istioctl_ns},
                ),
                injected=pod,
            ),
            "helm": job.run(
                "dedicated_gateway.yml",
                dict(
                    {"dedicated_gateway_" + k: v for k, v in common.items()},
                    dedicated_gateway_method="helm",
                    dedicated_gateway_helm={"repository": testbed.chart_repo, "version": testbed.default_chart_version},
                    dedicated_gateway_apps=[{"namespace": helm_ns, "name": "awx-pod-helm"}],
                ),
                injected=pod,
            ),
        }
        for binary, runner in runs.items():
            assert runner.status == "successful", job.failed_tasks(runner)
            paths = {
                path
                for e in runner.events
                if e["event"] == "runner_on_ok"
                for path in kubeconfig_args(e["event_data"].get("res"))
            }
            assert paths, "%s was given no kubeconfig" % binary
            for path in paths:
                assert Path(path).is_relative_to(runner.home / ".ansible" / "tmp"), path  # the module's own
                assert not Path(path).exists(), "%s outlived its task" % path
        assert kube.get("apps/v1", "Deployment", "istio-ingressgateway", istioctl_ns)["status"].get("readyReplicas")
        assert kube.get("apps/v1", "Deployment", "awx-pod-helm", helm_ns)["status"].get("readyReplicas")
    finally:
        for namespace in (istioctl_ns, helm_ns):
            kube.delete("v1", "Namespace", namespace)


CONTROLLER = ROOT / "docs" / "awx" / "controller.yml"
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def with_included_tasks(path):
    """The text of a playbook and of the task files it includes, recursively (tasks/ beside it)."""
    text = path.read_text()
    for name in re.findall(r"include_tasks: (?:tasks/)?([a-z_]+\.yml)", text):
        text += with_included_tasks(ROOT / "playbooks" / "tasks" / name)
    return text


def test_job_templates_as_code_match_awx_and_the_roles():
    """docs/awx/controller.yml: a syntax check and ansible-lint with awx.awx installed (make peers), every task's
    options documented by its awx.awx module (ansible-lint cannot check them), a job template for every playbook
    but the demo, and every survey variable one its playbook's role documents."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
    bin_dir = Path(sys.executable).parent
    check = [str(bin_dir / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(CONTROLLER)]
    assert subprocess.run(check, env=env, capture_output=True, text=True, check=False).returncode == 0
    lint = subprocess.run(
        [str(bin_dir / "ansible-lint"), "--profile", "production", str(CONTROLLER)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    [play] = yaml.safe_load(CONTROLLER.read_text())
    modules = {name: task[name] for task in play["tasks"] for name in task if name.startswith("awx.awx.")}
    docs = subprocess.run(
        [str(bin_dir / "ansible-doc"), "-j"] + sorted(modules), env=env, capture_output=True, text=True, check=True
    )
    for module, doc in json.loads(docs.stdout).items():
        options = doc["doc"]["options"]
        known = set(options) | {alias for spec in options.values() for alias in spec.get("aliases") or []}
        assert set(modules[module]) <= known, "%s: not options of the module: %s" % (
            module,
            set(modules[module]) - known,
        )

    [templates] = [task["loop"] for task in play["tasks"] if "awx.awx.job_template" in task]
    playbooks = {p.name for p in (ROOT / "playbooks").glob("*.yml")} - {"demo.yml"}
    assert {Path(t["playbook"]).name for t in templates} >= playbooks
    for template in templates:
        text = with_included_tasks(ROOT / template["playbook"])
        roles = [r for r in ("shared_gateway", "dedicated_gateway", "gateway_upgrade", "gateway_cleanup") if r in text]
        specs = ROOT / "roles" / roles[0] / "meta" / "argument_specs.yml"
        documented = set(yaml.safe_load(specs.read_text())["argument_specs"]["main"]["options"])
        # the playbooks' own: istio_ops_*, and the fleet playbook's fleet_upgrade_* (read in its vars file)
        own = text + "".join(v.read_text() for v in (ROOT / "playbooks" / "vars").glob(Path(template["playbook"]).name))
        documented |= set(re.findall(r"\b(?:istio_ops|fleet_upgrade)_[a-z_]+", own))
        for question in template["survey"]:
            assert question["variable"] in documented, (template["name"], question["variable"])
            assert question["type"] in SURVEY_TYPES, (template["name"], question)
        assert set(template.get("extra_vars") or {}) <= documented, template["name"]


def test_counts():
    """What README.md reports: jobs run under ansible-runner, cancels survived, secrets found in what they left."""
    print(
        "\nansible-runner jobs: %d of %d playbooks (%s), cancels survived: %d, files scanned: %d, secrets found: %d"
        % (
            RUNS["jobs"],
            len(RUNS["playbooks"]),
            ", ".join(sorted(RUNS["playbooks"])),
            RUNS["canceled"],
            RUNS["files_scanned"],
            RUNS["secrets_found"],
        )
    )
    assert RUNS["jobs"] >= 11 and len(RUNS["playbooks"]) >= 6 and RUNS["canceled"] >= 1, RUNS
    assert RUNS["secrets_found"] == 0, RUNS
