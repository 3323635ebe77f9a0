"""The web edge's rules as pure functions: origins and Host names as Ollama allows them, route access, keys
(parsing, constant-time matching, redaction), per-key limits, error bodies per dialect, and the flags."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from herd.cli import build_parser, main, router_config
from herd.config import RouterConfig
from herd.dialects.errors import herd_error_body
from herd.errors import Forbidden, PayloadTooLarge, RateLimited, Unauthorized
from herd.guard.keys import (
    ApiKey,
    Keyring,
    Secret,
    auth_message_key,
    parse_key_arg,
    parse_keys_file,
    presented_key,
)
from herd.guard.limits import InFlight, RateBook
from herd.guard.origins import (
    OriginPolicy,
    allowed_host,
    is_loopback_bind,
    parse_origins,
    preflight_headers,
    same_origin,
)
from herd.guard.rules import Access, Facts, Policy, access_of, decide

# --- origins -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "https://localhost",
        "http://localhost:3000",
        "https://127.0.0.1:8443",
        "http://0.0.0.0:5173",
        "app://obsidian.md",
        "file://",
        "tauri://localhost",
        "vscode-webview://1a2b3c",
    ],
)
def test_ollama_default_origins_are_allowed(origin: str) -> None:
    assert OriginPolicy().allows(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://localhost.evil.example",
        "http://127.0.0.2:8080",
        "null",
        "chrome-extension://x",
    ],
)
def test_other_origins_are_not(origin: str) -> None:
    assert not OriginPolicy().allows(origin)


def test_extra_origins_are_globs_and_star_allows_all() -> None:
    policy = OriginPolicy(("https://*.example.com", "chrome-extension://*", "http://10.0.0.5:8080"))
    assert policy.allows("https://app.example.com")
    assert policy.allows("chrome-extension://abcdef")
    assert policy.allows("http://10.0.0.5:8080") and not policy.allows("http://10.0.0.5:8081")
    assert not policy.allows("https://example.org")
    assert OriginPolicy(("*",)).allows("https://anything.example")


def test_origin_lists_parse_like_ollama_origins() -> None:
    assert parse_origins(" 'https://a.example', \"http://b:1\" ,,") == ("https://a.example", "http://b:1")
    assert parse_origins(None) == ()


def test_same_origin_is_the_host_asked_for() -> None:
    assert same_origin("http://192.168.1.5:11435", "192.168.1.5:11435")
    assert same_origin("https://router.lan", "router.lan")
    assert not same_origin("http://192.168.1.5:8080", "192.168.1.5:11435")
    assert not same_origin("http://x", None)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost:11435", True),
        ("127.0.0.1:11435", True),
        ("[::1]:11435", True),
        ("192.168.1.5", True),
        ("0.0.0.0:1", True),
        ("printer.local", True),
        ("box.internal:80", True),
        ("app.localhost", True),
        ("my-box", True),  # the machine's own name
        ("", True),
        ("attacker.example", False),
        ("attacker.example:11435", False),
        ("8.8.8.8", False),
    ],
)
def test_loopback_router_accepts_only_local_host_names(host: str, ok: bool) -> None:
    assert allowed_host(host, ("My-Box",)) is ok


def test_loopback_binds() -> None:
    assert is_loopback_bind("127.0.0.1") and is_loopback_bind("::1") and is_loopback_bind("localhost")
    assert not is_loopback_bind("0.0.0.0") and not is_loopback_bind("192.168.1.5")


def test_preflight_allows_key_headers_and_any_x_herd_header() -> None:
    headers = dict(preflight_headers("http://localhost:3000", "content-type, x-herd-future, x-custom"))
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-api-key", "anthropic-version", "content-type", "x-herd-tags"} <= allowed
    assert "x-herd-future" in allowed and "x-custom" not in allowed
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in headers["Access-Control-Allow-Methods"]


# --- keys ----------------------------------------------------------------------------------------------------


def test_keys_file_format() -> None:
    keys = parse_keys_file(
        "# comment\n\nwebui  sk-one  rpm=120 concurrent=4   # trailing comment\nbatch sk-two\n"
    )
    assert [(k.name, k.key.value, k.rpm, k.concurrent) for k in keys] == [
        ("webui", "sk-one", 120, 4),
        ("batch", "sk-two", None, None),
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("lonely\n", "line 1"),
        ("a k1\nb k2 rpm=0\n", "line 2"),
        ("a k1 burst=3\n", "line 1"),
        ("a k\nb k\n", "twice"),
    ],
)
def test_bad_keys_files_name_the_line_never_the_key(text: str, where: str) -> None:
    with pytest.raises(ValueError, match=where) as info:
        parse_keys_file(text)
    assert "k1" not in str(info.value) and "k2" not in str(info.value)


def test_key_args() -> None:
    key = parse_key_arg("ci=sk-abc=def")
    assert (key.name, key.key.value) == ("ci", "sk-abc=def")
    with pytest.raises(ValueError):
        parse_key_arg("no-equals")


def test_keyring_matches_any_key_and_nothing_else() -> None:
    ring = Keyring((ApiKey("a", Secret("sk-aaa")), ApiKey("b", Secret("sk-bbb"))))
    assert ring.match("sk-bbb") is ring.keys[1]
    assert ring.match("sk-aaa") is ring.keys[0]
    assert ring.match("sk-aa") is None and ring.match("") is None and ring.match(None) is None
    assert not Keyring() and ring


def test_presented_key_from_bearer_or_x_api_key() -> None:
    assert presented_key("Bearer sk-1", None) == "sk-1"
    assert presented_key("bearer  sk-1 ", "sk-2") == "sk-1"
    assert presented_key(None, "sk-2") == "sk-2"
    assert presented_key("Basic abc", None) is None


def test_secrets_never_show_in_reprs_or_the_settings_dump() -> None:
    key = ApiKey("webui", Secret("sk-very-secret"))
    assert "sk-very-secret" not in repr(key) and "sk-very-secret" not in f"{key.key}"
    cfg = RouterConfig(data_dir=Path("/tmp/x"))
    cfg = dataclasses.replace(
        cfg, security=dataclasses.replace(cfg.security, api_keys=(key,), admin_key=Secret("adm-secret"))
    )
    dumped = json.dumps(dataclasses.asdict(cfg), default=str)  # what GET /fleet/settings shows
    assert "sk-very-secret" not in dumped and "adm-secret" not in dumped and "webui" in dumped


def test_ws_auth_message() -> None:
    assert auth_message_key('{"type": "auth", "key": "k"}') == "k"
    assert auth_message_key("not json") is None and auth_message_key('{"key": "k"}') is None


# --- limits --------------------------------------------------------------------------------------------------


def test_rpm_is_a_sliding_window() -> None:
    book = RateBook()
    assert [book.admit("a", 2, t) for t in (0.0, 10.0)] == [None, None]
    assert book.admit("a", 2, 20.0) == pytest.approx(40.0)  # the first slot frees at t=60
    assert book.admit("b", 2, 20.0) is None  # per key
    assert book.admit("a", 2, 60.5) is None
    assert book.admit("a", None, 61.0) is None


def test_concurrent_holds_are_scopes() -> None:
    flight = InFlight()
    with flight.hold("a"):
        with flight.hold("a"):
            assert flight.full("a", 2) and not flight.full("a", 3) and not flight.full("b", 1)
        assert not flight.full("a", 2)
    assert flight.running == {}


# --- rules ---------------------------------------------------------------------------------------------------


def _policy(**kw: object) -> Policy:
    base: dict[str, object] = dict(
        origins=OriginPolicy(), check_host=False, own_names=(), max_body=1000, admin_key=None
    )
    base.update(kw)
    return Policy(**base)  # type: ignore[arg-type]


def _facts(method: str, path: str, **headers: str) -> Facts:
    return Facts(method, path, {k.replace("_", "-"): v for k, v in headers.items()})


def test_route_access() -> None:
    assert access_of("POST", "/fleet/nodes/n1/pause") is Access.ADMIN
    assert access_of("POST", "/fleet/settings") is Access.ADMIN
    assert access_of("POST", "/api/pull") is Access.ADMIN
    assert access_of("DELETE", "/api/delete") is Access.ADMIN
    assert access_of("POST", "/api/copy") is Access.ADMIN
    assert access_of("GET", "/fleet/status") is Access.FLEET_READ
    assert access_of("POST", "/api/chat") is Access.API
    assert access_of("POST", "/v1/messages") is Access.API
    assert access_of("GET", "/v1/models") is Access.API
    assert access_of("POST", "/heartbeat") is Access.AGENT
    assert access_of("GET", "/api/version") is Access.OPEN
    assert access_of("GET", "/dashboard") is Access.OPEN


def test_disallowed_origin_is_403_whatever_the_route() -> None:
    for method, path in (("POST", "/api/chat"), ("GET", "/fleet/status"), ("OPTIONS", "/api/chat")):
        verdict = decide(_facts(method, path, origin="http://evil.example", host="h:1"), _policy(), Keyring())
        assert isinstance(verdict.error, Forbidden)


def test_allowed_origin_gets_preflight_and_cors() -> None:
    facts = _facts(
        "OPTIONS", "/api/chat", origin="http://localhost:3000", access_control_request_method="POST"
    )
    assert decide(facts, _policy(), Keyring()).preflight
    verdict = decide(_facts("POST", "/api/chat", origin="http://localhost:3000"), _policy(), Keyring())
    assert verdict.error is None and verdict.cors_origin == "http://localhost:3000"


def test_own_origin_is_always_allowed_and_needs_no_cors() -> None:
    facts = _facts("POST", "/fleet/nodes/n1/pause", origin="http://10.0.0.9:11435", host="10.0.0.9:11435")
    verdict = decide(facts, _policy(), Keyring())
    assert verdict.error is None and verdict.cors_origin is None


def test_admin_routes_refuse_cross_origin_pages_without_an_admin_key() -> None:
    local_page = _facts("POST", "/fleet/nodes/n1/pause", origin="http://localhost:3000", host="h:1")
    assert isinstance(decide(local_page, _policy(), Keyring()).error, Forbidden)
    no_cors = _facts("POST", "/api/pull", sec_fetch_site="cross-site", host="h:1")
    assert isinstance(decide(no_cors, _policy(), Keyring()).error, Forbidden)
    curl = _facts("POST", "/fleet/nodes/n1/pause", host="h:1")
    assert decide(curl, _policy(), Keyring()).error is None
    page_beat = _facts("POST", "/heartbeat", origin="http://localhost:3000", host="h:1")
    assert isinstance(decide(page_beat, _policy(), Keyring()).error, Forbidden)
    assert decide(_facts("POST", "/heartbeat", host="h:1"), _policy(), Keyring()).error is None


def test_admin_key_guards_admin_routes_and_fleet_reads() -> None:
    policy = _policy(admin_key=Secret("adm"))
    for facts in (_facts("POST", "/fleet/settings"), _facts("GET", "/fleet/status")):
        assert isinstance(decide(facts, policy, Keyring()).error, Unauthorized)
    ok = _facts("POST", "/fleet/settings", x_herd_admin_key="adm")
    assert decide(ok, policy, Keyring()).error is None
    bearer = _facts("GET", "/fleet/traces", authorization="Bearer adm")
    assert decide(bearer, policy, Keyring()).error is None
    page = _facts("POST", "/fleet/nodes/n/pause", origin="http://localhost:3000", x_herd_admin_key="adm")
    assert decide(page, policy, Keyring()).error is None  # an allowed page that knows the key
    assert decide(_facts("POST", "/api/chat"), policy, Keyring()).error is None  # inference stays open


def test_api_keys_guard_api_routes_only() -> None:
    ring = Keyring((ApiKey("webui", Secret("sk-1")),))
    assert isinstance(decide(_facts("POST", "/api/chat"), _policy(), ring).error, Unauthorized)
    wrong = _facts("POST", "/v1/chat/completions", authorization="Bearer nope")
    assert isinstance(decide(wrong, _policy(), ring).error, Unauthorized)
    ok = decide(_facts("POST", "/v1/messages", x_api_key="sk-1"), _policy(), ring)
    assert ok.error is None and ok.key is not None and ok.key.name == "webui"
    assert decide(_facts("POST", "/heartbeat"), _policy(), ring).error is None
    assert decide(_facts("GET", "/api/version"), _policy(), ring).error is None
    admin = decide(
        _facts("POST", "/api/chat", authorization="Bearer adm"), _policy(admin_key=Secret("adm")), ring
    )
    assert admin.error is None and admin.key is None


def test_body_length_and_host_rules() -> None:
    big = decide(_facts("POST", "/heartbeat", content_length="1001"), _policy(), Keyring())
    assert isinstance(big.error, PayloadTooLarge)
    assert decide(_facts("POST", "/heartbeat", content_length="1000"), _policy(), Keyring()).error is None
    rebind = _facts("GET", "/api/tags", host="attacker.example:11435")
    assert isinstance(decide(rebind, _policy(check_host=True), Keyring()).error, Forbidden)
    assert decide(rebind, _policy(check_host=False), Keyring()).error is None


# --- error bodies in the caller's dialect ----------------------------------------------------------------------


def test_401_in_each_dialect() -> None:
    exc = Unauthorized("invalid API key")
    assert json.loads(herd_error_body("/api/chat", exc)) == {"error": "invalid API key"}
    assert json.loads(herd_error_body("/v1/chat/completions", exc)) == {
        "error": {
            "message": "invalid API key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert json.loads(herd_error_body("/v1/messages", exc)) == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid API key"},
    }
    limited = json.loads(herd_error_body("/v1/messages", RateLimited("slow down", retry_after=3)))
    assert limited["error"]["type"] == "rate_limit_error"


# --- flags ---------------------------------------------------------------------------------------------------


def _config(argv: list[str], env: dict[str, str]) -> RouterConfig:
    return router_config(build_parser(env).parse_args(["run", *argv]), env)


def test_security_flags_and_env(tmp_path: Path) -> None:
    admin_file = tmp_path / "admin"
    admin_file.write_text("adm-from-file\n")
    cfg = _config(
        [
            "--origins",
            "https://a.example",
            "--max-body",
            "2M",
            "--api-key",
            "ci=sk-1",
            "--admin-key-file",
            str(admin_file),
        ],
        {"OLLAMA_ORIGINS": "chrome-extension://*", "FLEET_API_KEYS_FILE": str(tmp_path / "keys")},
    )
    sec = cfg.security
    assert sec.origins == ("chrome-extension://*", "https://a.example")
    assert cfg.max_body_bytes == 2 * 2**20
    assert [(k.name, k.key.value) for k in sec.api_keys] == [("ci", "sk-1")]
    assert sec.api_keys_file == tmp_path / "keys"
    assert sec.admin_key is not None and sec.admin_key.value == "adm-from-file"
    env_cfg = _config(
        [],
        {
            "FLEET_ORIGINS": "*",
            "FLEET_MAX_BODY": "1024",
            "FLEET_API_KEYS": "a=k1,b=k2",
            "FLEET_ADMIN_KEY": "x",
        },
    )
    assert env_cfg.security.origins == ("*",) and env_cfg.max_body_bytes == 1024
    assert [k.name for k in env_cfg.security.api_keys] == ["a", "b"]
    assert env_cfg.security.admin_key is not None
    default = _config([], {})
    assert default.max_body_bytes == 100 * 2**20 and default.security.admin_key is None
    assert not default.security.api_keys and default.security.origins == ()


def test_a_broken_keys_file_stops_herd_run_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("webui sk-secret-1 rpm=fast\n")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        argv = ["run", "--port", "0", "--host", "127.0.0.1", "--no-mdns", "--no-local-node"]
        rc = main([*argv, "--data-dir", str(tmp_path), "--api-keys-file", str(keys)], env={})
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert rc == 2 and "line 1" in err and str(keys) in err and "sk-secret-1" not in err
