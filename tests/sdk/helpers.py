"""The official SDKs' stream helpers against llmtap's demo (its scripted upstream): openai's
`responses.stream` and `chat.completions.stream`, anthropic's `messages.stream`, each for a
text answer and for a tool call. The helpers rebuild the whole response from the events, so
a stream missing an event the API always sends (a content part announced before its deltas,
say) raises here. Prints what each helper assembled as JSON."""
import json

import anthropic
from openai import OpenAI

out = {}
oa = OpenAI(max_retries=0, timeout=30)
weather = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

# Responses: text, then a function call.
with oa.responses.stream(model="gpt-4o-mini", input="Stream a greeting.") as stream:
    deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
    final = stream.get_final_response()
out["responses_text"] = {"deltas": len(deltas), "text": final.output_text,
                         "joined": "".join(deltas), "status": final.status}
tools = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": weather}]
with oa.responses.stream(model="gpt-4o-mini", input="Weather in Lyon?", tools=tools) as stream:
    done_args = [e.arguments for e in stream
                 if e.type == "response.function_call_arguments.done"]
    final = stream.get_final_response()
calls = [i for i in final.output if i.type == "function_call"]
out["responses_tool"] = {"calls": [{"name": c.name, "arguments": json.loads(c.arguments)}
                                   for c in calls], "done_args": len(done_args)}

# Chat Completions: text, then a tool call.
with oa.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]) as stream:
    deltas = [e.delta for e in stream if e.type == "content.delta"]
    final = stream.get_final_completion()
out["chat_text"] = {"deltas": len(deltas), "text": final.choices[0].message.content,
                    "joined": "".join(deltas), "finish": final.choices[0].finish_reason}
chat_tools = [{"type": "function", "function": {"name": "get_weather",
                                                "description": "Weather for a city",
                                                "parameters": weather}}]
with oa.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Lyon?"}],
        tools=chat_tools) as stream:
    for _ in stream:
        pass
    final = stream.get_final_completion()
tc = final.choices[0].message.tool_calls or []
out["chat_tool"] = {"calls": [{"name": c.function.name,
                               "arguments": json.loads(c.function.arguments)} for c in tc],
                    "finish": final.choices[0].finish_reason}

# Anthropic Messages: text, then a tool_use block.
an = anthropic.Anthropic(max_retries=0, timeout=30, api_key="sk-ant-demo")
with an.messages.stream(model="claude-sonnet-4-5", max_tokens=256,
                        messages=[{"role": "user", "content": "Hello"}]) as stream:
    pieces = list(stream.text_stream)
    final = stream.get_final_message()
out["messages_text"] = {"deltas": len(pieces), "joined": "".join(pieces),
                        "text": "".join(b.text for b in final.content if b.type == "text"),
                        "stop": final.stop_reason}
with an.messages.stream(model="claude-sonnet-4-5", max_tokens=256,
                        messages=[{"role": "user", "content": "Weather in Lyon?"}],
                        tools=[{"name": "get_weather", "description": "Weather for a city",
                                "input_schema": weather}]) as stream:
    for _ in stream:
        pass
    final = stream.get_final_message()
out["messages_tool"] = {"calls": [{"name": b.name, "input": b.input} for b in final.content
                                  if b.type == "tool_use"], "stop": final.stop_reason}
print(json.dumps(out))
