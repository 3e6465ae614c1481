"""A tool-calling loop through llmtap: the model asks for a tool, the app runs it and sends
the result back, until the model answers in text.

    python tools.py

llmtap sees both halves of each tool call: the model's request for it (in the response to
one call) and the app's result (in the next request, matched by tool_call_id). From the
pair it emits an `execute_tool get_weather` span and the llmtap_tool_calls_total and
llmtap_tool_duration_seconds metrics; the duration is the time the app's tool took, here
about 0.2 s.

Environment: OPENAI_BASE_URL (default http://127.0.0.1:8080/v1), OPENAI_API_KEY (default
sk-demo), OPENAI_MODEL (default gpt-4o-mini).
"""

import json
import os
import sys
import time

from openai import OpenAI

BASE_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
API_KEY = os.environ.get("OPENAI_API_KEY", "sk-demo")
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
MAX_ROUNDS = 4

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]


def get_weather(city: str = "Paris", unit: str = "celsius") -> dict:
    """The app's tool. A real one would call a weather service; this one takes 0.2 s."""
    time.sleep(0.2)
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "unit": unit,
            "conditions": "sunny"}


def run_tool(name: str, arguments: str) -> str:
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return json.dumps({"error": f"arguments are not JSON: {arguments!r}"})
    if name == "get_weather":
        return json.dumps(get_weather(**{k: v for k, v in args.items() if k in ("city", "unit")}))
    return json.dumps({"error": f"unknown tool {name}"})


def main() -> int:
    client = OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "What's the weather in Paris right now?"}]

    for round_no in range(1, MAX_ROUNDS + 1):
        last_round = round_no == MAX_ROUNDS
        response = client.chat.completions.create(
            model=MODEL,
            messages=messages,
            tools=TOOLS,
            # On the last round ask for text, so a model that keeps calling tools still ends.
            tool_choice="none" if last_round else "auto",
        )
        message = response.choices[0].message
        if not message.tool_calls:
            print(f"[round {round_no}] answer: {message.content}")
            return 0

        # The assistant turn that requested the tools must precede their results.
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name,
                                     "arguments": call.function.arguments},
                    }
                    for call in message.tool_calls
                ],
            }
        )
        for call in message.tool_calls:
            started = time.monotonic()
            result = run_tool(call.function.name, call.function.arguments)
            took = time.monotonic() - started
            print(f"[round {round_no}] tool {call.function.name}({call.function.arguments}) "
                  f"-> {result} in {took:.2f} s")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})

    print(f"no text answer after {MAX_ROUNDS} rounds", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
