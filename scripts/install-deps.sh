#!/usr/bin/env bash
# Install what building and testing wschat needs on Debian/Ubuntu, only when
# something is missing. As root it runs apt-get; otherwise it prints the
# exact command and fails, so nothing half-builds.
set -euo pipefail

pkgs=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v gcc >/dev/null        || pkgs+=(gcc)
command -v make >/dev/null       || pkgs+=(make)
command -v pkg-config >/dev/null || pkgs+=(pkg-config)
command -v clang >/dev/null      || pkgs+=(clang)      # libFuzzer targets
command -v python3 >/dev/null    || pkgs+=(python3)    # README's token example, run by make test
# libFuzzer's runtime is only a Recommends of clang on Debian: check it links.
fuzz_links() {
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
        clang -fsanitize=fuzzer -x c - -o /dev/null >/dev/null 2>&1
}
if ! command -v clang >/dev/null || ! fuzz_links; then pkgs+=(libclang-rt-dev); fi
if ! command -v pkg-config >/dev/null || ! have_pc libcrypto; then pkgs+=(libssl-dev); fi
if ! command -v pkg-config >/dev/null || ! have_pc check; then pkgs+=(check); fi
# The TLS test (make test-tls) puts Debian's nginx in front and makes its
# certificate with the openssl command.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || pkgs+=(nginx)
command -v openssl >/dev/null    || pkgs+=(openssl)
# The cluster suite (tests/integration/check_cluster.c) starts real Redis
# servers on loopback ports of its own.
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || pkgs+=(redis-server)

if [ ${#pkgs[@]} -eq 0 ]; then
    exit 0
fi
cmd="apt-get install -y --no-install-recommends ${pkgs[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "wschat needs: ${pkgs[*]}" >&2
    echo "run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "installing: ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
