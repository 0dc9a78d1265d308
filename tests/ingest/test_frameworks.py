"""frameworks: the message shapes of agent frameworks as Langfuse logs them → canonical."""

from __future__ import annotations

import orjson

from evalpipe.ingest.frameworks import framework_input, framework_output
from tests.ingest.helpers import text_message, tool_call_part, tool_result_message


def test_vercel_ai_sdk_prompt_messages() -> None:
    # ai.prompt.messages: tool-call / tool-result parts (v4 args/result, v5 input/output)
    logged = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": [{"type": "text", "text": "Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": ""},
                {
                    "type": "tool-call",
                    "toolCallId": "call_a",
                    "toolName": "weather",
                    "args": {"city": "Paris"},
                },
                {
                    "type": "tool-call",
                    "toolCallId": "call_b",
                    "toolName": "weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-result",
                    "toolCallId": "call_a",
                    "toolName": "weather",
                    "result": 21,
                },
                {
                    "type": "tool-result",
                    "toolCallId": "call_b",
                    "toolName": "weather",
                    "output": {"type": "json", "value": {"c": 24}},
                },
            ],
        },
    ]
    issues: list[str] = []
    found = framework_input(orjson.dumps(logged).decode(), issues)
    assert found is not None and issues == []
    assert found.system == ["You are a weather bot."]
    assert found.messages == [
        text_message("user", "Paris and Rome?"),
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": ""},
                tool_call_part("call_a", "weather", {"city": "Paris"}),
                tool_call_part("call_b", "weather", {"city": "Rome"}),
            ],
        },
        tool_result_message("call_a", "21"),
        tool_result_message("call_b", '{"c":24}'),
    ]


def test_vercel_prompt_without_messages() -> None:
    found = framework_input('{"system": "Be brief.", "prompt": "Hi"}', [])
    assert found is not None
    assert (found.system, found.messages) == (["Be brief."], [text_message("user", "Hi")])


def test_vercel_output_with_tool_calls_as_a_json_string() -> None:
    calls = [
        {
            "toolCallType": "function",
            "toolCallId": "call_a",
            "toolName": "weather",
            "args": '{"city":"Paris"}',
        }
    ]
    output = {"role": "assistant", "content": "", "tool_calls": orjson.dumps(calls).decode()}
    text, got, _ = framework_output(orjson.dumps(output).decode())
    assert (text, got) == (
        "",
        [{"id": "call_a", "name": "weather", "arguments": {"city": "Paris"}}],
    )


def test_openinference_message_wrappers() -> None:
    # llm.input_messages.N.message.* as Langfuse nests them (LlamaIndex, CrewAI, ADK)
    logged = [
        {"message": {"role": "system", "content": "Answer from the docs."}},
        {
            "message": {
                "role": "user",
                "contents": [{"message_content": {"type": "text", "text": "What is RAG?"}}],
            }
        },
        {
            "message": {
                "role": "assistant",
                "tool_calls": [
                    {"tool_call": {"id": "c1", "function": {"name": "search", "arguments": "{}"}}}
                ],
            }
        },
        {"message": {"role": "tool", "content": "3 documents", "tool_call_id": "c1"}},
    ]
    found = framework_input(logged, [])
    assert found is not None
    assert found.system == ["Answer from the docs."]
    assert found.messages == [
        text_message("user", "What is RAG?"),
        {"role": "assistant", "content": [tool_call_part("c1", "search", {})]},
        tool_result_message("c1", "3 documents"),
    ]
    output = [{"message": {"role": "assistant", "content": "Retrieval-augmented generation."}}]
    assert framework_output(output)[0] == "Retrieval-augmented generation."


def test_google_adk_llm_request_and_response() -> None:
    request = {
        "model": "gemini-2.0-flash",
        "config": {
            "system_instruction": "You are a weather agent.",
            "tools": [
                {
                    "function_declarations": [
                        {
                            "name": "get_weather",
                            "description": "Weather of a city",
                            "parameters": {
                                "type": "OBJECT",
                                "properties": {"city": {"type": "STRING"}},
                                "required": ["city"],
                            },
                        }
                    ]
                }
            ],
        },
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in New York?"}]},
            {
                "role": "model",
                "parts": [
                    {
                        "function_call": {
                            "id": "adk-1",
                            "name": "get_weather",
                            "args": {"city": "New York"},
                        }
                    }
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "function_response": {
                            "id": "adk-1",
                            "name": "get_weather",
                            "response": {"status": "success", "report": "sunny"},
                        }
                    }
                ],
            },
        ],
    }
    found = framework_input(orjson.dumps(request).decode(), [])
    assert found is not None
    assert found.system == ["You are a weather agent."]
    assert found.messages == [
        text_message("user", "Weather in New York?"),
        {
            "role": "assistant",
            "content": [tool_call_part("adk-1", "get_weather", {"city": "New York"})],
        },
        tool_result_message("adk-1", '{"status":"success","report":"sunny"}'),
    ]
    assert found.tools == [
        {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    response = {
        "content": {"role": "model", "parts": [{"text": "It is sunny in New York."}]},
        "finish_reason": "STOP",
        "usage_metadata": {"prompt_token_count": 80, "candidates_token_count": 9},
    }
    assert framework_output(response) == ("It is sunny in New York.", [], "STOP")


def test_tool_result_before_its_call_keeps_its_id() -> None:
    # a trace that opens with a tool result: the call is not in the trace (trimmed history)
    logged = [
        {"role": "tool", "content": "order 42: shipped", "tool_call_id": "call_9"},
        {"role": "user", "content": "Thanks! And order 43?"},
    ]
    found = framework_input(logged, [])
    assert found is not None
    assert found.messages == [
        tool_result_message("call_9", "order 42: shipped"),
        text_message("user", "Thanks! And order 43?"),
    ]


def test_semconv_parts_messages_as_langfuse_passes_them_on() -> None:
    # Langfuse keeps gen_ai.input.messages / gen_ai.output.messages as the input and output
    logged = [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Order 42?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"id": 42}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": "shipped"}],
        },
    ]
    found = framework_input(logged, [])
    assert found is not None
    assert found.system == ["Be brief."]
    assert found.messages == [
        text_message("user", "Order 42?"),
        {"role": "assistant", "content": [tool_call_part("c1", "lookup", {"id": 42})]},
        tool_result_message("c1", "shipped"),
    ]
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It shipped."}],
            "finish_reason": "stop",
        }
    ]
    assert framework_output(output) == ("It shipped.", [], "stop")
