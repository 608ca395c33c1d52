#!/bin/sh
# tools/need.sh NAME... : make sure the named pkg-config modules (or, for bin:CMD, commands)
# exist, installing the Debian packages that provide them when we can (root or passwordless sudo).
# Exits non-zero with a message that says exactly what to install when we cannot.
set -u
deb_for() {
    case "$1" in
    check) echo check ;;
    zlib) echo zlib1g-dev ;;
    openblas) echo libopenblas-dev ;;
    ompi-c) echo libopenmpi-dev ;;                  # Open MPI's mpi.h
    bin:mpicc | bin:mpirun) echo openmpi-bin ;; # Open MPI's compiler wrapper and launcher
    bin:clang) echo clang ;;
    bin:*) echo "${1#bin:}" ;;
    *) echo "$1" ;;
    esac
}
missing=""
pc=0
for m in "$@"; do
    case "$m" in
    bin:*) command -v "${m#bin:}" >/dev/null 2>&1 || missing="$missing $(deb_for "$m")" ;;
    *)
        pc=1
        if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$m"; then
            missing="$missing $(deb_for "$m")"
        fi
        ;;
    esac
done
[ $pc = 1 ] && ! command -v pkg-config >/dev/null 2>&1 && missing="$missing pkg-config"
[ -z "$missing" ] && exit 0
echo "nabla: installing missing packages:$missing"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "nabla: cannot install as this user; run: sudo apt-get install$missing" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "nabla: no apt-get here; install the packages that provide:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q $missing >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q $missing; } || {
    echo "nabla: apt-get could not install:$missing" >&2
    exit 1
}
