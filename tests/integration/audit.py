"""What the bed's API server wrote, from its audit log (tests/testbed: kube-apiserver logs the admin user's writes):
the proof that a converged run writes nothing."""

import json

from tests.testbed import cluster

from .ansible_run import assert_four_steps


class AuditLog(object):
    """The writes the bed's API server logged for the admin user (the modules and the tests), dry runs aside."""

    def __init__(self):
        if not cluster.AUDIT_LOG.exists():
            raise AssertionError("%s is missing: restart the bed (make testbed-down testbed-up)" % cluster.AUDIT_LOG)

    def mark(self):
        return cluster.AUDIT_LOG.stat().st_size

    def writes_since(self, offset, namespace):
        """Writes into `namespace` (or to it) since offset: other tests may write elsewhere meanwhile."""
        with open(cluster.AUDIT_LOG) as handle:
            handle.seek(offset)
            events = [json.loads(line) for line in handle if line.strip()]
        found = []
        for event in events:
            ref = event.get("objectRef") or {}
            into = ref.get("namespace") == namespace or (
                ref.get("resource") == "namespaces" and ref.get("name") == namespace
            )
            if into and "dryRun=" not in event["requestURI"]:
                found.append("%s %s/%s" % (event["verb"], ref.get("resource"), ref.get("name")))
        return found


def four_steps_writing_nothing_when_converged(ansible, audit, args):
    """check, real, check, real; the two converged runs must make no write request at all."""
    results = [ansible.module("istio_gateway", args, check=True, diff=True), ansible.module("istio_gateway", args)]
    offset = audit.mark()
    results += [ansible.module("istio_gateway", args, check=True, diff=True), ansible.module("istio_gateway", args)]
    assert_four_steps(results)
    assert audit.writes_since(offset, args["namespace"]) == [], "converged runs wrote"
    return results
