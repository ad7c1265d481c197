#define _GNU_SOURCE
#include "CMothershipSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

// The keeper: what kills a run's vessels, and everything they started, when mothership itself is
// killed (SIGKILL, OOM killer, a crash). The parent-death signal reaches only direct children, and a
// cgroup outlives its creator, so something outside mothership must act on its death: a second
// process started from the same executable, which waits for the end of a socket only mothership
// holds. The kernel closes that socket however mothership ends.
//
// It runs before any Swift code (from an ELF constructor), single-threaded, and never returns to
// the program it was started as: a few pages of memory, no runtime, no threads.

#define MS_KEEPER_FLAG "--mothership-keeper"

extern char **environ;

/// Process groups mothership reported as its vessels', kept unsorted (a few hundred at most).
struct ms_keeper_groups {
    pid_t *pids;
    size_t count;
    size_t capacity;
};

static void ms_keeper_add(struct ms_keeper_groups *groups, pid_t pgid) {
    if (groups->count == groups->capacity) {
        const size_t capacity = groups->capacity ? groups->capacity * 2 : 64;
        pid_t *grown = realloc(groups->pids, capacity * sizeof(pid_t));
        if (!grown) return;
        groups->pids = grown;
        groups->capacity = capacity;
    }
    groups->pids[groups->count++] = pgid;
}

static void ms_keeper_remove(struct ms_keeper_groups *groups, pid_t pgid) {
    for (size_t index = 0; index < groups->count; index++) {
        if (groups->pids[index] == pgid) {
            groups->pids[index] = groups->pids[--groups->count];
            return;
        }
    }
}

static int ms_keeper_main(const char *cgroup_root) {
    // Its own session: a terminal's Ctrl-C, or a kill of mothership's process group, never reaches
    // it; only the end of the socket on fd 0 ends it.
    (void)setsid();
    (void)prctl(PR_SET_NAME, "ms-keeper");
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    (void)syscall(SYS_close_range, 3U, ~0U, 0U);

    struct ms_keeper_groups groups = {NULL, 0, 0};
    char message[64];
    for (;;) {
        const ssize_t count = read(0, message, sizeof message - 1);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        message[count] = 0;
        const long pgid = strtol(message + 1, NULL, 10);
        if (pgid <= 1) continue;
        if (message[0] == '+') ms_keeper_add(&groups, (pid_t)pgid);
        if (message[0] == '-') ms_keeper_remove(&groups, (pid_t)pgid);
    }
    // Mothership is gone. Groups first (the fallback's only reach), then the cgroups, which hold
    // everything else, setsid and double-forked processes included.
    for (size_t index = 0; index < groups.count; index++) (void)kill(-groups.pids[index], SIGKILL);
    if (cgroup_root[0] != 0) (void)ms_cgroup_clear(cgroup_root, 1, 10000);
    return 0;
}

__attribute__((constructor)) static void ms_keeper_entry(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc == 3 && argv && argv[1] && strcmp(argv[1], MS_KEEPER_FLAG) == 0) _exit(ms_keeper_main(argv[2]));
}

int ms_start_keeper(const char *exe, const char *cgroup_root, pid_t *pid_out, int *socket_out) {
    int sockets[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets) != 0) return errno;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_adddup2(&actions, sockets[1], 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    sigset_t signals;
    sigfillset(&signals);
    posix_spawnattr_setsigdefault(&attributes, &signals);
    sigemptyset(&signals);
    posix_spawnattr_setsigmask(&attributes, &signals);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char *const argv[] = {(char *)"mothership", (char *)MS_KEEPER_FLAG, (char *)(cgroup_root ? cgroup_root : ""), NULL};
    pid_t pid = 0;
    const int error = posix_spawn(&pid, exe, &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    (void)close(sockets[1]);
    if (error != 0) {
        (void)close(sockets[0]);
        return error;
    }
    *pid_out = pid;
    *socket_out = sockets[0];
    return 0;
}
