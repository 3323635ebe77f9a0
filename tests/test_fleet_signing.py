"""The fleet token's signatures (`herd.fleet.signing`): good, wrong token, stale, replayed, tampered, missing."""

from __future__ import annotations

import pytest

from herd.errors import FleetUnauthorized
from herd.fleet.signing import NONCE, SIGNATURE, TIMESTAMP, NonceCache, Verifier, fleet_id, sign

TOKEN = "correct-horse-battery-staple"
BODY = b'{"node_id": "n1"}'
NOW = 1_800_000_000.0


def refused(
    verifier: Verifier,
    headers: dict[str, str],
    *,
    body: bytes = BODY,
    path: str = "/heartbeat",
    method: str = "POST",
    now: float = NOW,
) -> str:
    with pytest.raises(FleetUnauthorized) as err:
        verifier.check(method, path, body, headers, now)
    assert err.value.status == 401
    return err.value.message


def test_a_signed_request_verifies_once() -> None:
    v = Verifier(TOKEN)
    headers = sign(TOKEN, "POST", "/heartbeat", BODY, NOW)
    assert set(headers) == {TIMESTAMP, NONCE, SIGNATURE}
    v.check("POST", "/heartbeat", BODY, headers, NOW + 5)
    assert "replayed" in refused(v, headers, now=NOW + 6)


def test_wrong_token_tampered_body_path_or_method_are_refused() -> None:
    v = Verifier(TOKEN)
    assert "wrong" in refused(v, sign("another-token-of-16+", "POST", "/heartbeat", BODY, NOW))
    good = sign(TOKEN, "POST", "/heartbeat", BODY, NOW)
    assert "wrong" in refused(v, good, body=BODY.replace(b"n1", b"n2"))
    assert "wrong" in refused(v, good, path="/heartbeat?x=1")
    assert "wrong" in refused(v, good, method="PUT")
    assert "wrong" in refused(
        v, {**good, SIGNATURE: good[SIGNATURE][:-1] + ("1" if good[SIGNATURE].endswith("0") else "0")}
    )
    assert "wrong" in refused(v, {**good, TIMESTAMP: str(int(NOW) + 1)})
    assert len(v.nonces) == 0  # nothing that failed to verify takes room in the nonce cache


def test_stale_and_future_timestamps_are_refused() -> None:
    v = Verifier(TOKEN, window=60)
    assert "stale" in refused(v, sign(TOKEN, "POST", "/heartbeat", BODY, NOW - 61))
    assert "stale" in refused(v, sign(TOKEN, "POST", "/heartbeat", BODY, NOW + 61))
    assert "Unix seconds" in refused(v, {**sign(TOKEN, "POST", "/heartbeat", BODY, NOW), TIMESTAMP: "soon"})
    v.check("POST", "/heartbeat", BODY, sign(TOKEN, "POST", "/heartbeat", BODY, NOW - 59), NOW)


@pytest.mark.parametrize("missing", [TIMESTAMP, NONCE, SIGNATURE])
def test_missing_headers_are_refused(missing: str) -> None:
    headers = sign(TOKEN, "POST", "/heartbeat", BODY, NOW)
    del headers[missing]
    assert "missing" in refused(Verifier(TOKEN), headers)
    assert "missing" in refused(Verifier(TOKEN), {})


def test_nonce_cache_forgets_after_the_window_and_is_bounded() -> None:
    cache = NonceCache(limit=2)
    assert cache.add("a", expires=100, now=0) is None
    assert cache.add("a", expires=100, now=50) is not None
    assert cache.add("b", expires=100, now=50) is None
    assert cache.add("c", expires=100, now=50) is not None  # full: refuse rather than forget a live nonce
    assert cache.add("c", expires=200, now=101) is None  # a and b expired
    assert len(cache) == 1


def test_fleet_id_is_derived_from_the_token() -> None:
    assert fleet_id(TOKEN) == fleet_id(TOKEN) and len(fleet_id(TOKEN)) == 12
    assert fleet_id(TOKEN) != fleet_id(TOKEN + "x") and TOKEN not in fleet_id(TOKEN)


def test_precheck_refuses_what_needs_no_body() -> None:
    v = Verifier(TOKEN)
    v.precheck(sign(TOKEN, "POST", "/v1/images/generations", b"", NOW), NOW)
    with pytest.raises(FleetUnauthorized, match="missing"):
        v.precheck({}, NOW)
    with pytest.raises(FleetUnauthorized, match="stale"):
        v.precheck(sign(TOKEN, "POST", "/x", b"", NOW - 600), NOW)
    assert len(v.nonces) == 0
