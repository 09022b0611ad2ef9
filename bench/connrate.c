/* connrate: short TCP requests, one connection each, for bench/net.sh.
 *
 *   connrate serve PORT            answers each connection: reads a 64-byte
 *                                  request, writes a 64-byte answer, closes
 *                                  (one connection at a time, for ever)
 *   connrate client HOST PORT SECS connect, send 64 bytes, read the answer
 *                                  until the server closes, close; back to
 *                                  back for SECS seconds. Prints
 *                                  "CONNECTIONS SECONDS FAILURES"
 *   connrate probe HOST PORT       one such request; exit 0 if answered
 *
 * The server closes first, so the client's ports are free again at once
 * (no TIME_WAIT on the client's side) and a run is limited by the path, not
 * by the client's port range.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int addr_of(const char *host, const char *port, struct sockaddr_in *a) {
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((unsigned short)atoi(port));
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* One request; 0 when the whole answer came back. */
static int request(const struct sockaddr_in *a) {
    char buf[MSG];
    int one = 1, got = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(buf, 'q', sizeof buf);
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0 || write(fd, buf, MSG) != MSG) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (int)n;
    }
    close(fd);
    return got == MSG ? 0 : -1;
}

static int serve(const char *port) {
    struct sockaddr_in a;
    char buf[MSG];
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    addr_of("0.0.0.0", port, &a);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0) {
        perror("connrate serve: listen");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int c = accept(fd, NULL, NULL), got = 0;
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (got < MSG) {
            ssize_t n = read(c, buf, MSG - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (int)n;
        }
        if (got == MSG) {
            memset(buf, 'a', sizeof buf);
            (void)!write(c, buf, MSG);
        }
        close(c);
    }
}

int main(int argc, char **argv) {
    struct sockaddr_in a;
    if (argc == 3 && !strcmp(argv[1], "serve")) return serve(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "probe")) {
        if (addr_of(argv[2], argv[3], &a) < 0) return 2;
        return request(&a) == 0 ? 0 : 1;
    }
    if (argc == 5 && !strcmp(argv[1], "client")) {
        long ok = 0, failed = 0;
        double secs = atof(argv[4]), t0, t;
        if (addr_of(argv[2], argv[3], &a) < 0) return 2;
        signal(SIGPIPE, SIG_IGN);
        t0 = now();
        do {
            if (request(&a) == 0) ok++; else failed++;
            t = now();
        } while (t - t0 < secs);
        printf("%ld %.6f %ld\n", ok, t - t0, failed);
        return 0;
    }
    fprintf(stderr, "usage: connrate serve PORT | client HOST PORT SECS | probe HOST PORT\n");
    return 2;
}
