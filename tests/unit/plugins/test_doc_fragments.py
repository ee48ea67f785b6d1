"""Each doc fragment documents exactly its argument-spec twin: names, types, aliases, defaults, choices."""

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.doc_fragments import auth, istioctl, wait
from ansible_collections.istio_ops.gateways.plugins.module_utils import args

KEYS = ("type", "aliases", "default", "choices", "elements", "required")


def normalise(spec):
    out = {}
    for name, option in spec.items():
        entry = {k: option[k] for k in KEYS if option.get(k) not in (None, False, [])}
        if option.get("options") or option.get("suboptions"):
            entry["options"] = normalise(option.get("options") or option.get("suboptions"))
        out[name] = entry
    return out


@pytest.mark.parametrize(
    "fragment, spec",
    [
        (auth, args.AUTH_ARG_SPEC),
        (wait, args.WAIT_ARG_SPEC),
        (istioctl, args.ISTIOCTL_ARG_SPEC),
    ],
)
def test_fragment_matches_argument_spec(fragment, spec):
    documented = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    assert normalise(documented) == normalise(spec)


def test_every_env_fallback_is_documented():
    text = auth.ModuleDocFragment.DOCUMENTATION
    for name, option in args.AUTH_ARG_SPEC.items():
        if "fallback" in option:
            assert "E(%s)" % option["fallback"][1][0] in text, name


def test_secrets_are_no_log():
    for name in ("api_key", "password"):
        assert args.AUTH_ARG_SPEC[name]["no_log"] is True
    assert all(o["no_log"] for k, o in args.AUTH_ARG_SPEC["proxy_headers"]["options"].items() if k != "user_agent")
