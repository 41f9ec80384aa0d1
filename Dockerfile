# syntax=docker/dockerfile:1
# Switchboard image: one image for the planner, the applier and ctl (docs/packaging.md).
#
# Build stage: the toolchain the native modules (better-sqlite3, netlink) compile with, the
# devDependencies, and `npm run build` (dist/); then the devDependencies are pruned away.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/
COPY bin bin
COPY migrations migrations
COPY libs libs
COPY services services
RUN node scripts/build.mjs \
    && npm prune --omit=dev --no-audit --no-fund \
    && node -e "require('better-sqlite3'); require('netlink')"

# Runtime stage: dist/, production node_modules and bin/ only (no sources, no compiler), plus the
# kernel tools the applier runs (iptables-restore, ipset, nft, conntrack) and ipvsadm/iproute2
# for an operator looking at a node.
FROM node:20-bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables ipset ipvsadm nftables conntrack iproute2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
         --shell /usr/sbin/nologin switchboard \
    && install -d -o 10001 -g 10001 /data
WORKDIR /opt/switchboard
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY --from=build /src/bin bin
COPY examples examples
ENV NODE_ENV=production
# The planner and ctl run as this unprivileged user (the planner's log lives in /data). The
# applier programs the host's kernel: it runs as root with NET_ADMIN and NET_RAW only, e.g.
# compose.yaml's applier-host (user "0", cap_add, network_mode host) or a DaemonSet with
# runAsUser 0 and capabilities.add; see docs/packaging.md.
USER 10001:10001
ENTRYPOINT ["/opt/switchboard/bin/switchboard"]
CMD ["--help"]
