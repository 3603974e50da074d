# syntax=docker/dockerfile:1

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /app

# The whole workspace: every member must be present for Cargo to resolve it.
COPY . .

# Registry and target dir live in BuildKit cache mounts, so rebuilds only
# recompile what changed. The binary is copied out of the mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/app/target \
    cargo build --release --locked -p beacon \
 && install -D -m 0755 target/release/beacon /out/beacon

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system beacon \
 && useradd --system --gid beacon --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin beacon

COPY --from=builder /out/beacon /usr/local/bin/beacon

ENV BEACON_COLLECTOR_ADDR=0.0.0.0:8080 \
    BEACON_API_ADDR=0.0.0.0:8000 \
    BEACON_ADMIN_ADDR=0.0.0.0:9090

# collector, API/dashboard, admin (health + metrics)
EXPOSE 8080 8000 9090

USER beacon
# Ready = the admin listener's /readyz answers 200 (BEACON_ADMIN_ADDR, 9090 above).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
  CMD ["/usr/local/bin/beacon", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/beacon"]
CMD ["all"]
