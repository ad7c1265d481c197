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
#include <sys/syscall.h>
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

int ms_connect_stream(const char *host, int port, const char *path, int attempt) {
    if (path != NULL) {
        struct sockaddr_un address;
        memset(&address, 0, sizeof address);
        address.sun_family = AF_UNIX;
        if (strlen(path) >= sizeof address.sun_path) return -ENAMETOOLONG;
        strcpy(address.sun_path, path);
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
