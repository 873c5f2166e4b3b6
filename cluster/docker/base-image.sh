#!/usr/bin/env bash
# Makes a local base image for the Dockerfile where no image registry is reachable (CI, this project's machines):
# Debian bookworm (debootstrap --variant=minbase) with this machine's node and npm, npm's config and the CA file it
# names, imported as one layer. Where a registry is reachable, use node:20-bookworm-slim instead (the Dockerfile's
# default BASE_IMAGE) and skip this. Usage: cluster/docker/base-image.sh [tag] (default moemu-base:bookworm);
# does nothing when the tag exists. Needs root, debootstrap and a running Docker engine.
set -euo pipefail
tag=${1:-moemu-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag: already there"
  exit 0
fi
node=$(command -v node)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")   # …/node_modules/npm
root=$(mktemp -d /tmp/moemu-base-XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
install -m 0755 "$node" "$root/usr/bin/node"
mkdir -p "$root/usr/lib/node_modules"
cp -a "$npm_dir" "$root/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
# npm's own settings (registry, cafile) and the CA bundle they name, so `npm ci` in the image reaches the registry
# as it does here
globalconfig=$(npm config get globalconfig)
if [ -f "$globalconfig" ]; then
  mkdir -p "$root$(dirname "$globalconfig")"
  cp "$globalconfig" "$root$globalconfig"
fi
cafile=$(npm config get cafile)
if [ -n "$cafile" ] && [ "$cafile" != null ] && [ -f "$cafile" ]; then
  mkdir -p "$root$(dirname "$cafile")"
  cp "$cafile" "$root$cafile"
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
chmod 0755 "$root"   # mktemp made it 0700: the image's / must be open to its non-root user
tar -C "$root" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
echo "base image $tag: made (Debian bookworm minbase, node $("$node" --version))"
