/* examples/vae/args.c: flag parsing for the vae commands: a table of options per command,
 * "--name value" or "--name=value", every value checked (whole string, range) before use. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "examples/vae/cli.h"

int cli_error(int status, const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vae %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

cli_opt *cli_find(cli_opt *opts, int nopts, const char *name) {
    for (int i = 0; i < nopts; i++)
        if (!strcmp(opts[i].name, name)) return &opts[i];
    nb_fail("cli_find", "no option %s", name);
}

/* ---- values ------------------------------------------------------------------------------------
 */

/* Whole-string integer in [min, max]; false otherwise. */
static bool parse_int(const char *s, double min, double max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE) return false;
    if ((double)v < min || (double)v > max) return false;
    *out = v;
    return true;
}

/* Whole-string finite number in [min, max]; false otherwise. */
static bool parse_real(const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return false;
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

/* "400" or "512,256": 1..VAE_MAX_HIDDEN sizes in [min, max]. */
static bool parse_hidden(const char *s, double min, double max, cli_hidden *out) {
    cli_hidden h = {0};
    const char *p = s;
    for (;;) {
        char num[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof num || h.n == VAE_MAX_HIDDEN) return false;
        memcpy(num, p, len);
        num[len] = '\0';
        if (!parse_int(num, min, max, &h.size[h.n])) return false;
        h.n++;
        if (p[len] == '\0') break;
        p += len + 1;
    }
    *out = h;
    return true;
}

/* What a value of this option must look like, for error messages. */
static void describe(const cli_opt *o, char *buf, size_t len) {
    switch (o->kind) {
    case CLI_INT:
        snprintf(buf, len, "an integer in %.0f..%.0f", o->min, o->max);
        break;
    case CLI_REAL:
        snprintf(buf, len, "a number in [%g, %g]", o->min, o->max);
        break;
    case CLI_HIDDEN:
        snprintf(buf, len, "1 to %d sizes in %.0f..%.0f separated by commas (e.g. 512,256)",
                 VAE_MAX_HIDDEN, o->min, o->max);
        break;
    case CLI_LIKELIHOOD:
        snprintf(buf, len, "one of %s", vae_likelihood_names());
        break;
    default:
        snprintf(buf, len, "a value");
        break;
    }
}

/* Stores value into o; false when it is malformed or out of range. */
static bool set_value(cli_opt *o, const char *v) {
    switch (o->kind) {
    case CLI_INT:
        return parse_int(v, o->min, o->max, o->dst);
    case CLI_REAL:
        return parse_real(v, o->min, o->max, o->dst);
    case CLI_HIDDEN:
        return parse_hidden(v, o->min, o->max, o->dst);
    case CLI_STRING:
        if (*v == '\0') return false;
        *(const char **)o->dst = v;
        return true;
    case CLI_LIKELIHOOD:
        return vae_likelihood_parse(v, o->dst) == 0;
    case CLI_FLAG:
        *(bool *)o->dst = true;
        return true;
    }
    return false;
}

/* ---- usage and parsing -------------------------------------------------------------------------
 */

static void usage(const char *cmd, const char *summary, const cli_opt *opts, int nopts) {
    printf("usage: vae %s [flags]\n\n%s\n\nflags:\n", cmd, summary);
    for (int i = 0; i < nopts; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        printf("  %-22s %s%s\n", left, opts[i].help, opts[i].required ? " (required)" : "");
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

int cli_parse(const char *cmd, const char *summary, cli_opt *opts, int nopts, int argc,
              char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(cmd, summary, opts, nopts);
            return CLI_HELP;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return cli_error(CLI_USAGE, cmd, "unexpected argument '%s' (see vae %s --help)", a,
                             cmd);
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        cli_opt *o = NULL;
        for (int k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, a, nlen)) o = &opts[k];
        if (!o)
            return cli_error(CLI_USAGE, cmd, "unknown flag '%.*s' (see vae %s --help)", (int)nlen,
                             a, cmd);
        const char *v = NULL;
        if (o->kind == CLI_FLAG) {
            if (eq) return cli_error(CLI_USAGE, cmd, "%s takes no value", o->name);
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return cli_error(CLI_USAGE, cmd, "%s needs a value (%s)", o->name,
                             o->arg ? o->arg : "value");
        }
        if (!set_value(o, v)) {
            char want[160];
            describe(o, want, sizeof want);
            return cli_error(CLI_USAGE, cmd, "%s: expected %s, got '%s'", o->name, want, v);
        }
        o->seen = true;
    }
    for (int k = 0; k < nopts; k++)
        if (opts[k].required && !opts[k].seen)
            return cli_error(CLI_USAGE, cmd, "missing %s %s (see vae %s --help)", opts[k].name,
                             opts[k].arg ? opts[k].arg : "", cmd);
    return 0;
}

bool cli_path(const char *cmd, char *buf, size_t len, const char *dir, const char *name) {
    int n = snprintf(buf, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len) {
        cli_error(CLI_USAGE, cmd, "path too long: %s/%s", dir, name);
        return false;
    }
    return true;
}
