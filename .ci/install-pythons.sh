#!/usr/bin/env bash
# CI's newest interpreters: CPython 3.14 and 3.15, which pyenv here does not reach and
# python.org cannot be fetched from. Debian's unstable suite has them as binary packages,
# built against a newer glibc than this Debian 12 machine's; so the packages and everything
# they depend on (that glibc too) are unpacked into one private prefix, never installed
# system-wide, and each interpreter is pointed at that prefix's loader and libraries with
# patchelf. DT_RPATH (--force-rpath), not RUNPATH: RPATH also applies to the extension
# modules (ssl, ctypes, ...) the interpreter loads later, RUNPATH only to its own needs.
#
# usage: .ci/install-pythons.sh [PREFIX]   (default /opt/tether-pythons; root, apt-get)
# gives: PREFIX/usr/bin/python3.14 and PREFIX/usr/bin/python3.15
# Does nothing when both already start and import the modules the tests use.
set -euo pipefail
prefix=${1:-/opt/tether-pythons}
versions=(3.14 3.15)

usable() {
    local v
    for v in "${versions[@]}"; do
        "$prefix/usr/bin/python$v" -c 'import ssl, ctypes, decimal, sqlite3, venv, mmap, socket' \
            >/dev/null 2>&1 || return 1
    done
}
if usable; then
    echo "install-pythons: ${versions[*]} already usable in $prefix"
    exit 0
fi

if ! command -v patchelf >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null
fi

# apt with a state of its own: the sid package lists, an empty database of installed
# packages (so every dependency is resolved and downloaded afresh) and a private cache.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
: >"$work/status"
echo "deb http://deb.debian.org/debian sid main" >"$work/sources.list"
apt=(apt-get -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::archives=$work/archives"
     -o "Dir::State::status=$work/status" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
"${apt[@]}" update -qq
packages=()
for v in "${versions[@]}"; do packages+=("python$v" "python$v-venv"); done
"${apt[@]}" install --download-only --no-install-recommends -y -qq "${packages[@]}" >/dev/null

rm -rf "$prefix"
mkdir -p "$prefix"
for deb in "$work"/archives/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
libs=$prefix/usr/lib/x86_64-linux-gnu
for v in "${versions[@]}"; do
    exe=$prefix/usr/bin/python$v
    patchelf --set-interpreter "$libs/ld-linux-x86-64.so.2" "$exe"
    patchelf --remove-rpath "$exe"
    patchelf --force-rpath --set-rpath "$libs" "$exe"
done
usable || { echo "install-pythons: the interpreters in $prefix do not start" >&2; exit 1; }
for v in "${versions[@]}"; do
    "$prefix/usr/bin/python$v" -c 'import sys; print("install-pythons:", sys.executable, sys.version.split()[0])'
done
