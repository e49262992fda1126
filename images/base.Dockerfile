# The equivalent of `gt image build base`, for those who prefer `docker build`
# (it pulls debian:12-slim from a registry; `gt image build` needs none).
#   docker build -f images/base.Dockerfile -t gt-base:latest .
# gt itself is mounted into every agent container at /usr/local/bin/gt by gt sling.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git bash ca-certificates busybox \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 10001 agent && useradd -u 10001 -g 10001 -m -d /home/agent agent
ENV HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin
LABEL gt.image.kind=base
USER 10001:10001
WORKDIR /
