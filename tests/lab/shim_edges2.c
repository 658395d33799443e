/* Edge cases of issue 19's review (round 2), for
 * tests/shell/test_shim_edges2.sh: signal handlers on a sigaltstack
 * above or below the interrupted stack, a jump into a coroutine's stack,
 * the shim's fd numbers taken by the program after a raw close_range, a
 * failed exec during a non-blocking race, connect() on a dup of a racing
 * fd, and the shim's helper killed by a raw close_range. HOST is looked
 * up with getaddrinfo(AF_INET): under the shim an IPv6-only name gives a
 * synthetic address; without it a literal IPv4 address is the kernel's
 * reference. Output: one "key value" line per observation (stdout
 * line-buffered); errors are errno names, "0" for success.
 *
 *   shim_edges2 altstack above|below NAME HNAME ANAME
 *   shim_edges2 coroutine NAME NAME6
 *   shim_edges2 fdreuse HOST PORT
 *   shim_edges2 execfail HOST PORT
 *   shim_edges2 dupconnect HOST PORT
 *   shim_edges2 killhelper HOST PORT
 *   shim_edges2 info
 *
 * EDGES_THEN (environment): a shell command that execfail, dupconnect and
 * killhelper run with system() right after their action (the kernel
 * reference lifts a black hole with it).
 *
 * altstack: SIGALRM (SA_RESTART | SA_ONSTACK) every 100 ms, its handler on
 * a sigaltstack mapped 64 MiB above the main stack (above) or malloc'd
 * (below). The handler does a local setjmp/longjmp, then
 * getaddrinfo(HNAME, AF_INET). The main thread calls getaddrinfo(NAME)
 * (a name never answered), then getaddrinfo(ANAME). Lines:
 * altstack (above|below, as it really lies), gai, gai_ms, handlers,
 * handler_ok (handler lookups that succeeded), handler_addr (the last
 * one's address), after (the last lookup: 0 or EAI_ name), after_addr.
 *
 * coroutine: a makecontext coroutine (malloc'd stack) saves a jmp_buf and
 * swaps back; main calls getaddrinfo(NAME) (never answered); SIGALRM at
 * 1 s longjmps (plain longjmp: build without _FORTIFY_SOURCE) to the
 * coroutine's jmp_buf, which then looks up NAME6. Lines: co_gai, co_addr;
 * "not_interrupted RC" when the alarm never came.
 *
 * fdreuse: a non-blocking connect to HOST (a race under the shim), waits
 * for it (poll, 5 s), lists the fds from 300 up (the shim's: shim_fds),
 * then syscall(SYS_close_range, 3, ~0U, 0). Then for each of those
 * numbers and 600-610 (each once): a pipe whose write end is dup2()ed onto the
 * number, a byte written, close(number); the read end must give the byte
 * and then EOF (poll 500 ms). Lines: shim_fds (a list, or "none"),
 * targets, close_failed, eof (how many saw EOF), no_eof_fds.
 *
 * execfail: a non-blocking connect to HOST, then execv("/nonexistent/
 * nope"): exec (errno), exec_ms; then poll(POLLOUT, 8 s): poll, revents,
 * poll_ms, so_error; reply (a "hello\n" exchange).
 *
 * dupconnect: a non-blocking connect to HOST, then d = dup(fd) and
 * connect(d), twice: connect (the first), dup_connect, dup_connect2; then
 * poll(POLLOUT, 8 s) on fd, so_error, reply, and after 300 ms established (TCP
 * connections to PORT established in B, counted there with ss; needs LAB_SH and
 * LAB_NS_B).
 *
 * killhelper: a non-blocking connect to HOST; at 200 ms
 * syscall(SYS_close_range, fd + 1, ~0U, 0); then connect() every 100 ms
 * while it says EALREADY (8 s at most). Lines: connect, ealready (count),
 * result (the first other result, or EALREADY), result_ms (since the
 * close_range), so_error. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *ename(int rc, int e)
{
  static char b[32];
  if (rc == 0)
    return "0";
  if (strerrorname_np(e) != NULL)
    return strerrorname_np(e);
  snprintf(b, sizeof b, "errno_%d", e);
  return b;
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

/* getaddrinfo(name, AF_INET); the address into buf ("none" on error). */
static int lookup(const char *name, char *buf, size_t len)
{
  struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *r;
  int rc = getaddrinfo(name, "7", &h, &r);
  snprintf(buf, len, "none");
  if (rc == 0) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)r->ai_addr)->sin_addr, buf, len);
    freeaddrinfo(r);
  }
  return rc;
}

static struct sockaddr_in dst;

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

static int nb_socket(void)
{
  return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
}

/* Sends "hello\n" on s (made blocking) and prints the reply under key. */
static void talk(int s, const char *key)
{
  struct timeval tv = {3, 0};
  char b[128];
  ssize_t n;
  fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
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

static void print_so_error(int s)
{
  int err = -1;
  socklen_t l = sizeof err;
  if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
    printf("so_error getsockopt_%s\n", ename(-1, errno));
  else
    printf("so_error %s\n", ename(err, err));
}

/* ---- altstack ---- */

static volatile sig_atomic_t handlers, handler_ok;
static const char *hname;
static char handler_addr[INET_ADDRSTRLEN] = "none";

static void jump_in(jmp_buf *jb)
{
  longjmp(*jb, 1);
}

static void on_alarm_alt(int sig)
{
  jmp_buf jb;
  char b[INET_ADDRSTRLEN];
  int saved = errno;
  (void)sig;
  if (setjmp(jb) == 0)
    jump_in(&jb); /* a jump inside the handler */
  if (lookup(hname, b, sizeof b) == 0) {
    handler_ok++;
    memcpy(handler_addr, b, sizeof b);
  }
  handlers++;
  errno = saved;
}

static int do_altstack(char **argv)
{
  struct sigaction sa;
  struct itimerval it = {{0, 100000}, {0, 100000}}, off = {{0, 0}, {0, 0}};
  size_t size = 256 * 1024;
  stack_t ss;
  void *alt;
  char b[INET_ADDRSTRLEN];
  double t0;
  int rc, local;
  hname = argv[2];
  if (strcmp(argv[0], "above") == 0) {
    uintptr_t hint = ((uintptr_t)&local + (64ul << 20)) & ~(uintptr_t)0xfffff;
    alt = mmap((void *)hint, size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (alt == MAP_FAILED) {
      printf("mmap %s\n", ename(-1, errno));
      return 2;
    }
  } else
    alt = malloc(size);
  printf("altstack %s\n", (char *)alt > (char *)&local ? "above" : "below");
  ss.ss_sp = alt;
  ss.ss_size = size;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, NULL) != 0)
    printf("sigaltstack %s\n", ename(-1, errno));
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm_alt;
  sa.sa_flags = SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  setitimer(ITIMER_REAL, &it, NULL);
  t0 = now_ms();
  rc = lookup(argv[1], b, sizeof b);
  setitimer(ITIMER_REAL, &off, NULL);
  printf("gai %s\n", gainame(rc));
  printf("gai_ms %.0f\n", now_ms() - t0);
  printf("handlers %d\n", (int)handlers);
  printf("handler_ok %d\n", (int)handler_ok);
  printf("handler_addr %s\n", handler_addr);
  rc = lookup(argv[3], b, sizeof b);
  printf("after %s\n", gainame(rc));
  printf("after_addr %s\n", b);
  if (strcmp(argv[0], "above") != 0) {
    /* Off the alternate stack first, then its memory goes. */
    stack_t none = {.ss_flags = SS_DISABLE};
    sigaltstack(&none, NULL);
    free(alt);
  }
  return 0;
}

/* ---- coroutine ---- */

static ucontext_t main_ctx, co_ctx;
static jmp_buf co_jb;
static const char *co_name;

static void coroutine(void)
{
  char b[INET_ADDRSTRLEN];
  int rc;
  if (setjmp(co_jb) == 0)
    swapcontext(&co_ctx, &main_ctx);
  /* Here through the handler's longjmp, on the coroutine's stack. */
  rc = lookup(co_name, b, sizeof b);
  printf("co_gai %s\n", gainame(rc));
  printf("co_addr %s\n", b);
  fflush(stdout);
  _exit(0);
}

static void on_alarm_co(int sig)
{
  (void)sig;
  longjmp(co_jb, 1);
}

static int do_coroutine(char **argv)
{
  size_t size = 256 * 1024;
  char b[INET_ADDRSTRLEN];
  int rc;
  co_name = argv[1];
  getcontext(&co_ctx);
  co_ctx.uc_stack.ss_sp = malloc(size);
  co_ctx.uc_stack.ss_size = size;
  co_ctx.uc_link = NULL;
  makecontext(&co_ctx, coroutine, 0);
  swapcontext(&main_ctx, &co_ctx);
  signal(SIGALRM, on_alarm_co);
  alarm(1);
  rc = lookup(argv[0], b, sizeof b);
  printf("not_interrupted %s\n", gainame(rc));
  return 0;
}

/* ---- fdreuse ---- */

static int do_fdreuse(char **argv)
{
  int targets[64], nt = 0, n, i, s, rc, eof = 0, close_failed = 0;
  char list[512] = "", nolist[512] = "";
  struct pollfd p;
  DIR *d;
  struct dirent *e;
  resolve(argv[0], argv[1]);
  s = nb_socket();
  rc = tcp_connect(s);
  printf("connect %s\n", ename(rc, errno));
  p.fd = s;
  p.events = POLLOUT;
  printf("poll %d\n", poll(&p, 1, 5000));
  print_so_error(s);
  /* The program's fds (and what it inherited) are all below 300: the
   * rest are the shim's. */
  d = opendir("/proc/self/fd");
  while (d != NULL && (e = readdir(d)) != NULL) {
    n = atoi(e->d_name);
    if (n >= 300 && n != dirfd(d) && nt < 40) {
      targets[nt++] = n;
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d",
               *list ? "," : "", n);
    }
  }
  if (d != NULL)
    closedir(d);
  printf("shim_fds %s\n", *list ? list : "none");
  syscall(SYS_close_range, 3U, ~0U, 0U);
  for (n = 600; n <= 610; n++) {
    for (i = 0; i < nt && targets[i] != n; i++)
      ;
    if (i == nt)
      targets[nt++] = n;
  }
  printf("targets %d\n", nt);
  for (i = 0; i < nt; i++) {
    int pp[2];
    char c;
    if (pipe(pp) != 0)
      return 1;
    if (pp[1] != targets[i]) {
      dup2(pp[1], targets[i]);
      close(pp[1]);
    }
    if (write(targets[i], "x", 1) != 1)
      printf("write_failed %d\n", targets[i]);
    if (close(targets[i]) != 0)
      close_failed++;
    p.fd = pp[0];
    p.events = POLLIN;
    p.revents = 0;
    if (read(pp[0], &c, 1) == 1 && poll(&p, 1, 500) == 1 &&
        read(pp[0], &c, 1) == 0)
      eof++;
    else
      snprintf(nolist + strlen(nolist), sizeof nolist - strlen(nolist), "%s%d",
               *nolist ? "," : "", targets[i]);
    close(pp[0]);
  }
  printf("close_failed %d\n", close_failed);
  printf("eof %d\n", eof);
  printf("no_eof_fds %s\n", *nolist ? nolist : "none");
  return 0;
}

/* ---- execfail ---- */

static int do_execfail(char **argv)
{
  char *av[] = {"nope", NULL};
  struct pollfd p;
  double t0;
  int s, rc, e;
  resolve(argv[0], argv[1]);
  s = nb_socket();
  t0 = now_ms();
  rc = tcp_connect(s);
  printf("connect %s\n", ename(rc, errno));
  execv("/nonexistent/nope", av);
  e = errno;
  printf("exec %s\n", ename(-1, e));
  printf("exec_ms %.0f\n", now_ms() - t0);
  then();
  p.fd = s;
  p.events = POLLOUT;
  p.revents = 0;
  rc = poll(&p, 1, 8000);
  printf("poll %d\n", rc);
  printf("revents 0x%x\n", (unsigned)p.revents);
  printf("poll_ms %.0f\n", now_ms() - t0);
  print_so_error(s);
  talk(s, "reply");
  close(s);
  return 0;
}

/* ---- dupconnect ---- */

static int do_dupconnect(char **argv)
{
  struct pollfd p;
  char cmd[512];
  const char *sh = getenv("LAB_SH"), *nsb = getenv("LAB_NS_B");
  FILE *f;
  int s, d, rc, n = -1;
  resolve(argv[0], argv[1]);
  s = nb_socket();
  rc = tcp_connect(s);
  printf("connect %s\n", ename(rc, errno));
  d = dup(s);
  rc = tcp_connect(d);
  printf("dup_connect %s\n", ename(rc, errno));
  rc = tcp_connect(d);
  printf("dup_connect2 %s\n", ename(rc, errno));
  then();
  p.fd = s;
  p.events = POLLOUT;
  p.revents = 0;
  printf("poll %d\n", poll(&p, 1, 8000));
  print_so_error(s);
  talk(s, "reply");
  usleep(300000);
  if (sh != NULL && nsb != NULL) {
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD \"%s\" exec \"%s\" ss -Htn state established"
             " '( sport = :%s )' | wc -l",
             sh, nsb, argv[1]);
    fflush(stdout);
    f = popen(cmd, "r");
    if (f != NULL) {
      if (fscanf(f, "%d", &n) != 1)
        n = -1;
      pclose(f);
    }
  }
  printf("established %d\n", n);
  close(d);
  close(s);
  return 0;
}

/* ---- killhelper ---- */

static int do_killhelper(char **argv)
{
  double t0;
  int s, rc, e, ealready = 0;
  resolve(argv[0], argv[1]);
  s = nb_socket();
  rc = tcp_connect(s);
  printf("connect %s\n", ename(rc, errno));
  usleep(200000);
  syscall(SYS_close_range, (unsigned)s + 1, ~0U, 0U);
  t0 = now_ms();
  then();
  for (;;) {
    rc = tcp_connect(s);
    e = errno;
    if (rc != 0 && e == EALREADY && now_ms() - t0 < 8000) {
      ealready++;
      usleep(100000);
      continue;
    }
    break;
  }
  printf("ealready %d\n", ealready);
  printf("result %s\n", ename(rc, e));
  printf("result_ms %.0f\n", now_ms() - t0);
  print_so_error(s);
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  if (argc == 6 && strcmp(argv[1], "altstack") == 0)
    return do_altstack(argv + 2);
  if (argc == 4 && strcmp(argv[1], "coroutine") == 0)
    return do_coroutine(argv + 2);
  if (argc == 4 && strcmp(argv[1], "fdreuse") == 0)
    return do_fdreuse(argv + 2);
  if (argc == 4 && strcmp(argv[1], "execfail") == 0)
    return do_execfail(argv + 2);
  if (argc == 4 && strcmp(argv[1], "dupconnect") == 0)
    return do_dupconnect(argv + 2);
  if (argc == 4 && strcmp(argv[1], "killhelper") == 0)
    return do_killhelper(argv + 2);
  if (argc == 2 && strcmp(argv[1], "info") == 0) {
#ifdef _FORTIFY_SOURCE
    printf("fortify %d\n", _FORTIFY_SOURCE);
#else
    printf("fortify 0\n");
#endif
    return 0;
  }
  fprintf(stderr, "usage: see tests/lab/shim_edges2.c\n");
  return 64;
}
