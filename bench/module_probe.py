"""Run one collection module in this process, the way AnsiballZ would, and report what it cost.

bench/run.py uses it for what an ansible-playbook run hides: every request the module's Kubernetes
client sends (exact, unlike the API server's counters, which other users of a shared bed also move),
the peak RSS of the module process and of the commands it ran (istioctl), and optionally a cProfile.

    python bench/module_probe.py istio_gateway '{"name": ...}' --report out.json [--cprofile out.prof]
        [--collections DIR]   # another copy of the collection: DIR/ansible_collections/istio_ops/gateways

The module's own JSON result goes to stdout, as from a real module run.
"""

import argparse
import cProfile
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("args", help="module arguments as JSON")
    parser.add_argument("--report", required=True)
    parser.add_argument("--cprofile")
    parser.add_argument("--collections", default=str(ROOT / ".build" / "collections"))
    opts = parser.parse_args()

    # Imported only now: which copy of the collection runs is an argument.
    sys.path.insert(0, opts.collections)
    from ansible.module_utils import basic

    from ansible_collections.istio_ops.gateways.plugins.module_utils import k8s

    sent = []
    original = k8s.KubeClient.request

    def counting_request(self, method, path, query=None, body=None, content_type=None, retry_conflict=False):
        # Wrapping request() (not _send()) records what the module asked for; a retried request would show
        # once here, which is what a converged run should never need anyway.
        dry_run = bool(query and query.get("dryRun")) or bool(isinstance(body, dict) and body.get("dryRun"))
        sent.append({"method": method, "path": path, "dry_run": dry_run})
        return original(self, method, path, query, body, content_type, retry_conflict)

    k8s.KubeClient.request = counting_request
    # What AnsiballZ hands a module: its arguments, and the JSON profile of the controller.
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": json.loads(opts.args)}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    module = __import__("ansible_collections.istio_ops.gateways.plugins.modules." + opts.module, fromlist=["main"])

    profiler = cProfile.Profile() if opts.cprofile else None
    started = time.monotonic()
    try:
        if profiler:
            profiler.runcall(module.main)
        else:
            module.main()
    except SystemExit:  # exit_json/fail_json end the module this way
        pass
    elapsed = time.monotonic() - started
    if profiler:
        profiler.dump_stats(opts.cprofile)
    # ru_maxrss is in KiB on Linux. SELF: this Python process (imports included); CHILDREN: the largest
    # process it waited for (istioctl), which Ansible would run alongside the module too.
    report = {
        "seconds": round(elapsed, 4),
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "children_maxrss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1),
        "requests": sent,
    }
    Path(opts.report).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
