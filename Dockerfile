# mirrorcast's container image: built from this repository, run as a non-root user with only the
# binary and the libraries it links (OpenSSL, libcurl for OAUTHBEARER/OIDC logins, Cyrus SASL
# for GSSAPI/Kerberos logins, zlib), Kerberos's kinit and CA certificates.
#   docker build -t mirrorcast .
#   docker run --rm mirrorcast validate /etc/mirrorcast/mm2.yaml
# The Kubernetes manifests in deploy/kubernetes run it with the health endpoints as probes.

FROM rust:1-bookworm AS build
# librdkafka is built from source by rdkafka-sys (make, a C compiler) against OpenSSL, libcurl
# (OIDC: without its headers librdkafka leaves OIDC out) and Cyrus SASL (the `kerberos` feature).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev libcurl4-openssl-dev libsasl2-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Without the `demo` feature: the local-cluster harness stays out of the production binary.
RUN cargo build --release --locked --package mirrorcast --bin mirrorcast --no-default-features --features kerberos \
 && strip target/release/mirrorcast

FROM debian:bookworm-slim
# krb5-user's configuration would ask for a default realm: no questions.
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 zlib1g \
      libsasl2-2 libsasl2-modules-gssapi-mit krb5-user \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home mirrorcast
COPY --from=build /src/target/release/mirrorcast /usr/local/bin/mirrorcast
USER 10001
# The HTTP side (/metrics, /healthz, /readyz, the page) when run with --http 0.0.0.0:8080.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mirrorcast"]
CMD ["--help"]
