"""Client compatibility: the Python frameworks people point at an Ollama, against a real router with fake nodes.

langchain-ollama (ChatOllama stream and not, OllamaEmbeddings), langchain-openai (ChatOpenAI with tools over two
turns, OpenAIEmbeddings without tiktoken's context check, which would download an encoding) and litellm
(`ollama_chat/` and `openai/`). litellm is told to use its bundled cost map (it would fetch one at import).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from harness import Fleet, start_fleet

MODEL = "llama3.2:3b"


def get_weather(location: str) -> str:
    """Get the weather in a city.

    Args:
        location: the city
    """
    return f"sunny in {location}"


@pytest.fixture
def litellm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("LITELLM_LOG", "ERROR")
    import litellm as module

    module.telemetry = False
    yield module
    # litellm caches the HTTP clients it makes and never closes them: close the sync ones it holds
    cache = module.in_memory_llm_clients_cache
    held = [*getattr(cache, "cache_dict", {}).values(), vars(module).get("module_level_client")]
    for client in held:
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
    cache.flush_cache()


async def fleet_of(nursery: trio.Nursery, tmp_path: Path) -> Fleet:
    return await start_fleet(nursery, tmp_path)


async def test_langchain_ollama_chat_and_embeddings(nursery: trio.Nursery, tmp_path: Path) -> None:
    from langchain_ollama import ChatOllama, OllamaEmbeddings

    fleet = await fleet_of(nursery, tmp_path)
    reply = fleet.nodes["n1"].reply
    chat = ChatOllama(model=MODEL, base_url=fleet.url)
    message = await trio.to_thread.run_sync(lambda: chat.invoke("hi"))
    assert message.content == reply and message.usage_metadata["output_tokens"] > 0
    parts = await trio.to_thread.run_sync(lambda: list(chat.stream("hi")))
    assert "".join(str(p.content) for p in parts) == reply and len(parts) > 2
    embedder = OllamaEmbeddings(model=MODEL, base_url=fleet.url)
    vectors = await trio.to_thread.run_sync(lambda: embedder.embed_documents(["a", "b"]))
    assert len(vectors) == 2 and len(vectors[0]) > 0
    assert len(await trio.to_thread.run_sync(lambda: embedder.embed_query("a"))) == len(vectors[0])
    assert [p for p, _ in fleet.nodes["n1"].requests].count("/api/chat") == 2
    for model in (chat, embedder):
        model._client.close()  # langchain never closes the ollama client it made


async def test_langchain_openai_tools_over_two_turns_and_embeddings(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    fleet = await fleet_of(nursery, tmp_path)
    llm = ChatOpenAI(model=MODEL, base_url=fleet.url + "/v1", api_key="herd", max_retries=0)  # type: ignore[arg-type]
    with_tools = llm.bind_tools([get_weather])
    history: list[Any] = [HumanMessage("what is the weather in Paris?")]
    first = await trio.to_thread.run_sync(lambda: with_tools.invoke(history))
    call = first.tool_calls[0]  # type: ignore[attr-defined]
    assert call["name"] == "get_weather" and call["args"] == {"location": "Paris"}
    history += [first, ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"])]
    second = await trio.to_thread.run_sync(lambda: with_tools.invoke(history))
    assert second.content == fleet.nodes["n1"].reply
    sent = fleet.nodes["n1"].requests[-1][1]["messages"]
    assert sent[-1] == {"role": "tool", "content": "sunny in Paris", "tool_name": "get_weather"}
    streamed = await trio.to_thread.run_sync(lambda: "".join(str(c.content) for c in llm.stream("hi")))
    assert streamed == fleet.nodes["n1"].reply
    responses = ChatOpenAI(
        model=MODEL,
        base_url=fleet.url + "/v1",
        api_key="herd",  # type: ignore[arg-type]
        max_retries=0,
        use_responses_api=True,
    )
    answer = await trio.to_thread.run_sync(lambda: responses.invoke("hi"))
    assert answer.text == fleet.nodes["n1"].reply and answer.usage_metadata["output_tokens"] > 0  # type: ignore[index]
    responses.root_client.close()
    embedder = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=fleet.url + "/v1",
        api_key="herd",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    with pytest.raises(Exception, match=r"not found|does not exist"):  # no such model in the fleet (yet)
        await trio.to_thread.run_sync(lambda: embedder.embed_query("a"))
    await fleet.http.post(fleet.url + "/fleet/settings", json={"aliases": {"text-embedding-3-small": MODEL}})
    vector = await trio.to_thread.run_sync(lambda: embedder.embed_query("a"))
    assert len(vector) > 0
    llm.root_client.close()  # langchain never closes the openai clients it made
    embedder.client._client.close()


async def test_litellm_ollama_chat_and_openai(nursery: trio.Nursery, tmp_path: Path, litellm: Any) -> None:
    fleet = await fleet_of(nursery, tmp_path)
    reply = fleet.nodes["n1"].reply
    msgs = [{"role": "user", "content": "hi"}]
    native = await trio.to_thread.run_sync(
        lambda: litellm.completion(model=f"ollama_chat/{MODEL}", api_base=fleet.url, messages=msgs)
    )
    assert native.choices[0].message.content == reply
    chunks = await trio.to_thread.run_sync(
        lambda: list(
            litellm.completion(model=f"ollama_chat/{MODEL}", api_base=fleet.url, messages=msgs, stream=True)
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply
    openai_style = await trio.to_thread.run_sync(
        lambda: litellm.completion(
            model=f"openai/{MODEL}", api_base=fleet.url + "/v1", api_key="herd", messages=msgs, num_retries=0
        )
    )
    assert openai_style.choices[0].message.content == reply
    paths = [p for p, _ in fleet.nodes["n1"].requests]
    assert paths.count("/api/chat") == 3
