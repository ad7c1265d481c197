#define _GNU_SOURCE
#include "CMothershipSystem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

int ms_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int ms_epoll_create_with_wakeup(uint64_t token, int *wakeup_out) {
    const int epfd = ms_epoll_create();
    if (epfd < 0) return -1;
    const int wakeup = ms_eventfd();
    if (wakeup < 0 || ms_epoll_add(epfd, wakeup, token) != 0) {
        if (wakeup >= 0) close(wakeup);
        close(epfd);
        return -1;
    }
    *wakeup_out = wakeup;
    return epfd;
}

int ms_epoll_add(int epfd, int fd, uint64_t token) { return ms_epoll_set(epfd, fd, token, EPOLLIN, 1); }

int ms_epoll_set(int epfd, int fd, uint64_t token, uint32_t events, int add) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = token;
    return epoll_ctl(epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event) == 0 ? 0 : errno;
}

int ms_epoll_remove(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : errno; }

int ms_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[64];
    if (capacity > 64) capacity = 64;
    const int count = epoll_wait(epfd, ready, capacity, timeout_ms);
    if (count < 0) return errno == EINTR ? 0 : -1;
    for (int index = 0; index < count; index++) {
        tokens[index] = ready[index].data.u64;
        events[index] = ready[index].events;
    }
    return count;
}

int ms_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

void ms_eventfd_signal(int fd) {
    const uint64_t one = 1;
    ssize_t written;
    do {
        written = write(fd, &one, sizeof one);
    } while (written < 0 && errno == EINTR);
}

void ms_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t count;
    do {
        count = read(fd, &value, sizeof value);
    } while (count < 0 && errno == EINTR);
}

ssize_t ms_send(int fd, const void *buffer, size_t length) {
    ssize_t result;
    do {
        result = syscall(SYS_sendto, fd, buffer, length, MSG_NOSIGNAL, NULL, 0);
    } while (result < 0 && errno == EINTR);
    return result;
}

ssize_t ms_sendv(int fd, const struct iovec *vectors, int count) {
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = (struct iovec *)vectors;
    message.msg_iovlen = (size_t)count;
    ssize_t result;
    do {
        result = syscall(SYS_sendmsg, fd, &message, MSG_NOSIGNAL);
    } while (result < 0 && errno == EINTR);
    return result;
}

ssize_t ms_recv(int fd, void *buffer, size_t length) {
    ssize_t result;
    do {
        result = syscall(SYS_recvfrom, fd, buffer, length, 0, NULL, NULL);
    } while (result < 0 && errno == EINTR);
    return result;
}

/// `path` as a Unix socket address; -1 when it is too long for one.
static int unix_address(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) return -1;
    strcpy(address->sun_path, path);
    return 0;
}

int ms_connect_stream(const char *host, int port, const char *path, int attempt) {
    if (path != NULL) {
        struct sockaddr_un address;
        if (unix_address(path, &address) != 0) return -ENAMETOOLONG;
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -errno;
        if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0 && errno != EINPROGRESS &&
            errno != EAGAIN) {
            const int error = errno;
            close(fd);
            return -error;
        }
        return fd;
    }
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &found) != 0 || found == NULL) return -EHOSTUNREACH;
    int count = 0;
    for (struct addrinfo *candidate = found; candidate != NULL; candidate = candidate->ai_next) count++;
    int result = -ECONNREFUSED;
    for (int tried = 0; tried < count; tried++) {
        const int index = ((attempt < 0 ? 0 : attempt) + tried) % count;
        struct addrinfo *candidate = found;
        for (int step = 0; step < index; step++) candidate = candidate->ai_next;
        const int fd = socket(candidate->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            result = -errno;
            continue;
        }
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, candidate->ai_addr, candidate->ai_addrlen) == 0 || errno == EINPROGRESS) {
            result = fd;
            break;
        }
        result = -errno;
        close(fd);
    }
    freeaddrinfo(found);
    return result;
}

int ms_socket_error(int fd) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
    return error;
}

int ms_listen_stream(const char *host, int port, const char *path, int reuse_port, int backlog) {
    const int one = 1;
    if (path != NULL) {
        struct sockaddr_un address;
        if (unix_address(path, &address) != 0) return -ENAMETOOLONG;
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -errno;
        struct stat info;
        if (lstat(path, &info) == 0 && S_ISSOCK(info.st_mode)) unlink(path);
        if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, backlog) != 0) {
            const int error = errno;
            close(fd);
            return -error;
        }
        return fd;
    }
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    const int status = getaddrinfo(host, service, &hints, &found);
    if (status != 0 || found == NULL) return -EADDRNOTAVAIL;
    const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        const int error = errno;
        freeaddrinfo(found);
        return -error;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        const int error = errno;
        close(fd);
        freeaddrinfo(found);
        return -error;
    }
    freeaddrinfo(found);
    return fd;
}

int ms_peer_pid(int fd) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    return credentials.pid;
}

int ms_local_port(int fd) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) return -errno;
    if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
    if (address.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
    return 0;
}

int ms_accept_stream(int listener, char *address, size_t address_size, int *port_out) {
    struct sockaddr_storage peer;
    socklen_t length = sizeof peer;
    const int fd = accept4(listener, (struct sockaddr *)&peer, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return -errno;
    if (address_size > 0) address[0] = 0;
    *port_out = 0;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&peer;
        inet_ntop(AF_INET, &v4->sin_addr, address, (socklen_t)address_size);
        *port_out = ntohs(v4->sin_port);
    } else if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&peer;
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
            inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], address, (socklen_t)address_size);
        } else {
            inet_ntop(AF_INET6, &v6->sin6_addr, address, (socklen_t)address_size);
        }
        *port_out = ntohs(v6->sin6_port);
    }
    if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int ms_connect_numeric(const char *host, int port) {
    struct sockaddr_storage address;
    memset(&address, 0, sizeof address);
    socklen_t length;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        length = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        length = sizeof *v6;
    } else {
        return -EINVAL;
    }
    const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&address, length) != 0 && errno != EINPROGRESS) {
        const int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}
