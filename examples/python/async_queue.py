"""Keeping one trace across an async boundary (the seed article's pitfall 3).

A producer starts a span and puts a job on a queue; a worker thread picks the job up later
and calls the model through llmtap. Without help, the worker's call would start a new,
unconnected trace. Here the producer injects its W3C trace context into the message
(`_trace_ctx`, the same field the article uses for SQS), the worker extracts it and
continues the trace, and the OpenAI call carries a `traceparent` header (extra_headers),
which llmtap honours: its `chat <model>` span becomes a child of the worker's span, in the
producer's trace.

    python async_queue.py
    # prints the trace id; look it up in Grafana > Explore > Tempo

The queue is an in-process queue.Queue carrying JSON strings, to stand in for SQS, Pub/Sub,
RabbitMQ or a Celery broker: only the serialized message crosses the boundary.

The example's own spans are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is
set and opentelemetry-exporter-otlp-proto-http is installed (the compose collector
listens on http://127.0.0.1:4318), so Tempo shows producer -> worker -> llmtap as one
trace. Otherwise they are kept in memory and printed at the end.

Environment: OPENAI_BASE_URL (default http://127.0.0.1:8080/v1), OPENAI_API_KEY (default
sk-demo), OPENAI_MODEL (default gpt-4o-mini), OTEL_EXPORTER_OTLP_ENDPOINT (optional).
"""

import json
import os
import queue
import sys
import threading

from openai import OpenAI
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

BASE_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
API_KEY = os.environ.get("OPENAI_API_KEY", "sk-demo")
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


def setup_tracing() -> tuple[TracerProvider, InMemorySpanExporter | None]:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "async-queue-example"}))
    memory = None
    exported = False
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Reads OTEL_EXPORTER_OTLP_ENDPOINT itself and appends /v1/traces.
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            exported = True
        except ImportError:
            print("opentelemetry-exporter-otlp-proto-http is not installed; "
                  "keeping spans in memory", file=sys.stderr)
    if not exported:
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return provider, memory


tracer = trace.get_tracer("llmtap.examples.async_queue")


def publish(jobs: "queue.Queue[str]", text: str) -> str:
    """Producer: start the trace and put the job, with its trace context, on the queue."""
    with tracer.start_as_current_span("summarize-jobs publish", kind=SpanKind.PRODUCER) as span:
        span.set_attribute("messaging.system", "in-process")
        span.set_attribute("messaging.destination.name", "summarize-jobs")
        carrier: dict[str, str] = {}
        inject(carrier)  # W3C: {"traceparent": "00-<trace id>-<span id>-01", maybe "tracestate"}
        jobs.put(json.dumps({"text": text, "_trace_ctx": carrier}))
        return format(span.get_span_context().trace_id, "032x")


def work(jobs: "queue.Queue[str]", client: OpenAI, results: list) -> None:
    """Worker: continue the producer's trace and call the model through llmtap."""
    message = json.loads(jobs.get())
    parent = extract(message.get("_trace_ctx", {}))
    with tracer.start_as_current_span("summarize-jobs process", context=parent,
                                      kind=SpanKind.CONSUMER) as span:
        # The trace context of this span, as HTTP headers for llmtap. (With
        # opentelemetry-instrumentation-httpx installed this would happen by itself.)
        headers: dict[str, str] = {}
        inject(headers)
        response = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "You are a technical summarizer."},
                {"role": "user", "content": f"Summarize: {message['text']}"},
            ],
            max_tokens=100,
            extra_headers=headers,
        )
        results.append({
            "worker_trace_id": format(span.get_span_context().trace_id, "032x"),
            "traceparent_sent": headers.get("traceparent"),
            "answer": response.choices[0].message.content,
        })
    jobs.task_done()


def main() -> int:
    provider, memory = setup_tracing()
    client = OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=120)
    jobs: "queue.Queue[str]" = queue.Queue()
    results: list = []

    worker = threading.Thread(target=work, args=(jobs, client, results))
    worker.start()
    trace_id = publish(jobs, "OpenTelemetry context must cross queues explicitly.")
    print(f"producer trace id: {trace_id}")
    worker.join(timeout=180)
    provider.shutdown()  # flush the exporter

    if not results:
        print("the worker did not finish", file=sys.stderr)
        return 1
    r = results[0]
    print(f"worker trace id:   {r['worker_trace_id']}")
    print(f"traceparent sent to llmtap: {r['traceparent_sent']}")
    print(f"answer: {r['answer']}")
    if memory is not None:
        for s in memory.get_finished_spans():
            parent = format(s.parent.span_id, "016x") if s.parent else "-"
            print(f"  span {s.name!r}: trace {format(s.context.trace_id, '032x')} "
                  f"span {format(s.context.span_id, '016x')} parent {parent}")
    same = r["worker_trace_id"] == trace_id and trace_id in (r["traceparent_sent"] or "")
    print("one trace: producer -> worker -> llmtap" if same else "trace was NOT continued")
    print(f"llmtap's span is in trace {trace_id}: search it in Grafana (Explore > Tempo).")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
