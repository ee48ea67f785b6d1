"""revision_tag's pure parts: who follows a tag, the collection's marks on a tag, and the input checks."""

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import revision_tag
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError


@pytest.mark.parametrize(
    "labels, tag, expected",
    [
        ({L.REVISION: "prod"}, "prod", True),
        ({L.REVISION: "prod"}, "canary", False),
        ({}, "default", True),  # no label follows the default tag
        (None, "default", True),
        ({}, "prod", False),
        ({L.REVISION: "default"}, "default", True),
    ],
)
def test_follows(labels, tag, expected):
    assert revision_tag.follows(labels, tag) is expected


def test_only_the_collections_marks_for_this_tag_make_a_tag_its_own():
    ours = {"metadata": {"labels": dict(revision_tag.marks("prod"), **{L.ISTIO_TAG: "prod"})}}
    assert revision_tag.is_ours(ours, "prod")
    assert not revision_tag.is_ours(ours, "other")  # the same marks name another tag
    made_by_istioctl = {"metadata": {"labels": {L.ISTIO_TAG: "prod", L.OWNING_RESOURCE: "installed-state"}}}
    assert not revision_tag.is_ours(made_by_istioctl, "prod")


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"name": "Prod", "revision": "1-31"}, "name: 'Prod' is not a valid name"),
        ({"name": "prod", "revision": "1.31"}, "revision: '1.31' is not a valid name"),
        ({"name": "prod", "revision": "prod"}, "revision: 'prod' is the tag's own name"),
    ],
)
def test_bad_input_names_the_option(params, expected):
    with pytest.raises(InputError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        revision_tag.check_inputs(dict(params, istio_namespace="istio-system"))


def test_the_default_tag_may_point_at_the_revision_named_default():
    revision_tag.check_inputs({"name": "default", "revision": "default", "istio_namespace": "istio-system"})


def test_a_tag_whose_service_name_would_be_too_long_is_refused():
    with pytest.raises(InputError, match="a tag has at most 43"):
        revision_tag.check_inputs({"name": "t" * 44, "revision": "1-31", "istio_namespace": "istio-system"})
    revision_tag.check_inputs({"name": "t" * 43, "revision": "1-31", "istio_namespace": "istio-system"})


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"batch_size": 0}, "batch_size: 0; restart at least 1 gateway at a time"),
        ({"min_ready": -1}, "min_ready: -1; give 0 or more"),
        ({"restart": True, "state": "absent"}, "restart: true with state: absent"),
    ],
)
def test_bad_rollout_options_name_the_option(params, expected):
    with pytest.raises(InputError, match=expected):
        revision_tag.check_inputs(dict(params, name="prod", revision="1-31", istio_namespace="istio-system"))
