#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, services on loopback, fmt, clippy, rustdoc,
# tests.
#
# Installs the Debian packages the tests need when run as root (otherwise prints the exact install
# line and fails), starts pcscd (the vpcd driver inside it becomes the "Virtual PCD 00 00" reader the
# virtual card plugs into), runs the checks, and stops every service it started by PID, also on failure.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PACKAGES=(pcscd libpcsclite-dev vsmartcard-vpcd mosquitto openssl pkg-config opensc libengine-pkcs11-openssl pkcs11-provider mosquitto-clients gnutls-bin qemu-system-arm python3-pykcs11)
INSTALL_LINE="apt-get update && apt-get install -y --no-install-recommends ${PACKAGES[*]}"
# Debian 12 has pkcs11-provider (OpenSSL 3's PKCS#11 provider) in bookworm-backports only: this file
# adds that suite, from the mirror the machine already uses for bookworm (apt installs from it only
# what the main suites lack: backports never replace a package of the release).
BACKPORTS=/etc/apt/sources.list.d/iotsafe-bookworm-backports.sources
add_backports() {
    grep -q '^VERSION_CODENAME=bookworm$' /etc/os-release 2>/dev/null || return 0
    local uris
    uris=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 == "bookworm" {print $1}' | sort -u)
    grep -q 'bookworm-backports' <(apt-get indextargets --format '$(RELEASE)') && return 0
    [[ -n "$uris" ]] || { echo "no bookworm mirror configured for apt" >&2; return 1; }
    echo "== adding bookworm-backports (for pkcs11-provider) in $BACKPORTS"
    printf '%s\n' 'Types: deb' "URIs: ${uris//$'\n'/ }" 'Suites: bookworm-backports' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$BACKPORTS"
}

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "== installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        add_backports
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    else
        echo "missing Debian packages: ${missing[*]}" >&2
        echo "run as root: $INSTALL_LINE" >&2
        echo "(on Debian 12, pkcs11-provider comes from bookworm-backports: add that suite first)" >&2
        exit 1
    fi
fi

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/iotsafe-test.XXXXXX")
STARTED_PIDS=()
cleanup() {
    local status=$?
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if ((status != 0)) && [[ -f "$RUN_DIR/pcscd.log" ]]; then
        echo "== pcscd log (last 20 lines)"; tail -n 20 "$RUN_DIR/pcscd.log" || true
    fi
    rm -rf "$RUN_DIR"
    exit "$status"
}
trap cleanup EXIT INT TERM

# pcscd: one per machine. Reuse a running one (and leave it running); otherwise start ours.
pcscd_pid() { [[ -r /run/pcscd/pcscd.pid ]] && tr -dc 0-9 </run/pcscd/pcscd.pid; }
existing=$(pcscd_pid || true)
if [[ -n "$existing" ]] && kill -0 "$existing" 2>/dev/null; then
    echo "== pcscd already running (pid $existing), using it"
else
    echo "== starting pcscd"
    rm -f /run/pcscd/pcscd.comm /run/pcscd/pcscd.pid 2>/dev/null || true
    pcscd --foreground --error >"$RUN_DIR/pcscd.log" 2>&1 &
    STARTED_PIDS+=($!)
    for _ in $(seq 100); do [[ -S /run/pcscd/pcscd.comm ]] && break; sleep 0.05; done
    [[ -S /run/pcscd/pcscd.comm ]] || { echo "pcscd did not come up" >&2; exit 1; }
fi
export IOTSAFE_TEST_PCSCD=1
export IOTSAFE_TEST_VPCD="127.0.0.1:35963"
# Tests that need these services fail (instead of skipping) when this is set.
export IOTSAFE_REQUIRE_SERVICES=1
# The pcscd-restart test runs a private pcscd in a mount namespace of its own (so that killing it
# leaves the one above alone), which needs CAP_SYS_ADMIN. Where the machine forbids that (an
# unprivileged container), that one test is skipped, and said so here.
if unshare --mount true 2>/dev/null; then
    export IOTSAFE_PRIVATE_PCSCD=1
else
    echo "== NOTE: 'unshare --mount' is not permitted here: the pcscd-restart test will be skipped"
    export IOTSAFE_PRIVATE_PCSCD=0
fi
export IOTSAFE_TEST_RUN_DIR="$RUN_DIR"
# The shared records of the cards' volatile key slots (iotsafe_core::slots): in this run's folder,
# removed with it, rather than one folder per test card left in /run/lock/iotsafe.
export IOTSAFE_LOCK_DIR="$RUN_DIR/slot-locks"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
echo "== iotsafe-core, iotsafe-rustls and iotsafe-soft without std, for microcontrollers (docs/mcu.md)"
MCU_TARGETS=(thumbv7em-none-eabihf thumbv7m-none-eabi)
if command -v rustup >/dev/null; then
    rustup target add "${MCU_TARGETS[@]}" >/dev/null
fi
for target in "${MCU_TARGETS[@]}"; do
    cargo clippy -p iotsafe-core --no-default-features --features at-core,embedded-io \
        --target "$target" -- -D warnings
    cargo clippy -p iotsafe-rustls --no-default-features --target "$target" -- -D warnings
    cargo clippy -p iotsafe-soft --target "$target" -- -D warnings
    # The QEMU firmware (its own workspace and target dir; tests/tests/mcu_qemu.rs runs it).
    cargo clippy --manifest-path examples/mcu/Cargo.toml --locked --release --target "$target" \
        -- -D warnings
done
cargo fmt --manifest-path examples/mcu/Cargo.toml -- --check
echo "== cargo test"
cargo test --workspace --all-features
echo "== benchmark smoke (each zero-latency bench once)"
cargo test -p iotsafe-tests --all-features --benches
