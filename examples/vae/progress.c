/* examples/vae/progress.c: a one-line progress bar with loss, speed and ETA, redrawn with '\r'
 * at most ten times a second, and only when stdout is a terminal. */
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "examples/vae/cli.h"

#define BAR_WIDTH 30

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_begin(cli_progress *p, const char *label, int64_t total) {
    p->tty = isatty(fileno(stdout)) != 0;
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start = cli_now();
    p->last = 0;
}

void cli_progress_update(cli_progress *p, int64_t done, double loss) {
    p->done = done;
    if (!p->tty) return;
    double now = cli_now();
    if (now - p->last < 0.1 && done < p->total) return;
    p->last = now;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
    int filled = p->total > 0 ? (int)(BAR_WIDTH * done / p->total) : BAR_WIDTH;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    printf("\r%s [%s] %lld/%lld", p->label, bar, (long long)done, (long long)p->total);
    if (!isnan(loss)) printf("  loss %.3f", loss);
    printf("  %.0f samples/s  ETA %.0fs   ", rate, eta);
    fflush(stdout);
}

void cli_progress_end(cli_progress *p) {
    if (!p->tty) return;
    printf("\r%*s\r", BAR_WIDTH + 100, "");
    fflush(stdout);
}
