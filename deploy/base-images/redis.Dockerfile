# Air-gapped stand-in for the public redis:7 image: Debian 12's redis-server 7.0,
# laid out like the official image (user "redis", data in /data, redis-server on PATH).
ARG BASE=conveyor-airgap/debian:bookworm
FROM ${BASE}
ARG DEBIAN_MIRROR=http://deb.debian.org/debian
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN echo "deb ${DEBIAN_MIRROR} bookworm main" >/etc/apt/sources.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown redis:redis /data
WORKDIR /data
EXPOSE 6379
# The Debian package picks the uid; compose runs it as `user: redis` by name, like the
# public image.
# hadolint ignore=DL3066
USER redis
CMD ["redis-server"]
