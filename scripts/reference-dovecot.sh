#!/usr/bin/env bash
# Runs Debian's Dovecot 2.3 in the foreground as a reference server for the whole-server
# tests, to check the tests themselves (not used by CI):
#   apt-get install dovecot-imapd dovecot-pop3d dovecot-lmtpd
#   NODE_TEST_SERVER_CMD="$PWD/scripts/reference-dovecot.sh" cargo test -p tests --test imap_clients
# The test harness sets IMAP_PORT, IMAPS_PORT, POP3_PORT, POP3S_PORT, LMTP_PORT, PASSWD,
# CERT, KEY and DATA_DIR and runs this in the test's own temporary directory.
set -euo pipefail
dir="$PWD/dovecot"
mkdir -p "$dir/run" "$dir/state" "$DATA_DIR"
# Dovecot refuses uid 0 for mail: mail runs as the package's `dovecot` user when root.
if [[ $(id -u) -eq 0 ]]; then mail_user=dovecot; else mail_user=$(id -un); fi
chmod 755 "$PWD"
chmod 644 "$PASSWD" "$CERT"
chown -R "$mail_user" "$DATA_DIR"
cat > "$dir/dovecot.conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
log_path = /dev/stderr
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <$CERT
ssl_key = <$KEY
disable_plaintext_auth = no
auth_username_format = %n
mail_location = maildir:$DATA_DIR/%n
mail_uid = $mail_user
mail_gid = $(id -gn $mail_user)
first_valid_uid = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {
  driver = passwd-file
  args = $PASSWD
}
userdb {
  driver = static
  args = uid=$mail_user gid=$(id -gn $mail_user) home=$DATA_DIR/%n
}
service imap-login {
  inet_listener imap {
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = $IMAPS_PORT
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = $POP3S_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    port = $LMTP_PORT
  }
}
namespace inbox {
  inbox = yes
  separator = /
}
CONF
exec dovecot -F -c "$dir/dovecot.conf"
