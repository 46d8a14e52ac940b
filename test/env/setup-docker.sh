#!/bin/bash
# Builds the two local Docker images the tests use. No registry is reachable in CI, so both
# are made from local files with `docker import`:
#
#   builder-test-busybox         busybox-static with every applet as a link in /bin, /tmp (1777),
#                                /work (1777), /etc/passwd (root, nobody 65534), /etc/group;
#                                starts in about half a second, jobs can run as --user 65534.
#   builder-test-debian:bookworm a debootstrap --variant=minbase root (about 200 MB), built from
#                                the Debian mirror this machine's apt uses.
#
# Each image is skipped when it already exists, so running this twice is cheap. A failed
# debootstrap is only a warning here: the test that needs the Debian image fails on its own,
# with its own message, in strict mode (BUILDER_TEST_STRICT=1).
#
# Needs root, a running Docker engine, busybox-static and debootstrap.
#   BUILDER_DEBIAN_MIRROR=URL   use this mirror instead of the one found in apt's sources
#   BUILDER_REBUILD_IMAGES=1    remove and rebuild both images
set -euo pipefail
# shellcheck source=test/env/busybox-root.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/busybox-root.sh"

BUSYBOX_IMAGE=builder-test-busybox
DEBIAN_IMAGE=builder-test-debian:bookworm
SUITE=bookworm

say() { printf 'setup-docker: %s\n' "$*"; }
warn() { printf 'setup-docker: WARNING: %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
  echo "setup-docker: the Docker engine is not reachable (docker info failed); start dockerd first" >&2
  exit 1
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if [ "${BUILDER_REBUILD_IMAGES:-0}" = 1 ]; then
  for img in "$BUSYBOX_IMAGE" "$DEBIAN_IMAGE"; do
    if have_image "$img"; then docker image rm -f "$img" >/dev/null && say "removed $img"; fi
  done
fi

workdir=$(mktemp -d /var/tmp/builder-setup-docker.XXXXXX)
cleanup() {
  # A failed debootstrap can leave proc/sys mounted inside its target: unmount before removing.
  awk -v w="$workdir/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$workdir"
}
trap cleanup EXIT

# Prints the first mirror URI that apt uses for the Debian suite $SUITE (main archive, not
# -security or -updates), from one-line .list files and deb822 .sources files alike.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
      awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }'
  done | head -n 1 | grep . && return 0
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas separated by blank lines; take URIs of a "deb" stanza listing $SUITE.
    awk -v suite="$SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "" && enabled != "no") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = ""; suites = ""; uris = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
        if (key == "types") types = $0
        else if (key == "suites") suites = $0
        else if (key == "uris") uris = $0
        else if (key == "enabled") enabled = tolower($0) }
      END { if (!found) flush() }' "$f"
  done | head -n 1 | grep . && return 0
  return 1
}

# ---------------------------------------------------------------------------------------------
# builder-test-busybox
if have_image "$BUSYBOX_IMAGE"; then
  say "$BUSYBOX_IMAGE: already present, skipped"
else
  # busybox-static installs /bin/busybox (a dynamically linked busybox would not run in the
  # image; the smoke test below would catch that).
  bb=/bin/busybox
  start=$(date +%s.%N)
  r="$workdir/busybox-root"
  make_busybox_root "$r"
  tar --numeric-owner --owner=0 --group=0 -C "$r" -c . |
    docker import \
      --change 'ENV PATH=/bin' \
      --change 'CMD ["/bin/sh"]' \
      - "$BUSYBOX_IMAGE" >/dev/null
  end=$(date +%s.%N)
  say "$BUSYBOX_IMAGE: built from $bb ($(find "$r/bin" -mindepth 1 | wc -l) entries in /bin) in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
  docker run --rm --user 65534:65534 "$BUSYBOX_IMAGE" sh -c 'id -u >/dev/null && echo ok >/work/x && cat /work/x' >/dev/null ||
    { echo "setup-docker: $BUSYBOX_IMAGE was built but a container of it does not run" >&2; exit 1; }
fi

# ---------------------------------------------------------------------------------------------
# builder-test-debian:bookworm
if have_image "$DEBIAN_IMAGE"; then
  say "$DEBIAN_IMAGE: already present, skipped"
else
  mirror=${BUILDER_DEBIAN_MIRROR:-}
  if [ -z "$mirror" ]; then
    mirror=$(apt_mirror || true)
    if [ -n "$mirror" ]; then
      say "using the mirror apt uses for $SUITE: $mirror"
    else
      mirror=http://deb.debian.org/debian
      say "no $SUITE entry found in apt's sources; using $mirror"
    fi
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    warn "debootstrap is not installed; $DEBIAN_IMAGE NOT built (apt-get install debootstrap)"
  else
    start=$(date +%s.%N)
    d="$workdir/debian-root"
    if debootstrap --variant=minbase "$SUITE" "$d" "$mirror" >"$workdir/debootstrap.log" 2>&1; then
      rm -rf "$d"/var/cache/apt/archives/*.deb "$d"/var/lib/apt/lists/* 2>/dev/null || true
      tar --numeric-owner -C "$d" -c . |
        docker import --change 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE" >/dev/null
      end=$(date +%s.%N)
      say "$DEBIAN_IMAGE: built with debootstrap from $mirror in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
    else
      warn "debootstrap --variant=minbase $SUITE from $mirror failed; $DEBIAN_IMAGE NOT built."
      warn "Tests that need $DEBIAN_IMAGE will fail in strict mode. Last lines of the debootstrap log:"
      tail -n 15 "$workdir/debootstrap.log" >&2 || true
      if [ -f "$d/debootstrap/debootstrap.log" ]; then tail -n 15 "$d/debootstrap/debootstrap.log" >&2 || true; fi
    fi
  fi
fi

docker image ls --format '{{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' |
  grep -E "^(${BUSYBOX_IMAGE}|${DEBIAN_IMAGE%%:*}):" | sed 's/^/setup-docker: image /' || true
