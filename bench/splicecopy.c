/*
 * splicecopy: the limit for log throughput, the best pipe-to-file copy this
 * machine can do. Moves everything from its stdin (a pipe) into FILE with
 * splice(2), no copy through user space, with the pipe's buffer set to
 * PIPE_BYTES: the size nsvisor asks for its programs' output pipes, so the
 * writer is woken as often as under nsvisor (bench/run.sh passes it).
 *
 *   splicecopy PIPE_BYTES FILE
 *
 * Truncates FILE (created if missing; splice cannot write to O_APPEND). Exits 0 at end of input, 1 with a
 * message on stderr if stdin is not a pipe or a call fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: splicecopy PIPE_BYTES FILE\n");
        return 1;
    }
    char *end = NULL;
    long pipe_bytes = strtol(argv[1], &end, 10);
    if (*end != '\0' || pipe_bytes < 4096) {
        fprintf(stderr, "splicecopy: PIPE_BYTES must be an integer >= 4096, not %s\n", argv[1]);
        return 1;
    }
    struct stat st;
    if (fstat(STDIN_FILENO, &st) != 0 || !S_ISFIFO(st.st_mode)) {
        fprintf(stderr, "splicecopy: stdin must be a pipe\n");
        return 1;
    }
    int granted = fcntl(STDIN_FILENO, F_SETPIPE_SZ, (int)pipe_bytes);
    if (granted < 0) {
        fprintf(stderr, "splicecopy: cannot set the pipe size to %ld: %s\n", pipe_bytes, strerror(errno));
        return 1;
    }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        fprintf(stderr, "splicecopy: cannot open %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    for (;;) {
        ssize_t n = splice(STDIN_FILENO, NULL, out, NULL, (size_t)granted, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "splicecopy: splice into %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
    }
    if (close(out) != 0) {
        fprintf(stderr, "splicecopy: close %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    return 0;
}
