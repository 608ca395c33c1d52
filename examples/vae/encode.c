/* examples/vae/encode.c: vae encode and vae decode: a VAE as a lossy compressor. encode writes
 * each image's posterior mean (optionally quantized to 8 or 16 bits per dimension, with each
 * dimension's scale and offset kept in the file), its log-variance on request and its label to
 * a safetensors file, and prints how many bytes that is against the raw and gzipped image and
 * what the decoded images lose; decode turns such a file back into images.
 *
 * The file: "mu" F32 [n, Z] (--bits 32), or U8/U16 [n, Z] with "mu.scale" and "mu.offset" F32 [Z]
 * (mu = offset + scale * q); "logvar" F32 [n, Z] with --with-logvar; "labels" U8 [n]; metadata
 * "codes.bits" and "codes.latent". */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "examples/vae/cli.h"
#include "nn/safetensors.h"

/* ---- quantization ------------------------------------------------------------------------------
 */

/* Per-dimension affine quantization of mu [n, Z] to `bits` (8 or 16): q = round((mu - offset) /
 * scale) with offset the dimension's minimum and scale its range / (2^bits - 1) (0 when the
 * range is 0). Writes q [n, Z] and offset, scale [Z]. */
static void quantize(const real *mu, int64_t n, int64_t Z, int bits, uint16_t *q, float *offset,
                     float *scale) {
    double levels = (double)((1u << bits) - 1);
    for (int64_t j = 0; j < Z; j++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++) lo = fmin(lo, mu[i * Z + j]), hi = fmax(hi, mu[i * Z + j]);
        offset[j] = (float)lo;
        scale[j] = hi > lo ? (float)((hi - lo) / levels) : 0.0f;
        for (int64_t i = 0; i < n; i++) {
            double v = scale[j] > 0 ? (mu[i * Z + j] - offset[j]) / scale[j] : 0;
            q[i * Z + j] = (uint16_t)fmin(fmax(round(v), 0), levels);
        }
    }
}

static void dequantize(const int64_t *q, int64_t n, int64_t Z, const real *offset,
                       const real *scale, real *mu) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < Z; j++) mu[i * Z + j] = offset[j] + scale[j] * (real)q[i * Z + j];
}

/* The means as the decoder sees them after a round trip through `bits` bits. */
static void round_trip(const real *mu, int64_t n, int64_t Z, int bits, real *out) {
    if (bits == 32) {
        for (int64_t k = 0; k < n * Z; k++) out[k] = (real)(float)mu[k];
        return;
    }
    uint16_t *q = nb_malloc((size_t)(n * Z) * sizeof *q);
    int64_t *q64 = nb_malloc((size_t)(n * Z) * sizeof *q64);
    float *off = nb_malloc((size_t)Z * sizeof *off), *sc = nb_malloc((size_t)Z * sizeof *sc);
    real *roff = nb_malloc((size_t)Z * sizeof *roff), *rsc = nb_malloc((size_t)Z * sizeof *rsc);
    quantize(mu, n, Z, bits, q, off, sc);
    for (int64_t k = 0; k < n * Z; k++) q64[k] = q[k];
    for (int64_t j = 0; j < Z; j++) roff[j] = off[j], rsc[j] = sc[j];
    dequantize(q64, n, Z, roff, rsc, out);
    nb_free(q), nb_free(q64), nb_free(off), nb_free(sc), nb_free(roff), nb_free(rsc);
}

/* ---- compression figures -----------------------------------------------------------------------
 */

/* The size of len bytes as a gzip -9 stream (header and trailer included), or 0 on failure. */
static size_t gzip_size(const uint8_t *data, size_t len, uint8_t *buf, size_t cap) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t out = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? out : 0;
}

/* gzip -9 sizes of the raw images: the mean per image compressed one by one, and the whole set
 * compressed at once divided by n. */
static void gzip_sizes(const idx_dataset *d, double *each, double *whole) {
    size_t D = (size_t)(d->rows * d->cols), total = D * (size_t)d->n;
    size_t cap = compressBound((uLong)total) + 64;
    uint8_t *buf = nb_malloc(cap);
    double sum = 0;
    for (int64_t i = 0; i < d->n; i++)
        sum += (double)gzip_size(d->images + (size_t)i * D, D, buf, cap);
    *each = sum / (double)d->n;
    *whole = (double)gzip_size(d->images, total, buf, cap) / (double)d->n;
    nb_free(buf);
}

/* Writes the codes file. */
static int save_codes(const char *path, const real *mu, const real *logvar, const int64_t *labels,
                      int64_t n, int64_t Z, int bits) {
    st_tensor t[5];
    int nt = 0;
    int64_t shape_nz[2] = {n, Z}, shape_z[1] = {Z}, shape_n[1] = {n};
    float *f32 = nb_malloc((size_t)(n * Z) * sizeof *f32), *lv = NULL;
    uint16_t *q = NULL;
    uint8_t *q8 = NULL, *lab = nb_malloc((size_t)(n > 0 ? n : 1));
    float *off = nb_malloc((size_t)Z * sizeof *off), *sc = nb_malloc((size_t)Z * sizeof *sc);
    if (bits == 32) {
        for (int64_t k = 0; k < n * Z; k++) f32[k] = (float)mu[k];
        t[nt++] = (st_tensor){"mu", ST_F32, 2, shape_nz, f32, 0};
    } else {
        q = nb_malloc((size_t)(n * Z) * sizeof *q);
        quantize(mu, n, Z, bits, q, off, sc);
        if (bits == 8) {
            q8 = nb_malloc((size_t)(n * Z));
            for (int64_t k = 0; k < n * Z; k++) q8[k] = (uint8_t)q[k];
            t[nt++] = (st_tensor){"mu", ST_U8, 2, shape_nz, q8, 0};
        } else {
            t[nt++] = (st_tensor){"mu", ST_U16, 2, shape_nz, q, 0};
        }
        t[nt++] = (st_tensor){"mu.offset", ST_F32, 1, shape_z, off, 0};
        t[nt++] = (st_tensor){"mu.scale", ST_F32, 1, shape_z, sc, 0};
    }
    if (logvar) {
        lv = nb_malloc((size_t)(n * Z) * sizeof *lv);
        for (int64_t k = 0; k < n * Z; k++) lv[k] = (float)logvar[k];
        t[nt++] = (st_tensor){"logvar", ST_F32, 2, shape_nz, lv, 0};
    }
    for (int64_t i = 0; i < n; i++) lab[i] = (uint8_t)labels[i];
    t[nt++] = (st_tensor){"labels", ST_U8, 1, shape_n, lab, 0};
    char sbits[16], slat[32];
    snprintf(sbits, sizeof sbits, "%d", bits);
    snprintf(slat, sizeof slat, "%lld", (long long)Z);
    st_meta meta[2] = {{"codes.bits", sbits}, {"codes.latent", slat}};
    st_error err;
    st_status s = st_save(path, t, nt, meta, 2, &err);
    nb_free(f32), nb_free(lv), nb_free(q), nb_free(q8), nb_free(lab), nb_free(off), nb_free(sc);
    return s == ST_OK ? 0 : cli_error(CLI_FAIL, "encode", "cannot write %s: %s", path, err.message);
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* ---- vae encode --------------------------------------------------------------------------------
 */

int cli_encode(int argc, char **argv) {
    const char *model = NULL, *data = "data/digits", *split = "test", *out = NULL;
    int64_t bits = 32, limit = -1, threads = 0;
    bool with_logvar = false;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--data", CLI_STRING, &data, "DIR", "IDX data (default data/digits)", 0, 0, false, false},
        {"--split", CLI_STRING, &split, "S", "test (default) or train", 0, 0, false, false},
        {"--bits", CLI_INT, &bits, "B", "bits per mean: 8, 16 (quantized) or 32 (float; default)",
         1, 64, false, false},
        {"--with-logvar", CLI_FLAG, &with_logvar, NULL, "also store each log-variance (float)", 0,
         0, false, false},
        {"--out", CLI_STRING, &out, "FILE", "the codes (safetensors)", 0, 0, true, false},
        {"--limit", CLI_INT, &limit, "N", "encode only the first N images", 1, 1e12, false, false},
        {"--threads", CLI_INT, &threads, "N", CLI_THREADS_HELP, 0, 1024, false, false},
    };
    int no = (int)(sizeof o / sizeof o[0]);
    int rc = cli_parse("encode",
                       "Writes each image's posterior mean (the code) and label; prints the bytes "
                       "per image against the raw and gzipped image and the decoded error.",
                       o, no, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (bits != 8 && bits != 16 && bits != 32)
        return cli_error(CLI_USAGE, "encode", "--bits: expected 8, 16 or 32, got %lld",
                         (long long)bits);
    if (strcmp(split, "test") && strcmp(split, "train"))
        return cli_error(CLI_USAGE, "encode", "--split: expected test or train, got '%s'", split);
    cli_set_threads("encode", threads);
    vae_model m;
    if (cli_model_load("encode", model, &m, NULL, -1, NULL)) return CLI_FAIL;
    idx_dataset d = {0};
    bool train = !strcmp(split, "train");
    rc = cli_load_split_labels("encode", data, train, limit, m.cfg.num_classes > 0, &d);
    if (!rc) rc = cli_check_data("encode", data, &d, &m.cfg);
    if (!rc) {
        int64_t n = d.n, D = d.rows * d.cols, Z = m.cfg.latent;
        int64_t *labels;
        real *x = cli_set_pixels(&d, &labels);
        real *mu = nb_malloc((size_t)(n * Z) * sizeof *mu);
        real *lv = with_logvar ? nb_malloc((size_t)(n * Z) * sizeof *lv) : NULL;
        cli_encode_set(&m, x, labels, n, mu, lv);
        rc = save_codes(out, mu, lv, labels, n, Z, (int)bits);
        if (!rc) {
            double each, whole;
            gzip_sizes(&d, &each, &whole);
            long fsize = file_size(out);
            printf("encoded %lld %s images of %s into %s (%ld bytes, %.1f per image)\n",
                   (long long)n, split, data, out, fsize, (double)fsize / (double)n);
            printf("raw image %lld bytes; gzip -9 %.1f bytes one by one, %.1f per image over the "
                   "whole set\n",
                   (long long)D, each, whole);
            printf("%5s %12s %10s %10s %12s %12s\n", "bits", "bytes/image", "vs raw", "vs gzip",
                   "pixel MSE", "NLL nats");
            real *rt = nb_malloc((size_t)(n * Z) * sizeof *rt);
            real *img = nb_malloc((size_t)(n * D) * sizeof *img);
            int all[3] = {8, 16, 32};
            for (int b = 0; b < 3; b++) {
                /* the means' payload plus the per-dimension scale and offset shared by the set */
                double bytes = (double)Z * all[b] / 8 + (all[b] < 32 ? 8.0 * Z / (double)n : 0);
                round_trip(mu, n, Z, all[b], rt);
                cli_decode_set(&m, rt, labels, n, img);
                double mse, nll;
                cli_image_errors(img, x, n, D, &mse, &nll);
                printf("%5d %12.2f %9.1fx %9.1fx %12.6f %12.3f%s\n", all[b], bytes,
                       (double)D / bytes, each / bytes, mse, nll,
                       all[b] == bits ? "  <- written" : "");
            }
            nb_free(rt);
            nb_free(img);
        }
        nb_free(x), nb_free(labels), nb_free(mu), nb_free(lv);
    }
    idx_free(&d);
    vae_free(&m);
    return rc;
}

/* ---- vae decode --------------------------------------------------------------------------------
 */

/* Reads the codes file's means (dequantized) [n, Z] and labels [n]; *n from the file. */
static int load_codes(const char *path, int64_t Z, real **mu_out, int64_t **labels_out,
                      int64_t *n_out) {
    st_file *f;
    st_error err;
    if (st_open(path, &f, &err) != ST_OK)
        return cli_error(CLI_FAIL, "decode", "cannot read codes %s", err.message);
    const st_tensor *t = st_find(f, "mu");
    int rc = 0;
    if (!t || t->ndim != 2)
        rc = cli_error(CLI_FAIL, "decode", "%s: no 2-D tensor \"mu\": not a file of vae encode",
                       path);
    else if (t->shape[1] != Z)
        rc = cli_error(CLI_FAIL, "decode",
                       "%s: codes have %lld dimensions but the model's latent "
                       "space has %lld",
                       path, (long long)t->shape[1], (long long)Z);
    if (rc) {
        st_close(f);
        return rc;
    }
    int64_t n = t->shape[0];
    real *mu = nb_malloc((size_t)(n * Z + 1) * sizeof *mu);
    int64_t *labels = nb_calloc((size_t)(n + 1) * sizeof *labels);
    st_status s;
    if (t->dtype == ST_F32 || t->dtype == ST_F64) {
        s = st_read_real(f, "mu", mu, 2, t->shape, &err);
    } else {
        int64_t *q = nb_malloc((size_t)(n * Z + 1) * sizeof *q);
        real *off = nb_malloc((size_t)Z * sizeof *off), *sc = nb_malloc((size_t)Z * sizeof *sc);
        s = st_read_i64(f, "mu", q, 2, t->shape, &err);
        if (s == ST_OK) s = st_read_real(f, "mu.offset", off, 1, &Z, &err);
        if (s == ST_OK) s = st_read_real(f, "mu.scale", sc, 1, &Z, &err);
        if (s == ST_OK) dequantize(q, n, Z, off, sc, mu);
        nb_free(q), nb_free(off), nb_free(sc);
    }
    if (s == ST_OK && st_find(f, "labels")) s = st_read_i64(f, "labels", labels, 1, &n, &err);
    st_close(f);
    if (s != ST_OK) {
        nb_free(mu), nb_free(labels);
        return cli_error(CLI_FAIL, "decode", "%s: %s", path, err.message);
    }
    *mu_out = mu, *labels_out = labels, *n_out = n;
    return 0;
}

int cli_decode(int argc, char **argv) {
    const char *model = NULL, *codes = NULL, *out = NULL, *idx = NULL;
    int64_t shown = 64, threads = 0;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--codes", CLI_STRING, &codes, "FILE", "codes written by vae encode", 0, 0, true, false},
        {"--out", CLI_STRING, &out, "FILE", "a PNG grid of the first --n decoded images", 0, 0,
         false, false},
        {"--n", CLI_INT, &shown, "N", "images in the PNG grid, 8 to a row (default 64)", 1, 1e6,
         false, false},
        {"--idx", CLI_STRING, &idx, "DIR",
         "write every decoded image and its label as DIR's IDX test split (vae eval --data DIR)", 0,
         0, false, false},
        {"--threads", CLI_INT, &threads, "N", CLI_THREADS_HELP, 0, 1024, false, false},
    };
    int no = (int)(sizeof o / sizeof o[0]);
    int rc = cli_parse("decode", "Decodes the codes of vae encode into images (PNG and/or IDX).", o,
                       no, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!out && !idx)
        return cli_error(CLI_USAGE, "decode", "give --out FILE.png, --idx DIR or both");
    cli_set_threads("decode", threads);
    vae_model m;
    if (cli_model_load("decode", model, &m, NULL, -1, NULL)) return CLI_FAIL;
    int64_t Z = m.cfg.latent, D = m.cfg.rows * m.cfg.cols, n = 0, *labels = NULL;
    real *mu = NULL;
    rc = load_codes(codes, Z, &mu, &labels, &n);
    for (int64_t i = 0; !rc && m.cfg.num_classes > 0 && i < n; i++)
        if (labels[i] < 0 || labels[i] >= m.cfg.num_classes)
            rc = cli_error(CLI_FAIL, "decode",
                           "%s: code %lld has label %lld but the model knows %d "
                           "classes",
                           codes, (long long)i, (long long)labels[i], m.cfg.num_classes);
    if (!rc) {
        real *img = nb_malloc((size_t)(n * D + 1) * sizeof *img);
        cli_decode_set(&m, mu, labels, n, img);
        int64_t k = shown < n ? shown : n;
        if (out && k > 0)
            rc = cli_write_grid("decode", out, img, k, m.cfg.rows, m.cfg.cols, k < 8 ? k : 8);
        if (!rc && idx)
            rc = cli_write_idx_split("decode", idx, img, labels, n, m.cfg.rows, m.cfg.cols);
        if (!rc)
            printf("decoded %lld codes from %s%s%s%s%s\n", (long long)n, codes, out ? " into " : "",
                   out ? out : "", idx ? "; IDX test split in " : "", idx ? idx : "");
        nb_free(img);
    }
    nb_free(mu), nb_free(labels);
    vae_free(&m);
    return rc;
}
