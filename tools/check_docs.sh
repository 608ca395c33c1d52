#!/bin/sh
# tools/check_docs.sh BUILD: the code and output quoted in the docs are the real thing.
#
#   sh tools/check_docs.sh build          (make test runs it in every build variant)
#
# In docs/TUTORIAL.md and README.md, a fenced block right after a marker line
#   <!-- source: examples/tut_scalar.c -->    must have each line in that file
#   <!-- output: tut_scalar -->               must have each line in the output of BUILD/tut_scalar
# (lines compared with runs of blanks squeezed and ends trimmed; a line that starts with "..."
# stands for omitted text and is skipped). Public headers' examples are checked the same way
# against the example they name (below). Exits 1 naming each quoted line that is not there.
# POSIX sh and awk only.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
tmp=${TMPDIR:-/tmp}/nabla_docs.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

status=0
for doc in docs/TUTORIAL.md README.md; do
    rm -f "$tmp"/block.*
    awk -v dir="$tmp" '
        /^<!-- (source|output): [^ ]+ -->$/ { kind = $2; sub(/:$/, "", kind); name = $3; armed = 1; next }
        armed && /^```/ { armed = 0; inside = 1; n++; print kind " " name > (dir "/block." n ".meta"); next }
        inside && /^```/ { inside = 0; close(dir "/block." n ".meta"); close(dir "/block." n ".txt"); next }
        inside { print > (dir "/block." n ".txt") }
        /^[^<]/ && !inside { armed = 0 }' "$doc"
    for meta in "$tmp"/block.*.meta; do
        [ -f "$meta" ] || continue
        read -r kind name < "$meta"
        txt=${meta%.meta}.txt
        if [ "$kind" = source ]; then
            ref=$name
            [ -f "$ref" ] || { echo "check_docs: $doc quotes $ref, which does not exist"; status=1; continue; }
        else
            ref=$tmp/out
            "$build/$name" > "$ref" 2>&1 || true # its own check runs in check-run
        fi
        awk -v doc="$doc" -v what="$kind of $name" '
            function norm(s) { gsub(/[ \t]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s); return s }
            NR == FNR { have[norm($0)] = 1; next }
            { s = norm($0) }
            s == "" || s ~ /^\.\.\./ { next }
            !(s in have) { print "check_docs: " doc " quotes a line not in the " what ": " s; bad = 1 }
            END { exit bad }' "$ref" "$txt" || status=1
    done
done
# A public header whose opening example says "from examples/FILE.c" must quote that file: each
# code line of the example (up to the first line of prose; "//" and trailing "/* */" comments
# dropped, blanks squeezed, lines starting with "..." skipped) must be a line of FILE.
for h in nabla.h tensor/*.h autograd/*.h nn/*.h models/*.h io/*.h; do
    awk -v hdr="$h" '
        function norm(s) {
            sub(/[ \t]*\/\/.*$/, "", s); sub(/[ \t]*\/\*.*\*\/[ \t]*$/, "", s)
            gsub(/[ \t]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s); return s
        }
        FNR == 1 { file++ }
        file == 1 && !done {
            if (!src && match($0, /from examples\/[A-Za-z0-9_\/]+\.c/)) {
                src = substr($0, RSTART + 5, RLENGTH - 5); next
            }
            if (src && $0 ~ /^ \*   /) { line = $0; sub(/^ \*   /, "", line); q[++n] = line; next }
            if (src && n && $0 !~ /^ \*$/) done = 1
            if ($0 ~ /\*\//) done = 1
            next
        }
        END {
            if (!src) exit 0
            while ((getline l < src) > 0) have[++m] = norm(l)
            if (!m) { print "check_docs: " hdr " names " src ", which does not exist"; exit 1 }
            for (i = 1; i <= n; i++) {
                s = norm(q[i])
                if (s == "" || s ~ /^\.\.\./) continue
                found = 0
                for (j = 1; j <= m && !found; j++) if (have[j] == s) found = 1
                if (!found) { print "check_docs: " hdr "'"'"'s example has a line not in " src ": " s; bad = 1 }
            }
            exit bad
        }' "$h" || status=1
done
[ $status = 0 ] && echo "check_docs: the quoted code and output in docs/TUTORIAL.md, README.md and the headers' examples are current"
exit $status
