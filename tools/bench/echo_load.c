/* TCP load generator for the echo and accept benchmarks: one thread, epoll,
 * non-blocking sockets. The same program drives every server, so every
 * contender gets exactly the same work.
 *
 *   echo_load -m pingpong -c CONNS -s BYTES [-w MS] [-d MS] TARGET...
 *     CONNS connections, each sending BYTES and waiting for all of them to
 *     come back before sending again. Prints "rtps=N" (round trips per
 *     second over the measured window, which starts WARMUP ms after every
 *     connection is up).
 *   echo_load -m conn -c SLOTS [-s BYTES | -g] [-w MS] [-d MS] TARGET...
 *     SLOTS connections at a time, each: connect, send BYTES and read them
 *     back (-g instead: read the server's one-byte greeting), close. Prints
 *     "cps=N" (completed connections per second).
 *   echo_load -m idle -c CONNS -s BYTES -P PID TARGET...
 *     Opens CONNS connections, one round trip each, then leaves them idle
 *     and reads the server's resident memory before and after. Prints
 *     "rss_before_kb=N rss_after_kb=N bytes_per_conn=N".
 *
 * TARGETs (192.0.2.1:80, [2001:db8::1]:80) are used in turn. -b N binds
 * the sources of an IPv4 loopback target to 127.0.1.1 .. 127.0.1.N in turn,
 * so that a long connection-rate run does not run out of ports to the one
 * destination while closed connections sit in TIME_WAIT.
 *
 * The sockets are closed with a reset at the end (SO_LINGER 0): the
 * measurement is over, and a reset leaves no TIME_WAIT behind for the next
 * run. Exit status: 0, 64 usage, 70 failure (a message on stderr). */
#include "bench.h"

#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_TARGETS 16
#define MAX_CONNECTING 256 /* connects in flight: stay inside the backlog */
#define MAX_MSG (1024 * 1024)

enum mode { PINGPONG, CONNRATE, IDLE };
enum cstate { C_FREE, C_CONNECTING, C_RUNNING, C_IDLE };

typedef struct conn {
  int fd;
  enum cstate state;
  uint32_t ev; /* epoll interest now registered */
  size_t sent, got;
} conn;

static struct {
  enum mode mode;
  long nconn, size, warmup_ms, duration_ms, srcs;
  int greet;
  long server_pid;
  struct sockaddr_storage targets[MAX_TARGETS];
  socklen_t target_len[MAX_TARGETS];
  int ntargets, next_target, next_src;
  int epfd;
  char *sbuf;
  char rbuf[65536];
  conn *conns;
  long connecting, running, done;
  uint64_t window_start, window_end; /* ns; 0: not started */
  uint64_t count, errors;
  int first_error;
} g;

static void usage(void)
{
  fprintf(stderr,
          "usage: echo_load -m pingpong|conn|idle -c N [-s BYTES] [-g] "
          "[-w MS] [-d MS] [-P PID] [-b N] TARGET...\n");
  exit(64);
}

static void die(const char *what)
{
  fprintf(stderr, "echo_load: %s: %s\n", what, strerror(errno));
  exit(70);
}

/* Returns the server's resident memory in kB, from /proc/PID/status. */
static long rss_kb(long pid)
{
  char path[64], line[256];
  long kb = -1;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  f = fopen(path, "r");
  if (f == NULL)
    die(path);
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

static void set_interest(conn *c, uint32_t ev)
{
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (ev == c->ev)
    return;
  if (epoll_ctl(g.epfd, c->ev == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd,
                &e) != 0)
    die("epoll_ctl");
  c->ev = ev;
}

/* Closes c's socket: with FIN for a connection-rate round (the server's
 * clean close is part of the work), with a reset otherwise. */
static void conn_close(conn *c, int reset)
{
  if (reset) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  c->ev = 0;
  if (c->state == C_CONNECTING)
    g.connecting--;
  c->state = C_FREE;
}

/* Starts a connect in c. Returns 0, or -1 when the kernel refused it at
 * once (counted as an error). */
static int conn_open(conn *c)
{
  int t = g.next_target++ % g.ntargets, one = 1, rc;
  struct sockaddr *sa = (struct sockaddr *)&g.targets[t];

  c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 0);
  if (c->fd < 0)
    die("socket");
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (g.srcs > 0 && sa->sa_family == AF_INET) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000100u + 1u + (uint32_t)(g.next_src++ %
                                                              g.srcs));
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0)
      die("bind source");
  }
  c->state = C_CONNECTING;
  c->ev = 0;
  c->sent = c->got = 0;
  g.connecting++;
  rc = connect(c->fd, sa, g.target_len[t]);
  if (rc != 0 && errno != EINPROGRESS) {
    if (g.first_error == 0)
      g.first_error = errno;
    g.errors++;
    conn_close(c, 1);
    return -1;
  }
  set_interest(c, EPOLLOUT);
  return 0;
}

/* Sends what is left of the message; returns -1 on a socket error. */
static int conn_send(conn *c)
{
  while (c->sent < (size_t)g.size) {
    ssize_t n = send(c->fd, g.sbuf + c->sent, (size_t)g.size - c->sent,
                     MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        break;
      return -1;
    }
    c->sent += (size_t)n;
  }
  set_interest(c, EPOLLIN | (c->sent < (size_t)g.size ? EPOLLOUT : 0));
  return 0;
}

/* Begins a round trip on a connected c. */
static int conn_round(conn *c)
{
  c->sent = c->got = 0;
  if (g.greet) {
    set_interest(c, EPOLLIN);
    return 0;
  }
  return conn_send(c);
}

static void conn_fail(conn *c, int err)
{
  if (g.first_error == 0)
    g.first_error = err;
  g.errors++;
  if (c->state == C_RUNNING)
    g.running--;
  conn_close(c, 1);
}

/* A round trip finished on c at time now. */
static void conn_done(conn *c, uint64_t now)
{
  if (g.window_start != 0 && now >= g.window_start && now < g.window_end)
    g.count++;
  switch (g.mode) {
  case PINGPONG:
    if (conn_round(c) != 0)
      conn_fail(c, errno);
    break;
  case CONNRATE:
    g.running--;
    conn_close(c, 0);
    break;
  case IDLE:
    c->state = C_IDLE;
    g.done++;
    break;
  }
}

static void conn_event(conn *c, uint32_t ev, uint64_t now)
{
  if (c->state == C_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      conn_fail(c, err);
      return;
    }
    if (!(ev & EPOLLOUT))
      return;
    g.connecting--;
    g.running++;
    c->state = C_RUNNING;
    if (conn_round(c) != 0)
      conn_fail(c, errno);
    return;
  }
  if ((ev & EPOLLOUT) && !g.greet && c->sent < (size_t)g.size &&
      conn_send(c) != 0) {
    conn_fail(c, errno);
    return;
  }
  if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    size_t want = g.greet ? 1 : (size_t)g.size;
    ssize_t n = recv(c->fd, g.rbuf, sizeof g.rbuf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n <= 0) {
      conn_fail(c, n == 0 ? ECONNRESET : errno);
      return;
    }
    c->got += (size_t)n;
    if (c->got > want) {
      fprintf(stderr, "echo_load: server sent %zu bytes, expected %zu\n",
              c->got, want);
      exit(70);
    }
    if (c->got == want)
      conn_done(c, now);
  }
}

/* Opens connections until nconn exist (pingpong, idle) or every slot is
 * busy (conn), at most MAX_CONNECTING in flight. */
static void top_up(void)
{
  long i;
  for (i = 0; i < g.nconn && g.connecting < MAX_CONNECTING; i++) {
    if (g.conns[i].state != C_FREE)
      continue;
    if (g.mode != CONNRATE && g.errors > 0)
      return; /* pingpong and idle need every connection */
    conn_open(&g.conns[i]);
  }
}

static void parse_args(int argc, char **argv)
{
  int c;
  g.size = 64;
  g.warmup_ms = 300;
  g.duration_ms = 1000;
  g.mode = -1;
  while ((c = getopt(argc, argv, "m:c:s:gw:d:P:b:")) != -1) {
    switch (c) {
    case 'm':
      if (strcmp(optarg, "pingpong") == 0)
        g.mode = PINGPONG;
      else if (strcmp(optarg, "conn") == 0)
        g.mode = CONNRATE;
      else if (strcmp(optarg, "idle") == 0)
        g.mode = IDLE;
      else
        usage();
      break;
    case 'c':
      g.nconn = bench_num(optarg, "count");
      break;
    case 's':
      g.size = bench_num(optarg, "size");
      break;
    case 'g':
      g.greet = 1;
      break;
    case 'w':
      g.warmup_ms = bench_num(optarg, "warmup");
      break;
    case 'd':
      g.duration_ms = bench_num(optarg, "duration");
      break;
    case 'P':
      g.server_pid = bench_num(optarg, "pid");
      break;
    case 'b':
      g.srcs = bench_num(optarg, "source count");
      if (g.srcs > 254)
        usage();
      break;
    default:
      usage();
    }
  }
  if ((int)g.mode < 0 || g.nconn <= 0 || optind >= argc ||
      argc - optind > MAX_TARGETS || g.size < 1 || g.size > MAX_MSG ||
      (g.mode == IDLE && g.server_pid <= 0) || (g.greet && g.mode != CONNRATE))
    usage();
  for (; optind < argc; optind++, g.ntargets++)
    if (bench_parse_hostport(argv[optind], &g.targets[g.ntargets],
                             &g.target_len[g.ntargets]) != 0)
      exit(64);
}

int main(int argc, char **argv)
{
  struct epoll_event evs[512];
  long before_kb = 0, i, limit;
  uint64_t t0, now;

  parse_args(argc, argv);
  limit = bench_raise_nofile();
  if (limit < g.nconn + 16) {
    fprintf(stderr, "echo_load: fd limit %ld is too low for %ld "
                    "connections\n",
            limit, g.nconn);
    return 70;
  }
  g.sbuf = malloc((size_t)g.size);
  g.conns = calloc((size_t)g.nconn, sizeof *g.conns);
  if (g.sbuf == NULL || g.conns == NULL)
    die("malloc");
  for (i = 0; i < g.size; i++)
    g.sbuf[i] = (char)('a' + i % 26);
  for (i = 0; i < g.nconn; i++)
    g.conns[i].fd = -1;
  g.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (g.epfd < 0)
    die("epoll_create1");
  if (g.mode == IDLE)
    before_kb = rss_kb(g.server_pid);

  t0 = bench_now_ns();
  if (g.mode == CONNRATE) {
    g.window_start = t0 + (uint64_t)g.warmup_ms * 1000000u;
    g.window_end = g.window_start + (uint64_t)g.duration_ms * 1000000u;
  }
  for (;;) {
    int n, k;
    top_up();
    if (g.mode != CONNRATE && g.errors > 0 && g.connecting + g.running == 0)
      break;
    n = epoll_wait(g.epfd, evs, 512, 10);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    now = bench_now_ns();
    for (k = 0; k < n; k++)
      conn_event(evs[k].data.ptr, evs[k].events, now);
    if (g.mode == PINGPONG && g.window_start == 0 && g.running == g.nconn) {
      g.window_start = now + (uint64_t)g.warmup_ms * 1000000u;
      g.window_end = g.window_start + (uint64_t)g.duration_ms * 1000000u;
    }
    if (g.window_end != 0 && now >= g.window_end)
      break;
    if (g.mode == IDLE && g.done == g.nconn)
      break;
    /* Setting up must not take forever (a server that stopped). */
    if (g.window_start == 0 && now - t0 > 60000000000u) {
      fprintf(stderr, "echo_load: connections not up after 60 s\n");
      return 70;
    }
  }
  if (g.mode != CONNRATE && g.errors > 0) {
    fprintf(stderr, "echo_load: %llu connection(s) failed: %s\n",
            (unsigned long long)g.errors, strerror(g.first_error));
    return 70;
  }
  if (g.mode == IDLE) {
    long after_kb;
    /* Let the server finish with the last round trips. */
    usleep(200000);
    after_kb = rss_kb(g.server_pid);
    printf("rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f\n",
           before_kb, after_kb,
           (double)(after_kb - before_kb) * 1024.0 / (double)g.nconn);
  } else {
    double secs = (double)(g.window_end - g.window_start) / 1e9;
    printf("%s=%.0f\n", g.mode == PINGPONG ? "rtps" : "cps",
           (double)g.count / secs);
    if (g.errors > 0)
      fprintf(stderr, "echo_load: %llu connect error(s), first: %s\n",
              (unsigned long long)g.errors, strerror(g.first_error));
  }
  fflush(stdout);
  for (i = 0; i < g.nconn; i++)
    if (g.conns[i].fd >= 0)
      conn_close(&g.conns[i], 1);
  return 0;
}
