"""Anthropic Messages (`/v1/messages`) through the router with the official `anthropic` client."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import anthropic
import pytest
import trio
from harness import start_fleet

MODEL = "llama3.2:3b"


def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="herd", max_retries=0)


async def test_messages_non_stream_and_stream(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    c = client(fleet.url)
    try:
        msg = await trio.to_thread.run_sync(
            lambda: c.messages.create(
                model=MODEL, max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hi"}]
            )
        )

        def stream() -> tuple[str, object]:
            with c.messages.stream(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            ) as s:
                text = "".join(s.text_stream)
                return text, s.get_final_message()

        text, final = await trio.to_thread.run_sync(stream)
    finally:
        c.close()
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "end_turn"
    assert msg.content[0].text == fleet.nodes["n1"].reply and msg.usage.output_tokens > 0
    sent = fleet.nodes["n1"].requests[-2][1]
    assert (
        sent["messages"][0] == {"role": "system", "content": "Be brief."}
        and sent["options"]["num_predict"] == 64
    )
    assert text == fleet.nodes["n1"].reply
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0  # type: ignore[attr-defined]


async def test_tools_images_and_tool_results(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    c = client(fleet.url)
    png = base64.b64encode(b"\x89PNG fake").decode()
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
    try:
        msg = await trio.to_thread.run_sync(
            lambda: c.messages.create(
                model=MODEL,
                max_tokens=64,
                tools=tools,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is the weather"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": png},
                            },
                        ],
                    }
                ],
            )
        )
        call = msg.content[-1]
        assert msg.stop_reason == "tool_use" and call.type == "tool_use" and call.name == "get_weather"
        assert call.input == {"location": "Paris"}
        sent = fleet.nodes["n1"].requests[-1][1]
        assert (
            sent["messages"][0]["images"] == [png] and sent["tools"][0]["function"]["name"] == "get_weather"
        )
        await trio.to_thread.run_sync(
            lambda: c.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=[
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
                    },
                ],
            )
        )
    finally:
        c.close()
    sent = fleet.nodes["n1"].requests[-1][1]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"location": "Paris"}}
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 5, "messages": []}, "messages"),
        ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "role"),
    ],
)
async def test_bad_requests_are_anthropic_shaped(
    nursery: trio.Nursery, tmp_path: Path, body: dict, needle: str
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.post(fleet.url + "/v1/messages", content=json.dumps(body))
    assert resp.status_code == 400
    payload = resp.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert needle in payload["error"]["message"]
    resp = await fleet.http.post(
        fleet.url + "/v1/messages",
        json={**body, "model": "ghost", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"
