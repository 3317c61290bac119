#!/usr/bin/env bash
# Runs Dovecot's imaptest (https://github.com/dovecot/imaptest, MIT) against a fresh postern:
# its scripted conformance tests (src/tests/, 71 groups), then its random stress mode
# (10 clients on 20 accounts). A local tool, not part of CI: it clones and builds imaptest.
#
#   tests/imaptest/run.sh [scripted|stress|both]     (default: both)
#
# Environment:
#   IMAPTEST_DIR   where imaptest is cloned and built (default /tmp/imaptest-build)
#   IMAPTEST_REPO  git URL or path to clone from (default https://github.com/dovecot/imaptest)
#   LOG_DIR        where the full outputs are kept (default /tmp/postern-imaptest-logs)
#   STRESS_SECS    stress run length (default 30)
#   STRESS_ARGS    more imaptest arguments for the stress run, e.g.
#                  "users=5 qresync copy=30,5 search=30" or "logout=0 random"
#   PORT           IMAP port of an already running server to test instead of starting postern
#                  (e.g. Dovecot for a baseline); then USER_FMT/PASS give the accounts.
#
# The build needs libdovecot headers (Debian: dovecot-dev autoconf automake libtool
# pkg-config). imaptest's HEAD needs Dovecot 2.4; with Debian 12's 2.3.19 we build commit
# 924f619 (2022-03), the last before the 2.4 API changes, with two small source fixups (the
# Debian package backports an extra imap_parser_create() argument).
#
# Exit status: non-zero if any scripted group failed or the stress run printed "Error:".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mode="${1:-both}"
IMAPTEST_DIR="${IMAPTEST_DIR:-/tmp/imaptest-build}"
IMAPTEST_REPO="${IMAPTEST_REPO:-https://github.com/dovecot/imaptest}"
STRESS_SECS="${STRESS_SECS:-30}"
IMAPTEST="$IMAPTEST_DIR/src/imaptest"
export LD_LIBRARY_PATH=/usr/lib/dovecot

build_imaptest() {
  [ -x "$IMAPTEST" ] && return
  if [ ! -f /usr/include/dovecot/imap-parser.h ]; then
    echo "imaptest needs libdovecot headers: apt-get install -y dovecot-dev autoconf automake libtool pkg-config" >&2
    exit 2
  fi
  [ -d "$IMAPTEST_DIR/.git" ] || git clone -q "$IMAPTEST_REPO" "$IMAPTEST_DIR"
  cd "$IMAPTEST_DIR"
  if grep -q 'dovecot_config_version = 2\.3' /usr/lib/dovecot/dovecot-config 2>/dev/null ||
    dpkg-query -W -f '${Version}' dovecot-dev 2>/dev/null | grep -q ':2\.3'; then
    git checkout -q 924f619
    # Debian 12's 2.3.19 takes a 4th imap_parser_create() argument (struct imap_parser_params).
    sed -i 's/imap_parser_create(\(.*\), (size_t)-1);/imap_parser_create(\1, (size_t)-1, NULL);/' \
      src/commands.c src/imap-client.c src/test-parser.c
  fi
  ./autogen.sh >/dev/null 2>&1
  ./configure --with-dovecot=/usr/lib/dovecot >/dev/null
  make -j2 >/dev/null
  cd - >/dev/null
}

build_imaptest

tmp="$(mktemp -d)"
logs="${LOG_DIR:-/tmp/postern-imaptest-logs}"
mkdir -p "$logs"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "${PORT:-}" ]; then
  (cd "$root" && cargo build --bins -q)
  bin="$root/target/debug/postern"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  cat >"$tmp/postern.toml" <<EOF
domain = "example.test"
hostname = "mail.example.test"
data_dir = "$tmp/data"
[listen]
smtp = ["127.0.0.1:$(free)"]
submission = []
submissions = []
imap = ["127.0.0.1:$PORT"]
imaps = []
pop3 = []
pop3s = []
http = []
managesieve = []
[tls]
source = "self-signed"
[imap]
allow_plaintext_auth = true
[limits]
max_connections_per_ip = 200
max_auth_failures = 1000
[dns]
nameservers = ["127.0.0.1:9"]
EOF
  mkdir -p "$tmp/data"
  for i in $(seq 1 20) "" ; do
    printf 'pass\n' | "$bin" --config "$tmp/postern.toml" user add "u$i@example.test" \
      --password-stdin --allow-short-password >/dev/null
  done
  POSTERN_LOG=${POSTERN_LOG:-warn} "$bin" --config "$tmp/postern.toml" serve 2>"$logs/postern.log" &
  pid=$!
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "postern did not start:" >&2
      cat "$logs/postern.log" >&2
      exit 2
    fi
    sleep 0.1
  done
  USER_FMT="u%d@example.test"
  PASS=pass
  SCRIPT_USER="u@example.test"
fi
USER_FMT="${USER_FMT:-u%d@example.test}"
PASS="${PASS:-pass}"
SCRIPT_USER="${SCRIPT_USER:-u@example.test}"

status=0
if [ "$mode" != stress ]; then
  echo "== imaptest scripted tests ($IMAPTEST_DIR/src/tests) on port $PORT"
  "$IMAPTEST" host=127.0.0.1 port="$PORT" user="$SCRIPT_USER" pass="$PASS" \
    test="$IMAPTEST_DIR/src/tests" >"$logs/scripted.log" 2>&1 || true
  grep -v '^$' "$logs/scripted.log" | tail -n 200
  grep -q ' 0 failed' "$logs/scripted.log" || status=1
fi
if [ "$mode" != scripted ]; then
  python3 "$here/mkmbox.py" "$IMAPTEST_DIR/src/tests" "$tmp/stress.mbox"
  echo "== imaptest stress: 10 clients, 20 accounts, ${STRESS_SECS}s on port $PORT"
  "$IMAPTEST" host=127.0.0.1 port="$PORT" user="$USER_FMT" pass="$PASS" users=20 clients=10 \
    secs="$STRESS_SECS" mbox="$tmp/stress.mbox" ${STRESS_ARGS:-} >"$logs/stress.log" 2>&1 || true
  grep -E '^(Error|Warning|Panic|Fatal)' "$logs/stress.log" | sort | uniq -c | sort -rn | head -40 || true
  tail -n 4 "$logs/stress.log"
  errors=$(grep -c '^Error:' "$logs/stress.log" || true)
  echo "stress: $errors Error: lines"
  [ "$errors" = 0 ] || status=1
fi
if [ -n "$pid" ] && [ -s "$logs/postern.log" ]; then
  echo "== postern warnings/errors"
  grep -E 'WARN|ERROR' "$logs/postern.log" | tail -n 20 || true
fi
exit $status
