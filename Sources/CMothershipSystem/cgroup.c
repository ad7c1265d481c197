#define _GNU_SOURCE
#include "CMothershipSystem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// Containment cgroups (one per vessel process, below one per run): killing what is in them and
// removing them. Used by mothership's cells thread and by the keeper after mothership is gone, so
// plain C with no allocation beyond the stack and opendir.

/// Writes `text` to `dir/name`; 0, or the errno (ENOENT when the file does not exist).
static int ms_cgroup_write(const char *dir, const char *name, const char *text) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return ENAMETOOLONG;
    const int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    const size_t length = strlen(text);
    ssize_t written;
    do {
        written = write(fd, text, length);
    } while (written < 0 && errno == EINTR);
    const int error = written == (ssize_t)length ? 0 : (written < 0 ? errno : EIO);
    (void)close(fd);
    return error;
}

/// SIGKILLs every pid listed in `dir/cgroup.procs`; returns how many were listed (-1: unreadable).
static int ms_cgroup_kill_listed(const char *dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path) return -1;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int listed = 0;
    long pid = 0;
    int in_number = 0;
    char buffer[4096];
    for (;;) {
        const ssize_t count = read(fd, buffer, sizeof buffer);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        for (ssize_t index = 0; index < count; index++) {
            const char byte = buffer[index];
            if (byte >= '0' && byte <= '9') {
                pid = pid * 10 + (byte - '0');
                in_number = 1;
            } else if (in_number) {
                if (pid > 0) (void)kill((pid_t)pid, SIGKILL);
                listed++;
                pid = 0;
                in_number = 0;
            }
        }
    }
    if (in_number && pid > 0) {
        (void)kill((pid_t)pid, SIGKILL);
        listed++;
    }
    (void)close(fd);
    return listed;
}

/// Calls `visit` on every cgroup directory below `dir` (children first), then on `dir`. Returns the
/// sum of what `visit` returned (negative results count as 0).
static int ms_cgroup_walk(const char *dir, int (*visit)(const char *), int depth) {
    int total = 0;
    DIR *directory = depth < 16 ? opendir(dir) : NULL;
    if (directory) {
        struct dirent *entry;
        while ((entry = readdir(directory)) != NULL) {
            if (entry->d_type != DT_DIR || entry->d_name[0] == '.') continue;
            char child[PATH_MAX];
            if (snprintf(child, sizeof child, "%s/%s", dir, entry->d_name) >= (int)sizeof child) continue;
            total += ms_cgroup_walk(child, visit, depth + 1);
        }
        closedir(directory);
    }
    const int own = visit(dir);
    return total + (own > 0 ? own : 0);
}

/// One sweep of one cgroup without `cgroup.kill`: frozen (so nothing forks between the read and the
/// kills) where a freezer exists, every member SIGKILLed, thawed (a frozen v1 task dies on thaw).
static int ms_cgroup_sweep(const char *dir) {
    const int v2_frozen = ms_cgroup_write(dir, "cgroup.freeze", "1") == 0;
    const int v1_frozen = !v2_frozen && ms_cgroup_write(dir, "freezer.state", "FROZEN") == 0;
    const int listed = ms_cgroup_kill_listed(dir);
    if (v2_frozen) (void)ms_cgroup_write(dir, "cgroup.freeze", "0");
    if (v1_frozen) (void)ms_cgroup_write(dir, "freezer.state", "THAWED");
    return listed;
}

/// How many processes `dir` itself lists.
static int ms_cgroup_count(const char *dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path) return 0;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buffer[64];
    ssize_t count;
    do {
        count = read(fd, buffer, sizeof buffer);
    } while (count < 0 && errno == EINTR);
    (void)close(fd);
    return count > 0 ? 1 : 0;
}

static int ms_cgroup_remove(const char *dir) {
    (void)rmdir(dir);
    return 0;
}

int ms_cgroup_kill(const char *dir) {
    if (access(dir, F_OK) != 0) return errno;
    // cgroup.kill covers the whole subtree in one write.
    if (ms_cgroup_write(dir, "cgroup.kill", "1") == 0) return 0;
    (void)ms_cgroup_walk(dir, ms_cgroup_sweep, 0);
    return 0;
}

int ms_cgroup_clear(const char *dir, int remove, int timeout_ms) {
    if (access(dir, F_OK) != 0) return errno == ENOENT ? 0 : errno;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long delay_us = 200;
    for (;;) {
        // Zombies are not listed: a killed process leaves the list when it exits, not when reaped.
        if (ms_cgroup_walk(dir, ms_cgroup_count, 0) == 0) break;
        (void)ms_cgroup_kill(dir);
        clock_gettime(CLOCK_MONOTONIC, &now);
        const long elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed_ms >= timeout_ms) return ETIMEDOUT;
        usleep((useconds_t)delay_us);
        if (delay_us < 10000) delay_us *= 2;
    }
    if (remove) {
        (void)ms_cgroup_walk(dir, ms_cgroup_remove, 0);
        if (access(dir, F_OK) == 0) return EBUSY;
    }
    return 0;
}
