# syntax=docker/dockerfile:1
# mirrorcast's container image: built from this repository, run as a non-root user with only the
# binary and the libraries it links (OpenSSL, libcurl for OAUTHBEARER/OIDC logins, Cyrus SASL
# for GSSAPI/Kerberos logins, zlib), Kerberos's kinit and CA certificates.
#   docker build -t mirrorcast .
#   docker run --rm mirrorcast validate /etc/mirrorcast/mm2.yaml
# The Helm chart in deploy/helm/mirrorcast runs it with the health endpoints as probes.
# Bases are pinned (the toolchain this repository is tested with, a Debian point release);
# BuildKit's cache mounts keep the crates and the build directory between builds, so a change
# to mirrorcast rebuilds mirrorcast, not librdkafka and every dependency.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=12.12

FROM rust:${RUST_VERSION}-bookworm AS build
# librdkafka is built from source by rdkafka-sys (make, a C compiler) against OpenSSL, libcurl
# (OIDC: without its headers librdkafka leaves OIDC out) and Cyrus SASL (the `kerberos` feature).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev libcurl4-openssl-dev libsasl2-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Without the `demo` feature: the local-cluster harness stays out of the production binary.
# The binary is copied out of the cached build directory (a cache mount is not in the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package mirrorcast --bin mirrorcast --no-default-features --features kerberos \
 && strip target/release/mirrorcast \
 && cp target/release/mirrorcast /usr/local/bin/mirrorcast

FROM debian:${DEBIAN_RELEASE}-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mirrorcast" \
      org.opencontainers.image.description="Cross-cluster Kafka replicator that runs MirrorMaker 2's configuration" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# krb5-user's configuration would ask for a default realm: no questions.
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 zlib1g \
      libsasl2-2 libsasl2-modules-gssapi-mit krb5-user \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mirrorcast \
 && useradd --system --uid 10001 --gid 10001 --no-create-home mirrorcast
COPY --from=build /usr/local/bin/mirrorcast /usr/local/bin/mirrorcast
USER 10001:10001
# The HTTP side (/metrics, /healthz, /readyz, the page) when run with --http 0.0.0.0:8080.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mirrorcast"]
CMD ["--help"]
