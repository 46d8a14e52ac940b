#!/bin/bash
# Sourced by setup-docker.sh and setup-btrfs.sh: the one busybox-static root both test
# environments start from (every applet as a link, root and nobody 65534, /tmp and /work 1777).

# make_busybox_root DIR: fills DIR, which must exist; the caller adds what its sandbox needs.
make_busybox_root() {
  local r=$1
  [ -x /bin/busybox ] || { echo "busybox not found (apt-get install busybox-static)" >&2; return 1; }
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/work" "$r/root"
  # The root must be 755: with 700 (as mktemp -d makes it) an unprivileged user gets
  # "Permission denied" for /bin/sh.
  chmod 755 "$r" "$r/bin" "$r/etc"
  chmod 1777 "$r/tmp" "$r/work"
  chmod 700 "$r/root"
  cp /bin/busybox "$r/bin/busybox"
  chmod 755 "$r/bin/busybox"
  (cd "$r/bin" && for c in $(./busybox --list); do [ -e "$c" ] || ln -s busybox "$c"; done)
  cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
PASSWD
  cat >"$r/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
  chmod 644 "$r/etc/passwd" "$r/etc/group"
}
