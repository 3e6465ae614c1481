"""Added latency of llmtap for one request: the same requests sent sequentially over one
keep-alive connection to the scripted upstream directly and through llmtap (full telemetry:
every span exported over OTLP to a discarding receiver, metrics on). Prints p50/p90/p99.

Usage: python bench/latency.py [N]   (needs target/release/llmtap and httpx, which the openai
SDK venv of tests/run provides). Everything binds 127.0.0.1 and is stopped at the end.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import httpx
except ImportError:  # the openai SDK 3.x ships it as httpx2
    import httpx2 as httpx

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LLMTAP_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "llmtap")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Discard(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that reads and discards, so export work is real."""
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def wait(url):
    for _ in range(200):
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def run(client, url, body, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.post(url, content=body, headers={"content-type": "application/json"})
        r.read()
        lat.append((time.perf_counter() - t) * 1e6)
        assert r.status_code == 200
    return lat


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    up_port, proxy_port, otlp_port = free_port(), free_port(), free_port()
    otlp = ThreadingHTTPServer(("127.0.0.1", otlp_port), Discard)
    threading.Thread(target=otlp.serve_forever, daemon=True).start()
    env = dict(os.environ, RUST_LOG="warn", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
               OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_BSP_SCHEDULE_DELAY="200")
    up = subprocess.Popen([BIN, "mock-upstream", "--listen", f"127.0.0.1:{up_port}"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    px = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{proxy_port}", "--upstream",
                           f"http://127.0.0.1:{up_port}/v1"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(f"http://127.0.0.1:{proxy_port}/healthz")
        wait(f"http://127.0.0.1:{up_port}/v1/models")
        results = {}
        for kind, body in [
            ("non-streamed", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            ("streamed", {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
        ]:
            raw = json.dumps(body).encode()
            with httpx.Client(timeout=10) as c:
                run(c, f"http://127.0.0.1:{up_port}/v1/chat/completions", raw, 50)   # warm up
                run(c, f"http://127.0.0.1:{proxy_port}/v1/chat/completions", raw, 50)
                direct = run(c, f"http://127.0.0.1:{up_port}/v1/chat/completions", raw, N)
                via = run(c, f"http://127.0.0.1:{proxy_port}/v1/chat/completions", raw, N)
            results[kind] = {
                "direct_p50_us": round(statistics.median(direct)),
                "llmtap_p50_us": round(statistics.median(via)),
                "added_p50_us": round(statistics.median(via) - statistics.median(direct)),
                "direct_p99_us": round(pct(direct, 0.99)),
                "llmtap_p99_us": round(pct(via, 0.99)),
            }
        print(json.dumps({"requests_each": N, **results}, indent=2))
    finally:
        for p in (px, up):
            p.terminate()
            p.wait(timeout=10)
        otlp.shutdown()


if __name__ == "__main__":
    main()
