# syntax=docker/dockerfile:1
# The operator image: a release build on the Rust toolchain image, run from a
# distroless base as a non-root user. Needs no shell and writes nothing to disk, so it
# runs with a read-only root filesystem. scripts/build-release.sh runs the build stage's
# commands outside Docker (the test suite does) and checks the result, and that the
# workspace loads from the context .dockerignore leaves.
#
# Base images are pinned by digest (the tag is for people; the digest decides), so a
# rebuild gets the bytes that were reviewed. To move to a newer image, take its digest
# from `docker buildx imagetools inspect rust:1.95-bookworm` (the manifest list's, for
# every platform) and replace it here; scripts/build-release.sh refuses an unpinned
# default. --build-arg RUST_IMAGE=... / RUNTIME_IMAGE=... override them.
ARG RUST_IMAGE=rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts: the crates registry and the target directory survive between
# builds, so a change to the operator's sources rebuilds only the operator, not the
# ~360 crates under it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin dbsnapshot-operator \
 && cp target/release/dbsnapshot-operator /dbsnapshot-operator

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="dbsnapshot-operator" \
      org.opencontainers.image.description="Declare AWS database snapshots (Redshift, DocumentDB, ElastiCache) as Kubernetes objects" \
      org.opencontainers.image.source="https://github.com/dbsnapshot-operator/dbsnapshot-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /dbsnapshot-operator /usr/local/bin/dbsnapshot-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dbsnapshot-operator"]
CMD ["run"]
