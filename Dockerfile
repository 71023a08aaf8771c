# lxcq image: the API and the worker (docker-compose.yml picks the command of each).
# Checked with `docker compose config` only; lxcq's CI has no Docker engine to build or run it.
FROM node:20-bookworm

WORKDIR /opt/lxcq/app

# Host packages (lxc, liblxc1, lxc-dev, templates, busybox-static, iptables, ...; not the tests' zsh
# and chromium), CRIU 4 (Debian 13's criu unpacked into /opt/lxcq/criu behind /usr/local/sbin/criu,
# since Debian 12's 3.17 fails on current kernels) and pnpm 10, by the same script as on a host. Not here: the bridge (the worker
# uses the host's network namespace, so lxcbr0 is the host's) and `pnpm install` (below).
# `criu check` cannot pass inside `docker build`; the worker checks CRIU again when it starts.
COPY scripts/setup-host.sh scripts/setup-host.sh
COPY package.json ./
RUN LXCQ_SETUP_BRIDGE=0 LXCQ_SETUP_PNPM_INSTALL=0 LXCQ_SETUP_TEST_PACKAGES=0 bash scripts/setup-host.sh \
  && apt-get clean && rm -rf /var/lib/apt/lists/*

# Dependencies, then the sources (TypeScript run by tsx), and the web dashboard's bundle (/ui/).
COPY . .
RUN pnpm install --frozen-lockfile --config.confirmModulesPurge=false \
  && pnpm --filter @lxcq/dashboard build

ENV NODE_ENV=production
EXPOSE 7070
# The API by default; the worker's command is `node --import tsx services/worker/src/main.ts`.
CMD ["node", "--import", "tsx", "services/api/src/server.ts"]
