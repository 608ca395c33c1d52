#!/bin/sh
# tools/check_api.sh: keeps docs/API.md in step with the public headers.
#
#   tools/check_api.sh             check: exit 1 naming every function declared in a header but
#                                  missing from the page, or listed on the page but no longer
#                                  declared (run by `make test`)
#   tools/check_api.sh --missing   print the missing entries as page lines, grouped by header,
#                                  ready to paste into docs/API.md
#   tools/check_api.sh --generate  print the whole page, regenerated from the headers
#
# A public function is a non-static function declared at file scope in tensor/, autograd/, nn/,
# models/ or io/ headers, or a lowercase function-like macro that wraps none (ag_backward);
# tools/api_extract.awk finds them. A page entry is a line "- `<declaration>`: <text>" under a
# "## `<header>`" heading; the check compares (header, name) pairs. POSIX sh and awk only.
set -eu
cd "$(dirname "$0")/.."
PAGE=docs/API.md

# Headers in reading order: the core from the bottom up, then any other header in those folders.
first="tensor/base.h tensor/tensor.h tensor/rng.h tensor/kernels.h tensor/gemm.h
autograd/autograd.h autograd/gradcheck.h nn/params.h nn/layers.h nn/module.h nn/loss.h
nn/dist.h nn/init.h nn/optim.h nn/checkpoint.h nn/safetensors.h nn/json.h models/vae.h"
headers=""
for h in $first; do [ -f "$h" ] && headers="$headers $h"; done
for h in tensor/*.h autograd/*.h nn/*.h models/*.h io/*.h; do
    case " $headers " in *" $h "*) ;; *) [ -f "$h" ] && headers="$headers $h" ;; esac
done

tmp=${TMPDIR:-/tmp}/nabla_api.$$
trap 'rm -f "$tmp".*' EXIT
# shellcheck disable=SC2086
awk -f tools/api_extract.awk $headers > "$tmp.decl"

# Page lines for declarations read on stdin (the awk output), grouped under their headers.
entries() {
    awk -F '\t' '
        $1 != cur { if (cur != "") print ""; print "## `" $1 "`"; print ""; cur = $1 }
        { printf "- `%s`%s\n", $3, ($4 != "" ? ": " $4 : "") }'
}

case "${1:-}" in
--generate)
    cat <<'HEAD'
# nabla's API, one line per function

Every public function, by header, in reading order: the tensor core, autograd, nn, the VAE,
then the file formats outside the core. The headers are the contract (shapes, ownership,
errors); each line here is a declaration and the first sentence of its header comment. The
page is checked against the headers by `tools/check_api.sh` in `make test`; after changing a
header, `tools/check_api.sh --missing` prints the lines to add (or `--generate` the whole page).

HEAD
    entries < "$tmp.decl"
    exit 0
    ;;
--missing | "") ;;
*)
    echo "usage: tools/check_api.sh [--missing | --generate]" >&2
    exit 2
    ;;
esac

[ -f "$PAGE" ] || { echo "check_api: $PAGE does not exist (tools/check_api.sh --generate > $PAGE)"; exit 1; }
# (header, name) pairs listed on the page
awk '
    /^## `/ { h = $0; sub(/^## `/, "", h); sub(/`.*/, "", h); next }
    /^- `/ && h != "" {
        s = $0; sub(/^- `/, "", s); sub(/`.*/, "", s)
        p = index(s, "("); if (p == 0) next
        s = substr(s, 1, p - 1); sub(/[ \t]+$/, "", s); sub(/.*[^A-Za-z0-9_]/, "", s)
        print h "\t" s
    }' "$PAGE" | sort -u > "$tmp.page"
cut -f 1,2 "$tmp.decl" | sort -u > "$tmp.have"

if [ "${1:-}" = "--missing" ]; then
    awk -F '\t' 'NR == FNR { listed[$1 "\t" $2] = 1; next } !(($1 "\t" $2) in listed)' \
        "$tmp.page" "$tmp.decl" | entries
    exit 0
fi

missing=$(comm -23 "$tmp.have" "$tmp.page")
stale=$(comm -13 "$tmp.have" "$tmp.page")
status=0
if [ -n "$missing" ]; then
    echo "check_api: declared in a header but missing from $PAGE:"
    echo "$missing" | awk -F '\t' '{ print "  " $1 ": " $2 }'
    status=1
fi
if [ -n "$stale" ]; then
    echo "check_api: listed in $PAGE but not declared in that header:"
    echo "$stale" | awk -F '\t' '{ print "  " $1 ": " $2 }'
    status=1
fi
if [ $status = 0 ]; then
    echo "check_api: $PAGE lists all $(wc -l < "$tmp.have" | tr -d ' ') public functions"
else
    echo "check_api: tools/check_api.sh --missing prints the lines to add"
fi
exit $status
