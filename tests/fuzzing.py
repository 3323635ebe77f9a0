"""Fuzzing every route of a real router: the fake fleet it runs against, one hypothesis strategy per route
(a valid request, then mutated: wrong types, huge integers, NaN-ish strings, lone surrogates, NUL, CR/LF, deep
nesting, long strings, in bodies, headers, query strings, path segments and multipart fields), and the checks
every answer must pass. Used by `tests/test_fuzz.py` (a few hundred examples) and `bench/fuzz.py` (>= 20,000
against a router process). Importable without pytest.

The verdict on an answer (`problem`): a 500, or any 5xx other than 502/503/504, is a bug; so is an error
answer with an empty body or one that is not JSON. 502-504 are legitimate only because the fleet includes
nodes that fail on purpose (a media backend that answers undecodable base64, a node nothing listens on).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import hypothesis
import trio
from conftest import heartbeat_json
from fake_media import FakeMediaServer
from fake_ollama import FakeModel, FakeOllama
from fake_openai import FakeOpenAI
from hypothesis import strategies as st

MODELS = ("llama3.2:3b", "deepseek-r1:7b", "smollm2", "flux-schnell", "broken-image", "whisper-1")
AUDIO = base64.b64encode(b"RIFF" + b"\x00" * 64).decode()

# Values that broke routers before: each a different way to be wrong.
HUGE = (10**400, -(10**400), 2**63, 2**64, -(2**63) - 1, 10**19, 1.7976931348623157e308, -0.0, 1e-320)
NASTY_STR = (
    "\ud800",
    "a\udfffb",
    "a\x00b",
    "\x00",
    "a\r\nX-Injected: 1",
    "\n",
    "\u2028",
    "NaN",
    "Infinity",
    "-1e999",
    "1e999",
    "",
    " ",
    "../../etc/passwd",
    "%00",
    "a" * 300,
    "m" * 70_000,
    "\x7f\x1b[31m",
    "llama3.2:3b\x00",
    "llama3.2:3b\r\n",
    "😀" * 50,
)
NASTY = (None, True, False, [], {}, [1, 2], {"a": 1}, 0, -1, 1.5, *HUGE, *NASTY_STR)


def nasty_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY_STR),
        st.text(max_size=40),
        st.text(alphabet=st.sampled_from(["\ud800", "\udc00", "\x00", "\r", "\n", "a", ":", "/", "é"])),
    )


def nasty_value() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(NASTY), nasty_text(), st.integers(), st.floats(allow_nan=False))


@dataclass
class Req:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] | None = None
    data: dict[str, str] | None = None
    mutating: bool = False  # may legitimately change the fleet (a heartbeat, pause/resume)

    def __repr__(self) -> str:
        body = self.body[:200] if self.body else self.body
        headers = {k: v[:100] for k, v in self.headers.items()}
        path = self.path if len(self.path) < 200 else f"{self.path[:200]}...({len(self.path)} chars)"
        return f"Req({self.method} {path!r} params={self.params} headers={headers} body={body!r})"


def _dumps(obj: Any) -> bytes:
    """JSON as a client could send it: lone surrogates escaped (`\\ud800`), huge ints written out."""
    return json.dumps(obj).encode()


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    """A copy of `obj` with the value at `path` replaced (or deleted)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        copy = dict(obj)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _set(obj.get(head), rest, value, delete)
        return copy
    if isinstance(obj, list) and isinstance(head, int) and head < len(obj):
        items = list(obj)
        items[head] = _set(obj[head], rest, value, delete)
        return items
    return obj


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any], extra_keys: tuple[str, ...] = ()) -> bytes:
    """`template` with 0-3 fields replaced, deleted or added; sometimes not JSON at all."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(
            st.sampled_from(
                [
                    b"",
                    b"{",
                    b"[]",
                    b"null",
                    b'"x"',
                    b"\xff\xfe{}",
                    b'{"model": NaN}',
                    b'{"model": Infinity}',
                    b"[" * 5000 + b"]" * 5000,
                    b'{"a":' * 3000 + b"1" + b"}" * 3000,
                    b'{"model": ' + b"9" * 5000 + b"}",
                    b'{"model": "\\ud800"}',
                ]
            )
        )
    body: Any = template
    for _ in range(draw(st.integers(0 if kind > 1 else 1, 3))):
        paths = _paths(body) + [(k,) for k in extra_keys]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        op = draw(st.integers(0, 9))
        if op == 0:
            body = _set(body, path, None, delete=True)
        elif op == 1:
            body = _set(body, path, {"deep": [[[[[[[[[[{"x": "\ud800"}]]]]]]]]]]})
        else:
            body = _set(body, path, draw(nasty_value()))
    return _dumps(body)


def model_name() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(MODELS), nasty_text())


def _headers() -> st.SearchStrategy[dict[str, str]]:
    # httpx refuses CR/LF/NUL in header values; what reaches the router is latin-1 text.
    value = st.one_of(
        st.sampled_from(["1", "", "a,b,,c", "x" * 5000, "é", "true", ",".join(["t"] * 50)]),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")),
    )
    return st.dictionaries(st.sampled_from(["X-Herd-Tags", "X-Herd-Strict", "Accept"]), value, max_size=2)


def _segment() -> st.SearchStrategy[str]:
    """A path segment as sent on the wire (percent-encoded where needed)."""
    return st.one_of(
        st.sampled_from(
            [
                "n1",
                "%00",
                "a%00b.png",
                "x" * 5000 + ".png",
                "..",
                "%2e%2e",
                "%ED%A0%80.png",
                "%FF.png",
                "%0d%0a",
            ]
        ),
        st.text(alphabet="abc.-_%0123456789ABCDEF", min_size=1, max_size=20),
    )


def _query() -> st.SearchStrategy[dict[str, str]]:
    value = st.one_of(
        st.sampled_from(
            ["1", "24", "0", "-1", "1e999", "nan", "9" * 400, "\u0661\u0662", "²", "\x00", "\ud800", ""]
        ),
        st.text(max_size=10),
    )
    keys = st.sampled_from(["hours", "limit", "status", "since", "model", "node", "tag", "dialect"])
    return st.dictionaries(keys, value, max_size=3)


def _post(path: str, template: dict[str, Any], *extra: str, mutating: bool = False) -> st.SearchStrategy[Req]:
    return st.builds(
        lambda body, headers: Req("POST", path, body, headers, mutating=mutating),
        mutated(template, extra),
        _headers(),
    )


def _with_model(template: dict[str, Any], key: str = "model") -> st.SearchStrategy[dict[str, Any]]:
    return model_name().map(lambda m: {**template, key: m})


CHAT = [{"role": "user", "content": "hi"}]


def routes(heartbeat_url: str) -> st.SearchStrategy[Req]:
    """One request to any route of the router."""

    def post(path: str, template: dict[str, Any], *extra: str, key: str = "model") -> st.SearchStrategy[Req]:
        return _with_model(template, key).flatmap(lambda t: _post(path, t, *extra))

    def get(path: str) -> st.SearchStrategy[Req]:
        return st.builds(lambda params, h: Req("GET", path, None, h, params), _query(), _headers())

    def seg(template: str, method: str = "GET", *, mutating: bool = False) -> st.SearchStrategy[Req]:
        return _segment().map(lambda s: Req(method, template.format(s), mutating=mutating))

    hb = heartbeat_json("fuzz-node", heartbeat_url, ["llama3.2:3b"], ["llama3.2:3b"], parallel=2)
    hb["media"] = [{"kind": "image", "model": "m", "url": heartbeat_url, "api": "openai"}]
    options = {"num_predict": 8, "num_ctx": 2048, "temperature": 0.5}
    multipart = st.builds(
        lambda model, lang, fmt, name, audio, path: Req(
            "POST",
            path,
            files={"file": (name, audio)},
            data={"model": model, "language": lang, "response_format": fmt, "temperature": "0.2"},
        ),
        model_name(),
        nasty_text(),
        st.one_of(st.sampled_from(["json", "text", "verbose_json", "srt", "vtt"]), nasty_text()),
        nasty_text(),
        st.sampled_from([b"RIFF" + b"\x00" * 64, b"", b"\xff" * 10]),
        st.sampled_from(["/v1/audio/transcriptions", "/api/transcribe"]),
    )
    return st.one_of(
        post("/api/chat", {"model": "", "messages": CHAT, "stream": False, "options": options}, "think"),
        post("/api/generate", {"model": "", "prompt": "hi", "stream": False, "options": options}, "context"),
        post("/api/embed", {"model": "", "input": "hi"}, "dimensions", "truncate"),
        post("/api/embeddings", {"model": "", "prompt": "hi"}),
        post("/api/show", {"model": ""}),
        post("/v1/chat/completions", {"model": "", "messages": CHAT, "max_tokens": 8}, "seed", "stream"),
        post("/v1/embeddings", {"model": "", "input": ["hi"]}, "dimensions", "encoding_format"),
        post("/v1/messages", {"model": "", "max_tokens": 8, "messages": CHAT}, "temperature", "tools"),
        post("/api/pull", {"model": "", "stream": False}),
        post("/api/copy", {"source": "", "destination": "copy-of"}, key="source"),
        _with_model({"model": ""}).flatmap(
            lambda t: st.builds(lambda b: Req("DELETE", "/api/delete", b), mutated(t))
        ),
        post("/v1/images/generations", {"model": "", "prompt": "a fox", "response_format": "url"}, "n"),
        post("/api/generate-image", {"model": "", "prompt": "a fox", "width": 64}, "seed", "steps"),
        post("/api/transcribe", {"model": "", "audio": AUDIO, "language": "en"}, "temperature"),
        multipart,
        _post("/heartbeat", hb, "parallel", mutating=True),
        _post("/fleet/settings", {"vram_fallback": False}),
        seg("/fleet/nodes/{}/pause", "POST", mutating=True),
        seg("/fleet/nodes/{}/resume", "POST", mutating=True),
        seg("/herd/images/{}"),
        seg("/v1/models/{}"),
        seg("/dashboard/static/{}"),
        *(get(p) for p in GETS),
    )


GETS = (
    "/",
    "/api/tags",
    "/api/ps",
    "/api/version",
    "/v1/models",
    "/fleet/status",
    "/fleet/health",
    "/fleet/queue",
    "/metrics",
    "/fleet/settings",
    "/api/image-models",
    "/api/transcription-models",
    "/fleet/analytics/overview",
    "/fleet/analytics/trends",
    "/fleet/analytics/models",
    "/fleet/analytics/nodes",
    "/fleet/analytics/apps",
    "/fleet/traces",
    "/dashboard",
)


def send(client: httpx.Client, base: str, req: Req) -> httpx.Response:
    """Send `req` as raw as httpx allows: the path and query go out as given (percent-encoded UTF-8, lone
    surrogates included), header values as latin-1, multipart fields as careless UTF-8."""
    query = "&".join(f"{quote(_wire(k))}={quote(_wire(v))}" for k, v in req.params.items())
    raw = (req.path + ("?" + query if query else "")).encode("ascii")
    url = httpx.URL(base).copy_with(raw_path=raw)
    headers = {k: v.strip(" \t").encode("latin-1") for k, v in req.headers.items()}
    data = {k: _wire(v) for k, v in req.data.items()} if req.data is not None else None
    files = {k: (_wire(n).decode("latin-1"), b) for k, (n, b) in req.files.items()} if req.files else None
    try:
        return client.request(req.method, url, content=req.body, headers=headers, files=files, data=data)
    except httpx.RemoteProtocolError:
        # the server closed a kept-alive connection as this request went out: once more on a fresh one
        DISCONNECTS.append(repr(req))
        return client.request(req.method, url, content=req.body, headers=headers, files=files, data=data)


DISCONNECTS: list[str] = []  # requests that met a connection the router had closed (retried once)


def _wire(text: str) -> bytes:
    """UTF-8 as a careless client writes it: lone surrogates go out as their 3-byte forms."""
    return text.encode("utf-8", "surrogatepass")


def problem(req: Req, resp: httpx.Response) -> str | None:
    """What is wrong with this answer, or None."""
    status = resp.status_code
    if status >= 500 and status not in (502, 503, 504):
        return f"{status} {resp.text[:200]!r}"
    if status >= 400 and req.method != "HEAD":
        if not resp.content:
            return f"{status} with an empty body"
        try:
            json.loads(resp.content)
        except ValueError:
            return f"{status} with a body that is not JSON: {resp.content[:100]!r}"
    return None


def fleet_state(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a rejected request must not change: nodes, their models, backend, media and paused flags."""
    return sorted(
        (n["node_id"], n["backend_url"], tuple(n["models"]), json.dumps(n["media"]), n["paused"])
        for n in status["nodes"]
    )


class BadImages(FakeMediaServer):
    """An image backend that fails on purpose: its `b64_json` is not base64."""

    def answer(self, method: str, path: str, raw: bytes, ctype: str) -> tuple[int, bytes, str]:
        if path == "/v1/images/generations":
            return (
                200,
                json.dumps({"data": [{"b64_json": "!!not base64\ud800"}]}).encode(),
                "application/json",
            )
        return super().answer(method, path, raw, ctype)


@dataclass
class FuzzFleet:
    """The fakes behind a router under fuzz, and the heartbeats that register them."""

    ollama: FakeOllama
    openai: FakeOpenAI
    media: FakeMediaServer
    bad_images: BadImages
    beats: list[dict[str, Any]] = field(default_factory=list)

    async def start(self, nursery: trio.Nursery) -> None:
        for fake in (self.ollama, self.openai, self.media, self.bad_images):
            await nursery.start(fake.run)
        self.beats = [
            heartbeat_json("n1", self.ollama.url, ["llama3.2:3b", "deepseek-r1:7b"], ["llama3.2:3b"]),
            heartbeat_json("oa", self.openai.url, ["smollm2"], ["smollm2"], backend="openai"),
            heartbeat_json(
                "artist",
                "http://127.0.0.1:9",
                [],
                media=[
                    {"kind": "image", "model": "flux-schnell", "url": self.media.url, "api": "openai"},
                    {"kind": "transcription", "model": "whisper-1", "url": self.media.url, "api": "openai"},
                    {"kind": "image", "model": "broken-image", "url": self.bad_images.url, "api": "openai"},
                ],
            ),
        ]

    async def beat(self, http: httpx.AsyncClient, router_url: str) -> None:
        for body in self.beats:
            resp = await http.post(router_url + "/heartbeat", json=body)
            assert resp.status_code == 200, resp.text


def fuzz_fleet() -> FuzzFleet:
    return FuzzFleet(
        ollama=FakeOllama(
            [FakeModel("llama3.2:3b"), FakeModel("deepseek-r1:7b", capabilities=("completion", "thinking"))],
            loaded=["llama3.2:3b"],
        ),
        openai=FakeOpenAI("smollm2", embeddings=True),
        media=FakeMediaServer(models=("flux-schnell", "whisper-1")),
        bad_images=BadImages(models=("broken-image",)),
    )


def run(
    base: str,
    heartbeat_url: str,
    examples: int,
    on_answer: Callable[[Req, httpx.Response], None],
    *,
    seed: int = 0,
) -> None:
    """Send `examples` fuzzed requests to the router at `base` (blocking: call it from a worker thread),
    handing each answer to `on_answer`, which may raise to fail (hypothesis then shrinks to a minimal case)."""
    with httpx.Client(trust_env=False, timeout=60) as client:

        @hypothesis.settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.seed(seed)
        @hypothesis.given(routes(heartbeat_url))
        def one(req: Req) -> None:
            on_answer(req, send(client, base, req))

        one()
