#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages replun needs to build, test and benchmark.
# Only packages that are missing are installed; nothing else is fetched.
set -euo pipefail

PKGS=(
	build-essential clang cmake pkg-config clang-format valgrind
	libsqlite3-dev sqlite3 libxml2-dev libxml2-utils libxmlrpc-core-c3-dev
	libcurl4-openssl-dev libjson-c-dev libcmocka-dev libxxhash-dev
	xfsprogs btrfs-progs util-linux e2fsprogs
	qemu-utils nbdkit libnbd-bin
	rsync perl python3 procps iproute2 coreutils curl
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "replun: missing packages: ${missing[*]}" >&2
	echo "replun: run as root (or install them with apt-get) and try again" >&2
	exit 1
fi

echo "replun: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
