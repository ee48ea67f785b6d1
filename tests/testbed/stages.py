"""kwok Stages for pods: readiness after a delay, and pods made to fail on purpose.

kwokctl's node stages and its pod-complete/pod-delete stages come from the kwok
module (bin/kwok-stages.yaml); its instant pod-ready stage is replaced by these:

  testbed-pod-ready      Pending -> Running and Ready. TESTBED_POD_READY=delayed (the
                         default) after TESTBED_POD_READY_DELAY (default "2s-6s":
                         uniformly between the two; "3s" is fixed); =instant at once.
                         The annotation testbed.istio-ops.io/ready-after: 90s overrides
                         the delay for one pod, in either mode.
  testbed-pod-notready   testbed.istio-ops.io/fail: notready -> Running, containers
                         running, never Ready.
  testbed-pod-crashloop  testbed.istio-ops.io/fail: crashloop -> every 2-4 s another
                         restart: restartCount + 1, state waiting CrashLoopBackOff,
                         lastState terminated (exit 1, Error); never Ready.
"""

import os
import re

import yaml

FAIL_ANNOTATION = "testbed.istio-ops.io/fail"
READY_AFTER_ANNOTATION = "testbed.istio-ops.io/ready-after"
MODES = ("instant", "delayed")
DEFAULT_DELAY = "2s-6s"
CRASHLOOP_MS = (2000, 4000)
REPLACED = {"pod-ready"}

NOT_DELETED = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
PENDING = {"key": ".status.phase", "operator": "In", "values": ["Pending"]}


def annotation(name):
    return f'.metadata.annotations["{name}"]'


def parse_delay(text):
    """'2s-6s' -> (2000, 6000); '3s' -> (3000, 3000); '500ms', '1.5s' work too."""

    def ms(part):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", part)
        if not match:
            raise SystemExit(f"TESTBED_POD_READY_DELAY: cannot parse {text!r} (e.g. 2s-6s, 3s, 500ms)")
        return int(float(match[1]) * (1 if match[2] == "ms" else 1000))

    low, _sep, high = text.partition("-")
    low_ms = ms(low)
    high_ms = ms(high) if high else low_ms
    if high_ms < low_ms:
        raise SystemExit(f"TESTBED_POD_READY_DELAY: {text!r} ends before it starts")
    return low_ms, high_ms


def settings(environ=None):
    """(mode, delay text) from TESTBED_POD_READY / TESTBED_POD_READY_DELAY."""
    environ = os.environ if environ is None else environ
    mode = environ.get("TESTBED_POD_READY") or "delayed"
    if mode not in MODES:
        raise SystemExit(f"TESTBED_POD_READY={mode!r}: use one of {', '.join(MODES)}")
    delay = environ.get("TESTBED_POD_READY_DELAY") or DEFAULT_DELAY
    parse_delay(delay)
    return mode, delay


def stage(name, selector, status_template, delay=None):
    spec = {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {"matchExpressions": [NOT_DELETED, *selector]},
        "next": {"statusTemplate": status_template},
    }
    if delay:
        spec["delay"] = delay
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


CONDITIONS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "%(ready)s"
  type: Ready
  %(reason)s
- lastTransitionTime: {{ $now | Quote }}
  status: "%(ready)s"
  type: ContainersReady
  %(reason)s
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "%(ready)s"
  type: {{ .conditionType | Quote }}
{{ end }}
"""

# hostIP/hostIPs or podIP/podIPs from a list of addresses.
IP_LIST = """\
{{ with VAR }}
FIELD: {{ index . 0 | Quote }}
FIELDs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
"""

# Addresses once: a later patch (crash loop) keeps them; a second podIPs entry is invalid.
ADDRESSES = (
    """\
{{ if not .status.podIP }}
{{ $hostIPs := NodeIPsWith .spec.nodeName }}
"""
    + IP_LIST.replace("VAR", "$hostIPs").replace("FIELD", "hostIP")
    + """\
{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
"""
    + IP_LIST.replace("VAR", "$podIPs").replace("FIELD", "podIP")
    + """\
{{ end }}
phase: Running
{{ with .status.startTime }}
startTime: {{ . | Quote }}
{{ else }}
startTime: {{ $now | Quote }}
{{ end }}
"""
)

STARTED = """\
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
"""

# Init containers (and native sidecars, restartPolicy Always) as kwokctl's fast stage reports them.
INIT_CONTAINERS = (
    """\
initContainerStatuses:
{{ range .spec.initContainers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  {{ if eq ( or .restartPolicy "" ) "Always" }}
"""
    + STARTED
    + """\
  {{ else }}
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
  {{ end }}
{{ end }}
"""
)

RUNNING_CONTAINERS = (
    """\
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: %(ready)s
  restartCount: 0
"""
    + STARTED
    + "{{ end }}\n"
)

CRASHING_CONTAINERS = """\
{{ $root := . }}
containerStatuses:
{{ range $index, $item := .spec.containers }}
{{ $restarts := 0 }}
{{ if and $root.status.containerStatuses ( lt $index ( len $root.status.containerStatuses ) ) }}
{{ $restarts = ( index $root.status.containerStatuses $index ).restartCount }}
{{ end }}
- image: {{ $item.image | Quote }}
  name: {{ $item.name | Quote }}
  ready: false
  restartCount: {{ add1 $restarts }}
  started: false
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: back-off restarting failed container {{ $item.name }} (testbed.istio-ops.io/fail=crashloop)
{{ end }}
"""


def pod_stages(mode, delay):
    ready_after = {
        "durationFrom": {"expressionFrom": annotation(READY_AFTER_ANNOTATION)},
        "jitterDurationFrom": {"expressionFrom": annotation(READY_AFTER_ANNOTATION)},
    }
    if mode == "delayed":
        low, high = parse_delay(delay)
        ready_after.update(durationMilliseconds=low, jitterDurationMilliseconds=high)
    not_ready_reason = "reason: ContainersNotReady"
    running = CONDITIONS % {"ready": "True", "reason": ""} + INIT_CONTAINERS + RUNNING_CONTAINERS % {"ready": "true"}
    not_ready = CONDITIONS % {"ready": "False", "reason": not_ready_reason} + INIT_CONTAINERS
    fail = annotation(FAIL_ANNOTATION)
    return [
        stage(
            "testbed-pod-ready",
            [
                PENDING,
                {
                    "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                    "operator": "NotIn",
                    "values": ["True"],
                },
                {"key": fail, "operator": "DoesNotExist"},
            ],
            running + ADDRESSES,
            ready_after,
        ),
        stage(
            "testbed-pod-notready",
            [PENDING, {"key": fail, "operator": "In", "values": ["notready"]}],
            not_ready + RUNNING_CONTAINERS % {"ready": "false"} + ADDRESSES,
        ),
        # Matches again after each update, so the restart count keeps rising.
        stage(
            "testbed-pod-crashloop",
            [{"key": fail, "operator": "In", "values": ["crashloop"]}],
            not_ready + CRASHING_CONTAINERS + ADDRESSES,
            {"durationMilliseconds": CRASHLOOP_MS[0], "jitterDurationMilliseconds": CRASHLOOP_MS[1]},
        ),
    ]


def write_stages(bindir, path, mode, delay):
    """kwokctl's stages from bin/ without its pod-ready, plus the bed's pod stages."""
    kept = [
        doc
        for doc in yaml.safe_load_all((bindir / "kwok-stages.yaml").read_text())
        if doc and doc["metadata"]["name"] not in REPLACED
    ]
    path.write_text(yaml.safe_dump_all([*kept, *pod_stages(mode, delay)], sort_keys=False))
    return path
