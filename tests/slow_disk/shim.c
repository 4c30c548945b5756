/*
 * A slow disk for tests/slow_disk.rs, loaded into `otvi serve` with LD_PRELOAD: every fsync,
 * fdatasync and sync_file_range first sleeps OTVI_SLOW_FSYNC_MS milliseconds (default 200),
 * then does its work. With OTVI_FSYNC_LOG set, each call appends the calling thread's name
 * and the call to that file, one line each, so the test can tell which threads waited.
 *
 * Built by the test: cc -shared -fPIC -O2 -o slow_fsync.so shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static void slow(const char *call) {
    const char *log = getenv("OTVI_FSYNC_LOG");
    if (log != NULL && *log != '\0') {
        char name[17] = {0};
        prctl(PR_GET_NAME, name, 0, 0, 0);
        char line[64];
        int n = snprintf(line, sizeof line, "%s %s\n", name, call);
        int saved = errno;
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (write(fd, line, (size_t)n) < 0) {
                /* nothing to do: the log is best effort */
            }
            close(fd);
        }
        errno = saved;
    }
    const char *v = getenv("OTVI_SLOW_FSYNC_MS");
    long ms = v != NULL ? atol(v) : 200;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    slow("fsync");
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    slow("fdatasync");
    return real(fd);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
    static int (*real)(int, off_t, off_t, unsigned int);
    if (real == NULL) {
        real = (int (*)(int, off_t, off_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    }
    slow("sync_file_range");
    return real(fd, offset, nbytes, flags);
}
