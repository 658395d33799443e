/* Process lifecycle and signals while the shim is busy, for the shim's
 * tests (tests/shell/test_shim_exec.sh). HOST is looked up with
 * getaddrinfo(AF_INET); under the shim an IPv6-only name gives a synthetic
 * address, without it a literal IPv4 address is the kernel's reference.
 *
 *   shim_exec exec execve|execvp|execl|spawn HOST PORT
 *   shim_exec fork keep|close HOST PORT
 *   shim_exec storm HOST PORT SECONDS
 *   shim_exec sigconnect SYNTH_NAME SLOW_NAME SLOW6_NAME RACE_NAME PORT
 *
 * exec: a non-blocking AF_INET socket (no FD_CLOEXEC) connects to HOST
 * (EINPROGRESS), and the program at once runs itself again ("child FD T0
 * HOW") through execve, execvp (found on PATH), execl, or posix_spawn (the
 * parent then closes its copy and waits). The new image polls the
 * inherited fd for POLLOUT (5 s), reads SO_ERROR, and when it is 0 sends
 * "hello\n" and reads the reply. Lines: connect_errno, then child_poll
 * (ready|timeout), child_ms (since the connect), child_so_error,
 * child_tcp_state, child_peer, child_reply; spawn adds spawn_status.
 *
 * fork: the same connect, then fork(). keep: the child polls (10 s) and
 * reads SO_ERROR while the parent polls its copy too; once the child has
 * exited the parent sends and reads the reply. close: the parent closes
 * its copy right after fork; the child polls (10 s), and talks when
 * SO_ERROR is 0. Lines child_* as above, parent_* likewise (keep).
 *
 * storm: SIGALRM from setitimer every 1 ms and SIGUSR1 from a second
 * process, for SECONDS, while the main thread loops over non-blocking
 * connects to HOST, epoll_ctl ADD/DEL, dup, dup2, close. The handler does
 * dup2() onto a socket fd (300), dup2+close (301) and close_range() over
 * 302-309, which it filled with dup2 first. Then the signals stop and the
 * program checks the fd table and makes a blocking connect to HOST. Lines:
 * iterations, handled, connect_other (connects that did not give
 * EINPROGRESS: "none" or "ERRNO xN ..."), call_errors, fds_before,
 * fds_after, fd300 (socket|other|closed), fds_301_309 (open ones), final
 * (connect errno), final_peer, final_reply, done.
 *
 * sigconnect: SIGALRM every 100 ms while the main thread is inside a hook:
 * getaddrinfo(SLOW_NAME) (a slow IPv4 answer), getaddrinfo(SLOW6_NAME)
 * (a slow IPv6-only name: a synthetic answer), then a blocking connect to
 * RACE_NAME's address (a race that takes a while). Not gethostbyname in
 * the main thread: glibc's holds a non-recursive lock that the handler's
 * gethostbyname would wait for, with or without the shim. The handler
 * calls gethostbyname(SYNTH_NAME) and connects a fresh blocking TCP socket
 * to the address it got (or, when it got none, to SYNTH_NAME's address
 * looked up before). Lines: phase_PHASE RESULT, handler_runs,
 * handler_ghbn_ok, handler_ok, handler_ENETUNREACH, handler_other ("none"
 * or "ERRNO xN ..."), done. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *ename(int e)
{
  static char buf[32];
  const char *s = e == 0 ? "0" : strerrorname_np(e);
  if (s != NULL)
    return s;
  snprintf(buf, sizeof buf, "%d", e);
  return buf;
}

static void lookup(struct sockaddr_in *sin, const char *host, const char *port)
{
  struct addrinfo hints = {0}, *res;
  int rc;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
    printf("lookup %s\n", gai_strerror(rc));
    exit(68);
  }
  memcpy(sin, res->ai_addr, sizeof *sin);
  freeaddrinfo(res);
}

static const char *addr_text(const struct sockaddr_in *sin)
{
  static char buf[64];
  char a[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin->sin_addr, a, sizeof a);
  snprintf(buf, sizeof buf, "%s:%d", a, ntohs(sin->sin_port));
  return buf;
}

static const char *tcp_state(int fd)
{
  static const char *names[] = {"?",         "ESTABLISHED", "SYN_SENT",
                                "SYN_RECV",  "FIN_WAIT1",   "FIN_WAIT2",
                                "TIME_WAIT", "CLOSE",       "CLOSE_WAIT",
                                "LAST_ACK",  "LISTEN",      "CLOSING"};
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
    return ename(errno);
  return ti.tcpi_state < sizeof names / sizeof *names ? names[ti.tcpi_state]
                                                      : "?";
}

/* Counts the open fds below 500: the application's. The shim keeps its
 * own long-lived fds at 600 and above. */
static int count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.' && atoi(e->d_name) < 500;
  closedir(d);
  return n - 1;
}

/* A non-blocking AF_INET socket (no FD_CLOEXEC) connecting to sin. */
static int start_connect(const struct sockaddr_in *sin)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int rc = connect(fd, (const struct sockaddr *)sin, sizeof *sin);
  printf("asked %s\n", addr_text(sin));
  printf("connect_errno %s\n", rc == 0 ? "0" : ename(errno));
  fflush(stdout);
  return fd;
}

/* Waits for fd to be writable (timeout_ms), then prints what it found
 * with PREFIX_ keys; talks when SO_ERROR is 0 and talk is set. */
static void check_fd(const char *prefix, int fd, double t0, int timeout_ms,
                     int talk)
{
  struct pollfd p = {fd, POLLOUT, 0};
  struct sockaddr_in peer;
  socklen_t len;
  double end = now_ms() + timeout_ms;
  int n, err = 0;
  for (;;) {
    int left = (int)(end - now_ms());
    n = poll(&p, 1, left > 0 ? left : 0);
    if (n >= 0 || errno != EINTR)
      break;
  }
  printf("%s_poll %s\n", prefix,
         n == 1   ? "ready"
         : n == 0 ? "timeout"
                  : ename(errno));
  printf("%s_revents 0x%x\n", prefix, n == 1 ? p.revents : 0);
  printf("%s_ms %.0f\n", prefix, now_ms() - t0);
  len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  printf("%s_so_error %s\n", prefix, ename(err));
  printf("%s_tcp_state %s\n", prefix, tcp_state(fd));
  len = sizeof peer;
  if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
    printf("%s_peer %s\n", prefix, addr_text(&peer));
  else
    printf("%s_peer %s\n", prefix, ename(errno));
  if (n == 1 && err == 0 && talk) {
    char buf[256];
    struct pollfd q = {fd, POLLIN, 0};
    ssize_t r;
    if (send(fd, "hello\n", 6, MSG_NOSIGNAL) != 6)
      printf("%s_send %s\n", prefix, ename(errno));
    poll(&q, 1, 5000);
    r = recv(fd, buf, sizeof buf - 1, 0);
    buf[r > 0 ? r : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    printf("%s_reply %s\n", prefix,
           r > 0    ? buf
           : r == 0 ? "EOF"
                    : ename(errno));
  }
  fflush(stdout);
}

/* ---- exec ---- */

static int run_exec(const char *how, const char *host, const char *port)
{
  struct sockaddr_in sin;
  char self[PATH_MAX], fdtext[16], t0text[32];
  ssize_t n;
  double t0;
  int fd;

  n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return 70;
  self[n] = '\0';
  lookup(&sin, host, port);
  t0 = now_ms();
  fd = start_connect(&sin);
  snprintf(fdtext, sizeof fdtext, "%d", fd);
  snprintf(t0text, sizeof t0text, "%.3f", t0);
  {
    char *args[] = {"shim_exec", "child", fdtext, t0text, (char *)how, NULL};
    if (strcmp(how, "execve") == 0) {
      execve(self, args, environ);
    } else if (strcmp(how, "execvp") == 0) {
      char path[PATH_MAX + 64], *slash = strrchr(self, '/');
      *slash = '\0';
      snprintf(path, sizeof path, "%s:%s", self,
               getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
      setenv("PATH", path, 1);
      execvp("shim_exec", args);
    } else if (strcmp(how, "execl") == 0) {
      execl(self, "shim_exec", "child", fdtext, t0text, how, (char *)NULL);
    } else if (strcmp(how, "spawn") == 0) {
      pid_t pid;
      int rc = posix_spawn(&pid, self, NULL, NULL, args, environ), st = -1;
      if (rc != 0) {
        printf("spawn_error %s\n", ename(rc));
        return 1;
      }
      close(fd); /* the parent's copy */
      waitpid(pid, &st, 0);
      printf("spawn_status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
      return 0;
    } else {
      return 64;
    }
  }
  printf("exec_error %s\n", ename(errno));
  return 1;
}

static int run_child(const char *fdtext, const char *t0text, const char *how)
{
  printf("child_via %s\n", how);
  check_fd("child", atoi(fdtext), atof(t0text), 5000, 1);
  return 0;
}

/* ---- fork ---- */

static int run_fork(const char *how, const char *host, const char *port)
{
  struct sockaddr_in sin;
  double t0;
  pid_t pid;
  int fd, st = -1, keep = strcmp(how, "keep") == 0;

  lookup(&sin, host, port);
  t0 = now_ms();
  fd = start_connect(&sin);
  pid = fork();
  if (pid < 0)
    return 71;
  if (pid == 0) {
    /* keep: only looks (the parent talks); close: the fd is its alone. */
    check_fd("child", fd, t0, 10000, !keep);
    _exit(0);
  }
  if (!keep) {
    close(fd);
    waitpid(pid, &st, 0);
  } else {
    /* Polls its own copy while the child polls; talks once it is gone. */
    struct pollfd p = {fd, POLLOUT, 0};
    int n = poll(&p, 1, 10000);
    printf("parent_first_poll %s\n", n == 1 ? "ready" : "timeout");
    printf("parent_first_ms %.0f\n", now_ms() - t0);
    fflush(stdout);
    waitpid(pid, &st, 0);
    check_fd("parent", fd, t0, 10000, 1);
  }
  printf("child_status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
  return 0;
}

/* ---- storm ---- */

static int storm_hs = -1;
static volatile sig_atomic_t handled;

static void storm_handler(int sig)
{
  int e = errno, k;
  (void)sig;
  dup2(storm_hs, 300); /* onto a socket (after the first time) */
  dup2(storm_hs, 301);
  close(301);
  for (k = 302; k <= 309; k++)
    dup2(storm_hs, k);
  close_range(302, 309, 0);
  handled++;
  errno = e;
}

/* Counts errnos in a small table and prints it. */
struct tally {
  int err[8], n[8], used;
};
static void tally_add(struct tally *t, int err)
{
  int i;
  for (i = 0; i < t->used; i++)
    if (t->err[i] == err) {
      t->n[i]++;
      return;
    }
  if (t->used < 8) {
    t->err[t->used] = err;
    t->n[t->used++] = 1;
  }
}
static void tally_print(const char *key, const struct tally *t)
{
  int i;
  printf("%s", key);
  if (t->used == 0)
    printf(" none");
  for (i = 0; i < t->used; i++)
    printf(" %s x%d", ename(t->err[i]), t->n[i]);
  printf("\n");
}

static int run_storm(const char *host, const char *port, const char *secs)
{
  struct sockaddr_in sin, peer;
  struct sigaction sa;
  struct itimerval it;
  struct tally other = {0};
  sigset_t block;
  socklen_t len;
  double end;
  pid_t sender, parent = getpid();
  int ep, fds0, iterations = 0, call_errors = 0, k, s, rc;
  char open_list[128] = "";

  lookup(&sin, host, port);
  printf("asked %s\n", addr_text(&sin));
  storm_hs = socket(AF_INET, SOCK_STREAM, 0);
  ep = epoll_create1(EPOLL_CLOEXEC);
  dup2(storm_hs, 300);
  fds0 = count_fds();
  printf("fds_before %d\n", fds0);
  fflush(stdout);

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = storm_handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);

  sender = fork();
  if (sender == 0) {
    /* The second process: SIGUSR1 every 0.5 ms until told to stop. */
    for (;;) {
      if (kill(parent, SIGUSR1) != 0)
        _exit(0);
      usleep(500);
    }
  }
  memset(&it, 0, sizeof it);
  it.it_interval.tv_usec = 1000;
  it.it_value.tv_usec = 1000;
  setitimer(ITIMER_REAL, &it, NULL);

  end = now_ms() + atof(secs) * 1000;
  while (now_ms() < end) {
    struct epoll_event ev = {.events = EPOLLOUT};
    int d;
    s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0) {
      call_errors++;
      continue;
    }
    ev.data.fd = s;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0)
      call_errors++;
    rc = connect(s, (struct sockaddr *)&sin, sizeof sin);
    if (rc != 0 && errno != EINPROGRESS)
      tally_add(&other, errno);
    else if (rc == 0)
      tally_add(&other, 0);
    d = dup(s);
    if (d < 0 || dup2(s, 250) != 250)
      call_errors++;
    if (d >= 0 && close(d) != 0)
      call_errors++;
    if (epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL) != 0)
      call_errors++;
    if (close(250) != 0 || close(s) != 0)
      call_errors++;
    iterations++;
  }

  memset(&it, 0, sizeof it);
  setitimer(ITIMER_REAL, &it, NULL);
  sigemptyset(&block);
  sigaddset(&block, SIGALRM);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, NULL);
  kill(sender, SIGKILL);
  waitpid(sender, NULL, 0);
  usleep(1500 * 1000); /* cancelled races finish */

  printf("iterations %d\n", iterations);
  printf("handled %d\n", (int)handled);
  tally_print("connect_other", &other);
  printf("call_errors %d\n", call_errors);
  printf("fds_after %d\n", count_fds());
  {
    struct stat st;
    printf("fd300 %s\n", fstat(300, &st) != 0   ? "closed"
                         : S_ISSOCK(st.st_mode) ? "socket"
                                                : "other");
    for (k = 301; k <= 309; k++)
      if (fcntl(k, F_GETFD) >= 0)
        snprintf(open_list + strlen(open_list),
                 sizeof open_list - strlen(open_list), " %d", k);
    printf("fds_301_309%s\n", open_list[0] ? open_list : " none");
  }
  fflush(stdout);

  /* A final blocking connect to the working name, translated. */
  s = socket(AF_INET, SOCK_STREAM, 0);
  rc = connect(s, (struct sockaddr *)&sin, sizeof sin);
  printf("final %s\n", rc == 0 ? "0" : ename(errno));
  if (rc == 0) {
    char buf[256];
    ssize_t r;
    len = sizeof peer;
    getpeername(s, (struct sockaddr *)&peer, &len);
    printf("final_peer %s\n", addr_text(&peer));
    send(s, "hello\n", 6, MSG_NOSIGNAL);
    r = recv(s, buf, sizeof buf - 1, 0);
    buf[r > 0 ? r : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    printf("final_reply %s\n", buf);
  }
  close(s);
  printf("done\n");
  return 0;
}

/* ---- sigconnect ---- */

static struct sockaddr_in presynth;
static const char *synth_name;
static volatile sig_atomic_t h_runs, h_ghbn_ok, h_ok, h_unreach, h_inside;
static struct tally h_other;

static void sigconnect_handler(int sig)
{
  struct sockaddr_in to = presynth;
  struct hostent *h;
  int e = errno, s;
  (void)sig;
  if (!h_inside)
    return; /* only while the main thread is inside a hook */
  h_runs++;
  h = gethostbyname(synth_name);
  if (h != NULL && h->h_addrtype == AF_INET && h->h_addr_list[0] != NULL) {
    memcpy(&to.sin_addr, h->h_addr_list[0], sizeof to.sin_addr);
    h_ghbn_ok++;
  }
  s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr *)&to, sizeof to) == 0)
    h_ok++;
  else if (errno == ENETUNREACH)
    h_unreach++;
  else
    tally_add(&h_other, errno);
  close(s);
  errno = e;
}

static int run_sigconnect(const char *synth, const char *slow,
                          const char *slow6, const char *race, const char *port)
{
  struct sockaddr_in rsin;
  struct addrinfo hints = {0}, *res = NULL;
  struct sigaction sa;
  struct itimerval it;
  double t0;
  int rc, s;

  synth_name = synth;
  lookup(&presynth, synth, port);
  lookup(&rsin, race, port);
  printf("asked %s\n", addr_text(&presynth));
  printf("race %s\n", addr_text(&rsin));
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = sigconnect_handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  memset(&it, 0, sizeof it);
  it.it_interval.tv_usec = 100000;
  it.it_value.tv_usec = 100000;
  setitimer(ITIMER_REAL, &it, NULL);

  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  t0 = now_ms();
  h_inside = 1;
  rc = getaddrinfo(slow, port, &hints, &res);
  h_inside = 0;
  printf("phase_getaddrinfo %s ms=%.0f\n", rc == 0 ? "ok" : gai_strerror(rc),
         now_ms() - t0);
  if (rc == 0)
    freeaddrinfo(res);

  res = NULL;
  t0 = now_ms();
  h_inside = 1;
  rc = getaddrinfo(slow6, port, &hints, &res);
  h_inside = 0;
  printf("phase_getaddrinfo6 %s ms=%.0f\n", rc == 0 ? "ok" : gai_strerror(rc),
         now_ms() - t0);
  if (rc == 0)
    freeaddrinfo(res);

  t0 = now_ms();
  s = socket(AF_INET, SOCK_STREAM, 0);
  h_inside = 1;
  rc = connect(s, (struct sockaddr *)&rsin, sizeof rsin);
  if (rc != 0 &&
      (errno == EINTR || errno == EALREADY || errno == EINPROGRESS)) {
    /* Interrupted: wait for the connect the kernel goes on with. */
    struct pollfd p = {s, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    while (poll(&p, 1, 10000) < 0 && errno == EINTR)
      ;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    rc = err == 0 ? 0 : -1;
    errno = err;
  }
  h_inside = 0;
  printf("phase_connect %s ms=%.0f\n", rc == 0 ? "ok" : ename(errno),
         now_ms() - t0);
  close(s);

  memset(&it, 0, sizeof it);
  setitimer(ITIMER_REAL, &it, NULL);
  printf("handler_runs %d\n", (int)h_runs);
  printf("handler_ghbn_ok %d\n", (int)h_ghbn_ok);
  printf("handler_ok %d\n", (int)h_ok);
  printf("handler_ENETUNREACH %d\n", (int)h_unreach);
  tally_print("handler_other", &h_other);
  printf("done\n");
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 5 && strcmp(argv[1], "exec") == 0)
    return run_exec(argv[2], argv[3], argv[4]);
  if (argc == 5 && strcmp(argv[1], "child") == 0)
    return run_child(argv[2], argv[3], argv[4]);
  if (argc == 5 && strcmp(argv[1], "fork") == 0)
    return run_fork(argv[2], argv[3], argv[4]);
  if (argc == 5 && strcmp(argv[1], "storm") == 0)
    return run_storm(argv[2], argv[3], argv[4]);
  if (argc == 7 && strcmp(argv[1], "sigconnect") == 0)
    return run_sigconnect(argv[2], argv[3], argv[4], argv[5], argv[6]);
  fprintf(stderr, "usage: see the top of shim_exec.c\n");
  return 64;
}
