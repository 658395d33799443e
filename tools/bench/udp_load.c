/* UDP load generator for the datagram echo benchmark: SOCKETS connected
 * sockets, each keeping WINDOW datagrams of BYTES in flight to the echo
 * server and sending one more for each that comes back. Batched with
 * recvmmsg() and sendmmsg() so that the load costs less per datagram than
 * any server, and the server's core is the bottleneck.
 *
 *   udp_load -s BYTES [-k SOCKETS] [-W WINDOW] [-w MS] [-d MS] TARGET
 *
 * A socket that has heard nothing for 20 ms counts its window as lost and
 * sends it again, so a dropped datagram cannot stall it. Prints "dps=N"
 * (echoed datagrams received per second) and "lost=N". */
#include "bench.h"

#include <getopt.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_SOCKS 64
#define BATCH 64

typedef struct sock {
  int fd;
  long inflight;
  uint64_t last_rx;
} sock;

static long size = 64, nsocks = 4, window = 16;
static char sbuf[65536];
static char rbufs[BATCH][65536];

static void die(const char *what)
{
  fprintf(stderr, "udp_load: %s: %s\n", what, strerror(errno));
  exit(70);
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

int main(int argc, char **argv)
{
  long warmup_ms = 300, duration_ms = 1000, i;
  struct sockaddr_storage ss;
  socklen_t sslen;
  struct epoll_event evs[MAX_SOCKS];
  sock socks[MAX_SOCKS];
  uint64_t t0, start, end, now, count = 0, lost = 0;
  int epfd, c;

  while ((c = getopt(argc, argv, "s:k:W:w:d:")) != -1) {
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
    case 'w':
      warmup_ms = bench_num(optarg, "warmup");
      break;
    case 'd':
      duration_ms = bench_num(optarg, "duration");
      break;
    default:
      goto usage;
    }
  }
  if (optind != argc - 1 || size < 1 || size > 65507 || nsocks < 1 ||
      nsocks > MAX_SOCKS || window < 1)
    goto usage;
  if (bench_parse_hostport(argv[optind], &ss, &sslen) != 0)
    return 64;
  memset(sbuf, 'u', sizeof sbuf);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0)
    die("epoll_create1");
  t0 = bench_now_ns();
  for (i = 0; i < nsocks; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &socks[i]};
    socks[i].fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (socks[i].fd < 0)
      die("socket");
    if (connect(socks[i].fd, (struct sockaddr *)&ss, sslen) != 0)
      die("connect");
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, socks[i].fd, &e) != 0)
      die("epoll_ctl");
    socks[i].inflight = 0;
    socks[i].last_rx = t0;
    send_n(&socks[i], window);
  }
  start = t0 + (uint64_t)warmup_ms * 1000000u;
  end = start + (uint64_t)duration_ms * 1000000u;
  for (;;) {
    int n = epoll_wait(epfd, evs, MAX_SOCKS, 5), k;
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    now = bench_now_ns();
    if (now >= end)
      break;
    for (k = 0; k < n; k++) {
      sock *s = evs[k].data.ptr;
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
      if (got <= 0) {
        if (got < 0 && errno != EAGAIN && errno != ECONNREFUSED)
          die("recvmmsg");
        continue;
      }
      for (j = 0; j < got; j++)
        if (m[j].msg_len != (unsigned)size) {
          fprintf(stderr, "udp_load: got %u bytes, sent %ld\n",
                  m[j].msg_len, size);
          return 70;
        }
      if (now >= start)
        count += (uint64_t)got;
      s->last_rx = now;
      s->inflight = s->inflight > got ? s->inflight - got : 0;
      send_n(s, window - s->inflight);
    }
    for (i = 0; i < nsocks; i++) {
      sock *s = &socks[i];
      if (now - s->last_rx > 20000000u) {
        lost += (uint64_t)s->inflight;
        s->inflight = 0;
        s->last_rx = now;
        send_n(s, window);
      }
    }
  }
  printf("dps=%.0f lost=%llu\n",
         (double)count / ((double)(end - start) / 1e9),
         (unsigned long long)lost);
  return 0;
usage:
  fprintf(stderr, "usage: udp_load -s BYTES [-k SOCKETS] [-W WINDOW] "
                  "[-w MS] [-d MS] TARGET\n");
  return 64;
}
