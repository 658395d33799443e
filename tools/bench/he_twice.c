/* Happy Eyeballs to one host several times in one process, with a family
 * memory, as a long-running client (or the shim) would: the first connect
 * races, later ones start with the family that won.
 *
 *   he_twice [-n COUNT] HOST PORT
 *
 * Uses the system's resolver settings (the lab's resolv.conf). Prints one
 * line per connect: "connect N ms=T family=ipv4|ipv6", T from
 * ds_happy_start() to the winner (lookup included). Exit status: 0, 64
 * usage, 69 a connect failed, 70 internal error. */
#include "dualstack.h"

#include "bench.h"

#include <unistd.h>

typedef struct run {
  int done, fd, err;
  uint64_t end;
} run;

static void on_done(ds_happy *h, int fd, int err, void *user)
{
  run *st = user;
  (void)h;
  st->end = bench_now_ns();
  st->done = 1;
  st->fd = fd;
  st->err = err;
}

int main(int argc, char **argv)
{
  ds_reactor *r;
  ds_family_memory *m;
  long count = 2, port, i;
  int a = 1;
  char err[256];

  if (argc > 2 && strcmp(argv[1], "-n") == 0) {
    count = bench_num(argv[2], "count");
    a = 3;
  }
  if (argc - a != 2 || count < 1) {
    fprintf(stderr, "usage: he_twice [-n COUNT] HOST PORT\n");
    return 64;
  }
  port = bench_num(argv[a + 1], "port");
  if (ds_reactor_new(&r) != 0 || ds_family_memory_new(&m, 16, 600000) != 0)
    return 70;
  for (i = 1; i <= count; i++) {
    ds_happy_opts o = {0};
    ds_happy *h;
    run st = {0};
    uint64_t t0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    o.memory = m;
    t0 = bench_now_ns();
    if (ds_happy_start(r, argv[a], (uint16_t)port, &o, on_done, NULL, &st, &h,
                       err, sizeof err) != 0) {
      fprintf(stderr, "he_twice: %s\n", err);
      return 69;
    }
    while (!st.done)
      if (ds_reactor_run_once(r, -1) < 0)
        return 70;
    if (st.fd < 0) {
      fprintf(stderr, "he_twice: connect %ld: %s\n", i, ds_strerror(st.err));
      return 69;
    }
    getpeername(st.fd, (struct sockaddr *)&ss, &len);
    printf("connect %ld ms=%.3f family=%s\n", i, (double)(st.end - t0) / 1e6,
           ss.ss_family == AF_INET6 ? "ipv6" : "ipv4");
    fflush(stdout);
    close(st.fd);
  }
  /* Let the race's leftovers (lookups, timers) finish before freeing. */
  while (ds_reactor_run_once(r, 0) > 0)
    ;
  ds_family_memory_free(m);
  return ds_reactor_free(r) == 0 ? 0 : 70;
}
