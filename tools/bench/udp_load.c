/* UDP load generator for the datagram echo benchmark: for each server
 * (group), SOCKETS connected sockets, each keeping WINDOW datagrams of
 * BYTES in flight and sending one more for each that comes back. Batched
 * with recvmmsg() and sendmmsg(), so that the load costs less per datagram
 * than any server, and the server's core is the bottleneck.
 *
 *   udp_load -s BYTES [-k SOCKETS] [-W WINDOW] [-t MS] [-r ROUNDS]
 *            [-n NAMES] [-P PIDS] TARGET...
 *
 * One TARGET (192.0.2.1:7, [::1]:7) per group; NAMES and PIDS are
 * comma-separated, one per group. As in echo_load, the groups take turns
 * in slices of MS milliseconds (default 200), ROUNDS times (default 10),
 * the order rotating every round, and round 0 warms up unreported. A slice
 * ends by waiting for the datagrams in flight (at most 50 ms: the rest
 * count as lost). Each reported slice prints:
 *
 *   slice round=R group=NAME rate=N lost=N load_us=N [srv_us=N srv_util=N]
 *
 * rate: echoed datagrams received per second of the slice; load_us: this
 * program's CPU time per datagram (is the load the limit?); srv_us and
 * srv_util (with PIDS): the server's CPU time per datagram and the share
 * of the slice it ran, from /proc/PID/schedstat. A socket that has heard
 * nothing for 20 ms in a slice counts its window as lost and sends it
 * again, so a dropped datagram cannot stall it. */
#include "bench.h"

#include <getopt.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_GROUPS 8
#define MAX_SOCKS 64
#define BATCH 64

typedef struct sock {
  int fd, group;
  long inflight;
  uint64_t last_rx;
} sock;

typedef struct group {
  const char *name;
  long pid;
  struct sockaddr_storage target;
  socklen_t target_len;
  sock socks[MAX_SOCKS];
} group;

static long size = 64, nsocks = 4, window = 16, slice_ms = 200, rounds = 10;
static group groups[MAX_GROUPS];
static int ngroups, epfd;
static char sbuf[65536];
static char rbufs[BATCH][65536];

static void die(const char *what)
{
  fprintf(stderr, "udp_load: %s: %s\n", what, strerror(errno));
  exit(70);
}

static void usage(void)
{
  fprintf(stderr, "usage: udp_load -s BYTES [-k SOCKETS] [-W WINDOW] "
                  "[-t MS] [-r ROUNDS] [-n NAMES] [-P PIDS] TARGET...\n");
  exit(64);
}

/* Sends n datagrams on s (fewer if the socket has no room). */
static void send_n(sock *s, long n)
{
  struct mmsghdr m[BATCH];
  struct iovec iov = {.iov_base = sbuf, .iov_len = (size_t)size};
  int i, k;
  while (n > 0) {
    int b = n > BATCH ? BATCH : (int)n;
    memset(m, 0, sizeof m);
    for (i = 0; i < b; i++) {
      m[i].msg_hdr.msg_iov = &iov;
      m[i].msg_hdr.msg_iovlen = 1;
    }
    k = sendmmsg(s->fd, m, (unsigned)b, MSG_DONTWAIT);
    if (k <= 0) {
      if (k < 0 && errno != EAGAIN && errno != ECONNREFUSED)
        die("sendmmsg");
      return;
    }
    s->inflight += k;
    n -= k;
  }
}

/* Reads what s has; returns the datagrams read. */
static int drain(sock *s)
{
  struct mmsghdr m[BATCH];
  struct iovec iov[BATCH];
  int j, got;
  memset(m, 0, sizeof m);
  for (j = 0; j < BATCH; j++) {
    iov[j].iov_base = rbufs[j];
    iov[j].iov_len = sizeof rbufs[j];
    m[j].msg_hdr.msg_iov = &iov[j];
    m[j].msg_hdr.msg_iovlen = 1;
  }
  got = recvmmsg(s->fd, m, BATCH, MSG_DONTWAIT, NULL);
  if (got < 0) {
    if (errno != EAGAIN && errno != ECONNREFUSED)
      die("recvmmsg");
    return 0;
  }
  for (j = 0; j < got; j++)
    if (m[j].msg_len != (unsigned)size) {
      fprintf(stderr, "udp_load: got %u bytes, sent %ld\n", m[j].msg_len, size);
      exit(70);
    }
  s->inflight = s->inflight > got ? s->inflight - got : 0;
  return got;
}

/* Runs one slice of group k; prints its line unless it is a warm-up. */
static void slice(int k, long round)
{
  group *grp = &groups[k];
  struct epoll_event evs[MAX_SOCKS * MAX_GROUPS];
  uint64_t start, end, now, count = 0, lost = 0, cpu0, cpu1 = 0;
  uint64_t self0 = bench_self_cpu_ns(), self1 = 0;
  long i, inflight;
  int open = 1;

  cpu0 = grp->pid > 0 ? bench_cpu_ns(grp->pid) : 0;
  start = bench_now_ns();
  end = start + (uint64_t)slice_ms * 1000000u;
  for (i = 0; i < nsocks; i++) {
    grp->socks[i].last_rx = start;
    send_n(&grp->socks[i], window);
  }
  for (;;) {
    int n = epoll_wait(epfd, evs, MAX_SOCKS * MAX_GROUPS, 5), e;
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    now = bench_now_ns();
    if (open && now >= end) {
      open = 0;
      cpu1 = grp->pid > 0 ? bench_cpu_ns(grp->pid) : 0;
      self1 = bench_self_cpu_ns();
    }
    for (e = 0; e < n; e++) {
      sock *s = evs[e].data.ptr;
      int got = drain(s);
      if (s->group != k || got == 0)
        continue; /* a late echo of an earlier slice */
      s->last_rx = now;
      if (now < end)
        count += (uint64_t)got;
      if (open)
        send_n(s, window - s->inflight);
    }
    for (inflight = 0, i = 0; i < nsocks; i++) {
      sock *s = &grp->socks[i];
      if (s->inflight > 0 &&
          now - s->last_rx > (open ? 20000000u : 50000000u)) {
        lost += (uint64_t)s->inflight;
        s->inflight = 0;
        s->last_rx = now;
        if (open)
          send_n(s, window);
      }
      inflight += s->inflight;
    }
    if (!open && inflight == 0)
      break;
  }
  if (round == 0)
    return;
  printf("slice round=%ld group=%s rate=%.0f lost=%llu", round, grp->name,
         (double)count / ((double)slice_ms / 1e3), (unsigned long long)lost);
  if (count > 0)
    printf(" load_us=%.2f", (double)(self1 - self0) / 1e3 / (double)count);
  if (cpu0 != 0 && cpu1 > cpu0 && count > 0)
    printf(" srv_us=%.2f srv_util=%.3f",
           (double)(cpu1 - cpu0) / 1e3 / (double)count,
           (double)(cpu1 - cpu0) / 1e6 / (double)slice_ms);
  printf("\n");
  fflush(stdout);
}

/* Splits a comma-separated list in place; returns the count. */
static int split(char *text, char **out, int max)
{
  int n = 0;
  char *save = NULL, *p;
  for (p = strtok_r(text, ",", &save); p != NULL && n < max;
       p = strtok_r(NULL, ",", &save))
    out[n++] = p;
  return n;
}

int main(int argc, char **argv)
{
  char *names[MAX_GROUPS] = {0}, *pids[MAX_GROUPS] = {0};
  int c, k, nnames = 0, npids = 0;
  long i, round;

  while ((c = getopt(argc, argv, "s:k:W:t:r:n:P:")) != -1) {
    switch (c) {
    case 's':
      size = bench_num(optarg, "size");
      break;
    case 'k':
      nsocks = bench_num(optarg, "sockets");
      break;
    case 'W':
      window = bench_num(optarg, "window");
      break;
    case 't':
      slice_ms = bench_num(optarg, "slice");
      break;
    case 'r':
      rounds = bench_num(optarg, "rounds");
      break;
    case 'n':
      nnames = split(optarg, names, MAX_GROUPS);
      break;
    case 'P':
      npids = split(optarg, pids, MAX_GROUPS);
      break;
    default:
      usage();
    }
  }
  ngroups = argc - optind;
  if (ngroups < 1 || ngroups > MAX_GROUPS || size < 1 || size > 65507 ||
      nsocks < 1 || nsocks > MAX_SOCKS || window < 1 || slice_ms < 1 ||
      (nnames != 0 && nnames != ngroups) || (npids != 0 && npids != ngroups))
    usage();
  memset(sbuf, 'u', sizeof sbuf);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0)
    die("epoll_create1");
  for (k = 0; k < ngroups; k++) {
    group *grp = &groups[k];
    grp->name = nnames ? names[k] : argv[optind + k];
    grp->pid = npids ? bench_num(pids[k], "pid") : 0;
    if (bench_parse_hostport(argv[optind + k], &grp->target,
                             &grp->target_len) != 0)
      return 64;
    for (i = 0; i < nsocks; i++) {
      sock *s = &grp->socks[i];
      struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
      s->group = k;
      s->fd = socket(grp->target.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s->fd < 0)
        die("socket");
      if (connect(s->fd, (struct sockaddr *)&grp->target, grp->target_len))
        die("connect");
      if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &e) != 0)
        die("epoll_ctl");
    }
  }
  for (round = 0; round <= rounds; round++)
    for (k = 0; k < ngroups; k++)
      slice((int)((k + round) % ngroups), round);
  return 0;
}
