# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure input checks. Each returns an error message naming the parameter, the value and the fix."""

import re

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def dns1123_label(param, value):
    if not value or len(value) > 63 or not _DNS1123_LABEL.match(value):
        return (
            "%s: %r is not a valid name; use at most 63 lower-case letters, digits and '-', starting and "
            "ending with a letter or digit (e.g. istio-ingress)" % (param, value)
        )
    return None


def service_name(param, value):
    """Gateway names become Service names, which must be DNS-1035 labels."""
    if not value or len(value) > 63 or not _DNS1035_LABEL.match(value):
        return (
            "%s: %r is not a valid gateway name; it names a Service, so use at most 63 lower-case letters, "
            "digits and '-', starting with a letter and ending with a letter or digit "
            "(e.g. istio-ingressgateway)" % (param, value)
        )
    return None


def label_key(param, key):
    prefix, name = key.rpartition("/")[::2]
    if (
        (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)))
        or len(name) > 63
        or not _LABEL_NAME.match(name)
    ):
        return (
            "%s: label key %r is invalid; use an optional DNS prefix and '/', then at most 63 letters, "
            "digits, '-', '_' or '.' starting and ending with a letter or digit (e.g. istio)" % (param, key)
        )
    return None


def label_value(param, key, value):
    value = "" if value is None else str(value)
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return (
            "%s: value %r of label %r is invalid; use at most 63 letters, digits, '-', '_' or '.', starting "
            "and ending with a letter or digit (e.g. ingressgateway)" % (param, value, key)
        )
    return None


def labels(param, mapping, allow_empty=False):
    """All errors for a label map."""
    if not mapping and not allow_empty:
        return [
            "%s: must hold at least one label (e.g. {istio: ingressgateway}); an empty selector would "
            "select every pod" % param
        ]
    errors = []
    for key, value in (mapping or {}).items():
        errors += [e for e in (label_key(param, key), label_value(param, key, value)) if e]
    return errors


def port(param, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        return "%s: %r is not a port; use a number from 1 to 65535" % (param, value)
    return None


def selector_matches(selector, pod_labels):
    """Whether a matchLabels selector selects pods with these labels."""
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())


def int_or_percent(value):
    """value as Kubernetes' IntOrString takes it (a count of 0 or more, or 'N%'), or None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = str(value).strip()
    if text.endswith("%") and text[:-1].isdigit() and int(text[:-1]) <= 100:
        return text
    if text.isdigit():
        return int(text)
    return None
