# The equivalent of `gt image build codex [--version V]`, for `docker build`:
#   docker build -f images/codex.Dockerfile --build-arg VERSION=0.169.0 -t gt-codex:latest .
# Build it yourself; do not redistribute the CLI. Codex's binary is static (musl); it
# needs bash at run time.
ARG VERSION=latest
FROM node:20-bookworm-slim AS cli
ARG VERSION
RUN npm install -g --no-audit --no-fund "@openai/codex@${VERSION}" \
 && bin=$(find /usr/local/lib/node_modules/@openai -type f -name codex -size +1M | head -1) \
 && cp "$bin" /codex

FROM debian:12-slim
ARG VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends git bash ca-certificates busybox \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 10001 agent && useradd -u 10001 -g 10001 -m -d /home/agent agent
COPY --from=cli /codex /usr/local/bin/codex
ENV HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin
LABEL gt.image.kind=codex gt.cli.package=@openai/codex gt.cli.version=${VERSION}
USER 10001:10001
WORKDIR /
