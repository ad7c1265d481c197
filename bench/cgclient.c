// Keep-alive HTTP/1.1 load client for bench/callgrind.sh: a known number of requests, in two
// phases on the same connections, with a shell command run between them and after the second.
//
//   cgclient HOST PORT PATH CONNS WARMUP MEASURE CONCURRENT BETWEEN_CMD AFTER_CMD
//
// Opens CONNS connections, sends WARMUP requests (GET PATH) spread over them, runs BETWEEN_CMD
// (system(3); "" = none) once every warm-up response is in, sends exactly MEASURE requests, runs
// AFTER_CMD once every measured response is in, then closes. CONCURRENT=1: one request in flight
// on every connection at once; CONCURRENT=0: one request in flight in all, the connections taken
// in turn. Every response must be 200 with a Content-Length body (no chunked encoding); anything
// else, a closed connection or 30 s without progress ends it with status 1. Prints one line:
//   cgclient ok warmup=N measured=N body_bytes=N measured_seconds=S
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)

struct conn {
    int fd;
    int busy;           // a request is in flight
    size_t have;        // bytes buffered for the current response
    long need;          // total bytes of the current response once its head is parsed (-1: unknown)
    char *buf;
};

static const char *g_path;
static char g_req[512];
static size_t g_req_len;
static long g_body_bytes;

static void die(const char *what) {
    fprintf(stderr, "cgclient: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void send_request(struct conn *c) {
    size_t off = 0;
    while (off < g_req_len) {
        ssize_t n = send(c->fd, g_req + off, g_req_len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) { struct pollfd p = {c->fd, POLLOUT, 0}; poll(&p, 1, 1000); continue; }
        if (n <= 0) die("send");
        off += (size_t)n;
    }
    c->busy = 1;
    c->have = 0;
    c->need = -1;
}

// Parses the head once it is complete; returns the response's total length or -1 (need more).
static long parse_head(struct conn *c) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end) {
        if (c->have > 64 * 1024) { errno = 0; die("response head over 64 KiB"); }
        return -1;
    }
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->have < 12 || memcmp(c->buf, "HTTP/1.1 200", 12) != 0) {
        errno = 0;
        fprintf(stderr, "cgclient: unexpected response: %.*s\n", (int)(head < 200 ? head : 200), c->buf);
        exit(1);
    }
    long length = -1;
    for (char *line = memchr(c->buf, '\n', head); line && line < end; line = memchr(line + 1, '\n', (size_t)(end - line))) {
        char *name = line + 1;
        if ((size_t)(end - name) > 15 && strncasecmp(name, "content-length:", 15) == 0) length = strtol(name + 15, NULL, 10);
        if ((size_t)(end - name) > 18 && strncasecmp(name, "transfer-encoding:", 18) == 0) { errno = 0; die("chunked response not handled"); }
    }
    if (length < 0) { errno = 0; die("response without Content-Length"); }
    if (length + (long)head > BUF_SIZE) { errno = 0; die("response too large"); }
    g_body_bytes += length;
    return (long)head + length;
}

// Reads what is there; returns 1 when the current response is complete.
static int on_readable(struct conn *c) {
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->have, BUF_SIZE - c->have, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0;
        if (n < 0) die("recv");
        if (n == 0) { errno = 0; die("connection closed by the server"); }
        c->have += (size_t)n;
        if (c->need < 0) c->need = parse_head(c);
        if (c->need >= 0 && (long)c->have >= c->need) {
            if ((long)c->have > c->need) { errno = 0; die("bytes past the response (no pipelining expected)"); }
            c->busy = 0;
            return 1;
        }
    }
}

// Sends exactly `total` requests over the connections and waits for every response.
static void run_phase(struct conn *conns, int nconns, long total, int concurrent) {
    long sent = 0, done = 0;
    int next = 0;
    struct pollfd *pfds = calloc((size_t)nconns, sizeof *pfds);
    if (concurrent) {
        for (int i = 0; i < nconns && sent < total; i++, sent++) send_request(&conns[i]);
    } else if (total > 0) {
        send_request(&conns[next]);
        next = (next + 1) % nconns;
        sent++;
    }
    while (done < total) {
        int n = 0;
        for (int i = 0; i < nconns; i++) pfds[i] = (struct pollfd){conns[i].fd, conns[i].busy ? POLLIN : 0, 0};
        n = poll(pfds, (nfds_t)nconns, 30000);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("poll");
        if (n == 0) { errno = 0; fprintf(stderr, "cgclient: 30 s without a response (%ld of %ld done)\n", done, total); exit(1); }
        for (int i = 0; i < nconns; i++) {
            if (!(pfds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
            if (!on_readable(&conns[i])) continue;
            done++;
            if (sent < total) {
                if (concurrent) {
                    send_request(&conns[i]);
                } else {
                    send_request(&conns[next]);
                    next = (next + 1) % nconns;
                }
                sent++;
            }
        }
    }
    free(pfds);
}

static void run_cmd(const char *cmd) {
    if (!cmd[0]) return;
    fflush(stdout);
    int status = system(cmd);
    if (status != 0) { fprintf(stderr, "cgclient: command failed (%d): %s\n", status, cmd); exit(1); }
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: cgclient HOST PORT PATH CONNS WARMUP MEASURE CONCURRENT BETWEEN_CMD AFTER_CMD\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    g_path = argv[3];
    int nconns = atoi(argv[4]);
    long warmup = atol(argv[5]), measure = atol(argv[6]);
    int concurrent = atoi(argv[7]);
    if (nconns < 1 || warmup < nconns || measure < 1) { fprintf(stderr, "cgclient: need CONNS >= 1, WARMUP >= CONNS, MEASURE >= 1\n"); return 2; }
    // GZIP=1: every request says it accepts gzip, as browsers do (the relay's compression path).
    const char *gzip = getenv("GZIP");
    const char *accept = gzip && strcmp(gzip, "1") == 0 ? "Accept-Encoding: gzip, deflate, br\r\n" : "";
    g_req_len = (size_t)snprintf(g_req, sizeof g_req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", g_path, host, port, accept);

    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { errno = 0; die("HOST must be an IPv4 address"); }
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) die("socket");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) die("connect");
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 30000) != 1) { errno = 0; die("connect timed out"); }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { errno = err; die("connect"); }
        conns[i] = (struct conn){fd, 0, 0, -1, malloc(BUF_SIZE)};
        if (!conns[i].buf) die("malloc");
    }
    // Every connection takes part in the warm-up (its first request is the one that differs).
    run_phase(conns, nconns, warmup, concurrent);
    run_cmd(argv[8]);
    long body_before = g_body_bytes;
    double start = now();
    run_phase(conns, nconns, measure, concurrent);
    double seconds = now() - start;
    run_cmd(argv[9]);
    for (int i = 0; i < nconns; i++) close(conns[i].fd);
    printf("cgclient ok warmup=%ld measured=%ld body_bytes=%ld measured_seconds=%.3f\n", warmup, measure,
           g_body_bytes - body_before, seconds);
    return 0;
}
