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
    """check, real, check, real of istio_gateway; the two converged runs must make no write request at all."""

    def run(check):
        return ansible.module("istio_gateway", args, check=check, diff=check)

    return _four_steps(run, audit, [args["namespace"]])


def four_role_runs_writing_nothing_when_converged(ansible, audit, role, role_vars, namespaces):
    """check, real, check, real of a role; the two converged runs must write nothing into `namespaces`."""

    def run(check):
        return ansible.role(role, role_vars, check=check, diff=check)

    return _four_steps(run, audit, namespaces)


def _four_steps(run, audit, namespaces):
    results = [run(True), run(False)]
    offset = audit.mark()
    results += [run(True), run(False)]
    assert_four_steps(results)
    for namespace in namespaces:
        assert audit.writes_since(offset, namespace) == [], "converged runs wrote into %s" % namespace
    return results
