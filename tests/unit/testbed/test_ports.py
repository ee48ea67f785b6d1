"""The bed's port picks: distinct across callers, held for a while, outside the ephemeral range."""

import json
import random
import socket
import time

import pytest

from tests.testbed import procs


@pytest.fixture(autouse=True)
def ports_file(tmp_path, monkeypatch):
    monkeypatch.setattr(procs, "PORTS_FILE", tmp_path / "ports.json")
    return tmp_path / "ports.json"


def test_picks_are_distinct_across_calls_until_the_hold_expires(ports_file):
    first = procs.free_ports(6)
    second = procs.free_ports(6)
    assert len(set(first)) == 6 and not set(first) & set(second)
    assert all(procs.PORT_RANGE[0] <= port < procs.PORT_RANGE[1] for port in first + second)
    # An expired hold frees its ports for the next pick.
    held = json.loads(ports_file.read_text())
    stale = {port: time.time() - procs.PORT_HOLD_SECONDS - 1 for port in held}
    ports_file.write_text(json.dumps(stale))
    procs.free_ports(1)
    assert len(json.loads(ports_file.read_text())) == 1


def test_a_port_someone_listens_on_is_skipped():
    order = random.Random(0).sample(range(*procs.PORT_RANGE), procs.PORT_RANGE[1] - procs.PORT_RANGE[0])
    # Listen on the port the seeded order tries first, so the pick must skip it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", order[0]))
        taken.listen()
        (port,) = procs.free_ports(1, rng=random.Random(0))
    assert port == order[1]


def test_a_corrupt_registry_is_started_afresh(ports_file):
    ports_file.write_text("{not json")
    assert len(procs.free_ports(2)) == 2
