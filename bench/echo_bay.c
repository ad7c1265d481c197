/* A minimal, fast echo bay for the benchmark: serves $MS_SOCKET_PATH, docks, and sends every Cargo
 * frame back unchanged (same conn_id, same bytes), so each client gets its own messages back.
 * One connection (mothership's), blocking I/O, one write per read. Build: cc -O2 -o echo_bay echo_bay.c */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF (4 << 20)

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}

int main(void) {
  const char *path = getenv("MS_SOCKET_PATH"), *ship = getenv("MS_SHIP");
  if (!path) { fprintf(stderr, "MS_SOCKET_PATH is not set\n"); return 1; }
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  unlink(path);
  if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1)) { perror("bind"); return 1; }
  int fd = accept(ls, NULL, NULL);
  if (fd < 0) { perror("accept"); return 1; }
  char dock[256];
  int m = snprintf(dock + 5, sizeof dock - 5, "{\"version\":1,\"ship\":\"%s\"}", ship ? ship : "echo");
  dock[0] = 0x01;
  uint32_t be = htonl((uint32_t)m);
  memcpy(dock + 1, &be, 4);
  if (write_all(fd, (uint8_t *)dock, (size_t)m + 5)) return 1;
  uint8_t *in = malloc(BUF), *out = malloc(BUF);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, in + n, BUF - n);
    if (r <= 0) return 0;
    n += (size_t)r;
    size_t off = 0, o = 0;
    while (n - off >= 5) {
      uint32_t len;
      memcpy(&len, in + off + 1, 4);
      len = ntohl(len);
      if (len > BUF - 5) { fprintf(stderr, "frame too large\n"); return 1; }
      if (n - off < 5 + (size_t)len) break;
      if (in[off] == 0x12) memcpy(out + o, in + off, 5 + len), o += 5 + len; /* Cargo: echo it */
      off += 5 + len;
    }
    if (o && write_all(fd, out, o)) return 0;
    memmove(in, in + off, n - off), n -= off;
  }
}
