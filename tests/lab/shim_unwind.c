/* A legacy IPv4 client whose calls into the shim are left by something
 * other than a return, for the shim's tests of its per-thread re-entry
 * guard (tests/shell/test_shim_unwind.sh): after any of these, every later
 * call must be translated, and what the abandoned call left running must
 * not stay open.
 *
 *   shim_unwind info
 *   shim_unwind jump longjmp|siglongjmp BLACK GOOD PORT
 *   shim_unwind lookup gai|ghbn SILENT GOOD PORT
 *   shim_unwind altstack heap|frame SLOW GOOD PORT
 *   shim_unwind swapctx BLACK GOOD PORT
 *   shim_unwind cancel BLACK GOOD PORT
 *
 * BLACK is a name whose addresses are black-holed, SILENT one whose DNS
 * queries are never answered, GOOD a working IPv6-only name whose server
 * on PORT answers every read with "ipv6 DATA" or "ipv4 DATA", SLOW a name
 * whose connect takes about a second and a half to complete. Each name is
 * looked up with gethostbyname or getaddrinfo(AF_INET) and connected to
 * from an AF_INET socket, as an IPv4-only program does.
 *
 * info: "fortify N" (this build's _FORTIFY_SOURCE level).
 * jump: alarm(1) and longjmp (or siglongjmp) out of the handler while
 * connect() to BLACK blocks ("first timeout MS"); then, three calls deeper
 * on the stack than that connect and past a large local array each
 * ("deeper 1"), connect to GOOD.
 * lookup: the same out of getaddrinfo (gai) or gethostbyname (ghbn) of
 * SILENT; then, deeper, getaddrinfo(GOOD) and connect.
 * altstack: SIGALRM, with SA_ONSTACK on a sigaltstack (heap: malloc'd;
 * frame: an array in main's frame, above the connect on the stack), fires
 * 300 ms into a blocking connect to SLOW; the handler connects a fresh
 * socket to GOOD ("handler_connect ok|ERRNO", "handler_onstack 1"); the
 * main connect must end as it would have ("main ...").
 * swapctx: siglongjmp out of connect to BLACK, then a coroutine on a heap
 * stack (makecontext, swapcontext) does getaddrinfo(GOOD) and connect.
 * cancel: a thread blocked in connect to BLACK is cancelled
 * (pthread_cancel) and joined ("join ok MS" or "join timeout"); then
 * another thread connects to GOOD; "fds_extra N" counts fds open beyond
 * those before the cancelled thread started (its own socket is one).
 *
 * A connect to GOOD prints "second ok|ERRNO", "second_asked A:P",
 * "second_peer A:P" (getpeername: the address asked) and "second_reply
 * TEXT" (the server's answer to "x"); lookups print "second_lookup
 * ADDR|error". jump, lookup and swapctx end with "fds_leaked N" (fds open
 * beyond those before the abandoned call; the program closed its own). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static jmp_buf jenv;
static sigjmp_buf sjenv;
static volatile sig_atomic_t use_siglongjmp = 1;

/* Returns errno's name, or its number when it has none. */
static const char *name_of(int e)
{
  static __thread char buf[32];
  const char *s = e == 0 ? "ok" : strerrorname_np(e);
  if (s != NULL)
    return s;
  snprintf(buf, sizeof buf, "%d", e);
  return buf;
}

/* Returns the number of open fds below 600: the program's. The shim keeps
 * its own at 600 and up (README): its helper thread's, and the attempt
 * sockets of a race that goes on after its caller was cancelled or left
 * by longjmp, as the kernel's connection would. */
static int count_once(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.' && atoi(e->d_name) < 600 &&
         atoi(e->d_name) != dirfd(d);
  closedir(d);
  return n;
}

/* The least of a few counts 20 ms apart: a race going on in the shim's
 * helper thread opens its sockets below 600 for an instant before it
 * moves them up; an fd left open stays in every count. */
static int count_fds(void)
{
  int i, n, least = count_once();
  for (i = 0; i < 4; i++) {
    usleep(20000);
    n = count_once();
    if (n < least)
      least = n;
  }
  return least;
}

/* Returns the monotonic clock in ms. */
static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static const char *text_of(const struct sockaddr_in *sin)
{
  static __thread char buf[INET_ADDRSTRLEN + 8];
  char a[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin->sin_addr, a, sizeof a);
  snprintf(buf, sizeof buf, "%s:%d", a, ntohs(sin->sin_port));
  return buf;
}

/* Looks name up with gethostbyname; 0, or -1 with "NAME_lookup error". */
static int ghbn(struct sockaddr_in *sin, const char *name, int port)
{
  struct hostent *he = gethostbyname(name);
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = htons((unsigned short)port);
  if (he == NULL || he->h_addrtype != AF_INET || he->h_addr_list[0] == NULL)
    return -1;
  memcpy(&sin->sin_addr, he->h_addr_list[0], 4);
  return 0;
}

/* Looks name up with getaddrinfo(AF_INET); 0 or -1. */
static int gai(struct sockaddr_in *sin, const char *name, int port)
{
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  memset(sin, 0, sizeof *sin);
  if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL)
    return -1;
  memcpy(sin, res->ai_addr, sizeof *sin);
  sin->sin_port = htons((unsigned short)port);
  freeaddrinfo(res);
  return 0;
}

/* Connects a fresh AF_INET socket to sin, sends "x" and reads the reply;
 * prints "PFX ok|ERRNO", "PFX_asked", "PFX_peer", "PFX_reply". Returns 0
 * when connected, peer as asked, and a reply came. */
static int use(const char *pfx, const struct sockaddr_in *sin)
{
  struct sockaddr_in peer;
  socklen_t pl = sizeof peer;
  struct timeval tv = {5, 0};
  char buf[128];
  ssize_t n;
  int fd = socket(AF_INET, SOCK_STREAM, 0), rc, ok = 0;
  rc = connect(fd, (const struct sockaddr *)sin, sizeof *sin);
  printf("%s %s\n", pfx, rc == 0 ? "ok" : name_of(errno));
  printf("%s_asked %s\n", pfx, text_of(sin));
  if (rc == 0) {
    memset(&peer, 0, sizeof peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0)
      printf("%s_peer %s\n", pfx, text_of(&peer));
    else
      printf("%s_peer %s\n", pfx, name_of(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    n = send(fd, "x", 1, MSG_NOSIGNAL) == 1 ? recv(fd, buf, sizeof buf - 1, 0)
                                            : -1;
    if (n > 0) {
      buf[n] = '\0';
      printf("%s_reply %s\n", pfx, buf);
      ok = peer.sin_addr.s_addr == sin->sin_addr.s_addr &&
           peer.sin_port == sin->sin_port;
    } else {
      printf("%s_reply %s\n", pfx, n == 0 ? "eof" : name_of(errno));
    }
  }
  close(fd);
  return ok ? 0 : -1;
}

/* The working name, looked up (or not) and connected to, three calls
 * deeper than the caller, each with a large local array on the stack. */
typedef struct later {
  const char *name;
  int port;
  int lookup; /* 1: getaddrinfo here; 0: sin already holds the address */
  struct sockaddr_in sin;
  uintptr_t top; /* a frame address of the abandoned call's caller */
} later;

static int __attribute__((noinline)) deep(later *l, int level)
{
  volatile char pad[16384];
  int rc;
  pad[0] = (char)level;
  pad[sizeof pad - 1] = (char)level;
  if (level > 0) {
    rc = deep(l, level - 1);
  } else {
    printf("deeper %d\n", (uintptr_t)__builtin_frame_address(0) < l->top);
    if (l->lookup) {
      rc = gai(&l->sin, l->name, l->port);
      printf("second_lookup %s\n", rc == 0 ? text_of(&l->sin) : "error");
      if (rc != 0)
        return -1;
    }
    rc = use("second", &l->sin);
  }
  return rc + pad[0] + pad[sizeof pad - 1] - 2 * level;
}

static void on_alarm(int sig)
{
  (void)sig;
  if (use_siglongjmp)
    siglongjmp(sjenv, 1);
  longjmp(jenv, 1);
}

static void handle_alarm(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
}

/* The program's own warm-up: one lookup and one connect to GOOD through
 * the shim, so what it opens once per process is open before counting. */
static void warm_up(const char *good, int port)
{
  struct sockaddr_in sin;
  if (ghbn(&sin, good, port) == 0) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    connect(fd, (struct sockaddr *)&sin, sizeof sin);
    close(fd);
  }
}

static int __attribute__((noinline))
connect_to(int fd, const struct sockaddr_in *sin)
{
  int rc = connect(fd, (const struct sockaddr *)sin, sizeof *sin);
  return rc == 0 ? 0 : -errno;
}

/* jump: alarm + longjmp or siglongjmp out of connect to black. */
static int jump(const char *kind, const char *black, const char *good, int port)
{
  struct sockaddr_in bsin;
  later l;
  volatile int fd = -1;
  volatile double t0;
  int fds0, rc;
  use_siglongjmp = strcmp(kind, "siglongjmp") == 0;
  memset(&l, 0, sizeof l);
  l.top = (uintptr_t)__builtin_frame_address(0);
  if (ghbn(&bsin, black, port) != 0 || ghbn(&l.sin, good, port) != 0) {
    printf("lookup error\n");
    return 1;
  }
  warm_up(good, port);
  handle_alarm();
  fds0 = count_fds();
  fd = socket(AF_INET, SOCK_STREAM, 0);
  t0 = now_ms();
  if (use_siglongjmp ? sigsetjmp(sjenv, 1) == 0 : setjmp(jenv) == 0) {
    alarm(1);
    rc = connect_to(fd, &bsin);
    alarm(0);
    printf("first %s\n", rc == 0 ? "connected" : name_of(-rc));
  } else {
    printf("first timeout %.0f\n", now_ms() - t0);
  }
  close(fd);
  deep(&l, 3);
  printf("fds_leaked %d\n", count_fds() - fds0);
  return 0;
}

/* lookup: alarm + siglongjmp out of getaddrinfo or gethostbyname. */
static int lookup(const char *kind, const char *silent, const char *good,
                  int port)
{
  struct sockaddr_in sin;
  later l;
  volatile double t0;
  int fds0, rc;
  memset(&l, 0, sizeof l);
  l.top = (uintptr_t)__builtin_frame_address(0);
  l.name = good;
  l.port = port;
  l.lookup = 1;
  /* The warm-up uses GOOD with gethostbyname; the later lookup of GOOD
   * uses getaddrinfo. */
  warm_up(good, port);
  handle_alarm();
  fds0 = count_fds();
  t0 = now_ms();
  if (sigsetjmp(sjenv, 1) == 0) {
    alarm(1);
    rc = strcmp(kind, "ghbn") == 0 ? ghbn(&sin, silent, port)
                                   : gai(&sin, silent, port);
    alarm(0);
    printf("first %s\n", rc == 0 ? "resolved" : "failed");
  } else {
    printf("first timeout %.0f\n", now_ms() - t0);
  }
  deep(&l, 3);
  printf("fds_leaked %d\n", count_fds() - fds0);
  return 0;
}

/* altstack */
static struct sockaddr_in handler_sin;
static volatile int handler_err = -1, handler_onstack = -1;
static volatile uintptr_t connect_frame;

static void on_alarm_stack(int sig)
{
  stack_t cur;
  int fd, e;
  (void)sig;
  e = errno;
  handler_onstack = sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_ONSTACK);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  handler_err =
      connect(fd, (struct sockaddr *)&handler_sin, sizeof handler_sin) == 0
          ? 0
          : errno;
  close(fd);
  errno = e;
}

static int __attribute__((noinline))
main_connect(int fd, const struct sockaddr_in *sin)
{
  int rc;
  connect_frame = (uintptr_t)__builtin_frame_address(0);
  rc = connect(fd, (const struct sockaddr *)sin, sizeof *sin);
  return rc == 0 ? 0 : errno;
}

static int altstack(const char *where, char *frame_stack, size_t frame_len,
                    const char *slow, const char *good, int port)
{
  struct sockaddr_in sin, peer;
  socklen_t pl = sizeof peer;
  struct sigaction sa;
  struct itimerval it;
  stack_t ss;
  char buf[128];
  double t0;
  ssize_t n;
  int fd, rc;
  if (ghbn(&sin, slow, port) != 0 || ghbn(&handler_sin, good, port) != 0) {
    printf("lookup error\n");
    return 1;
  }
  memset(&ss, 0, sizeof ss);
  if (strcmp(where, "heap") == 0) {
    ss.ss_size = 256 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
  } else {
    ss.ss_size = frame_len;
    ss.ss_sp = frame_stack;
  }
  if (ss.ss_sp == NULL || sigaltstack(&ss, NULL) != 0) {
    printf("sigaltstack %s\n", name_of(errno));
    return 1;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm_stack;
  sa.sa_flags = SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  memset(&it, 0, sizeof it);
  it.it_value.tv_usec = 300000;
  fd = socket(AF_INET, SOCK_STREAM, 0);
  t0 = now_ms();
  setitimer(ITIMER_REAL, &it, NULL);
  rc = main_connect(fd, &sin);
  printf("main %s %.0f\n", name_of(rc), now_ms() - t0);
  printf("handler_connect %s\n",
         handler_err < 0 ? "none" : name_of(handler_err));
  printf("handler_onstack %d\n", handler_onstack);
  /* Where the alternate stack lies against the shim's frames in connect:
   * "below" (as malloc'd memory usually is) or "above". */
  printf("altstack_is %s\n",
         (uintptr_t)ss.ss_sp > connect_frame ? "above" : "below");
  printf("main_asked %s\n", text_of(&sin));
  if (rc == 0) {
    memset(&peer, 0, sizeof peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0)
      printf("main_peer %s\n", text_of(&peer));
    n = send(fd, "x", 1, MSG_NOSIGNAL) == 1 ? recv(fd, buf, sizeof buf - 1, 0)
                                            : -1;
    if (n > 0) {
      buf[n] = '\0';
      printf("main_reply %s\n", buf);
    } else {
      printf("main_reply %s\n", n == 0 ? "eof" : name_of(errno));
    }
  }
  close(fd);
  /* The shim still works afterwards, on the main stack. */
  use("after", &handler_sin);
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, NULL);
  if (strcmp(where, "heap") == 0)
    free(ss.ss_sp);
  return 0;
}

/* swapctx */
static ucontext_t main_ctx, co_ctx;
static later co_later;

static void coroutine(void)
{
  printf("coroutine_stack %s\n",
         (uintptr_t)__builtin_frame_address(0) < connect_frame ? "below"
                                                               : "above");
  if (gai(&co_later.sin, co_later.name, co_later.port) != 0)
    printf("second_lookup error\n");
  else {
    printf("second_lookup %s\n", text_of(&co_later.sin));
    use("second", &co_later.sin);
  }
  swapcontext(&co_ctx, &main_ctx);
}

static int __attribute__((noinline))
jumped_connect(int fd, const struct sockaddr_in *s)
{
  connect_frame = (uintptr_t)__builtin_frame_address(0);
  return connect(fd, (const struct sockaddr *)s, sizeof *s) == 0 ? 0 : errno;
}

static int swapctx(const char *black, const char *good, int port)
{
  struct sockaddr_in bsin;
  size_t len = 256 * 1024;
  char *stack;
  volatile int fd = -1;
  volatile double t0;
  int fds0, rc;
  if (ghbn(&bsin, black, port) != 0) {
    printf("lookup error\n");
    return 1;
  }
  warm_up(good, port);
  handle_alarm();
  fds0 = count_fds();
  fd = socket(AF_INET, SOCK_STREAM, 0);
  t0 = now_ms();
  if (sigsetjmp(sjenv, 1) == 0) {
    alarm(1);
    rc = jumped_connect(fd, &bsin);
    alarm(0);
    printf("first %s\n", name_of(rc));
  } else {
    printf("first timeout %.0f\n", now_ms() - t0);
  }
  close(fd);
  stack = malloc(len);
  co_later.name = good;
  co_later.port = port;
  getcontext(&co_ctx);
  co_ctx.uc_stack.ss_sp = stack;
  co_ctx.uc_stack.ss_size = len;
  co_ctx.uc_link = &main_ctx;
  makecontext(&co_ctx, coroutine, 0);
  swapcontext(&main_ctx, &co_ctx);
  printf("back_on_main 1\n");
  free(stack);
  printf("fds_leaked %d\n", count_fds() - fds0);
  return 0;
}

/* cancel */
static struct sockaddr_in cancel_sin, good_sin;
static volatile int cancel_fd = -1, cancel_in_connect;

static void *blocked(void *arg)
{
  (void)arg;
  cancel_fd = socket(AF_INET, SOCK_STREAM, 0);
  cancel_in_connect = 1;
  connect(cancel_fd, (struct sockaddr *)&cancel_sin, sizeof cancel_sin);
  printf("blocked_connect returned %s\n", name_of(errno));
  return NULL;
}

static void *working(void *arg)
{
  (void)arg;
  use("second", &good_sin);
  return NULL;
}

static int join_within(pthread_t t, int s, void **ret)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += s;
  return pthread_timedjoin_np(t, ret, &ts);
}

static int cancel(const char *black, const char *good, int port)
{
  pthread_t t;
  void *ret = NULL;
  double t0;
  int fds0, rc;
  if (ghbn(&cancel_sin, black, port) != 0 || ghbn(&good_sin, good, port) != 0) {
    printf("lookup error\n");
    return 1;
  }
  warm_up(good, port);
  fds0 = count_fds();
  pthread_create(&t, NULL, blocked, NULL);
  while (!cancel_in_connect)
    sleep_ms(10);
  sleep_ms(500); /* well inside the shim's race by now */
  t0 = now_ms();
  pthread_cancel(t);
  rc = join_within(t, 10, &ret);
  if (rc != 0) {
    printf("join timeout\n");
    fflush(stdout);
    _exit(3);
  }
  printf("join %s %.0f\n", ret == PTHREAD_CANCELED ? "cancelled" : "returned",
         now_ms() - t0);
  pthread_create(&t, NULL, working, NULL);
  if (join_within(t, 10, NULL) != 0) {
    printf("second_join timeout\n");
    fflush(stdout);
    _exit(3);
  }
  printf("fds_extra %d\n", count_fds() - fds0);
  return 0;
}

int main(int argc, char **argv)
{
  static const char usage[] =
      "usage: shim_unwind info | jump longjmp|siglongjmp BLACK GOOD PORT | "
      "lookup gai|ghbn SILENT GOOD PORT | altstack heap|frame SLOW GOOD PORT "
      "| swapctx BLACK GOOD PORT | cancel BLACK GOOD PORT\n";
  /* An alternate signal stack in main's frame: above every call made from
   * here. */
  char frame_stack[256 * 1024];
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "info") == 0) {
#ifdef __USE_FORTIFY_LEVEL
    printf("fortify %d\n", __USE_FORTIFY_LEVEL);
#else
    printf("fortify 0\n");
#endif
    return 0;
  }
  if (argc == 6 && strcmp(argv[1], "jump") == 0)
    return jump(argv[2], argv[3], argv[4], atoi(argv[5]));
  if (argc == 6 && strcmp(argv[1], "lookup") == 0)
    return lookup(argv[2], argv[3], argv[4], atoi(argv[5]));
  if (argc == 6 && strcmp(argv[1], "altstack") == 0)
    return altstack(argv[2], frame_stack, sizeof frame_stack, argv[3], argv[4],
                    atoi(argv[5]));
  if (argc == 5 && strcmp(argv[1], "swapctx") == 0)
    return swapctx(argv[2], argv[3], atoi(argv[4]));
  if (argc == 5 && strcmp(argv[1], "cancel") == 0)
    return cancel(argv[2], argv[3], atoi(argv[4]));
  fputs(usage, stderr);
  return 64;
}
