#!/bin/bash
# Prepares the btrfs file system the btrfs-ns sandbox tests use:
#
#   /var/tmp/builder-btrfs.img     a 2 GiB sparse loop file holding a btrfs file system
#   /var/tmp/builder-btrfs         its mount point (BUILDER_TEST_BTRFS; the tests default to it)
#     base                         a subvolume with a busybox-static root: / 755, /bin with every
#                                  applet as a link, /etc/passwd (root, nobody 65534), /etc/group,
#                                  /tmp 1777, /work 1777, /proc (for --mount-proc)
#     base@clean                   a read-only snapshot of base; jobs snapshot this
#
# Idempotent: when the mount point is mounted and base@clean exists it does nothing; an image
# that exists but is not mounted is mounted again; a half-made base is made again.
# Needs root, btrfs-progs, busybox-static and loop devices. Prints the mount point last.
#   BUILDER_TEST_BTRFS=DIR        mount point (default /var/tmp/builder-btrfs)
#   BUILDER_TEST_BTRFS_IMG=FILE   loop file (default /var/tmp/builder-btrfs.img)
set -euo pipefail
# shellcheck source=test/env/busybox-root.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/busybox-root.sh"

mnt=${BUILDER_TEST_BTRFS:-/var/tmp/builder-btrfs}
img=${BUILDER_TEST_BTRFS_IMG:-/var/tmp/builder-btrfs.img}
size=2G

say() { printf 'setup-btrfs: %s\n' "$*"; }
die() { printf 'setup-btrfs: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mount, mkfs.btrfs, btrfs subvolume)"
command -v mkfs.btrfs >/dev/null 2>&1 || die "mkfs.btrfs not found (apt-get install btrfs-progs)"
[ -x /bin/busybox ] || die "/bin/busybox not found (apt-get install busybox-static)"

fstype() { findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null || true; }

mkdir -p "$mnt"

if [ "$(fstype "$mnt")" = btrfs ] && [ -d "$mnt/base@clean" ]; then
  say "already set up: $mnt (base@clean present), nothing to do"
  echo "$mnt"
  exit 0
fi

# 1. The file system, mounted.
case "$(fstype "$mnt")" in
  btrfs) say "$mnt is mounted (btrfs)" ;;
  '')
    if [ -f "$img" ] && mount -o loop "$img" "$mnt" 2>/dev/null; then
      [ "$(fstype "$mnt")" = btrfs ] || { umount "$mnt"; die "$img mounted but is not btrfs"; }
      say "mounted the existing $img at $mnt"
    else
      rm -f "$img"
      truncate -s "$size" "$img"
      out=$(mkfs.btrfs -q "$img" 2>&1) || { printf '%s\n' "$out" >&2; die "mkfs.btrfs $img failed"; }
      mount -o loop "$img" "$mnt"
      say "created a $size btrfs file system in $img, mounted at $mnt"
    fi
    ;;
  *) die "$mnt is already a mount point of another file system type ($(fstype "$mnt"))" ;;
esac

if [ -d "$mnt/base@clean" ]; then
  say "base@clean present in $mnt, nothing more to do"
  echo "$mnt"
  exit 0
fi

# 2. The base subvolume (made again from scratch if a previous run stopped half-way).
if [ -e "$mnt/base" ]; then
  say "removing a half-made $mnt/base"
  btrfs -q subvolume delete "$mnt/base" 2>/dev/null || rm -rf "$mnt/base"
fi
btrfs -q subvolume create "$mnt/base"
r="$mnt/base"
make_busybox_root "$r"
mkdir -p "$r/proc"
chmod 755 "$r/proc"
chown -R 0:0 "$r"

# 3. The read-only snapshot jobs start from.
btrfs -q subvolume snapshot -r "$r" "$mnt/base@clean"
say "created subvolume base and read-only snapshot base@clean in $mnt"

# 4. Smoke test: one job the way the btrfs-ns sandbox runs it.
job="$mnt/.setup-check.$$"
btrfs -q subvolume snapshot "$mnt/base@clean" "$job"
if unshare --mount --pid --ipc --uts --fork --mount-proc="$job/proc" \
  chroot --userspec=65534:65534 "$job" /bin/sh -c 'cd /work && echo ok > out.txt' &&
  [ "$(cat "$job/work/out.txt")" = ok ]; then
  say "smoke test passed (snapshot, unshare + chroot as 65534, delete)"
else
  btrfs -q subvolume delete "$job" || true
  die "smoke test failed: a job in a snapshot of base@clean could not run"
fi
btrfs -q subvolume delete "$job"

echo "$mnt"
