# syntax=docker/dockerfile:1
# Sluice: one image for `sluice serve` (the default command), `sluice worker` and `sluice loadtest`.
#
#   docker build -t sluice .
#
# Stage 1 builds a release binary with the Swift runtime linked statically; stage 2 is a slim
# Debian with only libhiredis, running as an unprivileged user.

ARG SWIFT_VERSION=6.1
FROM swift:${SWIFT_VERSION}-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that source changes do not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
COPY lua ./lua
COPY data ./data
RUN swift build -c release --product sluice --static-swift-stdlib \
    && install -m 0755 "$(swift build -c release --show-bin-path)/sluice" /usr/local/bin/sluice

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis0.14 tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin sluice
COPY --from=build /usr/local/bin/sluice /usr/local/bin/sluice
USER 10001:10001
ENV SLUICE_HOST=0.0.0.0 \
    SLUICE_PORT=8080
EXPOSE 8080
# `sluice healthcheck` needs no curl in the image; the worker's compose/k8s checks use --port 9090 --path /healthz.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 CMD ["sluice", "healthcheck", "--path", "/readyz"]
ENTRYPOINT ["sluice"]
CMD ["serve"]
