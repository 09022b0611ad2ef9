/*
 * probeloop: the floor for TCP checks, against which nsvisor's `tcp` checks
 * are measured (bench/run.sh builds it; the `checks` workload runs it).
 *
 *   probeloop listen PORT
 *       accept connections on 127.0.0.1:PORT and close them, until killed
 *       (the listener every check in the workload connects to)
 *   probeloop connect PORT RATE SECONDS
 *       once a second for SECONDS, connect to 127.0.0.1:PORT and close, RATE
 *       times back to back (as checks that fall due together are run), in one
 *       thread with blocking sockets and one wake-up a second (the least a
 *       checker can do per check), then print
 *       {"connects": N, "failed": F, "cpu_s": S, "wall_s": W}
 *       with its own user+system CPU time.
 * Exit status 0 on success, 1 with a message on stderr otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in addr_of(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int serve(int port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = addr_of(port);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4096) < 0) {
        perror("probeloop: listen");
        return 1;
    }
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            close(c);
        else if (errno != EINTR && errno != ECONNABORTED)
            perror("probeloop: accept");
    }
}

static int probe(int port, long rate, long seconds) {
    struct sockaddr_in a = addr_of(port);
    long total = rate * seconds, failed = 0;
    double t0 = mono();
    for (long sec = 0; sec < seconds; sec++) {
        double wait = t0 + sec - mono();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        for (long i = 0; i < rate; i++) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0)
                failed++;
            if (s >= 0)
                close(s);
        }
    }
    double wait = t0 + seconds - mono();
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
    double wall = mono() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"connects\": %ld, \"failed\": %ld, \"cpu_s\": %.4f, \"wall_s\": %.4f}\n", total, failed, cpu, wall);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "listen") == 0)
        return serve(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "connect") == 0)
        return probe(atoi(argv[2]), atol(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: probeloop listen PORT | probeloop connect PORT RATE SECONDS\n");
    return 1;
}
