# syntax=docker/dockerfile:1
#
# llmtap container image.
#
#   docker build -t llmtap .
#   docker run --rm -p 8080:8080 -e LLMTAP_UPSTREAM=https://api.openai.com/v1 llmtap
#   docker run --rm -p 8080:8080 llmtap demo          # built-in scripted upstream
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

# ---- build -------------------------------------------------------------------------------
# Same Debian release as the runtime image below, so the binary links against the glibc it
# will run with. The toolchain version is pinned so `--locked` builds are reproducible; the
# slim image already has gcc for the crates that build C (ring, zstd-sys).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependency downloads in their own layer, rebuilt only when Cargo.toml or Cargo.lock
# change. Cargo reads every target the manifest names before it fetches, so the fetch runs
# against placeholder sources (add one here if Cargo.toml gains a target with its own path).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/sse_parse.rs \
    && cargo fetch --locked \
    && rm -rf src benches

# The real sources. The downloaded crates come from the layer above (a cache mount on the
# registry would hide it); target/ is a BuildKit cache mount, so compiled dependencies
# survive between builds and a source change recompiles llmtap alone. Cargo judges
# staleness by file mtimes, and a checkout of older sources can carry older mtimes than the
# cached build, so the crate roots are touched: llmtap itself is always recompiled, its
# dependencies are not. The cache mount is not part of the image, so the binary is copied
# out of it in the same step.
COPY . .
RUN --mount=type=cache,target=/src/target,sharing=locked \
    touch src/main.rs \
    && if [ -f src/lib.rs ]; then touch src/lib.rs; fi \
    && cargo build --release --locked --bin llmtap \
    && install -D -m 0755 target/release/llmtap /out/llmtap

# ---- runtime -----------------------------------------------------------------------------
# Distroless: glibc, libgcc, CA certificates (for HTTPS upstreams) and nothing else: no
# shell, no package manager. The :nonroot tag's user is uid/gid 65532 (`nonroot`).
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=build /out/llmtap /usr/local/bin/llmtap

# In a container the proxy must listen on every interface, not on the loopback default.
ENV LLMTAP_LISTEN=0.0.0.0:8080 \
    LLMTAP_LOG_FORMAT=json
EXPOSE 8080

# Numeric, not `nonroot:nonroot`: Kubernetes' runAsNonRoot can only verify a numeric
# user, and the host need not know the name (hadolint DL3066).
USER 65532:65532

# There is no curl in the image, so the binary checks itself: `llmtap healthcheck` exits 0
# when GET /healthz answers 200. It targets http://127.0.0.1:8080/healthz; if you move the
# listen port, set LLMTAP_HEALTHCHECK_URL to match. A container running `mock-upstream`
# has no /healthz: docker-compose.yml gives it its own check (--url .../v1/models).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/llmtap", "healthcheck"]

# Exec form, no shell: llmtap is PID 1 and receives SIGTERM from `docker stop` directly.
# It then stops accepting, lets in-flight streams finish for up to LLMTAP_SHUTDOWN_TIMEOUT
# seconds (default 30), flushes telemetry and exits 0. Give `docker stop -t` / compose's
# stop_grace_period more than that, or the drain is cut short by SIGKILL. No init (tini)
# is needed: llmtap handles SIGTERM/SIGINT itself and starts no child processes.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/llmtap"]
