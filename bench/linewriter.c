/*
 * linewriter: writes BYTES bytes of 64-byte text lines to stdout as fast as
 * it can. The log-throughput workload of bench/run.sh runs it under each
 * supervisor (and under `cat` for the limit).
 *
 *   linewriter [--stamp FILE] [--linger] BYTES
 *
 * --stamp FILE  first writes the CLOCK_MONOTONIC time (seconds) at which it
 *               starts writing into FILE, so the harness times from there
 *               and not from the supervisor's own start-up;
 * --linger      after the last line, waits for a signal instead of exiting,
 *               so the supervisor neither restarts it nor shuts down early.
 *
 * Lines are written 1,024 at a time (64 KiB writes, the default pipe size);
 * BYTES is rounded down to whole lines. The buffer is filled once, so the
 * writer spends its time in write(2) and the reader is what is measured.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE 64
#define LINES_PER_WRITE 1024

static int stamp(const char *path)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "linewriter: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
    return fclose(f);
}

static int write_all(const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(1, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            fprintf(stderr, "linewriter: write: %s\n", strerror(errno));
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *stamp_path = NULL, *bytes_arg = NULL;
    int linger = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stamp") == 0 && i + 1 < argc)
            stamp_path = argv[++i];
        else if (strcmp(argv[i], "--linger") == 0)
            linger = 1;
        else if (bytes_arg == NULL)
            bytes_arg = argv[i];
        else
            bytes_arg = NULL, i = argc;
    }
    char *end = NULL;
    unsigned long long bytes = bytes_arg ? strtoull(bytes_arg, &end, 10) : 0;
    if (bytes_arg == NULL || *end != '\0') {
        fprintf(stderr, "usage: linewriter [--stamp FILE] [--linger] BYTES\n");
        return 1;
    }

    static const char text[LINE + 1] =
        "the quick brown fox jumps over the lazy dog 0123456789 abcdefgh\n";
    static char buf[LINE * LINES_PER_WRITE];
    for (size_t i = 0; i < LINES_PER_WRITE; i++)
        memcpy(buf + i * LINE, text, LINE);

    if (stamp_path != NULL && stamp(stamp_path) != 0)
        return 1;
    unsigned long long left = bytes / LINE * LINE;
    while (left > 0) {
        size_t len = left < sizeof buf ? (size_t)left : sizeof buf;
        if (write_all(buf, len) != 0)
            return 1;
        left -= len;
    }
    if (linger)
        for (;;)
            pause();
    return 0;
}
