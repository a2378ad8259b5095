#!/usr/bin/env bash
# Prepares this machine for a make target, so that `make run` and
# `make test` work on a fresh Debian machine with nothing installed by
# hand. As root it installs the missing Debian packages and mounts tracefs;
# as another user it says what is missing and how to get it, and goes on
# (what needs root is then skipped or refused, with a reason).
#
#   scripts/setup.sh run        the collector (make run)
#   scripts/setup.sh generate   bpf2go's compiler (make generate)
#   scripts/setup.sh test       everything the tests use (make test)
#
# CONTPROF_SKIP_SETUP=1 skips it all.
set -euo pipefail

mode=${1:-test}
[[ ${CONTPROF_SKIP_SETUP:-0} == 1 ]] && exit 0

# command -> Debian package providing it, per mode. Why each is needed:
#   clang, llvm-strip, libbpf headers: bpf2go compiles the BPF C programs;
#   bpftool: BTF dumps; perf: the profilers are compared with perf record;
#   wrk: HTTP load; ip, tc, nft: network-namespace scenarios; curl: README
#   examples; gcc, g++: test workloads; python3: a second-language HTTP
#   server; readelf, nm: symbolization checks; chromium: the web UI's
#   browser tests; java, javac: HotSpot tests; node: V8 tests; setpriv:
#   tests that run the collector unprivileged.
declare -A generate_pkgs=(
  [clang]=clang [llvm-strip]=llvm [bpftool]=bpftool [make]=make
)
declare -A test_pkgs=(
  [clang]=clang [llvm-strip]=llvm [bpftool]=bpftool [make]=make
  [perf]=linux-perf [wrk]=wrk [ip]=iproute2 [tc]=iproute2 [nft]=nftables
  [curl]=curl [gcc]=gcc [g++]=g++ [python3]=python3 [readelf]=binutils [nm]=binutils
  [chromium]=chromium [java]=default-jdk-headless [javac]=default-jdk-headless
  [node]=nodejs [setpriv]=util-linux
)
# Files (not commands) and their packages.
declare -A generate_files=([/usr/include/bpf/bpf_helpers.h]=libbpf-dev)
declare -A test_files=([/usr/include/bpf/bpf_helpers.h]=libbpf-dev)

missing=()
add_missing() {
  local p
  for p in "${missing[@]}"; do [[ $p == "$1" ]] && return; done
  missing+=("$1")
}
check() {
  local -n cmds=$1 files=$2
  local c f
  for c in "${!cmds[@]}"; do
    command -v "$c" >/dev/null 2>&1 || add_missing "${cmds[$c]}"
  done
  for f in "${!files[@]}"; do
    [[ -e $f ]] || add_missing "${files[$f]}"
  done
}

case $mode in
  run) ;;
  generate) check generate_pkgs generate_files ;;
  test) check test_pkgs test_files ;;
  *) echo "setup.sh: unknown mode '$mode' (run, generate or test)" >&2; exit 2 ;;
esac

# Go is not installed from Debian: the module needs a newer one.
if ! command -v "${GO:-go}" >/dev/null 2>&1; then
  echo "setup: Go is not on PATH; install Go $(sed -n 's/^go //p' "$(dirname "$0")/../go.mod") or newer from https://go.dev/dl/ (e.g. into /usr/local/go, then PATH=/usr/local/go/bin:\$PATH)" >&2
  exit 1
fi

root=0
[[ $(id -u) == 0 ]] && root=1

if ((${#missing[@]})); then
  if ((root)) && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages for 'make $mode': ${missing[*]}" >&2
    echo "setup:   install them as root: apt-get install ${missing[*]}  (or run 'sudo make $mode', which does it)" >&2
    echo "setup:   without them the tests that need them are skipped" >&2
  fi
fi

# tracefs: the classic tracepoint flavours of the BPF programs need it, as
# production hosts have it.
if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
  if ((root)); then
    echo "setup: mounting tracefs on /sys/kernel/tracing"
    mount -t tracefs tracefs /sys/kernel/tracing
  else
    echo "setup: tracefs is not mounted; as root: mount -t tracefs tracefs /sys/kernel/tracing" >&2
  fi
fi

if ((!root)) && [[ $mode != generate ]]; then
  echo "setup: not root: eBPF profiling (tasks, HTTP monitor, network) needs root or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH;" >&2
  echo "setup:   the collector runs without them (metrics only, tasks refused with the reason) and the eBPF tests skip (fail with CONTPROF_REQUIRE_EBPF=1)" >&2
fi
exit 0
