#!/usr/bin/env bash
# tools/install_check.sh (make install-check): `make install` into a temporary PREFIX, then
# build and run two programs outside the tree against the installed copy, with nothing but
# pkg-config's flags: examples/grad_basics.c and the one-file program in README.md (the block
# after "<!-- install-example -->"). Also checks that nabla.h includes every core header.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for h in tensor/*.h autograd/*.h nn/*.h models/*.h; do
    case $h in tensor/fastmath.h | tensor/parallel.h | *_impl.h) continue ;; esac # private helpers
    grep -q "#include \"$h\"" nabla.h || { echo "install-check: nabla.h does not include $h"; exit 1; }
done

make --no-print-directory -j2 install PREFIX="$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
mkdir "$tmp/user"
cp examples/grad_basics.c "$tmp/user/"
awk '/<!-- install-example -->/ {f = 1; next} f && /^```c/ {g = 1; next} g && /^```/ {exit} g' \
    README.md > "$tmp/user/fit.c"
[ -s "$tmp/user/fit.c" ] || { echo "install-check: no install example in README.md"; exit 1; }
cd "$tmp/user"
for p in grad_basics fit; do
    # shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
    cc -std=c11 -Wall -Wextra -pedantic -Werror "$p.c" -o "$p" $(pkg-config --cflags --libs nabla)
    ./"$p" > "$p.out" || { cat "$p.out"; echo "install-check: $p failed"; exit 1; }
done
grep -q "gradient check: ok" grad_basics.out
echo "install-check: built and ran grad_basics.c and README's fit.c against $(pkg-config --modversion nabla) in a temporary prefix"
