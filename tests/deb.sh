#!/usr/bin/env bash
# The Debian package, end to end (CI runs this after the test suite, as root): build it, install
# it with dpkg -i, use it from /usr/bin, check its files, user and data directory, then remove
# and purge it — remove must keep the data, purge must delete it.
#
# It installs a package and creates a system user: run it on a throwaway machine. It refuses to
# start when postern is already installed or /var/lib/postern exists.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
fail() { echo "tests/deb.sh: FAILED: $*" >&2; exit 1; }
step() { echo "tests/deb.sh: $*" >&2; }

if dpkg-query -W -f='${Status}' postern 2>/dev/null | grep installed >/dev/null || [ -e /var/lib/postern ]; then
  fail "postern is installed or /var/lib/postern exists here; this test installs and purges the package"
fi

step "building the package"
contrib/debian/build-deb.sh --quiet
deb=$(ls -t target/debian/postern_*.deb | head -1)
[ -f "$deb" ] || fail "no .deb in target/debian"

# The package points /usr/sbin/sendmail at postern only where no other MTA ships that file.
# Exercise the link: move another MTA's sendmail aside for the test, and put it back after.
aside=""
if [ -e /usr/sbin/sendmail ] && [ ! -L /usr/sbin/sendmail ]; then
  aside=/usr/sbin/sendmail.deb-test
  "${SUDO[@]}" mv /usr/sbin/sendmail "$aside"
fi
tmp=$(mktemp -d)
cleanup() {
  "${SUDO[@]}" dpkg --purge postern >/dev/null 2>&1 || true
  if [ -n "$aside" ]; then "${SUDO[@]}" mv "$aside" /usr/sbin/sendmail; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step "installing $deb"
"${SUDO[@]}" dpkg -i "$deb" >/dev/null

step "using it from /usr/bin"
version=$(/usr/bin/postern --version)
[[ $version == "postern "*" (commit "* || $version == *"(unknown commit)" ]] ||
  fail "postern --version printed: $version"
/usr/bin/postern --config "$tmp/postern.toml" init --domain example.org \
  --hostname mail.example.org --data-dir "$tmp/data" >"$tmp/init.out" 2>&1 ||
  { cat "$tmp/init.out" >&2; fail "postern init"; }
grep -q 'IN MX    10 mail.example.org.' "$tmp/init.out" || fail "init printed no MX record"
# Captured first: `cmd | grep -q` closes the pipe at the first match, and the writer then
# fails with EPIPE, which pipefail turns into a failure.
out=$(/usr/bin/postern check --help) || fail "postern check --help"
grep -q 'Usage: postern check' <<<"$out" || fail "postern check --help"
[ "$(readlink -f /usr/sbin/sendmail)" = /usr/bin/postern ] || fail "/usr/sbin/sendmail is not postern"
out=$(/usr/sbin/sendmail --help) || fail "sendmail --help"
grep -q 'sendmail' <<<"$out" || fail "sendmail --help"

step "checking files, user and data directory"
files=$(dpkg -L postern)
for f in /usr/bin/postern /etc/postern/postern.example.toml \
  /usr/share/man/man8/postern.8.gz /usr/share/man/man8/postern-user-add.8.gz \
  /usr/share/man/man5/postern.toml.5.gz \
  /usr/share/bash-completion/completions/postern /usr/share/zsh/vendor-completions/_postern \
  /usr/share/fish/vendor_completions.d/postern.fish /usr/share/doc/postern/INSTALL.md; do
  grep -qx "$f" <<<"$files" || fail "$f is not in the package"
  [ -e "$f" ] || fail "$f was not installed"
done
unit=$(grep -E '^(/usr)?/lib/systemd/system/postern.service$' <<<"$files") ||
  fail "the systemd unit is not in the package"
grep -q '^ExecStart=/usr/bin/postern serve' "$unit" || fail "$unit does not run /usr/bin/postern"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" 2>"$tmp/verify" || { cat "$tmp/verify" >&2; fail "systemd-analyze verify"; }
fi
dpkg-query -W -f='${Conffiles}' postern | grep ' /etc/postern/postern.example.toml ' >/dev/null ||
  fail "postern.example.toml is not a conffile"
zcat /usr/share/man/man5/postern.toml.5.gz | grep 'data_dir' >/dev/null || fail "postern.toml(5) lacks data_dir"
getent passwd postern | grep ':/var/lib/postern:/usr/sbin/nologin$' >/dev/null || fail "no postern system user"
[ "$(stat -c '%U:%G %a' /var/lib/postern)" = "postern:postern 750" ] ||
  fail "/var/lib/postern is $(stat -c '%U:%G %a' /var/lib/postern), not postern:postern 750"
systemctl is-enabled postern >/dev/null 2>&1 && fail "the service was enabled without a config"

step "remove keeps config and data; reinstall overwrites neither"
echo "mail" | "${SUDO[@]}" tee /var/lib/postern/marker >/dev/null
echo "# mine" | "${SUDO[@]}" tee /etc/postern/postern.toml >/dev/null
"${SUDO[@]}" dpkg -r postern >/dev/null
[ -f /var/lib/postern/marker ] || fail "dpkg -r deleted data"
[ -f /etc/postern/postern.toml ] || fail "dpkg -r deleted the config"
[ -e /usr/bin/postern ] && fail "dpkg -r left /usr/bin/postern"
[ -e /usr/sbin/sendmail ] && fail "dpkg -r left /usr/sbin/sendmail"
"${SUDO[@]}" dpkg -i "$deb" >/dev/null
[ "$(cat /var/lib/postern/marker)" = mail ] || fail "reinstalling touched the data"
[ "$(cat /etc/postern/postern.toml)" = "# mine" ] || fail "reinstalling touched the config"

step "purge deletes them"
"${SUDO[@]}" dpkg --purge postern >/dev/null
[ -e /var/lib/postern ] && fail "purge left /var/lib/postern"
[ -e /etc/postern ] && fail "purge left /etc/postern"
step "ok"
