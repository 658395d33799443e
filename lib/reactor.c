/* The reactor: one epoll instance, a binary heap of timers on the monotonic
 * clock, calls deferred to the next turn, and a thread-safe call queue woken
 * through an eventfd. It knows no protocol.
 *
 * One turn: run the calls deferred before the turn began, wait in epoll
 * (not at all if deferred calls are queued, else until the next timer),
 * dispatch I/O, run expired timers, then free the watchers closed during
 * the turn (until then they stay allocated, marked dead).
 *
 * epoll does not carry a watcher's address but its slot in a table and a
 * generation number, so an event for a watcher freed since it was fetched
 * (earlier in the same batch) names a slot that is free or holds another
 * watcher, and is dropped instead of being dispatched to freed memory or
 * to a reused fd. The same covers a transport that closes its socket
 * without taking it out of epoll first (close() does that: one system
 * call fewer per connection, as nginx does), which it does only when no
 * other descriptor refers to the socket: should something hold the file
 * open a moment longer (another process reading /proc/PID/fd, as `ss -p`
 * does), an event the kernel still reports for it is dropped the same way.
 *
 * Deadlines are kept in nanoseconds and the wait for the next one is
 * epoll_pwait2()'s, also in nanoseconds, so a timer runs within the
 * kernel's timer slack of its deadline (Happy Eyeballs' 250 ms is 250 ms,
 * not 252). Where the kernel lacks epoll_pwait2() (before Linux 5.11, or a
 * seccomp filter that refuses it), epoll_wait() waits whole milliseconds,
 * rounded up.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DS__MAX_EVENTS 256

/* A wait in epoll that returns sooner than this did not sleep: what it
 * returned was ready when it was called. Going to sleep and being woken
 * takes longer than that (a context switch each way); a plain system call
 * returning at once takes 1-2 us on the machines we measured. */
#define DS__QUICK_NS 10000

struct ds_io {
  ds_reactor *r;
  ds_io_cb cb;
  void *data;
  int fd;
  unsigned events : 3;   /* what the user asked for */
  unsigned in_epoll : 1; /* registered with the kernel */
  unsigned dead : 1;     /* freed during this turn */
  unsigned edge : 1;     /* registered edge-triggered (EPOLLET) */
  uint32_t slot;         /* index in the reactor's table */
  uint32_t gen;          /* the reactor's count of watchers at creation */
  ds_io *next_dead;
};

/* What epoll carries for a watcher: its slot and generation. */
#define IO_KEY(w) (((uint64_t)(w)->gen << 32) | (w)->slot)
/* ... and for the reactor's own eventfd. */
#define WAKE_KEY UINT64_MAX
#define NO_SLOT UINT32_MAX

struct ds_timer {
  ds_reactor *r;
  ds_timer_cb cb;
  void *data;
  uint64_t due; /* monotonic clock, nanoseconds */
  uint64_t repeat;
  uint64_t seq; /* tie-break: equal deadlines run in arming order */
  size_t idx;   /* position in the heap, or SIZE_MAX when stopped */
};

struct ds_reactor {
  int epfd;
  int wakefd;
  int stopped;
  unsigned handles;   /* live handles of every kind */
  unsigned active_io; /* watchers with events != 0 */
  uint64_t now;       /* milliseconds, for ds_reactor_now() */
  uint64_t now_ns;    /* the same reading, in nanoseconds */
  uint64_t timer_seq;
  int quick;     /* the last wait returned without sleeping */
  int no_pwait2; /* epoll_pwait2() is missing or refused: epoll_wait() */
  ds_timer **heap;
  size_t nheap, capheap;
  ds__call *calls, *calls_tail;
  ds__call *running; /* the rest of the batch run_calls() is running */
  ds_io *graveyard;
  /* Watchers by slot: a ds_io pointer, or for a free slot the next free
   * one as (index << 1) | 1 (pointers are even). */
  uintptr_t *slots;
  uint32_t nslots, capslots;
  uint32_t free_slot; /* first free slot, or NO_SLOT */
  uint32_t io_gen;
  int dispatching;
  pthread_mutex_t ts_lock;
  ds__call *ts_calls, *ts_tail;
  atomic_uint ts_pending; /* read without the lock by alive() */
};

static void run_soon(void *p);

/* Forks seen by this process (either side), for ds__fork_count(). */
static atomic_uint forks;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* The fork chain's handler: counts a fork once it is done, on both sides.
 * It holds no lock, so its place in the chain does not matter. */
static void count_fork(int phase)
{
  if (phase != DS__FORK_PREPARE)
    atomic_fetch_add(&forks, 1);
}

static void watch_forks(void)
{
  ds__fork_add(0, count_fork);
}

unsigned ds__fork_count(void)
{
  return atomic_load(&forks);
}

static int alive(const ds_reactor *r);

/* Reads the clock into the reactor's turn time. */
static void update_now(ds_reactor *r)
{
  r->now_ns = ds__mono_ns();
  r->now = r->now_ns / 1000000u;
}

int ds_reactor_new(ds_reactor **out)
{
  ds_reactor *r;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_KEY};
  int rc;

  *out = NULL;
  pthread_once(&fork_once, watch_forks);
  r = calloc(1, sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (r->epfd < 0) {
    rc = -errno;
    free(r);
    return rc;
  }
  r->epfd = ds__move_high(r->epfd);
  r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->wakefd >= 0)
    r->wakefd = ds__move_high(r->wakefd);
  if (r->wakefd < 0 ||
      ds__sys.epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->wakefd, &ev) != 0) {
    rc = -errno;
    if (r->wakefd >= 0)
      ds__sys.close(r->wakefd);
    ds__sys.close(r->epfd);
    free(r);
    return rc;
  }
  pthread_mutex_init(&r->ts_lock, NULL);
  r->free_slot = NO_SLOT;
  update_now(r);
  *out = r;
  return 0;
}

int ds_reactor_free(ds_reactor *r)
{
  ds__call *c, *next;

  if (r == NULL)
    return 0;
  if (r->handles > 0 || r->dispatching)
    return -EBUSY;
  /* Calls queued by call_soon/call_threadsafe that never ran: their nodes
   * were allocated here. Internal nodes (ds__reactor_defer) belong to live
   * handles, and there are none. */
  for (c = r->calls; c != NULL; c = next) {
    next = c->next;
    if (c->fn == run_soon)
      free(c->data);
  }
  for (c = r->ts_calls; c != NULL; c = next) {
    next = c->next;
    free(c);
  }
  pthread_mutex_destroy(&r->ts_lock);
  free(r->slots);
  ds__sys.close(r->wakefd);
  ds__sys.close(r->epfd);
  free(r->heap);
  free(r);
  return 0;
}

void ds__reactor_unwound(ds_reactor *r)
{
  ds_io *w;
  r->dispatching = 0;
  r->running = NULL;
  while ((w = r->graveyard) != NULL) {
    r->graveyard = w->next_dead;
    free(w);
  }
}

void ds__reactor_ref(ds_reactor *r)
{
  r->handles++;
}

void ds__reactor_unref(ds_reactor *r)
{
  r->handles--;
}

uint64_t ds_reactor_now(const ds_reactor *r)
{
  return r->now;
}

void ds_reactor_stop(ds_reactor *r)
{
  r->stopped = 1;
}

void ds__reactor_defer(ds_reactor *r, ds__call *node, void (*fn)(void *),
                       void *data)
{
  node->next = NULL;
  node->fn = fn;
  node->data = data;
  if (r->calls_tail != NULL)
    r->calls_tail->next = node;
  else
    r->calls = node;
  r->calls_tail = node;
}

/* A call queued by ds_reactor_call_soon(): allocated, freed when it runs. */
typedef struct soon_call {
  ds__call node;
  void (*fn)(void *);
  void *data;
} soon_call;

/* Frees the node first, so the user's function may queue or free freely. */
static void run_soon(void *p)
{
  soon_call *s = p;
  void (*fn)(void *) = s->fn;
  void *data = s->data;
  free(s);
  fn(data);
}

int ds_reactor_call_soon(ds_reactor *r, void (*fn)(void *), void *data)
{
  soon_call *s = malloc(sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->fn = fn;
  s->data = data;
  ds__reactor_defer(r, &s->node, run_soon, s);
  return 0;
}

int ds_reactor_call_threadsafe(ds_reactor *r, void (*fn)(void *), void *data)
{
  ds__call *c = malloc(sizeof *c);
  uint64_t one = 1;
  ssize_t n;

  if (c == NULL)
    return -ENOMEM;
  c->next = NULL;
  c->fn = fn;
  c->data = data;
  pthread_mutex_lock(&r->ts_lock);
  if (r->ts_tail != NULL)
    r->ts_tail->next = c;
  else
    r->ts_calls = c;
  r->ts_tail = c;
  atomic_fetch_add(&r->ts_pending, 1);
  pthread_mutex_unlock(&r->ts_lock);
  /* EAGAIN means the counter is already non-zero: the reactor will wake. */
  do
    n = write(r->wakefd, &one, sizeof one);
  while (n < 0 && errno == EINTR);
  return 0;
}

/* ------------------------------------------------------------------ timers */

/* Returns 1 if timer a must run before timer b. */
static int timer_before(const ds_timer *a, const ds_timer *b)
{
  if (a->due != b->due)
    return a->due < b->due;
  return a->seq < b->seq;
}

static void heap_swap(ds_reactor *r, size_t i, size_t j)
{
  ds_timer *t = r->heap[i];
  r->heap[i] = r->heap[j];
  r->heap[j] = t;
  r->heap[i]->idx = i;
  r->heap[j]->idx = j;
}

static void heap_up(ds_reactor *r, size_t i)
{
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!timer_before(r->heap[i], r->heap[p]))
      break;
    heap_swap(r, i, p);
    i = p;
  }
}

static void heap_down(ds_reactor *r, size_t i)
{
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < r->nheap && timer_before(r->heap[l], r->heap[m]))
      m = l;
    if (l + 1 < r->nheap && timer_before(r->heap[l + 1], r->heap[m]))
      m = l + 1;
    if (m == i)
      break;
    heap_swap(r, i, m);
    i = m;
  }
}

/* Removes t from the heap (it must be in it). */
static void heap_remove(ds_reactor *r, ds_timer *t)
{
  size_t i = t->idx;
  r->nheap--;
  if (i != r->nheap) {
    r->heap[i] = r->heap[r->nheap];
    r->heap[i]->idx = i;
    heap_down(r, i);
    heap_up(r, i);
  }
  t->idx = SIZE_MAX;
}

int ds_timer_new(ds_reactor *r, ds_timer **out, ds_timer_cb cb, void *data)
{
  ds_timer *t = calloc(1, sizeof *t);
  *out = NULL;
  if (t == NULL)
    return -ENOMEM;
  t->r = r;
  t->cb = cb;
  t->data = data;
  t->idx = SIZE_MAX;
  r->handles++;
  *out = t;
  return 0;
}

int ds_timer_start(ds_timer *t, uint64_t timeout_ms, uint64_t repeat_ms)
{
  ds_reactor *r = t->r;

  if (t->idx == SIZE_MAX) {
    if (r->nheap == r->capheap) {
      size_t cap = r->capheap ? r->capheap * 2 : 16;
      ds_timer **h = realloc(r->heap, cap * sizeof *h);
      if (h == NULL)
        return -ENOMEM;
      r->heap = h;
      r->capheap = cap;
    }
    t->idx = r->nheap;
    r->heap[r->nheap++] = t;
  }
  /* The clock is read afresh, so that a timer never fires before
   * timeout_ms has passed since this call, even when the call comes long
   * after the turn's cached time. (More than a century is forever.) */
  if (timeout_ms > 4000000000000u)
    timeout_ms = 4000000000000u;
  t->due = ds__mono_ns() + timeout_ms * 1000000u;
  t->repeat = repeat_ms;
  t->seq = r->timer_seq++;
  heap_up(r, t->idx);
  heap_down(r, t->idx);
  return 0;
}

void ds_timer_stop(ds_timer *t)
{
  if (t->idx != SIZE_MAX)
    heap_remove(t->r, t);
}

int ds_timer_active(const ds_timer *t)
{
  return t->idx != SIZE_MAX;
}

void ds_timer_free(ds_timer *t)
{
  if (t == NULL)
    return;
  ds_timer_stop(t);
  t->r->handles--;
  free(t);
}

/* Runs the timers due by now. A timer armed during this phase gets a
 * sequence number at or above `limit` and waits for the next turn, so a
 * callback re-arming itself with timeout 0 cannot starve the loop. */
static void run_timers(ds_reactor *r)
{
  uint64_t limit = r->timer_seq;

  while (r->nheap > 0) {
    ds_timer *t = r->heap[0];
    if (t->due > r->now_ns || t->seq >= limit)
      break;
    heap_remove(r, t);
    if (t->repeat > 0)
      ds_timer_start(t, t->repeat, t->repeat);
    t->cb(t, t->data);
  }
}

/* ------------------------------------------------------------- I/O watchers */

int ds_io_new(ds_reactor *r, ds_io **out, int fd, ds_io_cb cb, void *data)
{
  ds_io *w;
  *out = NULL;
  if (fd < 0)
    return -EBADF;
  w = calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  if (r->free_slot == NO_SLOT) {
    if (r->nslots == r->capslots) {
      uint32_t cap = r->capslots ? r->capslots * 2 : 64;
      uintptr_t *s = cap > r->capslots && cap < NO_SLOT
                         ? realloc(r->slots, cap * sizeof *s)
                         : NULL;
      if (s == NULL) {
        free(w);
        return -ENOMEM;
      }
      r->slots = s;
      r->capslots = cap;
    }
    w->slot = r->nslots++;
  } else {
    w->slot = r->free_slot;
    r->free_slot = (uint32_t)(r->slots[w->slot] >> 1);
  }
  r->slots[w->slot] = (uintptr_t)w;
  w->gen = r->io_gen++;
  w->r = r;
  w->fd = fd;
  w->cb = cb;
  w->data = data;
  r->handles++;
  *out = w;
  return 0;
}

void ds__io_edge(ds_io *w)
{
  w->edge = 1;
}

/* Returns the watcher an event's key names, or NULL: the reactor's
 * eventfd, or a watcher freed since (its slot is free or reused). */
static ds_io *io_of_key(const ds_reactor *r, uint64_t key)
{
  uint32_t slot = (uint32_t)key;
  ds_io *w;
  if (slot >= r->nslots || (r->slots[slot] & 1))
    return NULL;
  w = (ds_io *)r->slots[slot];
  return w->gen == (uint32_t)(key >> 32) ? w : NULL;
}

int ds_io_set(ds_io *w, unsigned events)
{
  ds_reactor *r = w->r;
  struct epoll_event ev = {0};
  int op;

  if (w->dead)
    return -EBADF;
  events &= DS_READABLE | DS_WRITABLE;
  if (events == w->events && (events != 0) == (w->in_epoll != 0))
    return 0;
  ev.events = ((events & DS_READABLE) ? EPOLLIN : 0) |
              ((events & DS_WRITABLE) ? EPOLLOUT : 0);
  if (w->edge)
    ev.events |= EPOLLET | ((events & DS_READABLE) ? EPOLLRDHUP | EPOLLPRI : 0);
  ev.data.u64 = IO_KEY(w);
  if (events == 0)
    op = EPOLL_CTL_DEL;
  else
    op = w->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (ds__sys.epoll_ctl(r->epfd, op, w->fd, &ev) != 0) {
    /* A closed fd vanished from the set on its own: removing it is done. */
    if (!(op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)))
      return -errno;
  }
  if ((w->events != 0) != (events != 0))
    r->active_io += events != 0 ? 1 : -1;
  w->events = events;
  w->in_epoll = events != 0;
  return 0;
}

int ds_io_fd(const ds_io *w)
{
  return w->fd;
}

/* Frees w; closing: the caller closes its fd next and no other descriptor
 * refers to the file, so close() takes it out of epoll. */
static void io_free(ds_io *w, int closing)
{
  ds_reactor *r;
  if (w == NULL)
    return;
  r = w->r;
  if (w->in_epoll && !closing) {
    struct epoll_event ev = {0};
    /* Fails only for an fd already closed, which left the set itself. */
    ds__sys.epoll_ctl(r->epfd, EPOLL_CTL_DEL, w->fd, &ev);
  }
  if (w->events != 0)
    r->active_io--;
  w->events = w->in_epoll = 0;
  r->slots[w->slot] = ((uintptr_t)r->free_slot << 1) | 1;
  r->free_slot = w->slot;
  r->handles--;
  if (r->dispatching) {
    w->dead = 1;
    w->next_dead = r->graveyard;
    r->graveyard = w;
  } else {
    free(w);
  }
}

void ds_io_free(ds_io *w)
{
  io_free(w, 0);
}

void ds__io_free_closing(ds_io *w)
{
  io_free(w, 1);
}

/* ------------------------------------------------------------------ the loop
 */

/* Runs the calls queued before this point; calls they queue wait for the
 * next turn. The batch stays reachable from the reactor while it runs, so
 * that ds__reactor_undefer() can take out a node whose owner a call just
 * freed. */
static void run_calls(ds_reactor *r)
{
  ds__call *c;

  r->running = r->calls;
  r->calls = r->calls_tail = NULL;
  while ((c = r->running) != NULL) {
    r->running = c->next;
    c->next = NULL;
    c->fn(c->data);
  }
}

/* Unlinks node from the list at *head; returns 1 if it was there, and
 * sets *last to the list's new last node. */
static int unlink_call(ds__call **head, ds__call *node, ds__call **last)
{
  ds__call *prev = NULL, *c;
  for (c = *head; c != NULL; prev = c, c = c->next) {
    if (c != node)
      continue;
    if (prev != NULL)
      prev->next = c->next;
    else
      *head = c->next;
    if (last != NULL && *last == c)
      *last = prev;
    c->next = NULL;
    return 1;
  }
  return 0;
}

void ds__reactor_undefer(ds_reactor *r, ds__call *node)
{
  if (!unlink_call(&r->calls, node, &r->calls_tail))
    unlink_call(&r->running, node, NULL);
}

/* Runs the calls other threads queued. */
static void run_threadsafe(ds_reactor *r)
{
  uint64_t v;
  ds__call *c, *next;

  while (read(r->wakefd, &v, sizeof v) < 0 && errno == EINTR)
    ;
  pthread_mutex_lock(&r->ts_lock);
  c = r->ts_calls;
  r->ts_calls = r->ts_tail = NULL;
  pthread_mutex_unlock(&r->ts_lock);
  for (; c != NULL; c = next) {
    next = c->next;
    c->fn(c->data);
    free(c);
    atomic_fetch_sub(&r->ts_pending, 1);
  }
}

/* Returns 1 while anything is left to wait for. */
static int alive(const ds_reactor *r)
{
  return r->active_io > 0 || r->nheap > 0 || r->calls != NULL ||
         atomic_load(&r->ts_pending) > 0;
}

/* Waits for events at most wait_ns nanoseconds (-1: no bound) and returns
 * epoll's result: epoll_pwait2() to the nanosecond where it can, else
 * epoll_wait() with the wait rounded up to milliseconds, never down. */
static int wait_events(ds_reactor *r, struct epoll_event *evs, int64_t wait_ns)
{
#ifdef SYS_epoll_pwait2
  if (!r->no_pwait2) {
    struct timespec ts, *tp = NULL;
    long n;
    if (wait_ns >= 0) {
      ts.tv_sec = (time_t)(wait_ns / 1000000000);
      ts.tv_nsec = (long)(wait_ns % 1000000000);
      tp = &ts;
    }
    n = syscall(SYS_epoll_pwait2, r->epfd, evs, DS__MAX_EVENTS, tp, NULL,
                (size_t)0);
    /* ENOSYS: an older kernel; EPERM: a seccomp filter that predates the
     * call (Docker's did). Both will say the same every time. */
    if (n >= 0 || (errno != ENOSYS && errno != EPERM))
      return (int)n;
    r->no_pwait2 = 1;
  }
#endif
  return epoll_wait(r->epfd, evs, DS__MAX_EVENTS,
                    wait_ns < 0 ? -1 : (int)((wait_ns + 999999) / 1000000));
}

int ds_reactor_run_once(ds_reactor *r, int timeout_ms)
{
  struct epoll_event evs[DS__MAX_EVENTS];
  int n, i;
  int64_t wait_ns;
  uint64_t before;
  ds_io *w;

  r->dispatching++;
  update_now(r);
  before = r->now_ns;
  if (r->calls != NULL) {
    run_calls(r);
    /* A fresh reading: the calls may have taken a while. */
    before = ds__mono_ns();
  }
  wait_ns = timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000;
  if (r->calls != NULL || r->stopped || !alive(r))
    wait_ns = 0;
  else if (r->nheap > 0) {
    uint64_t due = r->heap[0]->due;
    int64_t until = due > before ? (due - before > 86400000000000u
                                        ? (int64_t)86400000000000
                                        : (int64_t)(due - before))
                                 : 0;
    if (wait_ns < 0 || until < wait_ns)
      wait_ns = until;
  }

  n = wait_events(r, evs, wait_ns);
  if (n < 0) {
    int e = errno;
    n = 0;
    if (e != EINTR) {
      r->dispatching--;
      return -e;
    }
  }
  update_now(r);
  r->quick = wait_ns == 0 || r->now_ns - before < DS__QUICK_NS;
  for (i = 0; i < n; i++) {
    unsigned got = 0;
    if (evs[i].data.u64 == WAKE_KEY) {
      run_threadsafe(r);
      continue;
    }
    w = io_of_key(r, evs[i].data.u64);
    if (w == NULL)
      continue;
    if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
      got |= DS_READABLE;
    if (evs[i].events & EPOLLOUT)
      got |= DS_WRITABLE;
    if (w->edge) {
      if (evs[i].events & EPOLLRDHUP)
        got |= DS__PEER_SHUT;
      if (evs[i].events & EPOLLPRI)
        got |= DS_READABLE | DS__URGENT;
    }
    if (evs[i].events & (EPOLLERR | EPOLLHUP))
      got |= DS_ERROR | (w->events & (DS_READABLE | DS_WRITABLE));
    /* A callback earlier in this batch may have changed what w waits for. */
    got &= w->events | DS_ERROR | DS__PEER_SHUT | DS__URGENT;
    if (got != 0 && w->events != 0)
      w->cb(w, got, w->data);
  }
  run_timers(r);

  r->dispatching--;
  if (r->dispatching == 0) {
    while ((w = r->graveyard) != NULL) {
      r->graveyard = w->next_dead;
      free(w);
    }
  }
  return alive(r);
}

int ds_reactor_run(ds_reactor *r)
{
  int rc;
  r->stopped = 0;
  while (!r->stopped) {
    rc = ds_reactor_run_once(r, -1);
    if (rc <= 0)
      return rc;
  }
  r->stopped = 0;
  return 0;
}

int ds__reactor_quick(const ds_reactor *r)
{
  return r->quick;
}

void ds__reactor_fds(const ds_reactor *r, int *epfd, int *wakefd)
{
  *epfd = r->epfd;
  *wakefd = r->wakefd;
}
