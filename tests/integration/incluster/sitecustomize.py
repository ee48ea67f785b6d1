"""Test seam for in-cluster authentication (tests/integration/test_awx_runner.py), never shipped.

A container group's job pod has its ServiceAccount's token and CA in /var/run/secrets/kubernetes.io/serviceaccount
and KUBERNETES_SERVICE_HOST/PORT in its environment; the kubernetes client's in-cluster loader reads them. The bed
has no such directory, so a job whose PYTHONPATH holds this directory has the loader read ISTIO_OPS_TEST_SA_DIR
instead: the two file-name constants kubernetes.config.incluster_config.load_incluster_config passes to its
InClusterConfigLoader are pointed there. The collection's own code runs unchanged.
"""

import os

SA_DIR = os.environ.get("ISTIO_OPS_TEST_SA_DIR")
if SA_DIR:
    try:
        from kubernetes.config import incluster_config
    except ImportError:  # a Python without the client (ansible-playbook's own helpers): nothing to point
        pass
    else:
        incluster_config.SERVICE_TOKEN_FILENAME = os.path.join(SA_DIR, "token")
        incluster_config.SERVICE_CERT_FILENAME = os.path.join(SA_DIR, "ca.crt")
