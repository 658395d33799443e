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
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

shim_config shim__cfg = {.disabled = 1, .trace_fd = -1};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_rc = -1;
static atomic_int init_done; /* init_once() has run */
/* The guard: set while a hook of this thread runs the shim's code. A
 * hook reached meanwhile (from a signal handler, or from libc called by
 * the shim) passes through. It is a flag, not a stack position: a
 * handler on a sigaltstack, or code on a swapcontext() stack, is nested
 * whatever its address. A hook left by longjmp (alarm + longjmp out of a
 * lookup, as nc -w and wget -T do) is seen by the longjmp hooks
 * (unwind.c), which drop the guard when the jump's target is outside the
 * code that interrupted the holder (stays_inside) and leave the abandoned work
 * for the thread's next hook to reclaim; a thread cancelled inside a hook takes
 * its flag with it. */
static _Thread_local int guard;
static _Thread_local uintptr_t guard_sp; /* a stack address of the holder */
static _Thread_local int unwound;
static _Thread_local shim_work abandoned;
static atomic_ulong next_id;

/* Returns a symbol of the next object in the search order (libc). */
static void *next_sym(const char *name)
{
  return dlsym(RTLD_NEXT, name);
}

/* Returns where the shim's long-lived fds go (ds__sys.fd_floor): high,
 * but within a small RLIMIT_NOFILE. */
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
  int fd;
  if (spec == NULL || *spec == '\0')
    return -1;
  if (strcmp(spec, "stderr") == 0)
    return ds__dup_high(STDERR_FILENO);
  fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  return ds__move_high(fd);
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
  shim__cfg.pool_lease_s = env_uint("DUALSTACK_POOL_LEASE_S", 60, 0, 86400);
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

/* The shim's handlers on the library's fork chain, outer locks first:
 * PREPARE takes them in this order and PARENT and CHILD give them back
 * in reverse, so a child never inherits a lock another thread held. The
 * lookup cache's lock (names.c) is a leaf, held only to copy an entry,
 * so it goes last; so is the lock around DUALSTACK_WIDENED (server.c),
 * held only to rewrite the variable. */
static const ds__fork_fn fork_handlers[] = {
    shim__async_fork,   shim__fd_fork,     shim__source_fork,
    shim__pool_fork,    shim__names_fork,  shim__nat64_fork,
    shim__connect_fork, shim__server_fork, shim__cache_fork,
};

/* Puts the shim's handlers on the fork chain, after the reactor's fork
 * counter (order 0), in fork_handlers' order. */
static void watch_forks(void)
{
  size_t i;
  for (i = 0; i < sizeof fork_handlers / sizeof fork_handlers[0]; i++)
    ds__fork_add(1 + (int)i, fork_handlers[i]);
}

/* Grows the fd table to the shim's floor now. The kernel grows a table
 * that threads share only after an RCU grace period (synchronize_rcu):
 * 5-20 ms here, paid by the first lookup when it runs in a resolver
 * thread (curl's). At the first hook the process is most often still
 * single-threaded, and growing costs microseconds. */
static void grow_fd_table(void)
{
  int t, h;
  if (ds__sys.fd_floor <= 0 || shim__cfg.trace_fd >= ds__sys.fd_floor)
    return; /* no floor, or the trace's fd grew it already */
  t = open("/", O_PATH | O_CLOEXEC);
  if (t < 0)
    return;
  h = ds__dup_high(t);
  ds__sys.close(t);
  if (h >= 0)
    ds__sys.close(h);
}

static void init_once(void)
{
  /* Straight into the library's table: the library's own sockets (c-ares,
   * race attempts) and the hooks' pass-through calls must reach libc, as
   * inside this object `connect` is the hook. First what init itself
   * uses: these are hooked too. */
  ds__sys.close = next_sym("close");
  ds__sys.fcntl = next_sym("fcntl");
  ds__sys.fcntl64 = next_sym("fcntl64");
  ds__sys.dup = next_sym("dup");
  ds__sys.dup2 = next_sym("dup2");
  ds__sys.dup3 = next_sym("dup3");
  ds__sys.close_range = next_sym("close_range"); /* may be missing */
  ds__sys.setsockopt = next_sym("setsockopt");
  ds__sys.epoll_ctl = next_sym("epoll_ctl");
  if (ds__sys.close == NULL || ds__sys.fcntl == NULL || ds__sys.dup == NULL ||
      ds__sys.dup2 == NULL || ds__sys.dup3 == NULL ||
      ds__sys.setsockopt == NULL || ds__sys.epoll_ctl == NULL)
    return;
  ds__sys.connect = next_sym("connect");
  ds__sys.bind = next_sym("bind");
  ds__sys.getaddrinfo = next_sym("getaddrinfo");
  ds__sys.freeaddrinfo = next_sym("freeaddrinfo");
  ds__sys.gethostbyname = next_sym("gethostbyname");
  ds__sys.gethostbyname2 = next_sym("gethostbyname2");
  ds__sys.sendto = next_sym("sendto");
  ds__sys.sendmsg = next_sym("sendmsg");
  ds__sys.getpeername = next_sym("getpeername");
  ds__sys.getsockname = next_sym("getsockname");
  ds__sys.getsockopt = next_sym("getsockopt");
  ds__sys.gethostbyname_r = next_sym("gethostbyname_r");
  ds__sys.gethostbyname2_r = next_sym("gethostbyname2_r");
  ds__sys.gethostbyaddr = next_sym("gethostbyaddr");
  ds__sys.gethostbyaddr_r = next_sym("gethostbyaddr_r");
  ds__sys.getnameinfo = next_sym("getnameinfo");
  ds__sys.accept = next_sym("accept");
  ds__sys.accept4 = next_sym("accept4");
  ds__sys.recvfrom = next_sym("recvfrom");
  ds__sys.recvfrom_chk = next_sym("__recvfrom_chk");
  ds__sys.recvmsg = next_sym("recvmsg");
  ds__sys.recvmmsg = next_sym("recvmmsg");
  ds__sys.sendmmsg = next_sym("sendmmsg");
  if (ds__sys.accept == NULL || ds__sys.accept4 == NULL ||
      ds__sys.recvfrom == NULL || ds__sys.recvfrom_chk == NULL ||
      ds__sys.recvmsg == NULL || ds__sys.recvmmsg == NULL ||
      ds__sys.sendmmsg == NULL)
    return;
  if (ds__sys.gethostbyname_r == NULL || ds__sys.gethostbyname2_r == NULL ||
      ds__sys.gethostbyaddr == NULL || ds__sys.gethostbyaddr_r == NULL ||
      ds__sys.getnameinfo == NULL)
    return;
  if (ds__sys.sendto == NULL || ds__sys.sendmsg == NULL ||
      ds__sys.getpeername == NULL || ds__sys.getsockname == NULL ||
      ds__sys.getsockopt == NULL)
    return;
  if (ds__sys.connect == NULL || ds__sys.bind == NULL ||
      ds__sys.getaddrinfo == NULL || ds__sys.freeaddrinfo == NULL ||
      ds__sys.gethostbyname == NULL || ds__sys.gethostbyname2 == NULL)
    return; /* init_rc stays -1: hooks call nothing they do not have */

  /* The rest: functions the shim does not hook. */
  ds__sys.socket = next_sym("socket");
  ds__sys.listen = next_sym("listen");
  ds__sys.recv = next_sym("recv");
  ds__sys.send = next_sym("send");
  ds__sys.shutdown = next_sym("shutdown");
  ds__sys.fd_floor = fd_floor();
  shim__unwind_init();
  init_rc = 0;
  watch_forks();

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
  if (shim__cfg.trace_fd >= 0) {
    struct stat st;
    if (fstat(shim__cfg.trace_fd, &st) == 0) {
      shim__cfg.trace_dev = st.st_dev;
      shim__cfg.trace_ino = st.st_ino;
    }
  }
  read_race_config();
  shim__exclude_init(secure_getenv("DUALSTACK_EXCLUDE"));
  shim__nat64_init(secure_getenv("DUALSTACK_NAT64"));
  grow_fd_table();
  shim__cfg.disabled = 0;
  atomic_store(&init_done, 1);
  /* Sockets inherited from a program whose listener the shim widened:
   * now, while the only sockets open are inherited ones. */
  shim__server_adopt();
  /* Connections the program that exec'd this one had translated. */
  shim__handover_take();
}

int shim__initialised(void)
{
  return atomic_load(&init_done);
}

int shim__init(void)
{
  pthread_once(&once, init_once);
  return init_rc;
}

/* Cancels what a hook left behind when it was unwound by longjmp: the
 * lookup or NAT64 discovery it was waiting for (names.c, nat64.c). */
static void reclaim(void)
{
  shim_work w = abandoned;
  memset(&abandoned, 0, sizeof abandoned);
  if (w.reactor != NULL)
    ds__reactor_unwound(w.reactor);
  if (w.lookup != NULL)
    ds_lookup_cancel(w.lookup);
  /* A reactor that still counts handles is leaked, never freed under
   * them. */
  if (w.reactor != NULL && ds_reactor_free(w.reactor) != 0)
    w.reactor = NULL;
}

int shim__enter(void)
{
  if (guard)
    return 0;
  if (unwound) {
    unwound = 0;
    reclaim();
  }
  guard = 1;
  guard_sp = (uintptr_t)__builtin_frame_address(0);
  return 1;
}

int shim__nested(void)
{
  return guard;
}

void shim__leave(void)
{
  guard = 0;
}

/* Returns 1 if a jump from a frame at here to target_sp stays inside
 * the code that interrupted the guard's holder (a signal handler's own
 * setjmp and longjmp): the target lies on the signal stack the thread
 * runs on, or between here and the holder's frame on the holder's stack.
 * A target above the holder, or on another stack (a coroutine's), is a
 * jump out of the hook. */
static int stays_inside(uintptr_t here, uintptr_t target_sp)
{
  stack_t ss;
  if (target_sp == 0)
    return 0;
  if (here <= target_sp && target_sp < guard_sp)
    return 1;
  if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK) &&
      target_sp >= (uintptr_t)ss.ss_sp &&
      target_sp - (uintptr_t)ss.ss_sp < ss.ss_size)
    return 1;
  return 0;
}

void shim__unwinding(uintptr_t target_sp)
{
  if (guard &&
      !stays_inside((uintptr_t)__builtin_frame_address(0), target_sp)) {
    guard = 0;
    unwound = 1;
  }
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
