# rampart in a container: a build stage with the Rust toolchain, a runtime stage with the one
# binary and nothing else (no shell, no package manager), running as a non-root user.
# No home, key or token is in the image: a network's home comes from a volume or from
# Kubernetes Secrets, mounted at /var/lib/rampart/home (docs/deploy.md).
#   docker build -t rampart .
#   docker run --rm -v "$PWD/rampart-home:/var/lib/rampart/home" -p 8443:8443 rampart
# Pin the bases by digest (image@sha256:…) where builds must be reproducible.
FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Building needs nothing but the toolchain: protoc comes from a crate (.cargo/config.toml).
RUN cargo build --release --locked -p rampart \
    && strip target/release/rampart

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rampart /usr/local/bin/rampart
ENV RAMPART_HOME=/var/lib/rampart/home
# 65532: distroless's nonroot user, by number so that the runtime needs no passwd lookup.
USER 65532:65532
EXPOSE 8443
# Probes: GET https://…:8443/_rampart/health (gateway; no credentials); a node answers it in
# plain HTTP on --health-listen. The image has no client to run a Docker HEALTHCHECK with.
ENTRYPOINT ["/usr/local/bin/rampart"]
CMD ["gateway", "--listen", "0.0.0.0:8443"]
