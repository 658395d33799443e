/* A legacy IPv4 server for the shim's server-side benchmark, written the
 * plain way such servers are: libc only, an AF_INET socket bound to
 * 0.0.0.0:PORT, accept() with a struct sockaddr_in. Run with
 * LD_PRELOAD=libdualstack-preload.so, its listener is widened to [::]
 * and IPv6 clients reach it too; run without, it serves IPv4 only.
 *
 *   legacy_server accept [PORT]
 *     accept(), note the peer's address as text (as a server that logs
 *     it would), write a one-byte greeting, close(): the accept rate.
 *   legacy_server echo [PORT]
 *     One thread, epoll (level-triggered): the listener and every
 *     connection in one set; a readable connection is read once (up to
 *     4 KiB, read()) and what came is written back (write()). Blocking
 *     sockets, TCP_NODELAY: the request/response rate.
 *
 *   legacy_server accept6|echo6 [PORT]
 *     The same, written by hand the way the shim makes it: an AF_INET6
 *     socket, IPV6_V6ONLY 0, bound to [::], accept() into a struct
 *     sockaddr_in6 (IPv4 clients as ::ffff:a.b.c.d). Not a legacy server:
 *     the benchmark's reference for what a dual-stack socket costs the
 *     kernel, without the shim.
 *
 * PORT 0 (the default) takes any free port. Prints "port N" once
 * listening; runs until SIGTERM or SIGINT, then prints on stderr how many
 * connections it accepted and what the peers' addresses were:
 *
 *   accepted=N inet=N loopback=N srcpool=N other_family=N last_peer=A
 *
 * inet: AF_INET peers (what a legacy server must see, with the shim too);
 * loopback: those in 127/8; srcpool: those in the shim's default source
 * pool 172.21.112.0/20 (IPv6 clients, translated); other_family: peers
 * that were not AF_INET (the shim would have failed its contract). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static unsigned long accepted, inet, loopback, srcpool, other_family;
static char last_peer[INET6_ADDRSTRLEN] = "-";
static int six; /* accept6, echo6: the hand-written dual-stack reference */

static void on_signal(int sig)
{
  (void)sig;
  stop = 1;
}

static void die(const char *what)
{
  fprintf(stderr, "legacy_server: %s: %s\n", what, strerror(errno));
  exit(70);
}

/* What a legacy server does with the peer: looks at it as IPv4. The
 * dual-stack reference takes IPv4-mapped peers as IPv4. */
static void note_peer(const struct sockaddr_storage *ss, socklen_t len)
{
  const struct sockaddr_in *peer = (const struct sockaddr_in *)ss;
  uint32_t a;
  accepted++;
  if (six && ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&p6->sin6_addr)) {
      inet++;
      if (p6->sin6_addr.s6_addr[12] == 127)
        loopback++;
    } else {
      other_family++;
    }
    inet_ntop(AF_INET6, &p6->sin6_addr, last_peer, sizeof last_peer);
    return;
  }
  if (peer->sin_family != AF_INET || len != sizeof *peer) {
    other_family++;
    return;
  }
  inet++;
  a = ntohl(peer->sin_addr.s_addr);
  if ((a >> 24) == 127)
    loopback++;
  else if ((a & 0xfffff000u) == 0xac157000u) /* 172.21.112.0/20 */
    srcpool++;
  inet_ntop(AF_INET, &peer->sin_addr, last_peer, sizeof last_peer);
}

static int listen_any(long port)
{
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  socklen_t len;
  int fd, one = 1, zero = 0;

  fd = socket(six ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    die("socket");
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    die("SO_REUSEADDR");
  if (six) {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0)
      die("IPV6_V6ONLY");
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_any;
    sin6.sin6_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&sin6, sizeof sin6) != 0)
      die("bind");
  } else {
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    sin.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
      die("bind");
  }
  if (listen(fd, SOMAXCONN) != 0)
    die("listen");
  len = sizeof sin6;
  if (getsockname(fd, (struct sockaddr *)&sin6, &len) != 0)
    die("getsockname");
  /* sin_port and sin6_port are at the same place. */
  printf("port %u\n", ntohs(sin6.sin6_port));
  fflush(stdout);
  return fd;
}

/* accept() with a sockaddr_in; -1 when a signal came (stop). */
static int accept_one(int lfd)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int fd;
  for (;;) {
    /* A legacy server's buffer holds a sockaddr_in and no more. */
    len = six ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    fd = accept(lfd, (struct sockaddr *)&ss, &len);
    if (fd >= 0)
      break;
    if (errno == EINTR && stop)
      return -1;
    if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
        errno == ENFILE)
      continue;
    die("accept");
  }
  note_peer(&ss, len);
  return fd;
}

static void run_accept(int lfd)
{
  int fd;
  while (!stop && (fd = accept_one(lfd)) >= 0) {
    if (write(fd, "+", 1) < 0 && errno != EPIPE && errno != ECONNRESET)
      die("write");
    close(fd);
  }
}

static void run_echo(int lfd)
{
  struct epoll_event ev, evs[256];
  char buf[4096];
  int ep, n, k, fd, one = 1;

  ep = epoll_create1(0);
  if (ep < 0)
    die("epoll_create1");
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
    die("epoll_ctl");
  while (!stop) {
    n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      die("epoll_wait");
    }
    for (k = 0; k < n; k++) {
      fd = evs[k].data.fd;
      if (fd == lfd) {
        fd = accept_one(lfd);
        if (fd < 0)
          break;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
          die("epoll_ctl");
        continue;
      }
      ssize_t got = read(fd, buf, sizeof buf);
      if (got > 0) {
        ssize_t off = 0, w;
        while (off < got) {
          w = write(fd, buf + off, (size_t)(got - off));
          if (w < 0) {
            if (errno == EINTR)
              continue;
            break;
          }
          off += w;
        }
        if (off == got)
          continue;
      } else if (got < 0 && errno == EINTR) {
        continue;
      }
      close(fd); /* also leaves the epoll set */
    }
  }
}

int main(int argc, char **argv)
{
  struct sigaction sa;
  long port = 0;
  char *end;
  int lfd, echo;

  if (argc < 2 || argc > 3 ||
      (strcmp(argv[1], "accept") != 0 && strcmp(argv[1], "echo") != 0 &&
       strcmp(argv[1], "accept6") != 0 && strcmp(argv[1], "echo6") != 0)) {
    fprintf(stderr, "usage: legacy_server accept|echo|accept6|echo6 [PORT]\n");
    return 64;
  }
  echo = strncmp(argv[1], "echo", 4) == 0;
  six = argv[1][strlen(argv[1]) - 1] == '6';
  if (argc == 3) {
    port = strtol(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || port < 0 || port > 65535) {
      fprintf(stderr, "legacy_server: bad port '%s'\n", argv[2]);
      return 64;
    }
  }
  /* No SA_RESTART: a blocking accept() returns EINTR and the loop ends. */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  lfd = listen_any(port);
  if (echo)
    run_echo(lfd);
  else
    run_accept(lfd);
  fprintf(stderr,
          "accepted=%lu inet=%lu loopback=%lu srcpool=%lu other_family=%lu "
          "last_peer=%s\n",
          accepted, inet, loopback, srcpool, other_family, last_peer);
  return 0;
}
