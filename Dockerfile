# syntax=docker/dockerfile:1
#
# The `otvi` server with this repository's provider set compiled in.
#
#   docker build -t otvi .
#   docker run --rm -p 3000:3000 -v otvi-data:/data \
#     -e OTVI_JWT_SECRET -e OTVI_SESSION_KEY -e INDEE_API_KEY otvi
#
# The provider files are compiled into the binary at build time (build.rs, from providers/,
# checked against the audit copy in generated/): a broken file fails `docker build` with the
# compiler's diagnostics, and the image needs no provider file at run time. `otvi providers`
# lists what an image holds and the secret environment variables each provider needs. A team
# ships its own provider set from its own crate (examples/team/ is a template), built the same
# way.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS builder
WORKDIR /src
COPY . .
# The registry and target directory live in BuildKit cache mounts, so a rebuild after a source
# or provider change recompiles the workspace crates only. The binary is copied out of the
# cache mount, which is not part of the image.
RUN --mount=type=cache,id=otvi-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=otvi-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=otvi-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bin otvi \
    && install -D -m 0755 target/release/otvi /out/otvi

FROM debian:${DEBIAN_SUITE}-slim
ARG DEBIAN_SUITE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="otvi" \
      org.opencontainers.image.description="otvi-flows: TV-provider login flows compiled from YAML, served over HTTP" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:${DEBIAN_SUITE}-slim"

# The binary links only libc, libm and libgcc_s (all in the base image): TLS is rustls with
# Mozilla's root certificates compiled in (reqwest `rustls-tls`, webpki-roots) and SQLite is
# bundled, so no OpenSSL, libsqlite3 or ca-certificates package is needed.
RUN groupadd --system --gid 10001 otvi \
    && useradd --system --uid 10001 --gid otvi --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin otvi \
    && mkdir -p /data \
    && chown otvi:otvi /data
COPY --from=builder /out/otvi /usr/local/bin/otvi

# The default store is a SQLite file in the /data volume, served by this one container; give
# DATABASE_URL=postgres://… to run several (docker-compose.yml).
ENV OTVI_BIND=0.0.0.0:3000 \
    DATABASE_URL="sqlite:///data/otvi.db?mode=rwc"
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 3000

# Liveness without curl or wget in the image: bash's /dev/tcp sends GET /healthz to the port of
# $OTVI_BIND on loopback and checks the status line.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${OTVI_BIND##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["otvi"]
CMD ["serve"]
