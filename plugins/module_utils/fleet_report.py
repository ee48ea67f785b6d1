# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: for every cluster and gateway of a rollout, its method, revision before and after, ready and
desired pods, Service address and drift, as rows (JSON), a fixed-width text table and a self-contained HTML page.

Pure logic: the filter istio_ops.gateways.fleet_report calls build() with what a fleet playbook gathered
(gateway_info's `gateways` before and after, istio_gateway's check-mode actions as drift). docs/fleet-report.md.
"""

import datetime
from html import escape

from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError

STATUSES = ("upgraded", "rolled_back", "failed", "untouched", "unchanged")
DEFAULT_TITLE = "Istio gateway fleet report"
ROW_KEYS = (
    "cluster",
    "cluster_status",
    "error",
    "namespace",
    "gateway",
    "api",
    "method",
    "revision_before",
    "revision_after",
    "ready",
    "desired",
    "address",
    "drift",
    "drift_details",
)


def drift_text(row):
    if row["drift"] is None:
        return None if row["gateway"] is None else "not checked"
    return "yes (%d)" % len(row["drift_details"]) if row["drift"] else "no"


# (header, row -> text) of the text table and the HTML page: one list, so both show the same table.
COLUMNS = (
    ("cluster", lambda r: r["cluster"]),
    ("status", lambda r: r["cluster_status"]),
    ("namespace", lambda r: r["namespace"]),
    ("gateway", lambda r: r["gateway"] if r["gateway"] is not None else "(no gateways seen)"),
    ("api", lambda r: r["api"]),
    ("method", lambda r: r["method"]),
    ("revision before", lambda r: r["revision_before"]),
    ("revision after", lambda r: r["revision_after"]),
    ("ready", lambda r: None if r["desired"] is None else "%s/%s" % (r["ready"], r["desired"])),
    ("address", lambda r: r["address"]),
    ("drift", drift_text),
)
HEADERS = tuple(c[0] for c in COLUMNS)
CELLS = tuple(c[1] for c in COLUMNS)
NOT_KNOWN = "-"
SUMMARY_TEXT_KEYS = ("api", "method", "revision", "address")
SUMMARY_INT_KEYS = ("ready", "desired")


# -- input ------------------------------------------------------------------------------------------------------
def shown(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def bad(field, value, expected):
    return InputError("fleet_report: %s is %s; expected %s" % (field, shown(value), expected))


def is_text(value):
    return isinstance(value, str)


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool)


def gateways_by_key(entries, field):
    """{(namespace, name): summary} of a gateway_info `gateways` list (None: not read)."""
    if entries is None:
        return None
    if not isinstance(entries, (list, tuple)):
        raise bad(field, entries, "a list of gateway_info gateways (its `gateways` result), [] or null")
    found = {}
    for index, entry in enumerate(entries):
        where = "%s[%d]" % (field, index)
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(summary, dict):
            raise bad(where + ".summary", summary, "a dict: a gateways entry of gateway_info")
        for key in ("name", "namespace"):
            if not (is_text(summary.get(key)) and summary.get(key)):
                raise bad("%s.summary.%s" % (where, key), summary.get(key), "a non-empty string")
        for key in SUMMARY_TEXT_KEYS:
            if summary.get(key) is not None and not is_text(summary[key]):
                raise bad("%s.summary.%s" % (where, key), summary[key], "a string or null")
        for key in SUMMARY_INT_KEYS:
            if summary.get(key) is not None and not is_count(summary[key]):
                raise bad("%s.summary.%s" % (where, key), summary[key], "an integer or null")
        key = (summary["namespace"], summary["name"])
        if key in found:
            raise bad(where + ".summary", "%s/%s" % key, "each gateway once")
        found[key] = summary
    return found


def drift_by_key(drift, field):
    """{(namespace, name): [actions] or None} of a cluster's drift ({} when not checked at all)."""
    if drift is None:
        return {}
    if not isinstance(drift, dict):
        raise bad(field, drift, 'a dict {"<namespace>/<name>": [actions]} or null')
    found = {}
    for key, actions in drift.items():
        parts = key.split("/", 1) if is_text(key) else []  # a namespace has no "/"
        if len(parts) != 2 or not all(parts):
            raise bad("%s key" % field, key, '"<namespace>/<name>"')
        where = "%s[%s]" % (field, shown(key))
        if actions is not None and not (isinstance(actions, (list, tuple)) and all(is_text(a) for a in actions)):
            raise bad(where, actions, "a list of strings ([] for no drift) or null (not checked)")
        found[tuple(parts)] = None if actions is None else list(actions)
    return found


def check_cluster(cluster, index, seen):
    where = "clusters[%d]" % index
    if not isinstance(cluster, dict):
        raise bad(where, cluster, "a dict with cluster, status, error, before, after, drift")
    name = cluster.get("cluster")
    if not (is_text(name) and name):
        raise bad(where + ".cluster", name, "a non-empty string")
    if name in seen:
        raise bad(where + ".cluster", name, "each cluster once")
    seen.add(name)
    if cluster.get("status") not in STATUSES:
        raise bad(where + ".status", cluster.get("status"), "one of " + ", ".join(STATUSES))
    if cluster.get("error") is not None and not is_text(cluster["error"]):
        raise bad(where + ".error", cluster["error"], "a string or null")
    return (
        gateways_by_key(cluster.get("before"), where + ".before"),
        gateways_by_key(cluster.get("after"), where + ".after"),
        drift_by_key(cluster.get("drift"), where + ".drift"),
    )


# -- rows -------------------------------------------------------------------------------------------------------
def cluster_rows(cluster, before, after, drift):
    """One row per gateway seen before, after or in drift (one a check would create), sorted; one row with
    gateway null for a cluster without any. State (ready, desired, address) is the latest read: after's, or
    before's when after was not read (None); a gateway gone after has none."""
    base = {"cluster": cluster["cluster"], "cluster_status": cluster["status"], "error": cluster.get("error")}
    keys = sorted(set(before or {}) | set(after or {}) | set(drift))
    if not keys:
        return [dict(dict.fromkeys(ROW_KEYS), **base, drift_details=[])]
    rows = []
    for key in keys:
        old = (before or {}).get(key)
        new = (after or {}).get(key)
        latest = new if after is not None else old
        known = new or old or {}
        actions = drift.get(key)
        row = dict(
            base,
            namespace=key[0],
            gateway=key[1],
            api=known.get("api"),
            method=known.get("method"),
            revision_before=(old or {}).get("revision"),
            revision_after=(new or {}).get("revision"),
            ready=(latest or {}).get("ready"),
            desired=(latest or {}).get("desired"),
            address=(latest or {}).get("address"),
            drift=None if actions is None else bool(actions),
            drift_details=actions or [],
        )
        rows.append(row)
    return rows


def build(clusters, title=DEFAULT_TITLE, generated=None):
    """{rows, table, html, summary} of a fleet rollout's clusters (docs/fleet-report.md); InputError naming the
    field and value when the input is not that shape."""
    if not isinstance(clusters, (list, tuple)):
        raise bad("clusters", clusters, "a list of cluster dicts")
    if not is_text(title):
        raise bad("title", title, "a string")
    if isinstance(generated, (datetime.datetime, datetime.date)):
        generated = generated.isoformat()
    if generated is not None and not is_text(generated):
        raise bad("generated", generated, "a string (e.g. ansible_date_time.iso8601), a datetime or null")
    seen = set()
    checked = [(c,) + check_cluster(c, i, seen) for i, c in enumerate(clusters)]
    rows = [row for each in checked for row in cluster_rows(*each)]
    counts = dict.fromkeys(STATUSES, 0)
    for cluster in clusters:
        counts[cluster["status"]] += 1
    summary = {
        "clusters": counts,
        "gateways": sum(1 for r in rows if r["gateway"] is not None),
        "drifted": sum(1 for r in rows if r["drift"]),
    }
    return {
        "rows": rows,
        "table": text_table(rows, summary, title, generated),
        "html": html_page(rows, summary, title, generated),
        "summary": summary,
    }


def counted(count, noun):
    return "%d %s%s" % (count, noun, "" if count == 1 else "s")


def summary_line(summary):
    statuses = ", ".join("%s %d" % (s, n) for s, n in summary["clusters"].items() if n)
    return "%s (%s), %s, %d drifted" % (
        counted(sum(summary["clusters"].values()), "cluster"),
        statuses or "none",
        counted(summary["gateways"], "gateway"),
        summary["drifted"],
    )


# -- text -------------------------------------------------------------------------------------------------------
def one_line(value):
    """A value as one printable line: a name or an error must not break the table's rows."""
    if value is None:
        return NOT_KNOWN
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(value)).split()) or NOT_KNOWN


def text_table(rows, summary, title, generated):
    """Fixed-width columns, then the drift actions and the errors, one per line (for debug: msg, or a list of
    lines with splitlines())."""
    cells = [[h.upper() for h in HEADERS]] + [[one_line(cell(r)) for cell in CELLS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    lines = [one_line(title) + (" (%s)" % one_line(generated) if generated else ""), summary_line(summary), ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    drifted = [r for r in rows if r["drift"]]
    if drifted:
        lines += ["", "drift (what istio_gateway would change):"]
        for row in drifted:
            for action in row["drift_details"]:
                lines.append("  %s %s/%s: %s" % tuple(one_line(v) for v in (row["cluster"], *key_of(row), action)))
    errors = errors_by_cluster(rows)
    if errors:
        lines += ["", "errors:"]
        lines += ["  %s: %s" % (one_line(name), one_line(error)) for name, error in errors]
    return "\n".join(lines)


def key_of(row):
    return row["namespace"], row["gateway"]


def errors_by_cluster(rows):
    seen = []
    for row in rows:
        if row["error"] and (row["cluster"], row["error"]) not in seen:
            seen.append((row["cluster"], row["error"]))
    return seen


# -- HTML -------------------------------------------------------------------------------------------------------
# Inline only, and a policy that forbids loading anything, so the page is the same in an AWX artifact, a mail or
# a browser offline.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
p.meta, p.summary { margin: .2rem 0; color: #57606a; }
table { border-collapse: collapse; margin-top: 1rem; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .55rem; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
th { background: #f6f8fa; }
td.none { color: #8c959f; }
.status { display: inline-block; padding: .05rem .45rem; border-radius: .8rem; font-weight: 600; }
.status-upgraded { background: #dafbe1; color: #116329; }
.status-rolled_back { background: #fff8c5; color: #7d4e00; }
.status-failed { background: #ffebe9; color: #a40e26; }
.status-untouched { background: #eaeef2; color: #424a53; }
.status-unchanged { background: #ddf4ff; color: #0a3069; }
td.drift-yes { background: #fff1e5; color: #953800; font-weight: 600; white-space: normal; min-width: 12rem; }
td.drift-no { color: #116329; }
td ul { margin: .2rem 0 0; padding-left: 1.1rem; font-weight: normal; }
dt { font-weight: 600; margin-top: .4rem; }
pre { white-space: pre-wrap; margin: 0; }
""".strip()


def cell_html(header, row, text):
    if text is None:
        return '<td class="none">%s</td>' % NOT_KNOWN
    if header == "status":
        return '<td><span class="status status-%s">%s</span></td>' % (escape(text), escape(text))
    if header == "drift":
        css = "drift-yes" if row["drift"] else ("drift-no" if row["drift"] is False else "none")
        details = "".join("<li>%s</li>" % escape(a) for a in row["drift_details"])
        return '<td class="%s">%s%s</td>' % (css, escape(text), "<ul>%s</ul>" % details if details else "")
    return "<td>%s</td>" % escape(str(text))


def html_page(rows, summary, title, generated):
    """A complete HTML document: the same table as text_table, every value escaped."""
    head = "".join("<th>%s</th>" % escape(h) for h in HEADERS)
    body = []
    for row in rows:
        cells = "".join(cell_html(h, row, cell(row)) for h, cell in COLUMNS)
        body.append(
            '<tr class="row-%s" data-cluster="%s" data-gateway="%s">%s</tr>'
            % (
                escape(row["cluster_status"]),
                escape(row["cluster"]),
                escape("" if row["gateway"] is None else "%s/%s" % key_of(row)),
                cells,
            )
        )
    badges = " ".join(
        '<span class="status status-%s">%s %d</span>' % (s, s, n) for s, n in summary["clusters"].items() if n
    )
    errors = errors_by_cluster(rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % escape(CSP),
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title>" % escape(title),
        "<style>\n%s\n</style>" % STYLE,
        "</head>",
        "<body>",
        "<h1>%s</h1>" % escape(title),
    ]
    if generated:
        parts.append('<p class="meta" id="generated">Generated %s</p>' % escape(generated))
    parts += [
        '<p class="summary" id="summary">%s: %s &middot; %s &middot; %d drifted</p>'
        % (
            counted(sum(summary["clusters"].values()), "cluster"),
            badges or "none",
            counted(summary["gateways"], "gateway"),
            summary["drifted"],
        ),
        '<table id="fleet-report">',
        "<thead><tr>%s</tr></thead>" % head,
        "<tbody>",
        "\n".join(body),
        "</tbody>",
        "</table>",
    ]
    if errors:
        parts += ["<h2>Errors</h2>", '<dl id="errors">']
        parts += ["<dt>%s</dt><dd><pre>%s</pre></dd>" % (escape(c), escape(e)) for c, e in errors]
        parts += ["</dl>"]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
