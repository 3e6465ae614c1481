"""CPU per request of llmtap with the live view off, on and idle (nobody watching), and on
with a page watching (one subscriber on /ui/api/events). Three llmtap processes in front of
the same scripted upstream, full telemetry (every span exported over OTLP/HTTP to a
discarding receiver, metrics on), the same sequential requests over one keep-alive connection
each, rounds interleaved. CPU is read from the kernel's per-thread schedstat (nanoseconds).

Usage: python bench/ui_cost.py [REQUESTS_PER_ROUND] [ROUNDS]   (needs target/release/llmtap
and httpx, which the openai SDK venv of tests/run provides). Everything binds 127.0.0.1.
"""
import glob
import json
import os
import subprocess
import sys
import threading

# The same binary, OTLP sink and helpers as the latency benchmark beside this file.
from latency import BIN, Discard, ThreadingHTTPServer, free_port, httpx, wait

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def cpu_ns(pid):
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(f) as fh:
                total += int(fh.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total


def watch(url, stop):
    """A page watching: reads the event stream until told to stop."""
    with httpx.Client(timeout=None) as c:
        with c.stream("GET", url) as r:
            for _ in r.iter_lines():
                if stop.is_set():
                    return


def main():
    up_port, otlp_port = free_port(), free_port()
    otlp = ThreadingHTTPServer(("127.0.0.1", otlp_port), Discard)
    threading.Thread(target=otlp.serve_forever, daemon=True).start()
    env = dict(os.environ, RUST_LOG="warn", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
               OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_BSP_SCHEDULE_DELAY="200")
    up = subprocess.Popen([BIN, "mock-upstream", "--listen", f"127.0.0.1:{up_port}"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    variants = {"off": "false", "on, idle": "true", "on, watched": "true"}
    procs, ports = {}, {}
    for name, ui in variants.items():
        ports[name] = free_port()
        procs[name] = subprocess.Popen(
            [BIN, "--listen", f"127.0.0.1:{ports[name]}", "--upstream", f"http://127.0.0.1:{up_port}/v1",
             "--ui", ui], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        wait(f"http://127.0.0.1:{up_port}/v1/models")
        for p in ports.values():
            wait(f"http://127.0.0.1:{p}/healthz")
        watcher = threading.Thread(
            target=watch, args=(f"http://127.0.0.1:{ports['on, watched']}/ui/api/events", stop), daemon=True)
        watcher.start()
        results = {}
        for kind, body in [
            ("non-streamed", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            ("streamed", {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
        ]:
            raw = json.dumps(body).encode()
            spent = {name: 0 for name in variants}
            clients = {name: httpx.Client(timeout=10) for name in variants}
            try:
                for name in variants:  # warm up
                    for _ in range(100):
                        clients[name].post(f"http://127.0.0.1:{ports[name]}/v1/chat/completions", content=raw,
                                           headers={"content-type": "application/json"}).read()
                for _ in range(ROUNDS):
                    for name in variants:
                        url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                        before = cpu_ns(procs[name].pid)
                        for _ in range(N):
                            r = clients[name].post(url, content=raw, headers={"content-type": "application/json"})
                            r.read()
                            assert r.status_code == 200
                        spent[name] += cpu_ns(procs[name].pid) - before
            finally:
                for c in clients.values():
                    c.close()
            per = {name: spent[name] / (N * ROUNDS) / 1e3 for name in variants}
            results[kind] = {
                **{f"cpu_us_per_request ({name})": round(v, 1) for name, v in per.items()},
                "on idle / off": round(per["on, idle"] / per["off"], 3),
                "on watched / off": round(per["on, watched"] / per["off"], 3),
            }
        print(json.dumps({"requests_per_round": N, "rounds": ROUNDS, **results}, indent=2))
    finally:
        stop.set()
        for p in list(procs.values()) + [up]:
            p.terminate()
            p.wait(timeout=10)
        otlp.shutdown()


if __name__ == "__main__":
    main()
