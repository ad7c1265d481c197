#define _GNU_SOURCE
#include "CMothershipSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/// Shared between `ms_spawn` and its child, in a MAP_SHARED page. The child runs either on a copy of
/// the parent's memory (clone3 into a cgroup, fork semantics) or, sharing it, on a stack of its own
/// (clone with CLONE_VM; never on a frame of the parent's, unlike vfork); either way the parent's
/// thread is suspended until the child has exec'd or exited (CLONE_VFORK), so the only thing the
/// child writes, `step`/`error` on failure, is read after that. glibc's posix_spawn works the same
/// way, but cannot put the child in a cgroup before its exec on this glibc (2.36).
struct ms_spawn_child_args {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int stdout_fd;
    int stderr_fd;
    int cgroup_fd;
    int max_fd;
    pid_t parent;
    volatile int step;
    volatile int error;
};

/// Child side: record the failing step and errno, then leave without running atexit handlers.
static int ms_child_fail(struct ms_spawn_child_args *args, int step) {
    args->error = errno != 0 ? errno : EIO;
    args->step = step;
    _exit(127);
}

/// Child side: moves a descriptor that sits on 0, 1 or 2 out of the way (close-on-exec, >= 3) so
/// the dup2 calls below cannot clobber it. Only matters when the parent runs with 0-2 closed.
static int ms_child_move_up(int fd) {
    if (fd >= 3) return fd;
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/// Child side: puts `fd` on `target` without the close-on-exec flag.
static int ms_child_install(int fd, int target) {
    int result;
    do {
        result = dup2(fd, target);
    } while (result < 0 && errno == EINTR);
    return result < 0 ? -1 : 0;
}

/// The child, on its own stack. Only system calls; nothing it touches is written by anyone else
/// while it runs.
static int ms_spawn_child(void *raw) {
    struct ms_spawn_child_args *args = raw;
    // Into the vessel's cgroup first, before anything it runs can fork ("0": the writing process).
    if (args->cgroup_fd >= 0) {
        ssize_t written;
        do {
            written = write(args->cgroup_fd, "0", 1);
        } while (written < 0 && errno == EINTR);
        if (written != 1) ms_child_fail(args, MS_SPAWN_STEP_CGROUP);
    }
    (void)setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) ms_child_fail(args, MS_SPAWN_STEP_SETUP);
    // The parent may have died before prctl: then nobody would ever send the signal.
    if (getppid() != args->parent) _exit(127);

    // The raw system call: glibc's sigaction refuses the two signals it reserves (32, 33), yet an
    // ignored one of those would survive exec. All zeros is SIG_DFL, no flags, empty mask.
    const uint64_t default_action[4] = {0, 0, 0, 0};
    for (int signal_number = 1; signal_number <= 64; signal_number++) {
        if (signal_number == SIGKILL || signal_number == SIGSTOP) continue;
        (void)syscall(SYS_rt_sigaction, signal_number, default_action, NULL, sizeof(uint64_t));
    }

    const int stdout_fd = ms_child_move_up(args->stdout_fd);
    const int stderr_fd = ms_child_move_up(args->stderr_fd);
    if (stdout_fd < 0 || stderr_fd < 0) ms_child_fail(args, MS_SPAWN_STEP_SETUP);

    int null_fd;
    do {
        null_fd = open("/dev/null", O_RDONLY);
    } while (null_fd < 0 && errno == EINTR);
    if (null_fd < 0) ms_child_fail(args, MS_SPAWN_STEP_SETUP);
    if (null_fd != 0) {
        if (ms_child_install(null_fd, 0) != 0) ms_child_fail(args, MS_SPAWN_STEP_SETUP);
        (void)close(null_fd);
    }
    if (ms_child_install(stdout_fd, 1) != 0) ms_child_fail(args, MS_SPAWN_STEP_SETUP);
    if (ms_child_install(stderr_fd, 2) != 0) ms_child_fail(args, MS_SPAWN_STEP_SETUP);

    // Everything from 3 up closes at exec.
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < args->max_fd; fd++) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    }

    if (chdir(args->cwd) != 0) ms_child_fail(args, MS_SPAWN_STEP_CHDIR);

    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    execve(args->path, args->argv, args->envp);
    return ms_child_fail(args, MS_SPAWN_STEP_EXEC);
}

/// The child's stack: its frames, the few locals above and what execve needs. Mapped per spawn
/// (a guard page below it), unmapped once the child has exec'd or exited.
#define MS_SPAWN_STACK_SIZE (64 * 1024)

/// Cleared once clone3(CLONE_INTO_CGROUP) has been refused (a kernel before 5.7, a v1 hierarchy).
static atomic_int ms_clone_into_cgroup_works = 1;

/// clone3(CLONE_VFORK | CLONE_INTO_CGROUP): the child is born in the cgroup `cgroup_dir_fd`, which
/// spares the migration that a write to cgroup.procs costs (it waits for an RCU grace period, 10-20
/// ms here, on every restart). Without CLONE_VM the child has its own copy of the memory, as after
/// fork(): `args` is in a shared mapping so that its report reaches us, and this thread resumes once
/// the child has exec'd or exited. Returns the pid, or -1 with errno.
static pid_t ms_clone_into_cgroup(struct ms_spawn_child_args *args, int cgroup_dir_fd) {
    struct clone_args clone = {0};
    clone.flags = CLONE_VFORK | CLONE_INTO_CGROUP;
    clone.exit_signal = SIGCHLD;
    clone.cgroup = (uint64_t)cgroup_dir_fd;
    const long pid = syscall(SYS_clone3, &clone, sizeof clone);
    if (pid == 0) {
        // The child, on its copy of this stack (fork semantics): only system calls from here on.
        ms_spawn_child(args);
        _exit(127);
    }
    return (pid_t)pid;
}

int ms_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdout_fd,
             int stderr_fd, const char *cgroup_dir, pid_t *pid_out, int *failed_step_out) {
    *pid_out = 0;
    *failed_step_out = MS_SPAWN_STEP_NONE;

    // The cgroup, as a directory (for CLONE_INTO_CGROUP) or, failing that, its cgroup.procs (the
    // child writes itself into it before anything else).
    int cgroup_dir_fd = -1, cgroup_procs_fd = -1;
    if (cgroup_dir) {
        if (atomic_load_explicit(&ms_clone_into_cgroup_works, memory_order_relaxed)) {
            cgroup_dir_fd = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (cgroup_dir_fd < 0) {
            char procs[4096];
            if (snprintf(procs, sizeof procs, "%s/cgroup.procs", cgroup_dir) >= (int)sizeof procs) {
                *failed_step_out = MS_SPAWN_STEP_CGROUP;
                return ENAMETOOLONG;
            }
            cgroup_procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
            if (cgroup_procs_fd < 0) {
                *failed_step_out = MS_SPAWN_STEP_CGROUP;
                return errno;
            }
        }
    }

    // The child's report comes back through a shared page (the clone3 child has a copy of our memory).
    struct ms_spawn_child_args *shared =
        mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        const int error = errno;
        if (cgroup_dir_fd >= 0) (void)close(cgroup_dir_fd);
        if (cgroup_procs_fd >= 0) (void)close(cgroup_procs_fd);
        *failed_step_out = MS_SPAWN_STEP_FORK;
        return error;
    }
    struct ms_spawn_child_args args = {
        .path = path,
        .argv = argv,
        .envp = envp,
        .cwd = cwd,
        .stdout_fd = stdout_fd,
        .stderr_fd = stderr_fd,
        .cgroup_fd = cgroup_procs_fd,
        .max_fd = 65536,
        .parent = getpid(),
        .step = MS_SPAWN_STEP_NONE,
        .error = 0,
    };
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (1u << 20)) {
        args.max_fd = (int)limit.rlim_cur;
    }

    // Block everything across the clone so none of the parent's handlers can run in the child (which
    // shares the parent's memory) before the dispositions are reset.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);

    *shared = args;
    pid_t pid = -1;
    int clone_error = 0;
    if (cgroup_dir_fd >= 0) {
        pid = ms_clone_into_cgroup(shared, cgroup_dir_fd);
        clone_error = errno;
        if (pid < 0 && (clone_error == ENOSYS || clone_error == E2BIG || clone_error == EINVAL ||
                        clone_error == EBADF || clone_error == EOPNOTSUPP)) {
            // No clone3 into a cgroup here: from now on the child joins it by writing cgroup.procs.
            atomic_store_explicit(&ms_clone_into_cgroup_works, 0, memory_order_relaxed);
            char procs[4096];
            (void)snprintf(procs, sizeof procs, "%s/cgroup.procs", cgroup_dir);
            shared->cgroup_fd = cgroup_procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
            if (cgroup_procs_fd < 0) clone_error = errno;
        }
    }
    if (pid < 0 && (cgroup_dir_fd < 0 || cgroup_procs_fd >= 0)) {
        // CLONE_VM | CLONE_VFORK on a stack of its own: no page tables are copied, and this thread
        // resumes once the child has exec'd or exited. The stack grows down on every architecture
        // Swift targets on Linux; a guard page sits below it.
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        const size_t mapping = MS_SPAWN_STACK_SIZE + page;
        char *stack = mmap(NULL, mapping, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) {
            clone_error = errno;
        } else {
            (void)mprotect(stack, page, PROT_NONE);
            pid = clone(ms_spawn_child, stack + mapping, CLONE_VM | CLONE_VFORK | SIGCHLD, shared);
            clone_error = errno;
            (void)munmap(stack, mapping);
        }
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    args = *shared;
    (void)munmap(shared, sizeof *shared);
    if (cgroup_dir_fd >= 0) (void)close(cgroup_dir_fd);
    if (cgroup_procs_fd >= 0) (void)close(cgroup_procs_fd);

    if (pid < 0) {
        *failed_step_out = MS_SPAWN_STEP_FORK;
        return clone_error;
    }
    if (args.step == MS_SPAWN_STEP_NONE) {
        *pid_out = pid;
        return 0;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    *failed_step_out = args.step;
    return args.error != 0 ? args.error : EIO;
}

int ms_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 ? 0 : errno; }

int ms_pipe(int fds[2], int nonblocking_read) {
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
    if (nonblocking_read) {
        const int flags = fcntl(fds[0], F_GETFL);
        if (flags < 0 || fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) < 0) {
            const int error = errno;
            (void)close(fds[0]);
            (void)close(fds[1]);
            return error;
        }
    }
    return 0;
}

int ms_wait_any_exited(pid_t *pid_out) {
    siginfo_t info;
    for (;;) {
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) == 0) {
            *pid_out = info.si_pid;
            return 0;
        }
        if (errno != EINTR) return errno;
    }
}

int ms_reap(pid_t pid, int *status_out) {
    for (;;) {
        const pid_t result = waitpid(pid, status_out, WNOHANG);
        if (result == pid) return 1;
        if (result == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

void ms_prepare_helper_thread(const char *name) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
    (void)pthread_setname_np(pthread_self(), truncated);
}
