#!/bin/bash
# Usage: node.sh HOSTNAME SHARED_DIRS PRIVATE_DIR ETC_DIR CMD...   (SHARED_DIRS: colon-separated)
# Runs CMD as one host of the test cluster. The caller has entered the host's network namespace and made new UTS
# and mount namespaces (`nsenter --net=... unshare --uts --mount`); here the host gets its hostname, the cluster's
# /etc/hosts and an empty resolv.conf from ETC_DIR (names resolve like on a real cluster, and nothing waits on a
# DNS server it cannot reach), its own /tmp (PRIVATE_DIR) and /dev/shm, as a real node has, while SHARED_DIR stays
# at the same path on every host (the cluster's shared file system: job scripts, output and endpoint files; the
# checkout and its Python, when they live under /tmp too).
# The mounts go away with the namespace's last process.
set -euo pipefail
name=$1 shared=$2 private=$3 etc=$4
shift 4
hostname "$name"
mount --make-rprivate /
mount --bind "$etc/hosts" /etc/hosts
mount --bind "$etc/resolv.conf" /etc/resolv.conf
IFS=: read -ra shared_dirs <<<"$shared"
for dir in "${shared_dirs[@]}"; do
    if [[ "$dir" == /tmp/* ]]; then
        mkdir -p "$private${dir#/tmp}"
        mount --bind "$dir" "$private${dir#/tmp}"
    fi
done
mount --rbind "$private" /tmp
mount -t tmpfs -o size=2g,mode=1777 shm /dev/shm
exec "$@"
