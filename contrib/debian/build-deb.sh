#!/usr/bin/env bash
# Builds the Debian package: target/debian/postern_VERSION-1_ARCH.deb.
#   contrib/debian/build-deb.sh [cargo-deb options]
#   POSTERN_DEB_PROFILE=dev contrib/debian/build-deb.sh   # package the debug build (quick checks)
# It builds the release binary, generates what the package ships besides it (man pages and
# completions from the binary itself, the systemd unit with the packaged binary's path) into
# target/deb-assets/, then runs `cargo deb --no-build` (metadata: [package.metadata.deb] in
# Cargo.toml). Needs cargo-deb: `tests/setup-peers.sh --deb` installs the pinned version.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=${POSTERN_DEB_PROFILE:-release}
cargo build --profile "$profile" --locked --bins
bin=target/$([ "$profile" = dev ] && echo debug || echo "$profile")/postern
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/systemd"
"$bin" manuals "$assets/man"
gzip -9n "$assets"/man/*.[58]
# The unit as shipped in systemd/ points at /usr/local/bin (an install from source).
sed -e 's|/usr/local/bin/postern|/usr/bin/postern|g' \
    -e 's|file:///usr/local/share/doc/postern/INSTALL.md|man:postern(8) file:///usr/share/doc/postern/INSTALL.md|' \
    systemd/postern.service >"$assets/systemd/postern.service"
# cargo-deb maps the target/release/ asset paths to the profile's directory.
cargo deb --no-build --locked --profile "$profile" "$@"
