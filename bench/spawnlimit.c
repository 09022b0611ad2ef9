/*
 * spawnlimit: the floor for starting and stopping N copies of one command,
 * against which the supervisors are measured (bench/run.sh builds and runs it).
 *
 *   spawnlimit [--wait] N COMMAND [ARG...]
 *
 * Starts N copies with posix_spawnp (glibc returns only once the child has
 * exec'd, so every copy is really running the command when the clock stops),
 * then sends SIGTERM to every copy and reaps them all with one waitpid(-1)
 * loop, as a supervisor would. Prints one JSON object on stdout:
 *   {"n": N, "spawn_s": S, "stop_s": S}
 * With --wait it stops only when it receives SIGTERM itself, as a supervisor
 * does, so the harness can time it like one (from outside, from its launch
 * and from its SIGTERM); it prints {"n": N, "spawn_s": S} once all are
 * started and {"stop_s": S} (from the SIGTERM) before it exits.
 * Exit status 0 on success, 1 with a message on stderr otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Start n copies of argv; on failure, stop the ones already started. */
static int spawn_all(pid_t *pids, long n, char **argv)
{
    for (long i = 0; i < n; i++) {
        int err = posix_spawnp(&pids[i], argv[0], NULL, NULL, argv, environ);
        if (err != 0) {
            fprintf(stderr, "spawnlimit: cannot start copy %ld of %s: %s\n", i, argv[0], strerror(err));
            for (long j = 0; j < i; j++)
                kill(pids[j], SIGKILL);
            while (wait(NULL) > 0 || errno == EINTR)
                ;
            return -1;
        }
    }
    return 0;
}

/* SIGTERM every copy, then reap until no child is left. */
static long stop_all(const pid_t *pids, long n)
{
    long reaped = 0;
    for (long i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    for (;;) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid > 0)
            reaped++;
        else if (errno != EINTR)
            break;
    }
    return reaped;
}

int main(int argc, char **argv)
{
    int wait_term = argc > 1 && strcmp(argv[1], "--wait") == 0;
    if (wait_term) {
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: spawnlimit [--wait] N COMMAND [ARG...]\n");
        return 1;
    }
    char *end = NULL;
    long n = strtol(argv[1], &end, 10);
    if (*end != '\0' || n < 1 || n > 1000000) {
        fprintf(stderr, "spawnlimit: N must be an integer from 1 to 1000000, not %s\n", argv[1]);
        return 1;
    }
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    if (pids == NULL) {
        fprintf(stderr, "spawnlimit: cannot allocate %ld pids\n", n);
        return 1;
    }

    double t0 = seconds();
    if (spawn_all(pids, n, argv + 2) != 0)
        return 1;
    double t1 = seconds();
    if (wait_term) {
        /* Blocked only now: the copies must not inherit a blocked SIGTERM. */
        sigset_t term;
        int sig = 0;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, NULL);
        printf("{\"n\": %ld, \"spawn_s\": %.6f}\n", n, t1 - t0);
        fflush(stdout);
        if (sigwait(&term, &sig) != 0) {
            fprintf(stderr, "spawnlimit: sigwait failed\n");
            return 1;
        }
        t1 = seconds();
    }
    long reaped = stop_all(pids, n);
    double t2 = seconds();

    if (reaped != n) {
        fprintf(stderr, "spawnlimit: reaped %ld of %ld copies\n", reaped, n);
        return 1;
    }
    if (wait_term)
        printf("{\"stop_s\": %.6f}\n", t2 - t1);
    else
        printf("{\"n\": %ld, \"spawn_s\": %.6f, \"stop_s\": %.6f}\n", n, t1 - t0, t2 - t1);
    free(pids);
    return 0;
}
