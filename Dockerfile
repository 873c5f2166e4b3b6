# One image for every role of a moemu cluster: `moemu coordinator scenario.yaml`, `moemu node --join ws://…`, or any
# other command (`moemu run`, `moemu chaos`, …). Multi-stage: the build stage compiles with the dev dependencies,
# the run stage has the production ones and the compiled code only. Without a reachable registry, make a base image
# first (cluster/docker/base-image.sh) and pass it: docker build --network host --build-arg BASE_IMAGE=moemu-base:bookworm .
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY bench ./bench
COPY test/checkers ./test/checkers
RUN npm run build

FROM ${BASE_IMAGE} AS run
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY scenarios ./scenarios
# A numeric user that owns nothing but the run folder (works on any base image, with or without useradd).
RUN mkdir -p /app/runs && chown 10001:10001 /app/runs
USER 10001:10001
VOLUME /app/runs
# Healthy while the moemu process of the container (pid 1) runs and its last heartbeat file is recent: a node writes
# it at every heartbeat, a coordinator at every watchdog round (MOEMU_HEALTH_FILE).
ENV MOEMU_HEALTH_FILE=/tmp/moemu-health
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD node /app/dist/src/cli/main.js health || exit 1
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["--help"]
