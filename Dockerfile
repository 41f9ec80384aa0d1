# Switchboard image: the CLI with its runtime dependencies (planner, applier, ctl share it).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ipset ipvsadm nftables iptables iproute2 conntrack python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/switchboard
COPY package.json package-lock.json ./
RUN npm ci --omit=dev || npm ci
COPY . .
ENTRYPOINT ["/opt/switchboard/bin/switchboard"]
