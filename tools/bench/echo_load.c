/* TCP load generator for the echo and accept benchmarks: one thread, epoll,
 * non-blocking sockets. One load drives every contender, so each gets
 * exactly the same work.
 *
 *   echo_load -m pingpong -c CONNS -s BYTES [-t MS] [-r ROUNDS]
 *             [-n NAMES] [-P PIDS] GROUP...
 *     CONNS connections to each group, each sending BYTES and waiting for
 *     all of them to come back before sending again.
 *   echo_load -m conn -c SLOTS [-s BYTES | -g] [-t MS] [-r ROUNDS]
 *             [-n NAMES] [-P PIDS] [-b N] GROUP...
 *     SLOTS connections at a time, each: connect, send BYTES and read them
 *     back (-g instead: read the server's one-byte greeting), close.
 *   echo_load -m idle -c CONNS -s BYTES -P PID GROUP
 *     Opens CONNS connections, one round trip each, then leaves them idle
 *     and reads the server's resident memory before and after. Prints
 *     "rss_before_kb=N rss_after_kb=N bytes_per_conn=N".
 *
 * A GROUP is one server: TARGET[,TARGET...] (192.0.2.1:80,
 * [2001:db8::1]:80), used in turn. NAMES and PIDS are comma-separated, one
 * per group.
 *
 * The groups take turns in time slices of MS milliseconds (default 200),
 * ROUNDS times (default 10), the order rotating every round: every server
 * runs under the same conditions of the shared machine, a few hundred
 * milliseconds apart, instead of one after the other. Only one group is
 * loaded at a time; a slice ends by letting the round trips (or
 * connections) in flight finish, uncounted. Round 0 warms up and is not
 * reported. Each other slice prints one line:
 *
 *   slice round=R group=NAME rate=N load_us=N [srv_us=N srv_util=N]
 *
 * rate: round trips (pingpong) or completed connections (conn) per second
 * of the slice; load_us: this program's CPU time per operation (on two
 * cores, the load's side of a TCP connection costs about what the
 * server's does, so the load may be the limit). With PIDS, srv_us is the
 * server's CPU time per operation in the slice (from /proc/PID/schedstat; the
 * servers are single-threaded) and srv_util the share of the slice it ran: what
 * a server costs, whatever share of its core the shared machine left it.
 *
 * -b N binds the sources of IPv4 loopback targets to 127.0.1.1 .. 127.0.1.N
 * in turn, so that a long connection-rate run does not run out of ports
 * while closed connections sit in TIME_WAIT. Sockets left at the end are
 * closed with a reset (SO_LINGER 0), which leaves no TIME_WAIT behind.
 * Exit status: 0, 64 usage, 70 failure (a message on stderr). */
#include "bench.h"

#include <getopt.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_GROUPS 8
#define MAX_TARGETS 16
#define MAX_CONNECTING 256 /* connects in flight: stay inside the backlog */
#define MAX_MSG (1024 * 1024)
#define STALL_NS 10000000000u /* a slice that cannot drain: give up */

enum mode { PINGPONG, CONNRATE, IDLE };
enum cstate { C_FREE, C_CONNECTING, C_RUNNING, C_IDLE };

struct group;

typedef struct conn {
  struct group *grp;
  int fd;
  enum cstate state;
  uint32_t ev; /* epoll interest now registered */
  size_t sent, got;
} conn;

typedef struct group {
  const char *name;
  long pid;
  struct sockaddr_storage targets[MAX_TARGETS];
  socklen_t target_len[MAX_TARGETS];
  int ntargets, next_target;
  conn *conns;
  long up;     /* pingpong, idle: connections made */
  long active; /* round trips (pingpong) or connections (conn) going on */
} group;

static struct {
  enum mode mode;
  long nconn, size, slice_ms, rounds, srcs;
  int greet;
  group groups[MAX_GROUPS];
  int ngroups, next_src;
  int epfd;
  char *sbuf;
  char rbuf[65536];
  long connecting; /* connects in flight, every group */
  /* The slice in progress. */
  group *cur;
  int open; /* new work may start (before the slice's end) */
  uint64_t start, end, count, cpu0, cpu1, self0, self1;
  uint64_t errors;
  int first_error;
} g;

static void usage(void)
{
  fprintf(stderr, "usage: echo_load -m pingpong|conn|idle -c N [-s BYTES] [-g] "
                  "[-t MS] [-r ROUNDS] [-n NAMES] [-P PIDS] [-b N] GROUP...\n");
  exit(64);
}

static void die(const char *what)
{
  fprintf(stderr, "echo_load: %s: %s\n", what, strerror(errno));
  exit(70);
}

/* Returns the resident memory of process pid in kB (/proc/PID/status). */
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

/* Closes c's socket: with FIN after a connection-rate round (the server's
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

static void note_error(int err)
{
  if (g.first_error == 0)
    g.first_error = err;
  g.errors++;
}

/* Starts a connect in c to its group's next target. Returns 0, or -1 when
 * the kernel refused it at once (counted as an error). */
static int conn_open(conn *c)
{
  group *grp = c->grp;
  int t = grp->next_target++ % grp->ntargets, one = 1;
  struct sockaddr *sa = (struct sockaddr *)&grp->targets[t];

  c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    die("socket");
  /* A connection-rate connection sends one message: Nagle never holds a
   * first segment back, and the call would be load on the load. */
  if (g.mode != CONNRATE)
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (g.srcs > 0 && sa->sa_family == AF_INET &&
      (ntohl(((struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    uint32_t n = 1u + (uint32_t)(g.next_src++ % g.srcs);
    src.sin_addr.s_addr = htonl(0x7f000100u + n);
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0)
      die("bind source");
  }
  c->state = C_CONNECTING;
  c->ev = 0;
  c->sent = c->got = 0;
  g.connecting++;
  if (connect(c->fd, sa, grp->target_len[t]) != 0 && errno != EINPROGRESS) {
    note_error(errno);
    conn_close(c, 1);
    return -1;
  }
  /* Connection rate: registered once, edge-triggered, for both ways, so
   * that a connection costs the load no epoll_ctl() after this one: the
   * handshake's end is an EPOLLOUT edge, the answer an EPOLLIN edge. */
  set_interest(c, g.mode == CONNRATE ? EPOLLIN | EPOLLOUT | EPOLLET : EPOLLOUT);
  return 0;
}

/* Sends what is left of the message; returns -1 on a socket error. */
static int conn_send(conn *c)
{
  while (c->sent < (size_t)g.size) {
    ssize_t n =
        send(c->fd, g.sbuf + c->sent, (size_t)g.size - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        break;
      return -1;
    }
    c->sent += (size_t)n;
  }
  if (g.mode != CONNRATE)
    set_interest(c, EPOLLIN | (c->sent < (size_t)g.size ? EPOLLOUT : 0));
  return 0;
}

/* Begins a round trip on a connected c. Returns -1 on a socket error. */
static int conn_round(conn *c)
{
  c->sent = c->got = 0;
  if (g.greet) {
    if (g.mode != CONNRATE)
      set_interest(c, EPOLLIN);
    return 0;
  }
  return conn_send(c);
}

/* Fails c (a connection-rate connection is replaced; pingpong and idle
 * need every connection, so the run stops). */
static void conn_fail(conn *c, int err)
{
  if (g.mode != CONNRATE) {
    fprintf(stderr, "echo_load: a connection to %s failed: %s\n", c->grp->name,
            strerror(err));
    exit(70);
  }
  note_error(err);
  if (c->state == C_RUNNING || c->state == C_CONNECTING)
    c->grp->active--;
  conn_close(c, 1);
}

/* A round trip (or a connection) finished on c at time now. */
static void conn_done(conn *c, uint64_t now)
{
  group *grp = c->grp;
  int counted = grp == g.cur && now >= g.start && now < g.end;

  if (counted)
    g.count++;
  switch (g.mode) {
  case PINGPONG:
    if (grp == g.cur && g.open && now < g.end) {
      if (conn_round(c) != 0)
        conn_fail(c, errno);
    } else {
      c->state = C_IDLE;
      grp->active--;
    }
    break;
  case CONNRATE:
    grp->active--;
    conn_close(c, 0);
    break;
  case IDLE:
    c->state = C_IDLE;
    grp->up++;
    break;
  }
}

static void conn_event(conn *c, uint32_t ev, uint64_t now)
{
  if (c->state == C_CONNECTING) {
    /* Edge-triggered connection-rate sockets ask only on an error. */
    if (g.mode != CONNRATE || (ev & (EPOLLERR | EPOLLHUP))) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (ev & EPOLLERR)) {
        conn_fail(c, err != 0 ? err : ECONNRESET);
        return;
      }
    }
    if (!(ev & EPOLLOUT))
      return;
    g.connecting--;
    if (g.mode == PINGPONG) {
      /* Made before the slices begin; waits for its group's turn. */
      c->state = C_IDLE;
      c->grp->up++;
      set_interest(c, EPOLLIN);
      return;
    }
    c->state = C_RUNNING;
    if (conn_round(c) != 0) {
      conn_fail(c, errno);
      return;
    }
    /* Edge-triggered: an answer already there came with this edge. */
    if (g.mode != CONNRATE || !(ev & EPOLLIN))
      return;
  }
  if ((ev & EPOLLOUT) && !g.greet && c->sent < (size_t)g.size &&
      conn_send(c) != 0) {
    conn_fail(c, errno);
    return;
  }
  /* Level-triggered sockets read once per event; edge-triggered ones
   * until the socket is empty or the answer is whole. */
  while (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
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
      fprintf(stderr, "echo_load: %s sent %zu bytes, expected %zu\n",
              c->grp->name, c->got, want);
      exit(70);
    }
    if (c->got == want) {
      conn_done(c, now);
      return;
    }
    if (g.mode != CONNRATE)
      return;
  }
}

/* Opens connections: pingpong and idle, until every group has nconn;
 * conn, the current group's free slots while its slice is open. At most
 * MAX_CONNECTING in flight. */
static void top_up(void)
{
  int k;
  long i;
  for (k = 0; k < g.ngroups; k++) {
    group *grp = &g.groups[k];
    if (g.mode == CONNRATE && (grp != g.cur || !g.open))
      continue;
    for (i = 0; i < g.nconn && g.connecting < MAX_CONNECTING; i++) {
      if (grp->conns[i].state != C_FREE)
        continue;
      if (conn_open(&grp->conns[i]) == 0 && g.mode == CONNRATE)
        grp->active++;
    }
  }
}

/* Waits for events once (at most 10 ms) and handles them; returns the
 * time after the wait. */
static uint64_t turn(void)
{
  struct epoll_event evs[512];
  uint64_t now;
  int n, k;

  top_up();
  n = epoll_wait(g.epfd, evs, 512, 10);
  if (n < 0 && errno != EINTR)
    die("epoll_wait");
  now = bench_now_ns();
  for (k = 0; k < n; k++)
    conn_event(evs[k].data.ptr, evs[k].events, now);
  return now;
}

/* Runs one slice of group grp; prints its line unless it is a warm-up. */
static void slice(group *grp, long round)
{
  uint64_t now;
  long i;

  g.cur = grp;
  g.count = 0;
  g.cpu0 = grp->pid > 0 ? bench_cpu_ns(grp->pid) : 0;
  g.cpu1 = 0;
  g.self0 = bench_self_cpu_ns();
  g.start = bench_now_ns();
  g.end = g.start + (uint64_t)g.slice_ms * 1000000u;
  g.open = 1;
  if (g.mode == PINGPONG)
    for (i = 0; i < g.nconn; i++) {
      conn *c = &grp->conns[i];
      c->state = C_RUNNING;
      grp->active++;
      if (conn_round(c) != 0)
        conn_fail(c, errno);
    }
  do {
    now = turn();
    if (g.open && now >= g.end) {
      /* The measured part ends here; what is in flight finishes. */
      g.open = 0;
      g.cpu1 = grp->pid > 0 ? bench_cpu_ns(grp->pid) : 0;
      g.self1 = bench_self_cpu_ns();
    }
    if (now - g.start > STALL_NS) {
      fprintf(stderr, "echo_load: %s stalled\n", grp->name);
      exit(70);
    }
  } while (g.open || grp->active > 0);
  if (round == 0)
    return;
  printf("slice round=%ld group=%s rate=%.0f", round, grp->name,
         (double)g.count / ((double)g.slice_ms / 1e3));
  if (g.count > 0)
    printf(" load_us=%.2f",
           (double)(g.self1 - g.self0) / 1e3 / (double)g.count);
  if (g.cpu0 != 0 && g.cpu1 > g.cpu0 && g.count > 0)
    printf(" srv_us=%.2f srv_util=%.3f",
           (double)(g.cpu1 - g.cpu0) / 1e3 / (double)g.count,
           (double)(g.cpu1 - g.cpu0) / 1e6 / (double)g.slice_ms);
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

static void parse_args(int argc, char **argv)
{
  char *names[MAX_GROUPS] = {0}, *pids[MAX_GROUPS] = {0};
  char *list[MAX_TARGETS];
  int c, k, t, nnames = 0, npids = 0;

  g.size = 64;
  g.slice_ms = 200;
  g.rounds = 10;
  g.mode = -1;
  while ((c = getopt(argc, argv, "m:c:s:gt:r:n:P:b:")) != -1) {
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
    case 't':
      g.slice_ms = bench_num(optarg, "slice");
      break;
    case 'r':
      g.rounds = bench_num(optarg, "rounds");
      break;
    case 'n':
      nnames = split(optarg, names, MAX_GROUPS);
      break;
    case 'P':
      npids = split(optarg, pids, MAX_GROUPS);
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
  g.ngroups = argc - optind;
  if ((int)g.mode < 0 || g.nconn <= 0 || g.ngroups < 1 ||
      g.ngroups > MAX_GROUPS || g.size < 1 || g.size > MAX_MSG ||
      g.slice_ms < 1 || (g.greet && g.mode != CONNRATE) ||
      (g.mode == IDLE && (g.ngroups != 1 || npids != 1)) ||
      (nnames != 0 && nnames != g.ngroups) ||
      (npids != 0 && npids != g.ngroups))
    usage();
  for (k = 0; k < g.ngroups; k++) {
    group *grp = &g.groups[k];
    int n = split(argv[optind + k], list, MAX_TARGETS);
    grp->name = nnames ? names[k] : argv[optind + k];
    grp->pid = npids ? bench_num(pids[k], "pid") : 0;
    for (t = 0; t < n; t++)
      if (bench_parse_hostport(list[t], &grp->targets[t],
                               &grp->target_len[t]) != 0)
        exit(64);
    grp->ntargets = n;
    if (n == 0)
      usage();
  }
}

int main(int argc, char **argv)
{
  long before_kb = 0, i, limit, round;
  int k;

  parse_args(argc, argv);
  limit = bench_raise_nofile();
  if (limit < g.nconn * g.ngroups + 16) {
    fprintf(stderr,
            "echo_load: fd limit %ld is too low for %ld "
            "connections\n",
            limit, g.nconn * g.ngroups);
    return 70;
  }
  g.sbuf = malloc((size_t)g.size);
  if (g.sbuf == NULL)
    die("malloc");
  for (i = 0; i < g.size; i++)
    g.sbuf[i] = (char)('a' + i % 26);
  for (k = 0; k < g.ngroups; k++) {
    group *grp = &g.groups[k];
    grp->conns = calloc((size_t)g.nconn, sizeof *grp->conns);
    if (grp->conns == NULL)
      die("calloc");
    for (i = 0; i < g.nconn; i++) {
      grp->conns[i].fd = -1;
      grp->conns[i].grp = grp;
    }
  }
  g.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (g.epfd < 0)
    die("epoll_create1");

  if (g.mode != CONNRATE) {
    uint64_t t0 = bench_now_ns();
    int all;
    if (g.mode == IDLE)
      before_kb = rss_kb(g.groups[0].pid);
    do {
      turn();
      for (all = 1, k = 0; k < g.ngroups; k++)
        all &= g.groups[k].up == g.nconn;
      if (bench_now_ns() - t0 > 60000000000u) {
        fprintf(stderr, "echo_load: connections not up after 60 s\n");
        return 70;
      }
    } while (!all);
  }
  if (g.mode == IDLE) {
    long after_kb;
    /* Let the server finish with the last round trips. */
    usleep(200000);
    after_kb = rss_kb(g.groups[0].pid);
    printf("rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f\n",
           before_kb, after_kb,
           (double)(after_kb - before_kb) * 1024.0 / (double)g.nconn);
  } else {
    for (round = 0; round <= g.rounds; round++)
      for (k = 0; k < g.ngroups; k++)
        slice(&g.groups[(k + round) % g.ngroups], round);
    if (g.errors > 0)
      fprintf(stderr, "echo_load: %llu connect error(s), first: %s\n",
              (unsigned long long)g.errors, strerror(g.first_error));
  }
  fflush(stdout);
  for (k = 0; k < g.ngroups; k++)
    for (i = 0; i < g.nconn; i++)
      if (g.groups[k].conns[i].fd >= 0)
        conn_close(&g.groups[k].conns[i], 1);
  return 0;
}
