/* tests/test_st_fsync.c: st_save's durability, observed. This program is linked with
 * -Wl,--wrap=fsync -Wl,--wrap=rename (see the Makefile), so every fsync and rename the library
 * makes comes here first: the test sees that the temporary file is synced before the rename,
 * the directory after it, and that a failing fsync leaves the old file and no temporary. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/safetensors.h"
#include "tests/check_main.h"

int __real_fsync(int fd);
int __real_rename(const char *from, const char *to);
int __wrap_fsync(int fd);
int __wrap_rename(const char *from, const char *to);

static char events[16];  /* 'F' fsync of a file, 'D' of a directory, 'R' rename */
static ino_t synced[16]; /* the inode each fsync saw */
static int nevents;
static int fail_file_fsync; /* 1: fsync of a regular file fails with EIO */

int __wrap_fsync(int fd) {
    struct stat sb;
    ck_assert_int_eq(fstat(fd, &sb), 0);
    if (nevents < 16) {
        synced[nevents] = sb.st_ino;
        events[nevents++] = S_ISDIR(sb.st_mode) ? 'D' : 'F';
    }
    if (fail_file_fsync && !S_ISDIR(sb.st_mode)) {
        errno = EIO;
        return -1;
    }
    return __real_fsync(fd);
}

int __wrap_rename(const char *from, const char *to) {
    if (nevents < 16) events[nevents++] = 'R';
    return __real_rename(from, to);
}

static void save(const char *path, float value, st_status want) {
    float v[4] = {value, value, value, value};
    int64_t shape[1] = {4};
    st_tensor t = {.name = "w", .dtype = ST_F32, .ndim = 1, .shape = shape, .data = v};
    st_error err;
    nevents = 0;
    memset(events, 0, sizeof events);
    st_status st = st_save(path, &t, 1, NULL, 0, &err);
    ck_assert_msg(st == want, "st_save gave %s: %s", st_strerror(st), err.message);
}

START_TEST(test_file_synced_before_rename_and_directory_after) {
    char dir[] = "/tmp/nabla-fsync-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    save(path, 1.0f, ST_OK);
    ck_assert_str_eq(events, "FRD");
    struct stat file, d;
    ck_assert_int_eq(stat(path, &file), 0);
    ck_assert_int_eq(stat(dir, &d), 0);
    ck_assert_msg(synced[0] == file.st_ino, "the fsynced file is not the one renamed into place");
    ck_assert_msg(synced[2] == d.st_ino, "the fsynced directory is not the checkpoint's");

    /* fsync fails: no rename, the old file stays whole, the temporary is gone */
    fail_file_fsync = 1;
    save(path, 2.0f, ST_ERR_IO);
    fail_file_fsync = 0;
    ck_assert_str_eq(events, "F");
    st_file *f;
    st_error err;
    ck_assert_int_eq(st_open(path, &f, &err), ST_OK);
    real w[4];
    int64_t shape[1] = {4};
    ck_assert_int_eq(st_read_real(f, "w", w, 1, shape, &err), ST_OK);
    ck_assert(w[0] == 1 && w[3] == 1);
    st_close(f);
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_ne(access(tmp, F_OK), 0);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("st_fsync");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_file_synced_before_rename_and_directory_after);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
