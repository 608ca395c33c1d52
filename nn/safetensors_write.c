/* nn/safetensors_write.c: the safetensors writer. st_save builds the header from the tensors'
 * names, dtypes and shapes (checking each), then writes "<path>.tmp.<pid>" in the same directory,
 * fsyncs it, renames it over path and fsyncs the directory, so a crash leaves the old file or the
 * new one, never half of either (nn/safetensors.h). */
#include "nn/safetensors.h"

#include "nn/json.h"
#include "nn/safetensors_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- writing ------------------------------------------------------------------------------- */

/* A growing text buffer for the header. */
typedef struct {
    char *p;
    size_t len, cap;
} text;

static void text_add(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = nb_malloc(cap);
        if (t->len) memcpy(p, t->p, t->len);
        nb_free(t->p);
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_str(text *t, const char *s) {
    text_add(t, s, strlen(s));
}

/* Appends s as a JSON string: quotes, backslashes and control characters escaped, UTF-8 as is. */
static void text_json(text *t, const char *s) {
    text_add(t, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            text_add(t, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            text_add(t, esc, 6);
        } else {
            text_add(t, (const char *)&c, 1);
        }
    }
    text_add(t, "\"", 1);
}

/* Checks the arguments of st_save and builds the header JSON into *out (padded to 8). */
static st_status build_header(const char *path, const st_tensor *ts, int n, const st_meta *meta,
                              int nmeta, text *out, st_error *err) {
    if (n < 0 || nmeta < 0 || (n > 0 && !ts) || (nmeta > 0 && !meta))
        return fail(err, ST_ERR_ARG, path, "bad tensor or metadata count");
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return fail(err, ST_ERR_ARG, path, "metadata pair %d has a NULL string", i);
        if (json_check_utf8((const unsigned char *)meta[i].key, strlen(meta[i].key), NULL) ||
            json_check_utf8((const unsigned char *)meta[i].value, strlen(meta[i].value), NULL))
            return fail(err, ST_ERR_ARG, path, "metadata '%.120s' is not valid UTF-8", meta[i].key);
        for (int j = 0; j < i; j++)
            if (!strcmp(meta[i].key, meta[j].key))
                return fail(err, ST_ERR_ARG, path, "metadata key '%.120s' given twice",
                            meta[i].key);
    }
    char num[64];
    text_str(out, "{");
    if (nmeta > 0) {
        text_str(out, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) text_str(out, ",");
            text_json(out, meta[i].key);
            text_str(out, ":");
            text_json(out, meta[i].value);
        }
        text_str(out, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &ts[i];
        if (!t->name || !t->name[0]) return fail(err, ST_ERR_ARG, path, "tensor %d has no name", i);
        if (json_check_utf8((const unsigned char *)t->name, strlen(t->name), NULL))
            return fail(err, ST_ERR_ARG, path, "tensor %d: name is not valid UTF-8", i);
        if (!strcmp(t->name, "__metadata__"))
            return fail(err, ST_ERR_ARG, path, "'__metadata__' is not a tensor name");
        for (int j = 0; j < i; j++)
            if (!strcmp(t->name, ts[j].name))
                return fail(err, ST_ERR_ARG, path, NAME_FMT ": name given twice", t->name);
        if ((unsigned)t->dtype >= ST_DTYPE_COUNT)
            return fail(err, ST_ERR_ARG, path, NAME_FMT ": bad dtype %d", t->name, (int)t->dtype);
        if (t->ndim < 0 || t->ndim > ST_MAX_NDIM || (t->ndim > 0 && !t->shape))
            return fail(err, ST_ERR_ARG, path, NAME_FMT ": bad ndim %d", t->name, t->ndim);
        uint64_t bytes = st_dtype_size(t->dtype);
        int zero = 0;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                return fail(err, ST_ERR_ARG, path, NAME_FMT ": negative dimension", t->name);
            if (t->shape[d] == 0)
                zero = 1;
            else if (!zero && bytes > UINT64_MAX / (uint64_t)t->shape[d])
                return fail(err, ST_ERR_OVERFLOW, path, NAME_FMT ": byte size overflows", t->name);
            else if (!zero)
                bytes *= (uint64_t)t->shape[d];
        }
        if (zero) bytes = 0;
        if (bytes > 0 && !t->data)
            return fail(err, ST_ERR_ARG, path, NAME_FMT ": NULL data", t->name);
        if (offset > UINT64_MAX - bytes || offset + bytes > SIZE_MAX)
            return fail(err, ST_ERR_OVERFLOW, path, "total byte size overflows");
        text_str(out, i || nmeta ? "," : "");
        text_json(out, t->name);
        text_str(out, ":{\"dtype\":\"");
        text_str(out, st_dtype_name(t->dtype));
        text_str(out, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            text_str(out, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + bytes));
        text_str(out, num);
        offset += bytes;
    }
    text_str(out, "}");
    while (out->len % 8) text_str(out, " ");
    if (out->len > ST_MAX_HEADER)
        return fail(err, ST_ERR_HEADER_TOO_LARGE, path, "header of %zu bytes is too large",
                    out->len);
    return ST_OK;
}

/* Writes n bytes to fd; returns 0, or -1 with errno set. */
static int write_all(int fd, const void *src, size_t n) {
    const unsigned char *s = src;
    while (n > 0) {
        ssize_t w = write(fd, s, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes a tensor's elements little-endian (swapping through a small buffer on big-endian hosts).
 */
static int write_tensor(int fd, const st_tensor *t) {
    size_t size = st_dtype_size(t->dtype), bytes = size;
    for (int d = 0; d < t->ndim; d++) bytes *= (size_t)t->shape[d];
    if (host_is_little() || size == 1) return write_all(fd, t->data, bytes);
    unsigned char chunk[4096];
    const unsigned char *s = t->data;
    for (size_t done = 0; done < bytes;) {
        size_t k = 0;
        for (; k + size <= sizeof chunk && done < bytes; k += size, done += size)
            copy_le(chunk + k, s + done, size);
        if (write_all(fd, chunk, k) != 0) return -1;
    }
    return 0;
}

/* The directory part of path in a new string (free with nb_free): "." when it has none. */
static char *dir_of(const char *path) {
    char *dir = nb_malloc(strlen(path) + 2);
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    return dir;
}

int st_remove_stale_temps(const char *path) {
    if (!path || !path[0]) return 0;
    char *dir = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base), dlen = strlen(dir);
    int removed = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        const char *name = e->d_name;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) continue;
        const char *digits = name + blen + 5;
        size_t nd = strspn(digits, "0123456789");
        if (nd == 0 || nd > 9 || digits[nd] != '\0') continue; /* not one of ours */
        long pid = strtol(digits, NULL, 10);
        if (pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to ask) */
        char *full = nb_malloc(dlen + strlen(name) + 2);
        sprintf(full, "%s/%s", dir, name);
        if (unlink(full) == 0) removed++;
        nb_free(full);
    }
    if (d) closedir(d);
    nb_free(dir);
    return removed;
}

st_status st_save(const char *path, const st_tensor *tensors, int n, const st_meta *meta, int nmeta,
                  st_error *err) {
    if (!path || !path[0]) return fail(err, ST_ERR_ARG, "st_save", "no path given");
    text header = {0};
    st_status st = build_header(path, tensors, n, meta, nmeta, &header, err);
    if (st) {
        nb_free(header.p);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = nb_malloc(plen + 32);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    const char *step = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ok = fd >= 0;
    if (ok) {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
        step = "write";
        ok = write_all(fd, len8, 8) == 0 && write_all(fd, header.p, header.len) == 0;
        for (int i = 0; ok && i < n; i++) ok = write_tensor(fd, &tensors[i]) == 0;
        if (ok) step = "fsync";
        if (ok) ok = fsync(fd) == 0;
    }
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = 0;
        step = "close";
        saved = errno;
    }
    if (ok) {
        step = "rename";
        ok = rename(tmp, path) == 0;
        saved = errno;
    }
    if (!ok) {
        if (fd >= 0) unlink(tmp);
        st =
            fail(err, ST_ERR_IO, path, "cannot %s %s: %s (the previous file, if any, is untouched)",
                 step, strcmp(step, "rename") ? tmp : "over it", strerror(saved));
    } else {
        /* Make the rename itself durable: fsync the directory. Some file systems cannot fsync a
         * directory (EINVAL); the data is safe there already. */
        char *dir = dir_of(path);
        int dfd = open(dir, O_RDONLY);
        if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL))
            st = fail(err, ST_ERR_IO, path, "written, but cannot fsync directory %.200s: %s", dir,
                      strerror(errno));
        if (dfd >= 0) close(dfd);
        nb_free(dir);
    }
    nb_free(tmp);
    nb_free(header.p);
    if (st == ST_OK) set_ok(err);
    return st;
}
