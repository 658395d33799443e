/* A legacy client and server, for the shim's tests of errno: bad input
 * gets the kernel's errno, a call that succeeds leaves errno as it was,
 * and a hook reached inside another (a signal handler) never lets a pool
 * address out.
 *
 *   shim_errno bad POOL_ADDR
 *   shim_errno keep TCP_NAME UDP_NAME PORT
 *   shim_errno nested SYNTH_NAME SLOW_NAME PORT
 *
 * bad: connect and sendto of bad fds, a regular file and a short length
 * to POOL_ADDR:80 (an address, or a name looked up), one "call errno" line
 * each. keep: errno set to 12345 before each call that succeeds (a widened
 * bind, listen, accept, getsockname, getpeername, setsockopt, getsockopt, a
 * connect to TCP_NAME (a race), a sendto and a sendmsg to UDP_NAME), one "call
 * result errno" line each, where errno should still be 12345. nested: SIGALRM
 * fires while the main thread waits in getaddrinfo(SLOW_NAME); its handler
 * connects a fresh TCP socket and sends a UDP datagram to SYNTH_NAME's
 * address (looked up before); prints "nested_connect ERRNO" and
 * "nested_sendto ERRNO" ("ok" when they went out). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MARK 12345

/* Returns errno's name, or its number when it has none (MARK). */
static const char *name_of(int e)
{
  static char buf[32];
  const char *s = e == 0 ? "0" : strerrorname_np(e);
  if (s != NULL)
    return s;
  snprintf(buf, sizeof buf, "%d", e);
  return buf;
}

static void sin_of(struct sockaddr_in *sin, const char *addr, int port)
{
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", addr);
    exit(64);
  }
}

/* Prints how a call that should fail failed. */
static void failed(const char *what, long rc)
{
  printf("%s %s\n", what, rc < 0 ? name_of(errno) : "ok");
}

static void lookup(struct sockaddr_in *sin, const char *name, int port);

static int bad(const char *pool)
{
  struct sockaddr_in sin;
  int file = open("/proc/self/exe", O_RDONLY), s;
  char c = 'x';
  lookup(&sin, pool, 80);
  failed("connect_badfd", connect(-1, (struct sockaddr *)&sin, sizeof sin));
  failed("connect_closedfd", connect(999, (struct sockaddr *)&sin, sizeof sin));
  failed("connect_file", connect(file, (struct sockaddr *)&sin, sizeof sin));
  s = socket(AF_INET, SOCK_STREAM, 0);
  failed("connect_short", connect(s, (struct sockaddr *)&sin, 8));
  close(s);
  s = socket(AF_INET6, SOCK_STREAM, 0);
  failed("connect_v6sock", connect(s, (struct sockaddr *)&sin, sizeof sin));
  close(s);
  failed("sendto_badfd",
         sendto(-1, &c, 1, 0, (struct sockaddr *)&sin, sizeof sin));
  failed("sendto_file",
         sendto(file, &c, 1, 0, (struct sockaddr *)&sin, sizeof sin));
  s = socket(AF_INET, SOCK_DGRAM, 0);
  failed("sendto_short", sendto(s, &c, 1, 0, (struct sockaddr *)&sin, 8));
  close(s);
  return 0;
}

/* Prints a call's result and the errno it left ("12345": untouched). */
static void kept(const char *what, long rc)
{
  int e = errno;
  printf("%s %s %s\n", what, rc < 0 ? "fail" : "ok", name_of(e));
}

/* Sets *sin to name's first IPv4 address (gethostbyname, as nc does;
 * an IPv4 literal is its own) and port. */
static void lookup(struct sockaddr_in *sin, const char *name, int port)
{
  struct hostent *he = gethostbyname(name);
  if (he == NULL || he->h_addrtype != AF_INET) {
    fprintf(stderr, "no address for %s\n", name);
    exit(69);
  }
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = htons((unsigned short)port);
  memcpy(&sin->sin_addr, he->h_addr_list[0], 4);
}

static int keep(const char *tcp_name, const char *udp_name, int port)
{
  struct sockaddr_in sin, got;
  socklen_t len;
  struct msghdr m;
  struct iovec iov;
  int l, c, a, s, one = 1, v;
  char byte = 'x';

  l = socket(AF_INET, SOCK_STREAM, 0);
  errno = MARK;
  kept("setsockopt", setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  sin_of(&sin, "0.0.0.0", 0);
  errno = MARK;
  kept("bind", bind(l, (struct sockaddr *)&sin, sizeof sin));
  errno = MARK;
  kept("listen", listen(l, 8));
  len = sizeof got;
  errno = MARK;
  kept("getsockname", getsockname(l, (struct sockaddr *)&got, &len));
  c = socket(AF_INET, SOCK_STREAM, 0);
  sin_of(&sin, "127.0.0.1", ntohs(got.sin_port));
  errno = MARK;
  kept("connect_local", connect(c, (struct sockaddr *)&sin, sizeof sin));
  len = sizeof got;
  errno = MARK;
  a = accept(l, (struct sockaddr *)&got, &len);
  kept("accept", a);
  len = sizeof got;
  errno = MARK;
  kept("getpeername", getpeername(a, (struct sockaddr *)&got, &len));
  len = sizeof v;
  errno = MARK;
  kept("getsockopt", getsockopt(a, SOL_SOCKET, SO_DOMAIN, &v, &len));
  close(a);
  close(c);
  close(l);

  lookup(&sin, tcp_name, port);
  c = socket(AF_INET, SOCK_STREAM, 0);
  errno = MARK;
  kept("connect_name", connect(c, (struct sockaddr *)&sin, sizeof sin));
  len = sizeof got;
  errno = MARK;
  kept("getpeername_name", getpeername(c, (struct sockaddr *)&got, &len));
  len = sizeof got;
  errno = MARK;
  kept("getsockname_name", getsockname(c, (struct sockaddr *)&got, &len));
  v = 0x10;
  errno = MARK;
  kept("setsockopt_name", setsockopt(c, IPPROTO_IP, IP_TOS, &v, sizeof v));
  close(c);

  lookup(&sin, udp_name, port);
  s = socket(AF_INET, SOCK_DGRAM, 0);
  errno = MARK;
  kept("sendto", sendto(s, &byte, 1, 0, (struct sockaddr *)&sin, sizeof sin));
  memset(&m, 0, sizeof m);
  iov.iov_base = &byte;
  iov.iov_len = 1;
  m.msg_name = &sin;
  m.msg_namelen = sizeof sin;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  errno = MARK;
  kept("sendmsg", sendmsg(s, &m, 0));
  close(s);
  return 0;
}

static struct sockaddr_in synth;
static volatile sig_atomic_t connect_err = -1, send_err = -1;

/* Runs while the main thread is inside getaddrinfo: a hook reached from
 * inside another. */
static void on_alarm(int sig)
{
  int saved = errno, s;
  char byte = 'x';
  (void)sig;
  s = socket(AF_INET, SOCK_STREAM, 0);
  connect_err =
      connect(s, (struct sockaddr *)&synth, sizeof synth) == 0 ? 0 : errno;
  close(s);
  s = socket(AF_INET, SOCK_DGRAM, 0);
  send_err =
      sendto(s, &byte, 1, 0, (struct sockaddr *)&synth, sizeof synth) >= 0
          ? 0
          : errno;
  close(s);
  errno = saved;
}

static int nested(const char *synth_name, const char *slow_name, int port)
{
  struct sigaction sa;
  struct itimerval it;
  struct addrinfo hints, *res = NULL;
  int rc;

  lookup(&synth, synth_name, port);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  memset(&it, 0, sizeof it);
  it.it_value.tv_usec = 300000;
  setitimer(ITIMER_REAL, &it, NULL);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo(slow_name, "80", &hints, &res);
  if (rc == 0)
    freeaddrinfo(res);
  printf("lookup %s\n", rc == 0 ? "ok" : gai_strerror(rc));
  printf("nested_connect %s\n", connect_err < 0    ? "none"
                                : connect_err == 0 ? "ok"
                                                   : name_of(connect_err));
  printf("nested_sendto %s\n", send_err < 0    ? "none"
                               : send_err == 0 ? "ok"
                                               : name_of(send_err));
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "bad") == 0)
    return bad(argv[2]);
  if (argc == 5 && strcmp(argv[1], "keep") == 0)
    return keep(argv[2], argv[3], atoi(argv[4]));
  if (argc == 5 && strcmp(argv[1], "nested") == 0)
    return nested(argv[2], argv[3], atoi(argv[4]));
  fprintf(stderr, "usage: shim_errno bad POOL_ADDR | keep TCP_NAME UDP_NAME "
                  "PORT | nested SYNTH_NAME SLOW_NAME PORT\n");
  return 64;
}
