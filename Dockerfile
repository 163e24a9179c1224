# syntax=docker/dockerfile:1
#
# kafka-rebalance-exporter image.
#
#   docker build -t kafka-rebalance-exporter \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BRANCH=$(git rev-parse --abbrev-ref HEAD) .
#
# The default (last) stage is the exporter; `--target loadgen` builds the
# demo load generator used by docker-compose.yml. Both are static binaries
# on distroless, running as the unprivileged "nonroot" user (65532).
#
# e2e/dockerfile_test.go runs the build stage's RUN commands as written, so a
# change here that breaks the build or the version stamping fails the tests.

# Keep in step with the go directive of go.mod (e2e/dockerfile_test.go checks).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=
ARG BRANCH=
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /out/exporter -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION} -X github.com/prometheus/common/version.Branch=${BRANCH} -X github.com/prometheus/common/version.BuildUser=docker -X github.com/prometheus/common/version.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)" ./cmd/exporter
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /out/loadgen -ldflags "-s -w" ./cmd/loadgen

FROM gcr.io/distroless/static-debian12:nonroot AS loadgen
COPY --from=build /out/loadgen /usr/local/bin/loadgen
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/loadgen"]

FROM gcr.io/distroless/static-debian12:nonroot AS exporter
COPY --from=build /out/exporter /usr/local/bin/exporter
USER 65532:65532
EXPOSE 9308
ENTRYPOINT ["/usr/local/bin/exporter"]
