/* A plain IPv4-only client, the kind of program the shim is preloaded
 * into: getaddrinfo() with AF_INET hints and connect() of an AF_INET
 * socket, timed. run.sh runs it with and without LD_PRELOAD in turn.
 *
 *   shim_client gai [-n COUNT] NAME
 *       one getaddrinfo(NAME, AF_INET), then COUNT more; prints
 *       "first_us=T repeat_us=T" (repeat: the mean of the COUNT).
 *   shim_client conn [-n COUNT] ADDR PORT
 *       COUNT times socket(), connect() to the literal ADDR, close();
 *       prints "per_op_us=T total_ms=T".
 *   shim_client name [-n COUNT] NAME PORT
 *       COUNT times getaddrinfo(NAME, AF_INET), socket(), connect() to
 *       the first address, close(); prints "connect N ms=T" each time.
 *
 * Uses nothing but libc. Exit status: 0, 64 usage, 69 a lookup or a
 * connect failed. */
#include "bench.h"

#include <unistd.h>

/* Returns getaddrinfo()'s result for name with AF_INET / SOCK_STREAM
 * hints; *res is freed unless keep. */
static int lookup(const char *name, struct addrinfo **res)
{
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  return getaddrinfo(name, NULL, &hints, res);
}

/* Connects a fresh AF_INET socket to sin and closes it. Returns 0 or the
 * errno. */
static int connect_close(const struct sockaddr_in *sin)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;
  if (fd < 0)
    return errno;
  if (connect(fd, (const struct sockaddr *)sin, sizeof *sin) != 0)
    rc = errno;
  close(fd);
  return rc;
}

static int mode_gai(const char *name, long count)
{
  struct addrinfo *res;
  uint64_t t0, t1;
  long i;
  int rc;

  t0 = bench_now_ns();
  rc = lookup(name, &res);
  t1 = bench_now_ns();
  if (rc != 0) {
    fprintf(stderr, "shim_client: %s: %s\n", name, gai_strerror(rc));
    return 69;
  }
  freeaddrinfo(res);
  printf("first_us=%.2f ", (double)(t1 - t0) / 1e3);
  t0 = bench_now_ns();
  for (i = 0; i < count; i++) {
    rc = lookup(name, &res);
    if (rc != 0) {
      fprintf(stderr, "shim_client: %s: %s\n", name, gai_strerror(rc));
      return 69;
    }
    freeaddrinfo(res);
  }
  t1 = bench_now_ns();
  printf("repeat_us=%.3f\n", (double)(t1 - t0) / 1e3 / (double)count);
  return 0;
}

static int mode_conn(const char *addr, long port, long count)
{
  struct sockaddr_in sin;
  uint64_t t0, t1;
  long i;
  int rc;

  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
    fprintf(stderr, "shim_client: %s: not an IPv4 literal\n", addr);
    return 64;
  }
  t0 = bench_now_ns();
  for (i = 0; i < count; i++) {
    rc = connect_close(&sin);
    if (rc != 0) {
      fprintf(stderr, "shim_client: connect %s:%ld: %s (after %ld)\n", addr,
              port, strerror(rc), i);
      return 69;
    }
  }
  t1 = bench_now_ns();
  printf("per_op_us=%.3f total_ms=%.1f\n", (double)(t1 - t0) / 1e3 / count,
         (double)(t1 - t0) / 1e6);
  return 0;
}

static int mode_name(const char *name, long port, long count)
{
  struct addrinfo *res;
  struct sockaddr_in sin;
  uint64_t t0, t1;
  long i;
  int rc;

  for (i = 0; i < count; i++) {
    t0 = bench_now_ns();
    rc = lookup(name, &res);
    if (rc != 0) {
      fprintf(stderr, "shim_client: %s: %s\n", name, gai_strerror(rc));
      return 69;
    }
    memcpy(&sin, res->ai_addr, sizeof sin);
    freeaddrinfo(res);
    sin.sin_port = htons((uint16_t)port);
    rc = connect_close(&sin);
    t1 = bench_now_ns();
    if (rc != 0) {
      fprintf(stderr, "shim_client: connect %s: %s\n", name, strerror(rc));
      return 69;
    }
    printf("connect %ld ms=%.3f\n", i + 1, (double)(t1 - t0) / 1e6);
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv)
{
  long count = 1, port = 0;
  int a = 2;
  const char *mode = argc > 1 ? argv[1] : "";

  if (argc > 3 && strcmp(argv[2], "-n") == 0) {
    count = strtol(argv[3], NULL, 10);
    a = 4;
  }
  if (count < 1)
    goto usage;
  if (strcmp(mode, "gai") == 0 && argc == a + 1)
    return mode_gai(argv[a], count);
  if (argc != a + 2)
    goto usage;
  port = strtol(argv[a + 1], NULL, 10);
  if (port < 1 || port > 65535)
    goto usage;
  if (strcmp(mode, "conn") == 0)
    return mode_conn(argv[a], port, count);
  if (strcmp(mode, "name") == 0)
    return mode_name(argv[a], port, count);
usage:
  fprintf(stderr, "usage: shim_client gai [-n COUNT] NAME\n"
                  "       shim_client conn [-n COUNT] ADDR PORT\n"
                  "       shim_client name [-n COUNT] NAME PORT\n");
  return 64;
}
