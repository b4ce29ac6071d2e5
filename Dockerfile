# The operator image: a release build on the Rust toolchain image, run from a
# distroless base as a non-root user. Needs no shell and writes nothing to disk, so it
# runs with a read-only root filesystem. scripts/build-release.sh runs the build stage's
# commands outside Docker (the test suite does) and checks the result.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dbsnapshot-operator \
 && strip target/release/dbsnapshot-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dbsnapshot-operator /usr/local/bin/dbsnapshot-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dbsnapshot-operator"]
CMD ["run"]
