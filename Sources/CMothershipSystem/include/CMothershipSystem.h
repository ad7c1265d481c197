#ifndef C_MOTHERSHIP_SYSTEM_H
#define C_MOTHERSHIP_SYSTEM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/// Which step of `ms_spawn` failed (reported through `failed_step_out`).
enum {
    MS_SPAWN_STEP_NONE = 0,
    /// fork() or the exec-error pipe could not be created (in the parent).
    MS_SPAWN_STEP_FORK = 1,
    /// Redirecting stdin/stdout/stderr in the child.
    MS_SPAWN_STEP_SETUP = 2,
    /// chdir(cwd) in the child.
    MS_SPAWN_STEP_CHDIR = 3,
    /// execve(path) in the child.
    MS_SPAWN_STEP_EXEC = 4,
    /// Joining the cgroup (`cgroup_fd`) in the child.
    MS_SPAWN_STEP_CGROUP = 5,
};

/// Starts `path` as the leader of a new process group, with PR_SET_PDEATHSIG(SIGTERM) (plus the
/// getppid race check), all signal dispositions at SIG_DFL and an empty signal mask, stdin from
/// /dev/null, `stdout_fd` on 1 and `stderr_fd` on 2, no other descriptor inherited, in `cwd`, with
/// exactly `envp`. With `cgroup_dir` (a cgroup directory; NULL for none), the child is in that
/// cgroup before its command runs, so nothing it starts can be outside it: born there
/// (clone3 CLONE_VFORK | CLONE_INTO_CGROUP, cgroup v2 on Linux 5.7+), else it writes itself into
/// its cgroup.procs first thing (a clone(CLONE_VM | CLONE_VFORK) on a stack of its own). The child
/// makes only system calls; everything it touches is prepared by the caller. Returns 0 and stores the pid once the exec has succeeded;
/// otherwise returns the errno, stores the failing step, and has already reaped the failed child.
/// PR_SET_PDEATHSIG fires when the *calling thread* exits: call this from a long-lived thread.
int ms_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdout_fd,
             int stderr_fd, const char *cgroup_dir, pid_t *pid_out, int *failed_step_out);

/// PR_SET_CHILD_SUBREAPER on the calling process: orphaned descendants are reparented to it.
/// Returns 0 or the errno.
int ms_set_child_subreaper(void);

/// pipe2(O_CLOEXEC); the read end is also made non-blocking when `nonblocking_read` is set.
/// Returns 0 or the errno.
int ms_pipe(int fds[2], int nonblocking_read);

/// Blocks until some child has exited and returns its pid without reaping it (waitid WNOWAIT).
/// Returns 0, or the errno (ECHILD when there are no children). EINTR is retried.
int ms_wait_any_exited(pid_t *pid_out);

/// Reaps `pid` if it has exited (WNOHANG). Returns 1 when reaped (status stored), 0 when it is still
/// running, -1 with errno set otherwise (ECHILD: not our child or already reaped).
int ms_reap(pid_t pid, int *status_out);

/// epoll helpers: plain integers in and out, so Swift never sees the packed `struct epoll_event`.
int ms_epoll_create(void);
/// An epoll instance with a new eventfd (`*wakeup_out`) in it under `token`, for a helper thread
/// that other threads wake; -1 (nothing left open) when either cannot be made.
int ms_epoll_create_with_wakeup(uint64_t token, int *wakeup_out);
int ms_epoll_add(int epfd, int fd, uint64_t token);
int ms_epoll_remove(int epfd, int fd);
/// Interest bits for `ms_epoll_set` (and the events `ms_epoll_wait` reports).
enum {
    MS_EPOLL_IN = 0x001,
    MS_EPOLL_OUT = 0x004,
    MS_EPOLL_ERR = 0x008,
    MS_EPOLL_HUP = 0x010,
    /// EPOLLRDHUP: the peer has shut down its side (its FIN has arrived).
    MS_EPOLL_RDHUP = 0x2000,
    /// EPOLLEXCLUSIVE (on adding only): of the epoll instances waiting on one listening socket, one
    /// is woken per connection instead of all.
    MS_EPOLL_EXCLUSIVE = 0x10000000,
    /// EPOLLET: reported when the socket's state changes (bytes arrive, room frees up), not at
    /// every wait while it stays ready; setting the interest again reports what is ready now.
    MS_EPOLL_EDGE = (int)0x80000000u,
};
/// Adds `fd` (`add` non-zero) or changes its interest to `events` (MS_EPOLL_* bits, level-triggered
/// unless MS_EPOLL_EDGE; errors and hang-ups are always reported). Returns 0 or the errno.
int ms_epoll_set(int epfd, int fd, uint64_t token, uint32_t events, int add);
/// Waits up to `timeout_ms` (-1: forever); fills `tokens`/`events` and returns how many (EINTR: 0).
int ms_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms);

/// send(MSG_NOSIGNAL), sendmsg(MSG_NOSIGNAL) over `count` vectors, and recv, as direct system
/// calls: glibc's wrappers are cancellation points and pay two atomic operations per call for it;
/// this process never cancels a thread. Results and errno as from the libc calls, except that an
/// interrupted call (EINTR) is made again.
ssize_t ms_send(int fd, const void *buffer, size_t length);
ssize_t ms_sendv(int fd, const struct iovec *vectors, int count);
ssize_t ms_recv(int fd, void *buffer, size_t length);

/// Starts a non-blocking connection to `host`:`port` (numeric or a name from the resolver), or to
/// the Unix socket `path` when it is not NULL. A name with several addresses (`localhost`: ::1 and
/// 127.0.0.1) is tried from its address number `attempt` (modulo their count) on, so that retries
/// reach the others. Returns the close-on-exec, non-blocking socket (the connection may still be
/// in progress: wait until writable, then `ms_socket_error`), or -errno (a name that does not
/// resolve: -EHOSTUNREACH).
int ms_connect_stream(const char *host, int port, const char *path, int attempt);
/// The pending error of a socket (SO_ERROR): 0 when its connection was made.
int ms_socket_error(int fd);

/// A listening, non-blocking, close-on-exec stream socket on `host`:`port` (a name is resolved:
/// call at start-up only) or on the Unix socket `path` (an existing socket file there is replaced).
/// `reuse_port`: SO_REUSEPORT, so that several sockets share the address and the kernel spreads
/// connections over them. Returns the socket or -errno.
int ms_listen_stream(const char *host, int port, const char *path, int reuse_port, int backlog);
/// The port a socket is bound to (0 for a Unix socket), or -errno.
int ms_local_port(int fd);

/// The pid of the process at the other end of a connected Unix socket (SO_PEERCRED), or -1.
int ms_peer_pid(int fd);
/// Accepts a connection as a non-blocking, close-on-exec socket with TCP_NODELAY (on TCP); its
/// peer's numeric address is written to `address` (empty for a Unix peer) and port to `port_out`.
/// Returns the socket or -errno (-EAGAIN: none waiting).
int ms_accept_stream(int listener, char *address, size_t address_size, int *port_out);
/// Starts a non-blocking connection to the numeric IPv4 or IPv6 address `host`:`port` (no resolver).
/// Returns the socket (possibly still connecting, as `ms_connect_stream`) or -errno.
int ms_connect_numeric(const char *host, int port);

/// A non-blocking, close-on-exec eventfd.
int ms_eventfd(void);
/// Adds one to an eventfd (wakes its reader).
void ms_eventfd_signal(int fd);
/// Resets an eventfd to zero.
void ms_eventfd_drain(int fd);

/// For a helper thread at its start: blocks every signal (it must never run a handler) and names
/// the thread (at most 15 bytes are kept).
void ms_prepare_helper_thread(const char *name);

/// Kills every process in the cgroup directory `dir` and in every cgroup below it: one write to
/// `cgroup.kill` (cgroup v2, Linux 5.14+), else one sweep that freezes each cgroup (`cgroup.freeze`
/// or the v1 `freezer.state`) where it can, SIGKILLs every pid in its `cgroup.procs` and thaws it.
/// Does not wait. Returns 0, or the errno when `dir` cannot be read.
int ms_cgroup_kill(const char *dir);

/// Kills everything in `dir`'s subtree (as `ms_cgroup_kill`, repeated) until no process is left in
/// it or `timeout_ms` has passed, then, with `remove`, removes the subtree's directories bottom-up.
/// Returns 0 when the subtree is empty (and removed), ETIMEDOUT when processes remain, or an errno.
int ms_cgroup_clear(const char *dir, int remove, int timeout_ms);

/// Starts the keeper (see keeper.c): `exe` run again as a small single-threaded C program, in a
/// session of its own, that holds the other end of `*socket_out` (SOCK_SEQPACKET, close-on-exec
/// here). Messages "+PGID" and "-PGID" tell it which process groups are ours. When the socket
/// closes (this process exited, however it died), it SIGKILLs those groups and clears the cgroup
/// directory `cgroup_root` (NULL or "" for none) with `ms_cgroup_clear`, then exits.
/// Returns 0 and stores the keeper's pid and our end of the socket, or an errno.
int ms_start_keeper(const char *exe, const char *cgroup_root, pid_t *pid_out, int *socket_out);

#endif
