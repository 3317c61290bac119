#!/usr/bin/env bash
# Installs the peers the integration tests talk to — the one list of them; tests/run.sh and
# .ci/run both call this. Each peer is probed by what the tests need of it (a module import,
# `--version`, a feature probe), and only what fails its probe is installed: Debian packages
# with apt-get (as root, or through sudo), pinned PyPI packages with pip, and the npm packages
# of tests/clients/node/package-lock.json with `npm ci`. Silent when everything is present.
#
#   tests/setup-peers.sh           install what is missing
#   tests/setup-peers.sh --check   only say what is missing (exit 1 if anything is)
#   tests/setup-peers.sh --deb     also cargo-deb, for tests/deb.sh (CI)
#
# Exit status: 0 when every peer is present afterwards, 1 otherwise (naming what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK_ONLY=0
WITH_DEB=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    --deb) WITH_DEB=1 ;;
    *) echo "usage: $0 [--check] [--deb]" >&2; exit 2 ;;
  esac
done

# Pinned versions: change them here only.
CARGO_DEB_VERSION=3.8.0
PIP_PINS=(dkimpy==1.1.8 dnspython==2.9.2 pynacl==1.6.2
          deltachat-rpc-server==2.65.0 deltachat-rpc-client==2.65.0
          sievelib==1.4.1)

ok() { "$@" >/dev/null 2>&1; }
prints() { # prints NEEDLE CMD ARGS…: the command succeeds and its output contains NEEDLE
  local needle=$1; shift
  local out; out=$("$@" 2>&1) || return 1
  [[ $out == *"$needle"* ]]
}
usage_of() { [[ $("$1" -h 2>&1) == *"Usage of"* ]]; } # Go programs without --version

# --- Debian packages: "package|probe" (the probe is what the tests need of it) -------------
APT=(
  # swaks + the Perl modules for its -tls and AUTH (tests/smtp_receive.rs, imap_sessions.rs)
  "swaks|prints '=== TLS supported' swaks --support"
  "libnet-ssleay-perl|ok perl -MNet::SSLeay -e1"
  "libio-socket-ssl-perl|ok perl -MIO::Socket::SSL -e1"
  "libauthen-sasl-perl|ok perl -MAuthen::SASL -e1"
  # smtp-sink as the remote MX (tests/outbound_support); smtp-source for tests/bench
  "postfix|[[ \$(/usr/sbin/smtp-sink 2>&1) == *usage:* ]]"
  # the test DNS server (outbound, inbound_auth, ops_dns_check)
  "dnsmasq-base|prints 'Dnsmasq version' dnsmasq --version"
  # DANE (tests/outbound_dane.rs): ldns-signzone signs a test zone, unbound validates it
  "unbound|prints Version unbound -V"
  "ldnsutils|prints 'zone signer' ldns-signzone -v"
  # rspamd's checkv2 verdicts (tests/spam_rspamd.rs)
  "rspamd|ok rspamd --version"
  # the test ACME CA (tests/acme_*.rs, tls_files.rs)
  "pebble|usage_of pebble && usage_of pebble-challtestsrv"
  # IMAP clients (tests/imap_sessions.rs, client_fetchers.rs)
  "isync|prints isync mbsync --version"
  "curl|prints ' imaps ' curl --version"
  "offlineimap3|ok offlineimap --version"
  "fetchmail|ok fetchmail --version"
  # systemd-analyze verify (tests/ops_contrib.rs)
  "systemd|ok systemd-analyze --version"
  # certificates and keys (tls_files, ops_dns_check, inbound_auth, outbound_delivery)
  "openssl|prints OpenSSL openssl version"
  "ca-certificates|test -s /etc/ssl/certs/ca-certificates.crt"
  # the IMAP baseline of tests/bench; dig for DNS debugging
  "dovecot-imapd|ok dovecot --version"
  # Pigeonhole's sieve-test, the reference of tests/sieve_differential.rs
  "dovecot-sieve|test -x /usr/bin/sieve-test"
  # a ManageSieve client (tests/managesieve_clients.rs; sievelib is the other, from PyPI)
  "sieve-connect|ok test -x /usr/bin/sieve-connect"
  "dnsutils|ok dig -v"
  # contrib/fail2ban checked with fail2ban-regex and fail2ban-client (tests/ops_contrib.rs)
  "fail2ban|ok fail2ban-regex --version && test -f /etc/fail2ban/jail.conf"
  # fail2ban's systemd backend, for the jail run against a live journald (tests/ops_contrib.rs);
  # fail2ban runs on Debian's python3, so probe that one
  "python3-systemd|ok /usr/bin/python3 -c 'import systemd.journal'"
  # Python for the scripted clients and pip for the pinned modules below
  "python3|ok python3 -c 'import ssl, smtplib, imaplib'"
  "python3-pip|ok python3 -m pip --version"
  # node for ImapFlow (tests/client_imapflow.rs)
  "nodejs|prints v node --version"
  "npm|ok npm --version"
)
# Packages that start a daemon when installed: the tests start their own instances.
SERVICES=(postfix dnsmasq fail2ban dovecot unbound rspamd)

probe_apt() {
  missing_apt=()
  local entry
  for entry in "${APT[@]}"; do
    eval "${entry#*|}" >/dev/null 2>&1 || missing_apt+=("${entry%%|*}")
  done
}
probe_apt

# --- PyPI: pinned versions, probed by version and import -----------------------------------
pip_ok() {
  python3 - "${PIP_PINS[@]}" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as md
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if md.version(name) != version:
        sys.exit(1)
import dkim, dns.zone, nacl.signing, deltachat_rpc_client, deltachat_rpc_server
EOF
}

# --- npm: every package of the lock file installed at its locked version ------------------
NODE_DIR=tests/clients/node
npm_ok() {
  (cd "$NODE_DIR" && node - <<'EOF') >/dev/null 2>&1
const fs = require("fs");
const lock = JSON.parse(fs.readFileSync("package-lock.json"));
for (const [path, meta] of Object.entries(lock.packages)) {
  if (!path) continue;
  const have = JSON.parse(fs.readFileSync(path + "/package.json")).version;
  if (have !== meta.version) process.exit(1);
}
EOF
}

cargo_deb_ok() { prints "$CARGO_DEB_VERSION" cargo deb --version; }

report_missing() {
  local what=()
  [ ${#missing_apt[@]} -eq 0 ] || what+=("apt: ${missing_apt[*]}")
  pip_ok || what+=("pip: ${PIP_PINS[*]}")
  npm_ok || what+=("npm ci in $NODE_DIR")
  [ "$WITH_DEB" = 0 ] || cargo_deb_ok || what+=("cargo install cargo-deb@$CARGO_DEB_VERSION")
  if [ ${#what[@]} -gt 0 ]; then
    printf 'setup-peers: missing: %s\n' "${what[@]}" >&2
    return 1
  fi
}

if [ "$CHECK_ONLY" = 1 ]; then
  report_missing
  exit
fi
installed=0

# --- install what is missing ---------------------------------------------------------------
if [ ${#missing_apt[@]} -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    if ok command -v sudo; then
      SUDO=(sudo)
    else
      echo "setup-peers: not root and no sudo: cannot install ${missing_apt[*]}" >&2
      report_missing
      exit 1
    fi
  fi
  echo "setup-peers: installing ${missing_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Postfix asks what kind of mail system it is: none, the tests run their own.
  echo 'postfix postfix/main_mailer_type select No configuration' |
    "${SUDO[@]}" debconf-set-selections
  installed=1
  # apt's chatter only when it fails.
  apt_log=$(mktemp)
  if ! { "${SUDO[@]}" apt-get update -qq &&
      "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing_apt[@]}"; } \
      >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
  fi
  rm -f "$apt_log"
  for svc in "${SERVICES[@]}"; do
    for pkg in "${missing_apt[@]}"; do
      case "$pkg" in "$svc"*) "${SUDO[@]}" systemctl stop "$svc" >/dev/null 2>&1 || true ;; esac
    done
  done
fi

if ! pip_ok; then
  echo "setup-peers: pip install ${PIP_PINS[*]}" >&2
  # Debian's own python3 refuses pip outside a venv (PEP 668) unless told; the pins are
  # exact, and pip installs as the current user when site-packages is not writable.
  installed=1
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
    "${PIP_PINS[@]}"
fi

if ! npm_ok; then
  echo "setup-peers: npm ci in $NODE_DIR" >&2
  installed=1
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

if [ "$WITH_DEB" = 1 ] && ! cargo_deb_ok; then
  echo "setup-peers: cargo install cargo-deb@$CARGO_DEB_VERSION" >&2
  installed=1
  cargo install --locked --quiet "cargo-deb@$CARGO_DEB_VERSION"
fi

# Probe again what was installed: it must now pass the probes the tests use.
if [ "$installed" = 1 ]; then
  probe_apt
  report_missing
fi
