# builder post-deinstall (run by pkg with sh): the user, the group and /var/db/builder (state,
# results, token) stay, as with ports' USERS/GROUPS.
echo "builder: /var/db/builder and the builder user are kept; remove them with"
echo "  rm -rf /var/db/builder && pw userdel builder && pw groupdel builder"
