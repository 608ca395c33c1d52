/* nn/json.h: a small strict JSON reader for file headers (safetensors), allocating nothing.
 *
 *   json_reader r = {.s = text, .len = n};
 *   if (json_check_utf8(text, n, &at) != JSON_OK) ...        // bad byte at `at`
 *   if (json_skip_value(&r, 0, 64) != JSON_OK) ...           // r.error says what, r.pos where
 *   r.pos = 0; r.pool = buf; r.pool_used = 0;                // then walk it with the helpers:
 *   json_skip_ws(&r); if (json_peek(&r) == '"') json_string(&r, &s, &has_nul);
 *
 * The grammar is RFC 8259 exactly: no comments, no trailing commas, no leading zeros, no lone
 * surrogates in \u escapes. A syntax check (json_skip_value) comes first; a caller that walks the
 * text afterwards may then rely on the structure (a ':' after each key, ',' or a closer after each
 * value). Decoded strings are written to a caller's pool: a string never decodes to more bytes
 * than it occupies in the text, quotes included, so a pool of len + 1 bytes always suffices. */
#ifndef NB_JSON_H
#define NB_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JSON_OK = 0, JSON_SYNTAX, JSON_TOO_DEEP, JSON_UTF8 } json_status;

typedef struct {
    const unsigned char *s; /* the text (len bytes), not NUL-terminated */
    size_t len, pos;        /* pos: where reading is, or where the last error is */
    const char *error;      /* static description of the last error, or NULL */
    char *pool;             /* where json_string decodes (len + 1 bytes suffice) */
    size_t pool_used;
} json_reader;

typedef struct {
    int is_int;     /* no fraction and no exponent */
    int negative;   /* a leading '-' */
    int too_big;    /* the integer part does not fit in 64 bits */
    uint64_t value; /* magnitude of the integer part (when !too_big) */
} json_number;

/* Checks that s[0..len) is UTF-8 (no overlong forms, surrogates or code points past U+10FFFF);
 * on JSON_UTF8 *bad_at is the offset of the first bad sequence. */
json_status json_check_utf8(const unsigned char *s, size_t len, size_t *bad_at);

/* Checks the syntax of one value at r->pos (leading whitespace allowed) and moves past it; depth
 * is the number of containers already open, max_depth the limit. Returns JSON_SYNTAX or
 * JSON_TOO_DEEP with r->error and r->pos set. */
json_status json_skip_value(json_reader *r, int depth, int max_depth);

/* Moves past spaces, tabs and line ends. */
void json_skip_ws(json_reader *r);
/* The byte at r->pos, or 0 at the end. */
int json_peek(const json_reader *r);
/* "an object", "an array", "a string", "a boolean", "null" or "a number": the value at r->pos. */
const char *json_type_at(const json_reader *r);

/* Reads the string at r->pos (a '"'). With out == NULL it only checks; otherwise the decoded,
 * NUL-terminated UTF-8 goes to r->pool and *out points at it. *has_nul (may be NULL) is set when
 * the string holds \u0000. */
json_status json_string(json_reader *r, const char **out, int *has_nul);

/* Reads the number at r->pos. */
json_status json_number_at(json_reader *r, json_number *num);

#endif
