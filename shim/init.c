/* The shim's lazy, once-only initialisation: the real libc functions, the
 * configuration, the trace file, and the per-thread re-entry guard.
 *
 * Nothing runs in a constructor: the first hooked call initialises, under
 * pthread_once, so a process that never makes a network call pays nothing
 * and no thread is ever started here.
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

shim_real shim__real;
shim_config shim__cfg = {.disabled = 1, .trace_fd = -1};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_rc = -1;
/* The guard: where the hook holding it sits on the stack. A deeper call
 * is the shim's own and passes through; a call at or above it means the
 * holder was left by longjmp (alarm + longjmp out of connect, as nc -w and
 * wget -T do), so the guard and that hook's abandoned work are taken
 * back. */
static _Thread_local uintptr_t guard_frame;
static _Thread_local shim_work abandoned;
static atomic_ulong next_id;

/* Returns a symbol of the next object in the search order (libc). */
static void *next_sym(const char *name)
{
  return dlsym(RTLD_NEXT, name);
}

/* Returns a private copy of fd moved high and close-on-exec, so the
 * application's own fd numbers are left alone, or -1. */
static int move_high(int fd)
{
  struct rlimit rl;
  int base = 900, nfd;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < 1024)
    base = (int)rl.rlim_cur / 2;
  if (base < 3)
    base = 3;
  nfd = shim__real.fcntl(fd, F_DUPFD_CLOEXEC, base);
  if (nfd < 0)
    nfd = shim__real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return nfd;
}

/* Returns where the shim's long-lived fds go: high, but within a small
 * RLIMIT_NOFILE. */
static int fd_floor(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < 1024)
    return (int)rl.rlim_cur / 2 > 3 ? (int)rl.rlim_cur / 2 : 3;
  return 600;
}

/* Opens the trace named by DUALSTACK_TRACE: a file opened O_APPEND (one
 * write() per line keeps lines whole across processes), or a private copy
 * of fd 2 for "stderr". Returns the fd or -1. */
static int open_trace(const char *spec)
{
  int fd, hi;
  if (spec == NULL || *spec == '\0')
    return -1;
  if (strcmp(spec, "stderr") == 0)
    return move_high(STDERR_FILENO);
  fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  hi = move_high(fd);
  if (hi < 0)
    return fd;
  shim__real.close(fd);
  return hi;
}

/* Traces that variable name has a value the shim cannot use. */
static void trace_bad(const char *name, const char *value, const char *why)
{
  shim_json j;
  char reason[160];
  snprintf(reason, sizeof reason, "%s=%.40s: %s; using the default", name,
           value, why);
  shim__json_begin(&j, "passthrough", shim__next_id());
  shim__json_str(&j, "reason", reason);
  shim__json_emit(&j);
}

/* Returns the number in variable name, within [lo, hi], or def when unset
 * or bad (a bad value is traced). */
static unsigned env_uint(const char *name, unsigned def, unsigned lo,
                         unsigned hi)
{
  const char *v = secure_getenv(name);
  char *end;
  unsigned long n;
  if (v == NULL || *v == '\0')
    return def;
  errno = 0;
  n = strtoul(v, &end, 10);
  if (errno != 0 || *end != '\0' || v[0] == '-' || n < lo || n > hi) {
    char why[64];
    snprintf(why, sizeof why, "not a number from %u to %u", lo, hi);
    trace_bad(name, v, why);
    return def;
  }
  return (unsigned)n;
}

/* Reads the race's settings. */
static void read_race_config(void)
{
  const char *v = secure_getenv("DUALSTACK_PREFER");
  shim__cfg.attempt_delay_ms =
      env_uint("DUALSTACK_ATTEMPT_DELAY_MS", 0, 10, 2000);
  shim__cfg.resolution_delay_ms =
      env_uint("DUALSTACK_RESOLUTION_DELAY_MS", 0, 1, 2000);
  shim__cfg.family_count = env_uint("DUALSTACK_FAMILY_COUNT", 0, 1, 16);
  shim__cfg.connect_timeout_ms =
      env_uint("DUALSTACK_CONNECT_TIMEOUT_MS", 0, 1, 3600000);
  shim__cfg.memory_s = env_uint("DUALSTACK_MEMORY_S", 600, 0, 86400 * 7);
  shim__cfg.prefer = AF_INET6;
  if (v != NULL && strcmp(v, "ipv4") == 0)
    shim__cfg.prefer = AF_INET;
  else if (v != NULL && *v != '\0' && strcmp(v, "ipv6") != 0)
    trace_bad("DUALSTACK_PREFER", v, "not ipv4 or ipv6");
}

/* Returns 1 if the variable is set to "1". */
static int flag(const char *name)
{
  const char *v = secure_getenv(name);
  return v != NULL && strcmp(v, "1") == 0;
}

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void init_once(void)
{
  /* First what init itself uses: these are hooked too. */
  shim__real.close = next_sym("close");
  shim__real.fcntl = next_sym("fcntl");
  shim__real.fcntl64 = next_sym("fcntl64");
  shim__real.dup = next_sym("dup");
  shim__real.dup2 = next_sym("dup2");
  shim__real.dup3 = next_sym("dup3");
  shim__real.close_range = next_sym("close_range"); /* may be missing */
  shim__real.setsockopt = next_sym("setsockopt");
  shim__real.epoll_ctl = next_sym("epoll_ctl");
  if (shim__real.close == NULL || shim__real.fcntl == NULL ||
      shim__real.dup == NULL || shim__real.dup2 == NULL ||
      shim__real.dup3 == NULL || shim__real.setsockopt == NULL ||
      shim__real.epoll_ctl == NULL)
    return;
  shim__real.connect = next_sym("connect");
  shim__real.bind = next_sym("bind");
  shim__real.getaddrinfo = next_sym("getaddrinfo");
  shim__real.freeaddrinfo = next_sym("freeaddrinfo");
  shim__real.gethostbyname = next_sym("gethostbyname");
  shim__real.gethostbyname2 = next_sym("gethostbyname2");
  shim__real.sendto = next_sym("sendto");
  shim__real.sendmsg = next_sym("sendmsg");
  shim__real.getpeername = next_sym("getpeername");
  shim__real.getsockname = next_sym("getsockname");
  shim__real.getsockopt = next_sym("getsockopt");
  shim__real.gethostbyname_r = next_sym("gethostbyname_r");
  shim__real.gethostbyname2_r = next_sym("gethostbyname2_r");
  shim__real.gethostbyaddr = next_sym("gethostbyaddr");
  shim__real.getnameinfo = next_sym("getnameinfo");
  shim__real.accept = next_sym("accept");
  shim__real.accept4 = next_sym("accept4");
  shim__real.recvfrom = next_sym("recvfrom");
  shim__real.recvfrom_chk = next_sym("__recvfrom_chk");
  shim__real.recvmsg = next_sym("recvmsg");
  shim__real.recvmmsg = next_sym("recvmmsg");
  shim__real.sendmmsg = next_sym("sendmmsg");
  if (shim__real.accept == NULL || shim__real.accept4 == NULL ||
      shim__real.recvfrom == NULL || shim__real.recvfrom_chk == NULL ||
      shim__real.recvmsg == NULL || shim__real.recvmmsg == NULL ||
      shim__real.sendmmsg == NULL)
    return;
  if (shim__real.gethostbyname_r == NULL ||
      shim__real.gethostbyname2_r == NULL || shim__real.gethostbyaddr == NULL ||
      shim__real.getnameinfo == NULL)
    return;
  if (shim__real.sendto == NULL || shim__real.sendmsg == NULL ||
      shim__real.getpeername == NULL || shim__real.getsockname == NULL ||
      shim__real.getsockopt == NULL)
    return;
  if (shim__real.connect == NULL || shim__real.bind == NULL ||
      shim__real.getaddrinfo == NULL || shim__real.freeaddrinfo == NULL ||
      shim__real.gethostbyname == NULL || shim__real.gethostbyname2 == NULL)
    return; /* init_rc stays -1: hooks call nothing they do not have */

  /* The library's own sockets (c-ares, race attempts) must use the real
   * functions: inside this object, `connect` is the hook. */
  ds__sys.socket = next_sym("socket");
  ds__sys.connect = shim__real.connect;
  ds__sys.bind = shim__real.bind;
  ds__sys.listen = next_sym("listen");
  ds__sys.accept4 = next_sym("accept4");
  ds__sys.close = shim__real.close;
  ds__sys.recv = next_sym("recv");
  ds__sys.send = next_sym("send");
  ds__sys.sendmsg = shim__real.sendmsg;
  ds__sys.recvmsg = next_sym("recvmsg");
  ds__sys.sendto = shim__real.sendto;
  ds__sys.recvfrom = next_sym("recvfrom");
  ds__sys.getsockname = shim__real.getsockname;
  ds__sys.getpeername = shim__real.getpeername;
  ds__sys.setsockopt = shim__real.setsockopt;
  ds__sys.getsockopt = shim__real.getsockopt;
  ds__sys.shutdown = next_sym("shutdown");
  ds__sys.epoll_ctl = shim__real.epoll_ctl;
  ds__sys.recvmmsg = next_sym("recvmmsg");
  ds__sys.fd_floor = fd_floor();
  init_rc = 0;
  pthread_atfork(fork_prepare, fork_parent, fork_child);

  /* A setuid or setgid process is left alone (secure_getenv would hide
   * the variables anyway; this also skips the trace). */
  if (getuid() != geteuid() || getgid() != getegid())
    return;
  if (flag("DUALSTACK_DISABLE"))
    return;
  shim__cfg.observe = flag("DUALSTACK_OBSERVE");
  if (shim__pool_init(secure_getenv("DUALSTACK_POOL")) != 0)
    shim__cfg.observe = 1; /* no pool: translate nothing, still trace */
  shim__cfg.trace_fd = open_trace(secure_getenv("DUALSTACK_TRACE"));
  if (shim__cfg.trace_fd > STDERR_FILENO)
    shim__fd_private(shim__cfg.trace_fd);
  read_race_config();
  shim__exclude_init(secure_getenv("DUALSTACK_EXCLUDE"));
  shim__nat64_init(secure_getenv("DUALSTACK_NAT64"));
  shim__cfg.disabled = 0;
}

void shim__fork_mutex(pthread_mutex_t *m, int phase, int recursive)
{
  pthread_mutexattr_t attr;
  if (phase == SHIM_FORK_PREPARE) {
    pthread_mutex_lock(m);
  } else if (phase == SHIM_FORK_PARENT) {
    pthread_mutex_unlock(m);
  } else {
    /* The child's thread is not the owner the mutex recorded: a fresh
     * one, never an unlock. */
    pthread_mutexattr_init(&attr);
    if (recursive)
      pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
  }
}

/* Every lock of the shim is taken before fork() (outer ones first, as
 * they nest) and given back on both sides, so a child never inherits a
 * lock another thread held. */
static void fork_phase(int phase)
{
  if (phase == SHIM_FORK_PREPARE) {
    shim__async_fork(phase);
    shim__fd_fork(phase);
    shim__source_fork(phase);
    shim__pool_fork(phase);
    shim__names_fork(phase);
    shim__nat64_fork(phase);
    shim__connect_fork(phase);
    shim__cache_fork(phase);
  } else {
    shim__cache_fork(phase);
    shim__connect_fork(phase);
    shim__nat64_fork(phase);
    shim__names_fork(phase);
    shim__pool_fork(phase);
    shim__source_fork(phase);
    shim__fd_fork(phase);
    shim__async_fork(phase);
  }
}

static void fork_prepare(void)
{
  fork_phase(SHIM_FORK_PREPARE);
}

static void fork_parent(void)
{
  fork_phase(SHIM_FORK_PARENT);
}

static void fork_child(void)
{
  fork_phase(SHIM_FORK_CHILD);
}

int shim__init(void)
{
  pthread_once(&once, init_once);
  return init_rc;
}

/* Cancels what a hook left behind when it was unwound by longjmp. */
static void reclaim(void)
{
  shim_work w = abandoned;
  memset(&abandoned, 0, sizeof abandoned);
  if (w.reactor != NULL)
    ds__reactor_unwound(w.reactor);
  if (w.race != NULL)
    ds_happy_cancel(w.race);
  if (w.lookup != NULL)
    ds_lookup_cancel(w.lookup);
  /* A reactor that still counts handles is leaked, never freed under
   * them. */
  if (w.reactor != NULL && ds_reactor_free(w.reactor) != 0)
    w.reactor = NULL;
}

int shim__enter(void)
{
  uintptr_t here = (uintptr_t)__builtin_frame_address(0);
  if (guard_frame != 0) {
    if (here < guard_frame)
      return 0;
    reclaim();
  }
  guard_frame = here;
  return 1;
}

void shim__leave(void)
{
  guard_frame = 0;
}

shim_work *shim__work(void)
{
  return &abandoned;
}

int64_t shim__epoch_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double shim__mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

unsigned long shim__next_id(void)
{
  return atomic_fetch_add(&next_id, 1) + 1;
}

const char *shim__errname(int err)
{
  const char *s;
  if (err == 0)
    return "ok";
  s = strerrorname_np(err);
  return s != NULL ? s : "EUNKNOWN";
}
