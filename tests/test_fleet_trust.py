"""Heartbeat trust without configuration (`herd.fleet.trust`): address binding, node-id takeover, the record of
refusals and its health finding."""

from __future__ import annotations

import logging

import pytest
from conftest import heartbeat_json

from herd.config import FleetConfig
from herd.errors import HeartbeatRefused, NodeIdTaken
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat, sweep
from herd.fleet.trust import (
    FleetGate,
    Refusal,
    advertised_urls,
    binding_problem,
    normalize_ip,
    takeover_problem,
)
from herd.health.base import Facts, run_checks


@pytest.mark.parametrize(
    ("url", "peer"),
    [
        ("http://10.0.0.5:11434", "10.0.0.5"),
        ("http://10.0.0.5:11434", "::ffff:10.0.0.5"),  # dual-stack listener: IPv4-mapped peer
        ("http://[fe80::1]:11434", "fe80::1%eth0"),
        ("http://[2001:db8::7]:8080", "2001:db8::7"),
        ("http://127.0.0.1:11434", "127.0.0.1"),
        ("http://localhost:11434", "127.0.0.1"),  # loopback peers may advertise any loopback host
        ("http://127.0.0.2:11434", "127.0.0.1"),
        ("http://[::1]:11434", "127.0.0.1"),
        ("http://0.0.0.0:11434", "::1"),
    ],
)
def test_urls_on_the_peers_own_address_are_accepted(url: str, peer: str) -> None:
    assert binding_problem([url], peer) is None


@pytest.mark.parametrize(
    ("url", "peer"),
    [
        ("http://10.1.2.3:11434", "127.0.0.1"),  # loopback may not point the router elsewhere
        ("http://10.0.0.6:11434", "10.0.0.5"),
        ("http://127.0.0.1:11434", "10.0.0.5"),  # a remote node cannot aim the router at its own loopback
        ("http://localhost:11434", "10.0.0.5"),
        ("http://gpu-box.lan:11434", "10.0.0.5"),  # names could resolve anywhere later (DNS rebinding)
        ("http://[2001:db8::8]:11434", "2001:db8::7"),
    ],
)
def test_urls_elsewhere_are_refused_with_the_expected_address(url: str, peer: str) -> None:
    problem = binding_problem([url], peer)
    assert problem is not None and url in problem and "expected host" in problem


def test_media_urls_are_bound_too() -> None:
    beat = heartbeat_json(
        "n1",
        "http://10.0.0.5:11434",
        [],
        media=[{"kind": "image", "model": "sd", "url": "http://10.9.9.9:1", "api": "openai"}],
    )
    problem = binding_problem(advertised_urls(parse_heartbeat(beat)), "10.0.0.5")
    assert problem is not None and "http://10.9.9.9:1" in problem


def test_normalize_ip() -> None:
    assert str(normalize_ip("::ffff:192.168.1.4")) == "192.168.1.4"
    assert normalize_ip("host.lan") is None


def snap_with(node_id: str, url: str, now: float = 0.0) -> FleetSnapshot:
    return apply_heartbeat(FleetSnapshot(), parse_heartbeat(heartbeat_json(node_id, url, ["m"])), now)


def test_takeover_while_online_is_refused_but_not_once_offline() -> None:
    snap = snap_with("n1", "http://10.0.0.5:1")
    assert takeover_problem(snap, "10.0.0.5", "n1", "10.0.0.5") is None
    assert takeover_problem(snap, "10.0.0.5", "n1", "::ffff:10.0.0.5") is None
    assert takeover_problem(snap, "10.0.0.5", "n2", "10.0.0.9") is None  # another id
    problem = takeover_problem(snap, "10.0.0.5", "n1", "10.0.0.9")
    assert problem is not None and "10.0.0.5" in problem and "10.0.0.9" in problem
    degraded = sweep(snap, 20.0, FleetConfig())
    assert takeover_problem(degraded, "10.0.0.5", "n1", "10.0.0.9") is not None
    offline = sweep(snap, 40.0, FleetConfig())
    assert takeover_problem(offline, "10.0.0.5", "n1", "10.0.0.9") is None
    # the router's own node came in-process, without an address: nobody takes it over
    assert takeover_problem(snap, None, "n1", "127.0.0.1") is not None


def test_gate_records_refusals_logs_once_and_feeds_the_health_check(caplog: pytest.LogCaptureFixture) -> None:
    gate = FleetGate()
    bad = parse_heartbeat(heartbeat_json("evil", "http://10.1.2.3:11434", ["m"]))
    caplog.set_level(logging.WARNING, "herd.fleet.trust")
    for _ in range(3):
        with pytest.raises(HeartbeatRefused) as err:
            gate.admit(FleetSnapshot(), bad, "127.0.0.1", 1.0)
        assert err.value.status == 403 and "expected host 127.0.0.1" in err.value.message
    assert len([r for r in caplog.records if "refused a heartbeat" in r.message]) == 1
    good = parse_heartbeat(heartbeat_json("n1", "http://10.0.0.5:1", ["m"]))
    gate.admit(FleetSnapshot(), good, "10.0.0.5", 1.0)
    snap = apply_heartbeat(FleetSnapshot(), good, 1.0)
    thief = parse_heartbeat(heartbeat_json("n1", "http://10.0.0.9:1", ["m"]))
    with pytest.raises(NodeIdTaken) as taken:
        gate.admit(snap, thief, "10.0.0.9", 2.0)
    assert taken.value.status == 409 and gate.peers["n1"] == "10.0.0.5"
    findings = run_checks(Facts(snap, [], refusals=gate.refusals.recent(3.0)))
    mine = {f["subject"]: f for f in findings if f["check"] == "refused_heartbeats"}
    assert mine["evil from 127.0.0.1"]["title"].startswith("3 heartbeat(s) refused from 127.0.0.1")
    assert mine["n1 from 10.0.0.9"]["severity"] == "critical"
    assert gate.refusals.recent(3.0 + 3600) == ()


def test_refusal_record_is_bounded() -> None:
    gate = FleetGate()
    for i in range(500):
        gate.refuse(float(i), "signature", f"10.0.{i // 256}.{i % 256}", None, "wrong")
    assert len(gate.refusals.items) == 64 and isinstance(gate.refusals.items[0], Refusal)
