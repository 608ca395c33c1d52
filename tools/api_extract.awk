# tools/api_extract.awk: lists the functions a C header declares, for tools/check_api.sh.
#
#   awk -f tools/api_extract.awk tensor/tensor.h autograd/autograd.h ...
#
# prints one line per public function: header TAB name TAB signature TAB description, where
# the description is the first sentence of the declaration's trailing comment, else of the
# comment right above it. "Public functions" are the non-static function declarations at file
# scope, plus the lowercase function-like macros that are not wrappers of a declared function
# (ag_backward, nb_fail): what a user calls. Static inline helpers and typedefs are skipped.
# POSIX awk only (mawk, gawk, busybox).

function trim(s) {
    gsub(/[ \t\n]+/, " ", s)
    sub(/^ /, "", s)
    sub(/ $/, "", s)
    return s
}

# Removes __attribute__((...)) with its nested parentheses.
function strip_attributes(s,    i, depth, c, out, p) {
    while ((p = index(s, "__attribute__")) > 0) {
        out = substr(s, 1, p - 1)
        i = p + length("__attribute__")
        depth = 0
        for (; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (c == "(") depth++
            else if (c == ")") { depth--; if (depth == 0) { i++; break } }
        }
        s = out substr(s, i)
    }
    return s
}

# Where the first sentence of s ends: the first ". ", "; " or ": X" (X a capital or "(") outside
# parentheses, so a summary never stops inside "(... e.g. ...)" with its parenthesis open; 0: none.
function sentence_end(s,    i, c, depth) {
    depth = 0
    for (i = 1; i < length(s); i++) {
        c = substr(s, i, 1)
        if (c == "(") depth++
        else if (c == ")" && depth > 0) depth--
        else if (depth == 0 && (c == "." || c == ";") && substr(s, i + 1, 1) == " ") return i
        else if (depth == 0 && c == ":" && substr(s, i + 1, 2) ~ /^ [A-Z(]$/) return i
    }
    return 0
}

# First sentence of a comment, at most 110 characters, without the comment markers.
function sentence(s,    p) {
    s = trim(s)
    sub(/^\/\* ?/, "", s)
    sub(/ ?\*\/$/, "", s)
    gsub(/ \* /, " ", s)
    s = trim(s)
    if (s ~ /^-+ /) return ""  # a section banner
    p = sentence_end(s)
    if (p > 0) s = substr(s, 1, p)
    sub(/[.:;]$/, "", s)
    if (length(s) > 110) s = substr(s, 1, 107) "..."
    return s
}

function emit_stmt(    s, p, name, sig) {
    s = trim(strip_attributes(stmt))
    stmt = ""
    if (s == "" || s ~ /^(typedef|static|struct|enum|union)[ {]/ || s ~ /^extern "C"/) return
    p = index(s, "(")
    if (p == 0) return  # a variable
    name = substr(s, 1, p - 1)
    sub(/[ \t]+$/, "", name)
    if (name ~ /[^A-Za-z0-9_]$/) return  # e.g. a function pointer variable "(*f)"
    sub(/.*[^A-Za-z0-9_]/, "", name)
    if (name == "") return
    sig = s
    sub(/;$/, "", sig)
    nfn++
    fn_header[nfn] = FILENAME
    fn_name[nfn] = name
    fn_sig[nfn] = sig
    fn_desc[nfn] = above != "" ? sentence(above) : ""
    fn_line[nfn] = FNR
    declared[FILENAME SUBSEP name] = 1
    last_fn = nfn
}

FNR == 1 { nfiles++; files[nfiles] = FILENAME; in_comment = 0; stmt = ""; depth = 0; cont = 0; above = ""; comment_end = -10; last_fn = 0 }

{
    line = $0
    if (cont) { cont = line ~ /\\$/; next }  # the rest of a multi-line #define
    if (!in_comment && line ~ /^[ \t]*#/) {
        cont = line ~ /\\$/
        if (stmt ~ /^[ \t]*$/ && line ~ /^[ \t]*#[ \t]*define[ \t]+[a-z][A-Za-z0-9_]*\(/) {
            m = line
            sub(/^[ \t]*#[ \t]*define[ \t]+/, "", m)
            name = substr(m, 1, index(m, "(") - 1)
            nmac++
            mac_header[nmac] = FILENAME
            mac_name[nmac] = name
            mac_sig[nmac] = name "(" substr(m, index(m, "(") + 1, index(m, ")") - index(m, "(") - 1) ")"
            mac_desc[nmac] = (comment_end == FNR - 1 && above != "") ? sentence(above) : ""
        }
        next
    }
    if (!in_comment && stmt ~ /^[ \t]*$/ && comment_end < FNR - 1) above = ""
    i = 1
    n = length(line)
    while (i <= n) {
        c = substr(line, i, 1)
        two = substr(line, i, 2)
        if (in_comment) {
            if (two == "*/") {
                in_comment = 0
                ctext = ctext "*/"
                i += 2
                if (trailing) {
                    if (last_fn) fn_desc[last_fn] = sentence(ctext)
                } else {
                    above = ctext
                    comment_end = FNR
                }
                continue
            }
            ctext = ctext c
            i++
            continue
        }
        if (two == "/*") {
            in_comment = 1
            ctext = "/*"
            trailing = last_fn && fn_line[last_fn] == FNR && stmt ~ /^[ \t]*$/
            i += 2
            continue
        }
        if (two == "//") break
        if (c == "{") depth++
        if (c == "}") {
            depth--
            if (depth == 0 && stmt !~ /^[ \t]*(typedef|struct|enum|union)/) {
                stmt = ""  # the end of an inline function's body
                i++
                continue
            }
        }
        stmt = stmt c
        if (c == ";" && depth == 0) emit_stmt()
        i++
    }
    if (!in_comment) {
        if (stmt !~ /^[ \t]*$/) stmt = stmt " "
    } else {
        ctext = ctext " "
    }
}

END {
    for (f = 1; f <= nfiles; f++) {
        for (i = 1; i <= nfn; i++)
            if (fn_header[i] == files[f])
                printf "%s\t%s\t%s\t%s\n", fn_header[i], fn_name[i], fn_sig[i], fn_desc[i]
        for (i = 1; i <= nmac; i++)
            if (mac_header[i] == files[f] && !((mac_header[i] SUBSEP mac_name[i]) in declared))
                printf "%s\t%s\t%s\t%s\n", mac_header[i], mac_name[i], mac_sig[i], mac_desc[i]
    }
}
