#define _GNU_SOURCE
#include "CMothershipSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/// What a failed child writes to the exec-error pipe (8 bytes: atomic on a pipe).
struct ms_spawn_report {
    int step;
    int error;
};

/// Child side: report the failing step and errno, then leave without running atexit handlers.
static void ms_child_fail(int report_fd, int step) {
    struct ms_spawn_report report = {step, errno};
    ssize_t ignored;
    do {
        ignored = write(report_fd, &report, sizeof report);
    } while (ignored < 0 && errno == EINTR);
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

int ms_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdout_fd,
             int stderr_fd, pid_t *pid_out, int *failed_step_out) {
    *pid_out = 0;
    *failed_step_out = MS_SPAWN_STEP_NONE;

    int report_pipe[2];
    if (pipe2(report_pipe, O_CLOEXEC) != 0) {
        *failed_step_out = MS_SPAWN_STEP_FORK;
        return errno;
    }

    // Prepared before fork: the child may only make async-signal-safe calls.
    struct rlimit limit;
    int max_fd = 65536;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (1u << 20)) {
        max_fd = (int)limit.rlim_cur;
    }
    const pid_t parent = getpid();

    // Block everything across the fork so none of the parent's handlers can run in the child before
    // the dispositions are reset.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);

    // vfork: the child borrows this thread's memory until it execs or exits, so no page tables are
    // copied (a fork of a large, multi-threaded supervisor costs far more), and this thread waits
    // for the exec anyway. The child only makes system calls, writes nothing the parent reads but
    // the report pipe, and never returns from this function.
    const pid_t pid = vfork();
    if (pid == 0) {
        int report_fd = report_pipe[1];
        (void)setpgid(0, 0);
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) ms_child_fail(report_fd, MS_SPAWN_STEP_SETUP);
        // The parent may have died before prctl: then nobody would ever send the signal.
        if (getppid() != parent) _exit(127);

        // The raw system call: glibc's sigaction refuses the two signals it reserves (32, 33), yet an
        // ignored one of those would survive exec. All zeros is SIG_DFL, no flags, empty mask.
        const uint64_t default_action[4] = {0, 0, 0, 0};
        for (int signal_number = 1; signal_number <= 64; signal_number++) {
            if (signal_number == SIGKILL || signal_number == SIGSTOP) continue;
            (void)syscall(SYS_rt_sigaction, signal_number, default_action, NULL, sizeof(uint64_t));
        }

        report_fd = ms_child_move_up(report_fd);
        stdout_fd = ms_child_move_up(stdout_fd);
        stderr_fd = ms_child_move_up(stderr_fd);
        if (report_fd < 0) _exit(127);
        if (stdout_fd < 0 || stderr_fd < 0) ms_child_fail(report_fd, MS_SPAWN_STEP_SETUP);

        int null_fd;
        do {
            null_fd = open("/dev/null", O_RDONLY);
        } while (null_fd < 0 && errno == EINTR);
        if (null_fd < 0) ms_child_fail(report_fd, MS_SPAWN_STEP_SETUP);
        if (null_fd != 0) {
            if (ms_child_install(null_fd, 0) != 0) ms_child_fail(report_fd, MS_SPAWN_STEP_SETUP);
            (void)close(null_fd);
        }
        if (ms_child_install(stdout_fd, 1) != 0) ms_child_fail(report_fd, MS_SPAWN_STEP_SETUP);
        if (ms_child_install(stderr_fd, 2) != 0) ms_child_fail(report_fd, MS_SPAWN_STEP_SETUP);

        // Everything from 3 up closes at exec; the report pipe stays usable until then.
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            for (int fd = 3; fd < max_fd; fd++) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        }

        if (chdir(cwd) != 0) ms_child_fail(report_fd, MS_SPAWN_STEP_CHDIR);

        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, envp);
        ms_child_fail(report_fd, MS_SPAWN_STEP_EXEC);
    }

    const int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    (void)close(report_pipe[1]);
    if (pid < 0) {
        (void)close(report_pipe[0]);
        *failed_step_out = MS_SPAWN_STEP_FORK;
        return fork_error;
    }

    // Also from this side, so the group exists before anyone signals it. EACCES (already exec'd) and
    // ESRCH (already gone) are fine.
    (void)setpgid(pid, pid);

    struct ms_spawn_report report;
    size_t received = 0;
    while (received < sizeof report) {
        const ssize_t count = read(report_pipe[0], (char *)&report + received, sizeof report - received);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        received += (size_t)count;
    }
    (void)close(report_pipe[0]);

    if (received == 0) {
        *pid_out = pid;
        return 0;
    }
    if (received < sizeof report) {
        report.step = MS_SPAWN_STEP_EXEC;
        report.error = EIO;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    *failed_step_out = report.step;
    return report.error != 0 ? report.error : EIO;
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
