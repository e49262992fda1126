# The equivalent of `gt image build claude [--version V]`, for `docker build`:
#   docker build -f images/claude.Dockerfile --build-arg VERSION=2.1.332 -t gt-claude:latest .
# Claude Code's licence forbids redistributing it: build this image yourself, never
# push it. Node is needed only to fetch the package; the image runs the native binary.
ARG VERSION=latest
FROM node:20-bookworm-slim AS cli
ARG VERSION
RUN npm install -g --no-audit --no-fund "@anthropic-ai/claude-code@${VERSION}" \
 && bin=$(find /usr/local/lib/node_modules/@anthropic-ai -type f -name claude -size +1M | head -1) \
 && cp "$bin" /claude \
 && node -p "require('/usr/local/lib/node_modules/@anthropic-ai/claude-code/package.json').version" > /version

FROM debian:12-slim
ARG VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends git bash ca-certificates busybox \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 10001 agent && useradd -u 10001 -g 10001 -m -d /home/agent agent
COPY --from=cli /claude /usr/local/bin/claude
ENV HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin
LABEL gt.image.kind=claude gt.cli.package=@anthropic-ai/claude-code gt.cli.version=${VERSION}
USER 10001:10001
WORKDIR /
