/* nn/json.c: a strict JSON reader that allocates nothing (see json.h). */
#include "nn/json.h"

#include <string.h>

void json_skip_ws(json_reader *r) {
    while (r->pos < r->len) {
        unsigned char c = r->s[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        r->pos++;
    }
}

/* 0 never starts a JSON token, so it doubles as "end of text". */
int json_peek(const json_reader *r) {
    return r->pos < r->len ? r->s[r->pos] : 0;
}

static json_status syntax(json_reader *r, const char *what) {
    r->error = what;
    return JSON_SYNTAX;
}

const char *json_type_at(const json_reader *r) {
    switch (json_peek(r)) {
    case '{':
        return "an object";
    case '[':
        return "an array";
    case '"':
        return "a string";
    case 't':
    case 'f':
        return "a boolean";
    case 'n':
        return "null";
    default:
        return "a number";
    }
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at r->pos into *u. */
static json_status read_hex4(json_reader *r, unsigned *u) {
    if (r->len - r->pos < 4) return syntax(r, "truncated \\u escape");
    *u = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit(r->s[r->pos + (size_t)i]);
        if (h < 0) return syntax(r, "bad hex digit in \\u escape");
        *u = *u * 16 + (unsigned)h;
    }
    r->pos += 4;
    return JSON_OK;
}

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses the string at r->pos (which must be '"'). With out == NULL it only validates; otherwise
 * the decoded, NUL-terminated text goes to the pool and *out points at it; *has_nul reports an
 * escaped \u0000 inside. */
json_status json_string(json_reader *r, const char **out, int *has_nul) {
    char *dst = out ? r->pool + r->pool_used : NULL;
    size_t n = 0;
    if (has_nul) *has_nul = 0;
    r->pos++; /* the opening quote */
    for (;;) {
        if (r->pos >= r->len) return syntax(r, "unterminated string");
        unsigned char c = r->s[r->pos];
        if (c == '"') break;
        if (c < 0x20) return syntax(r, "control character in string");
        if (c != '\\') {
            if (dst) dst[n] = (char)c;
            n++;
            r->pos++;
            continue;
        }
        r->pos++;
        if (r->pos >= r->len) return syntax(r, "unterminated escape");
        char e = (char)r->s[r->pos++];
        char simple = 0;
        switch (e) {
        case '"':
            simple = '"';
            break;
        case '\\':
            simple = '\\';
            break;
        case '/':
            simple = '/';
            break;
        case 'b':
            simple = '\b';
            break;
        case 'f':
            simple = '\f';
            break;
        case 'n':
            simple = '\n';
            break;
        case 'r':
            simple = '\r';
            break;
        case 't':
            simple = '\t';
            break;
        case 'u':
            break;
        default:
            r->pos--;
            return syntax(r, "unknown escape in string");
        }
        if (simple) {
            if (dst) dst[n] = simple;
            n++;
            continue;
        }
        unsigned cp;
        json_status st = read_hex4(r, &cp);
        if (st) return st;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return syntax(r, "lone low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (r->len - r->pos < 2 || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u')
                return syntax(r, "high surrogate not followed by a low one");
            r->pos += 2;
            if ((st = read_hex4(r, &lo))) return st;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return syntax(r, "high surrogate not followed by a low one");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0 && has_nul) *has_nul = 1;
        char tmp[4];
        size_t k = put_utf8(tmp, cp);
        if (dst) memcpy(dst + n, tmp, k);
        n += k;
    }
    r->pos++; /* the closing quote */
    if (dst) {
        dst[n] = '\0';
        *out = dst;
        r->pool_used += n + 1;
    }
    return JSON_OK;
}

/* Parses the number at r->pos by the JSON grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
json_status json_number_at(json_reader *r, json_number *num) {
    memset(num, 0, sizeof *num);
    num->is_int = 1;
    if (json_peek(r) == '-') {
        num->negative = 1;
        r->pos++;
    }
    int c = json_peek(r);
    if (c < '0' || c > '9') return syntax(r, "expected a value");
    if (c == '0') {
        r->pos++;
        c = json_peek(r);
        if (c >= '0' && c <= '9') return syntax(r, "leading zero in number");
    } else {
        while ((c = json_peek(r)) >= '0' && c <= '9') {
            unsigned d = (unsigned)(c - '0');
            if (num->value > (UINT64_MAX - d) / 10)
                num->too_big = 1;
            else
                num->value = num->value * 10 + d;
            r->pos++;
        }
    }
    if (json_peek(r) == '.') {
        num->is_int = 0;
        r->pos++;
        if ((c = json_peek(r)) < '0' || c > '9') return syntax(r, "expected a digit after '.'");
        while ((c = json_peek(r)) >= '0' && c <= '9') r->pos++;
    }
    if (json_peek(r) == 'e' || json_peek(r) == 'E') {
        num->is_int = 0;
        r->pos++;
        if (json_peek(r) == '+' || json_peek(r) == '-') r->pos++;
        if ((c = json_peek(r)) < '0' || c > '9')
            return syntax(r, "expected a digit in the exponent");
        while ((c = json_peek(r)) >= '0' && c <= '9') r->pos++;
    }
    return JSON_OK;
}

static json_status skip_literal(json_reader *r, const char *word) {
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0)
        return syntax(r, "expected a value");
    r->pos += n;
    return JSON_OK;
}

/* Checks the syntax of one value at r->pos (after whitespace) and moves past it; depth counts the
 * containers around it. Allocates nothing. */
json_status json_skip_value(json_reader *r, int depth, int max_depth) {
    json_skip_ws(r);
    int c = json_peek(r);
    json_status st;
    if (c == '{' || c == '[') {
        if (depth >= max_depth) {
            r->error = "nested too deeply";
            return JSON_TOO_DEEP;
        }
        char close = c == '{' ? '}' : ']';
        r->pos++;
        json_skip_ws(r);
        if (json_peek(r) == close) {
            r->pos++;
            return JSON_OK;
        }
        for (;;) {
            if (c == '{') {
                json_skip_ws(r);
                if (json_peek(r) != '"') return syntax(r, "expected a string key");
                if ((st = json_string(r, NULL, NULL))) return st;
                json_skip_ws(r);
                if (json_peek(r) != ':') return syntax(r, "expected ':'");
                r->pos++;
            }
            if ((st = json_skip_value(r, depth + 1, max_depth))) return st;
            json_skip_ws(r);
            if (json_peek(r) == ',') {
                r->pos++;
                continue;
            }
            if (json_peek(r) == close) {
                r->pos++;
                return JSON_OK;
            }
            return syntax(r, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == '"') return json_string(r, NULL, NULL);
    if (c == 't') return skip_literal(r, "true");
    if (c == 'f') return skip_literal(r, "false");
    if (c == 'n') return skip_literal(r, "null");
    if (c == '-' || (c >= '0' && c <= '9')) {
        json_number num;
        return json_number_at(r, &num);
    }
    return syntax(r, r->pos >= r->len ? "unexpected end of text" : "expected a value");
}

/* Walks the sequences, checking each lead byte and the allowed range of its continuation bytes. */
json_status json_check_utf8(const unsigned char *s, size_t len, size_t *bad_at) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0; /* no overlong 3-byte forms */
            if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90; /* no overlong 4-byte forms */
            if (c == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
        } else {
            n = 0;
        }
        int ok = n > 0 && len - i >= n;
        for (size_t k = 1; ok && k < n; k++) {
            unsigned char b = s[i + k];
            ok = b >= (k == 1 ? lo : 0x80) && b <= (k == 1 ? hi : 0xBF);
        }
        if (!ok) {
            if (bad_at) *bad_at = i;
            return JSON_UTF8;
        }
        i += n;
    }
    return JSON_OK;
}
