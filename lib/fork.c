/* The fork handler chain (see internal.h): the one registration of fork
 * handlers with libc, for the library and the shim. Each module that
 * keeps a lock or per-process state adds a handler with ds__fork_add();
 * fork() then runs them in their order, so locks that nest are taken
 * outer-first and given back inner-first, whichever module happened to
 * start first. (libc runs its own handlers in an order set by when each
 * was registered, which for lazily started modules is anyone's guess.)
 *
 * The list is append-only: an entry is written before the count that
 * publishes it, and never changes afterwards, so the handlers can be read
 * without a lock. The chain's own lock only orders the writers; fork()
 * takes it last in PREPARE, after every handler's locks, because a module
 * may add its handler while it holds its own lock (the reactor does, when
 * the shim's helper thread makes the process's first reactor under the
 * shim's async lock): taken first, it could wait for that lock while the
 * adding thread waits for it. Held across fork(), it means a child never
 * inherits it held by a thread caught in ds__fork_add().
 */
#include "internal.h"

#include <errno.h>
#include <linux/kcmp.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DS__FORK_MAX 16

static struct {
  pthread_mutex_t lock; /* for writers, and held across fork() */
  struct {
    int order;
    ds__fork_fn fn;
  } h[DS__FORK_MAX];
  atomic_uint n; /* h[0..n) are complete */
  unsigned ran;  /* how many handlers the fork in progress prepared */
  int rc;        /* the registration's result, as a negative errno */
  /* The process the chain works for: set at registration and in each
   * fork child. A vfork child (or a posix_spawn one, which glibc makes
   * with clone(CLONE_VM|CLONE_VFORK)) runs no atfork handler, so it
   * still finds its parent's pid here. */
  atomic_int pid;
  /* The parent of the process that set pid at registration: when the
   * registration itself happened in a vfork child (the process's first
   * hooked call made there), that parent is the process pid stands for. */
  atomic_int ppid;
} chain = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t chain_once = PTHREAD_ONCE_INIT;

/* Fills idx with 0..n-1 in the order PREPARE runs the handlers: ascending
 * order, then the order they were added. Returns nothing; n is at most
 * DS__FORK_MAX, so an insertion sort is enough. */
static void sorted(unsigned n, unsigned *idx)
{
  unsigned i, j, k;
  for (i = 0; i < n; i++) {
    k = i;
    for (j = i; j > 0 && chain.h[idx[j - 1]].order > chain.h[k].order; j--)
      idx[j] = idx[j - 1];
    idx[j] = k;
  }
}

/* Runs the first n handlers for phase: PREPARE forwards, the others
 * backwards. */
static void run(unsigned n, int phase)
{
  unsigned idx[DS__FORK_MAX], i;
  sorted(n, idx);
  if (phase == DS__FORK_PREPARE)
    for (i = 0; i < n; i++)
      chain.h[idx[i]].fn(phase);
  else
    for (i = n; i > 0; i--)
      chain.h[idx[i - 1]].fn(phase);
}

static void fork_prepare(void)
{
  unsigned n = atomic_load_explicit(&chain.n, memory_order_acquire);
  run(n, DS__FORK_PREPARE);
  pthread_mutex_lock(&chain.lock);
  /* Only under the lock: another thread's fork may be in its PREPARE. */
  chain.ran = n;
}

static void fork_parent(void)
{
  unsigned n = chain.ran;
  pthread_mutex_unlock(&chain.lock);
  run(n, DS__FORK_PARENT);
}

static void fork_child(void)
{
  unsigned n = chain.ran;
  ds__fork_mutex(&chain.lock, DS__FORK_CHILD, 0);
  /* The child's own state first, before any handler: whatever the whole
   * library must know about the new process (such as the cached pid, to
   * tell a vfork child from its parent) is set here, so that every
   * handler below already sees it. */
  atomic_store_explicit(&chain.ppid, (int)getppid(), memory_order_relaxed);
  atomic_store_explicit(&chain.pid, (int)getpid(), memory_order_relaxed);
  run(n, DS__FORK_CHILD);
}

/* Registers the chain with libc, once per process (a child
 * inherits the registration). */
static void chain_setup(void)
{
  atomic_store_explicit(&chain.ppid, (int)getppid(), memory_order_relaxed);
  atomic_store_explicit(&chain.pid, (int)getpid(), memory_order_relaxed);
  chain.rc = -pthread_atfork(fork_prepare, fork_parent, fork_child);
}

int ds__fork_add(int order, ds__fork_fn fn)
{
  unsigned n, i;
  int rc = 0;
  pthread_once(&chain_once, chain_setup);
  if (chain.rc != 0)
    return chain.rc;
  pthread_mutex_lock(&chain.lock);
  n = atomic_load_explicit(&chain.n, memory_order_relaxed);
  for (i = 0; i < n && chain.h[i].fn != fn; i++)
    ;
  if (i == n && n == DS__FORK_MAX) {
    rc = -ENOSPC;
  } else if (i == n) {
    chain.h[n].order = order;
    chain.h[n].fn = fn;
    atomic_store_explicit(&chain.n, n + 1, memory_order_release);
  }
  pthread_mutex_unlock(&chain.lock);
  return rc;
}

/* Returns 1 if this process shares its memory with its parent (a vfork
 * or CLONE_VM child), 0 if it has memory of its own, -1 when the kernel
 * will not say (kcmp refused or missing). */
static int shares_parent_vm(void)
{
  long rc = syscall(SYS_kcmp, (pid_t)getpid(), getppid(), KCMP_VM, 0, 0);
  return rc < 0 ? -1 : rc == 0;
}

int ds__fork_vforked(void)
{
  int cached = atomic_load_explicit(&chain.pid, memory_order_relaxed);
  int pid;
  if (cached == 0)
    return 0;
  pid = (int)getpid();
  if (pid == cached)
    return 0;
  /* The chain was registered in a vfork child of this process, which has
   * exec'd or exited since (a parent runs only then): the chain is this
   * process's. */
  if (pid == atomic_load_explicit(&chain.ppid, memory_order_relaxed) ||
      /* A child made without fork handlers (a raw clone(), glibc's
       * _Fork()) but with memory of its own: its memory is its own to
       * change, as before the pid was cached. */
      shares_parent_vm() == 0) {
    atomic_store_explicit(&chain.ppid, (int)getppid(), memory_order_relaxed);
    atomic_store_explicit(&chain.pid, pid, memory_order_relaxed);
    return 0;
  }
  /* Sharing the parent's memory, or the kernel will not say: changing
   * nothing is the safe side. */
  return 1;
}

void ds__fork_mutex(pthread_mutex_t *m, int phase, int recursive)
{
  pthread_mutexattr_t attr;
  if (phase == DS__FORK_PREPARE) {
    pthread_mutex_lock(m);
  } else if (phase == DS__FORK_PARENT) {
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
