"""The bed's Helm chart repository: the base and gateway charts of the pinned Istio
commits (packaged at build time into bin/charts, see build.py), served over HTTP on
127.0.0.1 like https://istio-release.storage.googleapis.com/charts.

    helm repo add istio "$TESTBED_CHART_REPO"
    helm install istio-ingress istio/gateway --version 1.30.0-alpha.9739e10eb9d7 -n NS

Chart versions are the Istio versions with a patch number (1.30-alpha.X -> 1.30.0-alpha.X),
so they are semver pre-releases: `helm install` wants `--version` (or `--devel`).
"""

import sys

from . import procs


def up(state, bindir):
    """Serve bindir/charts on a free 127.0.0.1 port; record its URL as state['chart_repo']."""
    (port,) = procs.free_ports(1)
    repo = bindir / "charts"
    procs.start(
        state,
        "chart-repo",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(repo)],
    )
    url = f"http://127.0.0.1:{port}"
    procs.wait_for("chart repository index.yaml", lambda: procs.http_get(f"{url}/index.yaml")[0] == 200, state)
    state["chart_repo"] = url
    procs.save_state(state)
