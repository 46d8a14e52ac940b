# builder pre-install (run by pkg with sh): the builder user and group, uid/gid 497 as in the
# ports tree's UIDs/GIDs files, home /var/db/builder (made 0700 by the package's @dir entry).
if ! pw groupshow builder >/dev/null 2>&1; then
	echo "===> Creating group builder (497)"
	pw groupadd builder -g 497
fi
if ! pw usershow builder >/dev/null 2>&1; then
	echo "===> Creating user builder (497)"
	pw useradd builder -u 497 -g builder -c "builder server" -d /var/db/builder -s /usr/sbin/nologin
fi
