/* What openbsd-inetd does for a "tcp" service, for the shim's tests: an
 * AF_INET listener on 0.0.0.0:PORT registered with epoll (libevent), then
 * an AF_INET6 IPV6_V6ONLY listener on [::]:PORT registered the same way,
 * then it serves clients of both families from the epoll loop. Under the
 * shim the first is widened at its bind and narrowed back at the second's:
 * it must still be the program's socket as it made it, epoll registration
 * included.
 *
 *   shim_inetd PORT COUNT [poll]
 *
 * Prints "ready", then the first listener as the program sees it
 * ("s4 domain=2 nonblock=1 cloexec=1 keepalive=1 backlog=7"), then one
 * line per accepted client ("accepted s4 192.0.2.1" or "accepted s6
 * 2001:db8::1") until COUNT clients were served, each sent "hi s4\n" or
 * "hi s6\n"; "timeout" and status 1 when none comes for 10 s. With poll,
 * waits with poll(2) instead of epoll. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener(int family, int port)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int one = 1, fd;
  fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket");
    exit(1);
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&ss, 0, sizeof ss);
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    len = sizeof *sin;
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    len = sizeof *s6;
  }
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    fprintf(stderr, "bind %s: %s\n", family == AF_INET ? "0.0.0.0" : "[::]",
            strerror(errno));
    exit(1);
  }
  if (listen(fd, 7) != 0) {
    perror("listen");
    exit(1);
  }
  return fd;
}

static int sockint(int fd, int level, int name)
{
  int v = -1;
  socklen_t len = sizeof v;
  getsockopt(fd, level, name, &v, &len);
  return v;
}

/* Accepts one client on fd (named tag) and answers it. */
static void serve(int fd, const char *tag)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char text[INET6_ADDRSTRLEN] = "?", msg[32];
  int c = accept(fd, (struct sockaddr *)&ss, &len);
  if (c < 0) {
    printf("accept %s: %s\n", tag, strerror(errno));
    return;
  }
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text,
              sizeof text);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text,
              sizeof text);
  printf("accepted %s %s\n", tag, text);
  fflush(stdout);
  snprintf(msg, sizeof msg, "hi %s\n", tag);
  fcntl(c, F_SETFL, 0);
  if (write(c, msg, strlen(msg)) < 0)
    perror("write");
  close(c);
}

int main(int argc, char **argv)
{
  struct epoll_event ev, got[2];
  struct tcp_info ti;
  socklen_t tl = sizeof ti;
  int port, count, use_poll, s4, s6, ep = -1, served = 0, n, i;
  if (argc < 3) {
    fprintf(stderr, "usage: shim_inetd PORT COUNT [poll]\n");
    return 64;
  }
  port = atoi(argv[1]);
  count = atoi(argv[2]);
  use_poll = argc > 3 && strcmp(argv[3], "poll") == 0;
  if (!use_poll && (ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
    perror("epoll_create1");
    return 1;
  }
  s4 = listener(AF_INET, port);
  if (!use_poll) {
    ev.events = EPOLLIN;
    ev.data.fd = s4;
    epoll_ctl(ep, EPOLL_CTL_ADD, s4, &ev);
  }
  s6 = listener(AF_INET6, port);
  if (!use_poll) {
    ev.events = EPOLLIN;
    ev.data.fd = s6;
    epoll_ctl(ep, EPOLL_CTL_ADD, s6, &ev);
  }
  memset(&ti, 0, sizeof ti);
  getsockopt(s4, IPPROTO_TCP, TCP_INFO, &ti, &tl);
  printf("ready\ns4 domain=%d nonblock=%d cloexec=%d keepalive=%d "
         "backlog=%u\n",
         sockint(s4, SOL_SOCKET, SO_DOMAIN),
         (fcntl(s4, F_GETFL) & O_NONBLOCK) != 0,
         (fcntl(s4, F_GETFD) & FD_CLOEXEC) != 0,
         sockint(s4, SOL_SOCKET, SO_KEEPALIVE), ti.tcpi_sacked);
  fflush(stdout);
  while (served < count) {
    int fds[2] = {-1, -1};
    if (use_poll) {
      struct pollfd p[2] = {{s4, POLLIN, 0}, {s6, POLLIN, 0}};
      n = poll(p, 2, 10000);
      for (i = 0; n > 0 && i < 2; i++)
        if (p[i].revents & POLLIN)
          fds[i] = p[i].fd;
    } else {
      n = epoll_wait(ep, got, 2, 10000);
      for (i = 0; i < n; i++)
        fds[got[i].data.fd == s4 ? 0 : 1] = got[i].data.fd;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      printf("timeout\n");
      return 1;
    }
    for (i = 0; i < 2; i++)
      if (fds[i] >= 0) {
        serve(fds[i], i == 0 ? "s4" : "s6");
        served++;
      }
  }
  return 0;
}
