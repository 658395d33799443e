/* Edge cases around a blocking connect() the shim races, signal handlers,
 * closefrom(), exec and fork, for tests/shell/test_shim_edges.sh (the
 * review of issue 19, round 1). HOST is looked up with
 * getaddrinfo(AF_INET): under the shim an IPv6-only name gives a synthetic
 * address; without it a literal IPv4 address is the kernel's reference.
 * Output: one "key value" line per observation (stdout line-buffered);
 * errors are errno names (strerrorname_np), "0" for success.
 *
 *   shim_edges dup2 HOST PORT
 *   shim_edges alarm NAME
 *   shim_edges closefrom glibc|raw HOST PORT
 *   shim_edges bigenv COUNT HOST PORT
 *   shim_edges refused HOST PORT
 *   shim_edges fork HOST PORT
 *   shim_edges peers COUNT HOST PORT execv|nullenv
 *   shim_edges show ADDR           (the image peers runs)
 *
 * EDGES_THEN (environment): a shell command that dup2 and fork run with
 * system() right after their action (the kernel reference lifts a black
 * hole with it, so that the SYN retransmission at 1 s connects).
 *
 * dup2: a blocking connect to HOST; at 200 ms another thread dup2()s a
 * fresh socket over the fd. Lines: asked, dup2_rc, dup2_ms, connect,
 * connect_ms (since the connect started).
 *
 * alarm: SIGALRM (SA_RESTART) every 100 ms; the handler does a local
 * `if (!setjmp(jb)) longjmp(jb, 1);` (the jump stays inside the handler),
 * then socket(), connect() to 127.0.0.1:1, close(). The main thread calls
 * getaddrinfo(NAME, AF_INET). Lines: gai (0 or the EAI_ name), gai_ms,
 * handlers.
 *
 * closefrom: twice: a blocking connect to HOST, "hello\n" sent and the
 * reply read (3 s), close(), then closefrom(3) (glibc, which makes the
 * close_range system call itself) or syscall(SYS_close_range, 3, ~0U, 0)
 * (raw). Lines: asked, connectN, connectN_ms, replyN (N = 1, 2), done.
 * With EDGES_TRAP=FILE, FILE is opened first (fd 3; the closes then
 * start above it) and, after each close, dup2()ed onto fds 600-639
 * (where the shim's own fds were): trap_bytes is its size at the end
 * (the shim must write nothing into a program's fd that took its
 * trace's number).
 *
 * bigenv: a blocking connect to HOST, then execve("/bin/true") with an
 * environment of COUNT entries "a=". Lines: asked, connect, execve (the
 * errno when it returns).
 *
 * refused: a blocking connect to HOST (refused), then poll(POLLOUT, 1 s)
 * and SO_ERROR. Lines: asked, connect, connect_ms, poll (the count),
 * revents (hex), so_error.
 *
 * fork: a blocking connect to HOST; at 200 ms another thread forks. The
 * child connects its copy of the fd once, then again every
 * EDGES_RETRY_US microseconds (default 100000) while that says EALREADY,
 * for 4 s at most (SIGALRM after 6 s interrupts a connect that waits:
 * EINTR), and exits; the thread waits for it. Lines: asked, forked_ms,
 * child_connect1, child_connect1_ms, child_ealready (how many retries said
 * EALREADY), child_connect2 (the first other result, or EALREADY),
 * child_connect2_ms (since the child's first connect), child_status,
 * connect, connect_ms, reply (the parent's connection carrying
 * "hello\n").
 *
 * peers: COUNT sockets connected to HOST, then the program runs itself as
 * "show ADDR" (ADDR: the address getaddrinfo gave) through execv, or
 * through execve with a NULL environment (nullenv). With EDGES_LDSO set,
 * nullenv runs the dynamic loader instead ("EDGES_LDSO [--preload
 * EDGES_PRELOAD] SELF show ADDR", still with a NULL environment), so that
 * the new image can have the shim without LD_PRELOAD. Lines: asked,
 * connected (count), exec (errno, when it returns); then the new image's
 * show_env (DUALSTACK_PEERS set|unset), peer_FD ADDR:PORT for every fd
 * from 3 to 1023 that has a peer, peers (count), peers_match (how many are
 * ADDR), and with EDGES_OTHER=NAME, other_addr (NAME looked up with AF_INET).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *ename(int rc, int e)
{
  return rc == 0 ? "0" : strerrorname_np(e) ? strerrorname_np(e) : "unknown";
}

static const char *gainame(int rc)
{
  switch (rc) {
  case 0:
    return "0";
  case EAI_AGAIN:
    return "EAI_AGAIN";
  case EAI_FAIL:
    return "EAI_FAIL";
  case EAI_NONAME:
    return "EAI_NONAME";
  case EAI_NODATA:
    return "EAI_NODATA";
  case EAI_SYSTEM:
    return "EAI_SYSTEM";
  case EAI_MEMORY:
    return "EAI_MEMORY";
  default:
    return "EAI_other";
  }
}

static struct sockaddr_in dst;
static int fd = -1;
static double t_connect;

static void resolve(const char *host, const char *port)
{
  struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *r;
  char b[INET_ADDRSTRLEN];
  int rc = getaddrinfo(host, port, &h, &r);
  if (rc != 0) {
    printf("gai %s\n", gainame(rc));
    exit(2);
  }
  dst = *(struct sockaddr_in *)r->ai_addr;
  freeaddrinfo(r);
  inet_ntop(AF_INET, &dst.sin_addr, b, sizeof b);
  printf("asked %s\n", b);
}

static int tcp_connect(int s)
{
  return connect(s, (struct sockaddr *)&dst, sizeof dst);
}

/* Sends "hello\n" on s and prints the reply under key (3 s). */
static void talk(int s, const char *key)
{
  struct timeval tv = {3, 0};
  char b[128];
  ssize_t n;
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (write(s, "hello\n", 6) != 6) {
    printf("%s write_%s\n", key, ename(-1, errno));
    return;
  }
  n = read(s, b, sizeof b - 1);
  if (n <= 0) {
    printf("%s read_%s\n", key, n == 0 ? "eof" : ename(-1, errno));
    return;
  }
  b[n] = '\0';
  b[strcspn(b, "\r\n")] = '\0';
  printf("%s %s\n", key, b);
}

static void then(void)
{
  const char *cmd = getenv("EDGES_THEN");
  if (cmd != NULL && *cmd != '\0' && system(cmd) != 0)
    printf("then_failed 1\n");
}

/* ---- dup2 ---- */

static void *dup2_thread(void *arg)
{
  int s, rc;
  (void)arg;
  usleep(200000);
  s = socket(AF_INET, SOCK_STREAM, 0);
  rc = dup2(s, fd);
  printf("dup2_rc %d\n", rc == fd ? 0 : -1);
  printf("dup2_ms %.0f\n", now_ms() - t_connect);
  close(s);
  then();
  return NULL;
}

static int do_dup2(char **argv)
{
  pthread_t t;
  int rc, e;
  resolve(argv[0], argv[1]);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  t_connect = now_ms();
  pthread_create(&t, NULL, dup2_thread, NULL);
  rc = tcp_connect(fd);
  e = errno;
  printf("connect %s\n", ename(rc, e));
  printf("connect_ms %.0f\n", now_ms() - t_connect);
  pthread_join(t, NULL);
  close(fd);
  return 0;
}

/* ---- alarm ---- */

static volatile sig_atomic_t handlers;

static void jump_in(jmp_buf *jb)
{
  longjmp(*jb, 1);
}

static void on_alarm(int sig)
{
  jmp_buf jb;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1)};
  int s, saved = errno;
  (void)sig;
  if (setjmp(jb) == 0)
    jump_in(&jb); /* a local error-handling jump */
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s = socket(AF_INET, SOCK_STREAM, 0);
  if (s >= 0) {
    connect(s, (struct sockaddr *)&a, sizeof a);
    close(s);
  }
  handlers++;
  errno = saved;
}

static int do_alarm(char **argv)
{
  struct sigaction sa;
  struct itimerval it = {{0, 100000}, {0, 100000}}, off = {{0, 0}, {0, 0}};
  struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *r;
  double t0;
  int rc;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  setitimer(ITIMER_REAL, &it, NULL);
  t0 = now_ms();
  rc = getaddrinfo(argv[0], "7", &h, &r);
  setitimer(ITIMER_REAL, &off, NULL);
  printf("gai %s\n", gainame(rc));
  printf("gai_ms %.0f\n", now_ms() - t0);
  printf("handlers %d\n", (int)handlers);
  if (rc == 0)
    freeaddrinfo(r);
  return 0;
}

/* ---- closefrom ---- */

static int do_closefrom(char **argv)
{
  int raw = strcmp(argv[0], "raw") == 0, i, rc, e, n, trap = -1;
  const char *trapfile = getenv("EDGES_TRAP");
  int lo = 3;
  resolve(argv[1], argv[2]);
  if (trapfile != NULL) {
    /* The lowest free fd (3): the closes leave it, and only it. */
    trap = open(trapfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    lo = trap >= 0 ? trap + 1 : 3;
  }
  for (i = 1; i <= 2; i++) {
    char key[32];
    double t0 = now_ms();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    rc = tcp_connect(s);
    e = errno;
    printf("connect%d %s\n", i, ename(rc, e));
    printf("connect%d_ms %.0f\n", i, now_ms() - t0);
    snprintf(key, sizeof key, "reply%d", i);
    if (rc == 0)
      talk(s, key);
    close(s);
    if (raw)
      syscall(SYS_close_range, (unsigned)lo, ~0U, 0U);
    else
      closefrom(lo);
    if (trap >= 0)
      /* The numbers the shim's own fds had (its trace's among them) are
       * the program's now, all on one file of its own. */
      for (n = 600; n < 640; n++)
        dup2(trap, n);
  }
  if (trap >= 0) {
    struct stat st;
    printf("trap_bytes %lld\n",
           fstat(trap, &st) == 0 ? (long long)st.st_size : -1LL);
  }
  printf("done 1\n");
  return 0;
}

/* ---- bigenv ---- */

static int do_bigenv(char **argv)
{
  long n = atol(argv[0]), i;
  char **env = calloc(n + 1, sizeof *env);
  char *av[] = {"/bin/true", NULL};
  int rc, s;
  if (env == NULL)
    return 1;
  for (i = 0; i < n; i++)
    env[i] = "a=";
  resolve(argv[1], argv[2]);
  s = socket(AF_INET, SOCK_STREAM, 0);
  rc = tcp_connect(s);
  printf("connect %s\n", ename(rc, errno));
  execve(av[0], av, env);
  printf("execve %s\n", ename(-1, errno));
  free(env);
  return 0;
}

/* ---- refused ---- */

static int do_refused(char **argv)
{
  struct pollfd p;
  int rc, e, err = -1, n;
  socklen_t l = sizeof err;
  double t0;
  resolve(argv[0], argv[1]);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  t0 = now_ms();
  rc = tcp_connect(fd);
  e = errno;
  printf("connect %s\n", ename(rc, e));
  printf("connect_ms %.0f\n", now_ms() - t0);
  p.fd = fd;
  p.events = POLLOUT;
  p.revents = 0;
  n = poll(&p, 1, 1000);
  printf("poll %d\n", n);
  printf("revents 0x%x\n", (unsigned)p.revents);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
    printf("so_error getsockopt_%s\n", ename(-1, errno));
  else
    printf("so_error %s\n", ename(err, err));
  close(fd);
  return 0;
}

/* ---- fork ---- */

static void on_child_alarm(int sig)
{
  (void)sig;
}

static void child_connect(int i, double t0)
{
  int rc = tcp_connect(fd), e = errno;
  printf("child_connect%d %s\n", i, ename(rc, e));
  printf("child_connect%d_ms %.0f\n", i, now_ms() - t0);
}

/* The child: one connect, then connects every 100 ms while they say
 * EALREADY (4 s at most); prints the first other result. */
static void fork_child(void)
{
  struct sigaction sa;
  double t0 = now_ms();
  const char *retry = getenv("EDGES_RETRY_US");
  useconds_t pause = retry != NULL ? (useconds_t)atol(retry) : 100000;
  int rc, e, ealready = 0;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_child_alarm; /* no SA_RESTART: EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  alarm(6);
  child_connect(1, t0);
  for (;;) {
    rc = tcp_connect(fd);
    e = errno;
    if (rc != 0 && e == EALREADY && now_ms() - t0 < 4000) {
      ealready++;
      usleep(pause);
      continue;
    }
    break;
  }
  printf("child_ealready %d\n", ealready);
  printf("child_connect2 %s\n", ename(rc, e));
  printf("child_connect2_ms %.0f\n", now_ms() - t0);
  fflush(stdout);
  _exit(0);
}

static void *fork_thread(void *arg)
{
  pid_t pid;
  int st;
  (void)arg;
  usleep(200000);
  pid = fork();
  if (pid == 0)
    fork_child();
  printf("forked_ms %.0f\n", now_ms() - t_connect);
  then();
  if (pid > 0 && waitpid(pid, &st, 0) == pid)
    printf("child_status %d\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  return NULL;
}

static int do_fork(char **argv)
{
  pthread_t t;
  int rc, e;
  resolve(argv[0], argv[1]);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  t_connect = now_ms();
  pthread_create(&t, NULL, fork_thread, NULL);
  rc = tcp_connect(fd);
  e = errno;
  printf("connect %s\n", ename(rc, e));
  printf("connect_ms %.0f\n", now_ms() - t_connect);
  pthread_join(t, NULL);
  if (rc == 0)
    talk(fd, "reply");
  close(fd);
  return 0;
}

/* ---- peers / show ---- */

static int do_peers(char **argv, const char *self)
{
  int n = atoi(argv[0]), i, ok = 0;
  char addr[INET_ADDRSTRLEN];
  char *av[] = {(char *)self, "show", addr, NULL};
  resolve(argv[1], argv[2]);
  inet_ntop(AF_INET, &dst.sin_addr, addr, sizeof addr);
  for (i = 0; i < n; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (tcp_connect(s) == 0)
      ok++;
    else
      printf("connect_failed %d %s\n", s, ename(-1, errno));
  }
  printf("connected %d\n", ok);
  if (strcmp(argv[3], "nullenv") == 0) {
    /* Through the dynamic loader, which preloads EDGES_PRELOAD itself:
     * the new image gets the shim without any environment. */
    const char *ldso = getenv("EDGES_LDSO"), *pre = getenv("EDGES_PRELOAD");
    char *lv[8];
    int k = 0;
    if (ldso == NULL || *ldso == '\0') {
      execve(self, av, NULL);
    } else {
      lv[k++] = (char *)ldso;
      if (pre != NULL && *pre != '\0') {
        lv[k++] = "--preload";
        lv[k++] = (char *)pre;
      }
      lv[k++] = (char *)self;
      lv[k++] = "show";
      lv[k++] = addr;
      lv[k] = NULL;
      execve(ldso, lv, NULL);
    }
  } else
    execv(self, av);
  printf("exec %s\n", ename(-1, errno));
  return 1;
}

static int do_show(char **argv)
{
  int s, count = 0, match = 0;
  printf("show_env %s\n", getenv("DUALSTACK_PEERS") ? "set" : "unset");
  for (s = 3; s < 1024; s++) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    char b[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(s, (struct sockaddr *)&ss, &l) != 0)
      continue;
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, b, sizeof b);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, b, sizeof b);
      port = ntohs(a->sin6_port);
    }
    printf("peer_%d %s:%d\n", s, b, port);
    count++;
    if (strcmp(b, argv[0]) == 0)
      match++;
  }
  printf("peers %d\n", count);
  printf("peers_match %d\n", match);
  if (getenv("EDGES_OTHER") != NULL) {
    /* Another name, looked up in the new image: its address must not be
     * the one the inherited connections stand on (a connect to that one
     * would reach this name's host). */
    struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *r;
    char b[INET_ADDRSTRLEN] = "none";
    if (getaddrinfo(getenv("EDGES_OTHER"), "7", &h, &r) == 0) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)r->ai_addr)->sin_addr, b,
                sizeof b);
      freeaddrinfo(r);
    }
    printf("other_addr %s\n", b);
  }
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  if (argc == 4 && strcmp(argv[1], "dup2") == 0)
    return do_dup2(argv + 2);
  if (argc == 3 && strcmp(argv[1], "alarm") == 0)
    return do_alarm(argv + 2);
  if (argc == 5 && strcmp(argv[1], "closefrom") == 0)
    return do_closefrom(argv + 2);
  if (argc == 5 && strcmp(argv[1], "bigenv") == 0)
    return do_bigenv(argv + 2);
  if (argc == 4 && strcmp(argv[1], "refused") == 0)
    return do_refused(argv + 2);
  if (argc == 4 && strcmp(argv[1], "fork") == 0)
    return do_fork(argv + 2);
  if (argc == 6 && strcmp(argv[1], "peers") == 0)
    return do_peers(argv + 2, argv[0]);
  if (argc == 3 && strcmp(argv[1], "show") == 0)
    return do_show(argv + 2);
  fprintf(stderr, "usage: see tests/lab/shim_edges.c\n");
  return 64;
}
