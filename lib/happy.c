/* The Happy Eyeballs v2 race engine (RFC 8305), shared by the hostname
 * client endpoint, ds_connect_tcp's host names and the preload shim.
 *
 * Shape of a race: AAAA and A are looked up together (resolve.c). A
 * positive AAAA answer starts the race at once; an A answer first waits
 * the Resolution Delay for AAAA; a failed AAAA does not wait. Addresses
 * wait in one queue per family, each sorted by RFC 6724 (sort.c); the next
 * attempt takes the preferred family for the first `first_family_count`
 * attempts, then alternates, so late answers are sorted in without
 * disturbing attempts already made. Attempts start one Connection Attempt
 * Delay apart, or at once when every running attempt has failed; earlier
 * attempts keep running, up to `max_open` of them (docs/race.md): past
 * that, and whenever no socket is to be had (EMFILE, ENFILE, or the fd
 * reserve below RLIMIT_NOFILE), the oldest running attempt is aborted
 * (ETIMEDOUT) to make room for the next. The first socket to connect wins:
 * every other socket is closed and the lookup cancelled in the same callback,
 * before any other event of the batch can be dispatched (ds_io_free is
 * batch-safe), so exactly one socket reaches the caller.
 */
#include "internal.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define DS__ATTEMPT_DELAY_MS 250
#define DS__ATTEMPT_DELAY_MIN 10
#define DS__ATTEMPT_DELAY_MAX 2000
#define DS__RESOLUTION_DELAY_MS 50
#define DS__MAX_OPEN 4      /* attempts open at once (docs/race.md) */
#define DS__MAX_OPEN_MAX 64 /* the option's ceiling */
#define DS__FD_RESERVE 16   /* fds left to the process (docs/race.md) */

/* --------------------------------------------------------------------- race */

typedef struct attempt {
  ds_happy *h;
  ds_io *io;
  int fd; /* -1 once ended */
  int index;
  ds_addr addr;
} attempt;

/* Addresses of one family waiting for their attempt, in RFC 6724 order. */
typedef struct queue {
  ds_addr *a;
  size_t n, cap;
} queue;

struct ds_happy {
  ds_reactor *r;
  char *host;
  uint16_t port;
  ds_happy_opts o;
  ds_addr bind4, bind6, nat64;
  ds_happy_done_cb done;
  ds_happy_event_cb on_event;
  void *user;
  double t0;

  ds_lookup *lookup;
  int pending[2]; /* lookups outstanding, [0] IPv4, [1] IPv6 */
  int dns_err[2]; /* each family's DNS status */
  int started;    /* attempts may begin */
  queue q[2];     /* [0] IPv4, [1] IPv6 */
  int prefer;     /* family going first */
  unsigned nattempts;
  unsigned by_family[2];
  int last_family;

  attempt **att;
  size_t natt, capatt;
  unsigned running;

  ds_happy_failure *fails;
  size_t nfails, capfails;

  ds_timer *attempt_timer, *resolution_timer, *overall_timer;
  ds__call start_call;
  int finished;
  int result_err;
  unsigned ifindex; /* for scope-less link-local answers; 0: none */
  int depth;        /* entry points running: freeing waits for 0 */
};

/* Returns the queue index of a family. */
static int fam_idx(int family)
{
  return family == AF_INET6 ? 1 : 0;
}

/* Reports an event to the caller's callback, if any. */
static void emit(ds_happy *h, ds_happy_event_type type, int index,
                 const ds_addr *addr, int family, int result, size_t n)
{
  ds_happy_event ev;
  if (h->on_event == NULL)
    return;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  ev.t_ms = ds__mono_ms() - h->t0;
  ev.index = index;
  ev.family = family;
  if (addr != NULL)
    ev.addr = *addr;
  ev.result = result;
  ev.n_answers = n;
  h->on_event(h, &ev, h->user);
}

/* Records a failed attempt. Returns 0 or -ENOMEM (then it is not kept). */
static int add_failure(ds_happy *h, const ds_addr *a, int error)
{
  if (h->nfails == h->capfails) {
    size_t cap = h->capfails ? h->capfails * 2 : 4;
    ds_happy_failure *f = realloc(h->fails, cap * sizeof *f);
    if (f == NULL)
      return -ENOMEM;
    h->fails = f;
    h->capfails = cap;
  }
  h->fails[h->nfails].addr = *a;
  h->fails[h->nfails].error = error;
  h->nfails++;
  return 0;
}

/* Ends an attempt: stops watching and closes its socket. */
static void attempt_close(attempt *at)
{
  if (at->fd < 0)
    return;
  ds_io_free(at->io);
  at->io = NULL;
  ds__sys.close(at->fd);
  at->fd = -1;
  at->h->running--;
}

/* Frees everything the race holds. */
static void happy_free(ds_happy *h)
{
  size_t i;
  ds__reactor_undefer(h->r, &h->start_call);
  if (h->lookup != NULL)
    ds_lookup_cancel(h->lookup);
  for (i = 0; i < h->natt; i++) {
    attempt_close(h->att[i]);
    free(h->att[i]);
  }
  ds_timer_free(h->attempt_timer);
  ds_timer_free(h->resolution_timer);
  ds_timer_free(h->overall_timer);
  free(h->att);
  free(h->q[0].a);
  free(h->q[1].a);
  free(h->fails);
  free(h->host);
  ds__reactor_unref(h->r);
  free(h);
}

/* Ranks an error for the single failure code: lower wins. */
static int error_rank(int e)
{
  switch (e) {
  case -ECONNREFUSED:
    return 0;
  case -ENETUNREACH:
  case -EHOSTUNREACH:
    return 1;
  case -EMFILE:
  case -ENFILE:
    /* The process (or the system) ran out of fds: that explains the
     * attempts the race had to abort, and the fix is local. */
    return 2;
  case -ETIMEDOUT:
    return 3;
  default:
    return 4;
  }
}

/* Returns the deterministic failure code (see ds_happy_start). */
static int failure_code(const ds_happy *h)
{
  size_t i;
  int best = 0;
  for (i = 0; i < h->nfails; i++) {
    int e = h->fails[i].error;
    /* Addresses skipped before any attempt do not count as attempts. */
    if (e == DS_ENEEDSCOPE)
      continue;
    if (best == 0 || error_rank(e) < error_rank(best))
      best = e;
  }
  if (best != 0)
    return best;
  /* Only skipped addresses: that is the reason, not the other family's
   * DNS answer. */
  if (h->nfails > 0)
    return h->fails[0].error;
  if (h->dns_err[1] != 0 && h->dns_err[1] != DS_ENODATA)
    return h->dns_err[1];
  if (h->dns_err[0] != 0)
    return h->dns_err[0];
  if (h->dns_err[1] != 0)
    return h->dns_err[1];
  return DS_ENODATA;
}

/* Ends the race with fd (>= 0, the winner) or err, and frees it. */
static void finish(ds_happy *h, int fd, int err)
{
  size_t i;
  if (h->finished)
    return;
  h->finished = 1;
  /* Close every other socket and cancel the lookup now, before any other
   * event of this epoll batch can be dispatched. */
  for (i = 0; i < h->natt; i++)
    if (h->att[i]->fd != fd)
      attempt_close(h->att[i]);
  if (h->lookup != NULL) {
    ds_lookup_cancel(h->lookup);
    h->lookup = NULL;
  }
  ds_timer_stop(h->attempt_timer);
  ds_timer_stop(h->resolution_timer);
  ds_timer_stop(h->overall_timer);
  h->result_err = err;
  h->done(h, fd, fd >= 0 ? 0 : err, h->user);
  /* Freed by leave() once every entry point on the stack has returned:
   * the code that called finish() may still look at h->finished. */
}

/* Every entry from the reactor (answers, socket events, timers, the
 * deferred start) runs between enter() and leave(), so that a race which
 * ends deep inside is freed only when the outermost frame is done. */
static void enter(ds_happy *h)
{
  h->depth++;
}

static void leave(ds_happy *h)
{
  if (--h->depth == 0 && h->finished)
    happy_free(h);
}

/* Ends the race in failure once nothing is left to wait for. */
static void maybe_fail(ds_happy *h)
{
  if (h->finished || h->running > 0 || h->pending[0] || h->pending[1] ||
      h->q[0].n > 0 || h->q[1].n > 0)
    return;
  finish(h, -1, failure_code(h));
}

static void start_next(ds_happy *h);

/* An attempt's socket became writable or failed. */
static void attempt_io_inner(ds_io *w, unsigned events, void *data)
{
  attempt *at = data;
  ds_happy *h = at->h;
  int err = 0;
  socklen_t len = sizeof err;
  (void)w;
  (void)events;

  if (ds__sys.getsockopt(at->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err == 0 && !(events & DS_WRITABLE))
    return;
  if (err == 0) {
    int fd = at->fd;
    emit(h, DS_HE_RESULT, at->index, &at->addr, at->addr.family, 0, 0);
    /* The winner leaves the attempt list: the caller owns it now. */
    ds_io_free(at->io);
    at->io = NULL;
    at->fd = -1;
    h->running--;
    if (h->o.memory != NULL)
      ds_family_memory_put(h->o.memory, h->host, at->addr.family);
    finish(h, fd, 0);
    return;
  }
  attempt_close(at);
  add_failure(h, &at->addr, -err);
  emit(h, DS_HE_RESULT, at->index, &at->addr, at->addr.family, -err, 0);
  /* Nothing running any more: the attempt delay is moot, and an answer
   * still to come must start its attempt at once. */
  if (h->running == 0) {
    ds_timer_stop(h->attempt_timer);
    start_next(h);
  }
  maybe_fail(h);
}

static void attempt_io(ds_io *w, unsigned events, void *data)
{
  ds_happy *h = ((attempt *)data)->h;
  enter(h);
  attempt_io_inner(w, events, data);
  leave(h);
}

/* Returns the family of the next attempt, or 0 if no address waits. */
static int next_family(const ds_happy *h)
{
  int pref = h->prefer, other = pref == AF_INET6 ? AF_INET : AF_INET6;
  int have_p = h->q[fam_idx(pref)].n > 0, have_o = h->q[fam_idx(other)].n > 0;
  if (!have_p && !have_o)
    return 0;
  if (!have_p)
    return other;
  if (!have_o)
    return pref;
  if (h->by_family[fam_idx(pref)] < h->o.first_family_count)
    return pref;
  return h->last_family == pref ? other : pref;
}

/* Aborts the oldest running attempt, which counts as timed out: the race
 * gave it max_open Connection Attempt Delays. Returns 1, or 0 if none
 * runs. */
static int abort_oldest(ds_happy *h)
{
  size_t i;
  for (i = 0; i < h->natt; i++) {
    attempt *at = h->att[i];
    if (at->fd < 0)
      continue;
    attempt_close(at);
    add_failure(h, &at->addr, -ETIMEDOUT);
    emit(h, DS_HE_RESULT, at->index, &at->addr, at->addr.family, -ETIMEDOUT, 0);
    return 1;
  }
  return 0;
}

/* Returns 1 if fd is among the process's last fds, which attempts leave
 * alone: the top DS__FD_RESERVE numbers below RLIMIT_NOFILE (a quarter of
 * the limit when that is smaller). socket() takes the lowest free number,
 * so an fd up there means at most that many remain free; one getrlimit
 * per attempt is the whole cost, no scan of /proc. */
static int in_reserve(int fd)
{
  struct rlimit rl;
  rlim_t reserve;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return 0;
  reserve = rl.rlim_cur / 4 < DS__FD_RESERVE ? rl.rlim_cur / 4 : DS__FD_RESERVE;
  return (rlim_t)fd + reserve >= rl.rlim_cur;
}

/* Opens an attempt socket of family. Out of fds (EMFILE, ENFILE or the
 * reserve, all reported as the kernel's EMFILE or ENFILE), the oldest
 * running attempt makes room once. Returns the fd or a negative errno. */
static int attempt_socket(ds_happy *h, int family)
{
  int fd, err, tries;
  for (tries = 0;; tries++) {
    fd = ds__sys.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        IPPROTO_TCP);
    /* Out of the program's way (at ds__sys.fd_floor, in the shim): an
     * attempt still running when the caller is gone (a longjmp, a
     * cancelled thread) holds no number the program counts on. */
    if (fd >= 0 && !in_reserve(fd) && !in_reserve(fd = ds__move_high(fd)))
      return fd;
    err = fd >= 0 ? EMFILE : errno;
    if (fd >= 0)
      ds__sys.close(fd);
    if ((err != EMFILE && err != ENFILE) || tries > 0 || !abort_oldest(h))
      return -err;
  }
}

/* Starts one attempt at addr. Returns 0 if it is running, or the
 * (negative) error with which it failed at once. */
static int attempt_start(ds_happy *h, const ds_addr *addr)
{
  struct sockaddr_storage ss;
  socklen_t len;
  const ds_addr *bind = addr->family == AF_INET6 ? h->o.bind6 : h->o.bind4;
  attempt *at;
  int fd, rc;

  if (h->natt == h->capatt) {
    size_t cap = h->capatt ? h->capatt * 2 : 4;
    attempt **a = realloc(h->att, cap * sizeof *a);
    if (a == NULL)
      return -ENOMEM;
    h->att = a;
    h->capatt = cap;
  }
  at = calloc(1, sizeof *at);
  if (at == NULL)
    return -ENOMEM;
  at->h = h;
  at->addr = *addr;
  at->addr.port = h->port;
  at->index = (int)++h->nattempts;
  at->fd = -1;
  h->att[h->natt++] = at;
  h->by_family[fam_idx(addr->family)]++;
  h->last_family = addr->family;
  emit(h, DS_HE_ATTEMPT, at->index, &at->addr, addr->family, 0, 0);

  fd = attempt_socket(h, addr->family);
  if (fd < 0)
    return fd;
  if (h->o.prepare != NULL &&
      (rc = h->o.prepare(fd, addr->family, h->o.prepare_user)) != 0) {
    ds__sys.close(fd);
    return rc < 0 ? rc : -EINVAL;
  }
  if (bind != NULL) {
    ds_addr_to_sockaddr(bind, &ss, &len);
    if (ds__sys.bind(fd, (struct sockaddr *)&ss, len) != 0) {
      rc = -errno;
      ds__sys.close(fd);
      return rc;
    }
  }
  ds_addr_to_sockaddr(&at->addr, &ss, &len);
  do
    rc = ds__sys.connect(fd, (struct sockaddr *)&ss, len);
  while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EINPROGRESS) {
    rc = -errno;
    ds__sys.close(fd);
    return rc;
  }
  /* Even a connect that completed at once is reported through the
   * watcher, so the winner is always chosen in one place. */
  rc = ds_io_new(h->r, &at->io, fd, attempt_io, at);
  if (rc == 0)
    rc = ds_io_set(at->io, DS_WRITABLE);
  if (rc != 0) {
    ds_io_free(at->io);
    at->io = NULL;
    ds__sys.close(fd);
    return rc;
  }
  at->fd = fd;
  h->running++;
  return 0;
}

/* Starts attempts: one, then arms the Connection Attempt Delay; an attempt
 * that fails at once lets the next one start at once. */
static void start_next(ds_happy *h)
{
  while (!h->finished && h->started) {
    int fam = next_family(h), rc;
    queue *q;
    ds_addr a;
    if (fam == 0)
      return;
    /* At the bound, the oldest attempt makes room: the race keeps to its
     * Connection Attempt Delay (RFC 8305 section 5) with at most max_open
     * sockets (docs/race.md). */
    if (h->running >= h->o.max_open)
      abort_oldest(h);
    q = &h->q[fam_idx(fam)];
    a = q->a[0];
    memmove(q->a, q->a + 1, (q->n - 1) * sizeof *q->a);
    q->n--;
    rc = attempt_start(h, &a);
    if (rc == 0) {
      ds_timer_start(h->attempt_timer, h->o.attempt_delay_ms, 0);
      return;
    }
    a.port = h->port;
    add_failure(h, &a, rc);
    emit(h, DS_HE_RESULT, (int)h->nattempts, &a, a.family, rc, 0);
    /* No socket to be had even after the oldest attempt made room: the
     * next address is tried at once rather than after a delay spent
     * waiting on attempts that may never answer. */
    if (h->running > 0 && rc != -EMFILE && rc != -ENFILE) {
      /* Others still run: the next attempt waits its turn. */
      ds_timer_start(h->attempt_timer, h->o.attempt_delay_ms, 0);
      return;
    }
  }
}

/* The Connection Attempt Delay passed without a winner. */
static void attempt_timer_cb(ds_timer *t, void *data)
{
  ds_happy *h = data;
  (void)t;
  enter(h);
  start_next(h);
  maybe_fail(h);
  leave(h);
}

/* Lets attempts begin (answers arrived, or the Resolution Delay ended). */
static void begin(ds_happy *h)
{
  if (h->started || h->finished)
    return;
  h->started = 1;
  ds_timer_stop(h->resolution_timer);
  start_next(h);
  maybe_fail(h);
}

static void resolution_timer_cb(ds_timer *t, void *data)
{
  (void)t;
  enter(data);
  begin(data);
  leave(data);
}

/* The whole race took too long. */
static void overall_timer_cb(ds_timer *t, void *data)
{
  ds_happy *h = data;
  size_t i;
  (void)t;
  enter(h);
  for (i = 0; i < h->natt; i++)
    if (h->att[i]->fd >= 0) {
      add_failure(h, &h->att[i]->addr, -ETIMEDOUT);
      emit(h, DS_HE_RESULT, h->att[i]->index, &h->att[i]->addr,
           h->att[i]->addr.family, -ETIMEDOUT, 0);
    }
  /* With attempts made, the usual precedence decides (a refusal seen
   * earlier outranks the timeout); without any, the timeout is the
   * answer, whatever DNS was still doing. */
  finish(h, -1, h->nattempts > 0 ? failure_code(h) : -ETIMEDOUT);
  leave(h);
}

/* Adds one answer's addresses to their family's queue, in RFC 6724
 * order. Link-local IPv6 answers carry no scope: they get the configured
 * interface's, or are skipped with DS_ENEEDSCOPE. IPv4 addresses become
 * NAT64 addresses when a prefix is configured and IPv4 has no route. */
static void add_addresses(ds_happy *h, const ds_addr *addrs, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) {
    ds_addr a = addrs[i];
    queue *q;
    a.port = h->port;
    if (a.family == AF_INET && h->nat64.family == AF_INET6 &&
        ds__nat64_needed(&a))
      ds_nat64_synthesize(&a, &h->nat64, h->o.nat64_prefix_len, &a);
    if (h->o.family != AF_UNSPEC && a.family != h->o.family)
      continue;
    if (a.family == AF_INET6 && a.scope_id == 0 &&
        ds_addr_classify(&a) == DS_ADDR_LINKLOCAL) {
      unsigned idx = h->ifindex;
      if (idx == 0) {
        add_failure(h, &a, DS_ENEEDSCOPE);
        emit(h, DS_HE_SKIPPED, 0, &a, a.family, DS_ENEEDSCOPE, 0);
        continue;
      }
      a.scope_id = idx;
    }
    q = &h->q[fam_idx(a.family)];
    if (q->n == q->cap) {
      size_t cap = q->cap ? q->cap * 2 : 8;
      ds_addr *na = realloc(q->a, cap * sizeof *na);
      if (na == NULL)
        continue;
      q->a = na;
      q->cap = cap;
    }
    q->a[q->n++] = a;
  }
  for (i = 0; i < 2; i++)
    if (h->q[i].n > 1)
      ds_sort_destinations(h->q[i].a, h->q[i].n);
}

/* One family's DNS answer. */
static void on_answer_inner(ds_lookup *l, int family, int status,
                            const ds_addr *addrs, size_t n, void *user)
{
  ds_happy *h = user;
  int fi = fam_idx(family);
  (void)l;

  h->pending[fi] = 0;
  h->dns_err[fi] = status;
  if (!h->pending[0] && !h->pending[1])
    h->lookup = NULL; /* freed by resolve.c after this callback */
  emit(h, DS_HE_ANSWER, 0, NULL, family, status, status == 0 ? n : 0);
  if (status == 0)
    add_addresses(h, addrs, n);
  if (h->finished)
    return;
  if (h->started) {
    /* Late answers join the race; if nothing runs, start at once. */
    if (h->running == 0 && !ds_timer_active(h->attempt_timer))
      start_next(h);
    maybe_fail(h);
    return;
  }
  {
    /* RFC 8305 section 3, generalised to either preferred family: a usable
     * answer of the preferred family starts at once; one of the other
     * family waits the Resolution Delay for the preferred one; a failed
     * answer waits for nothing. */
    int pf = fam_idx(h->prefer), of = 1 - pf;
    if (fi == pf) {
      if (h->q[pf].n > 0 || !h->pending[of] || h->q[of].n > 0)
        begin(h);
    } else if (h->q[of].n > 0) {
      if (!h->pending[pf])
        begin(h);
      else
        ds_timer_start(h->resolution_timer, h->o.resolution_delay_ms, 0);
    } else if (!h->pending[pf]) {
      begin(h);
    }
  }
  maybe_fail(h);
}

static void on_answer(ds_lookup *l, int family, int status,
                      const ds_addr *addrs, size_t n, void *user)
{
  enter(user);
  on_answer_inner(l, family, status, addrs, n, user);
  leave(user);
}

/* Begins a race whose addresses are known without lookup (a literal). */
static void start_literal(void *data)
{
  enter(data);
  begin(data);
  leave(data);
}

/* Returns the clamped or defaulted options. */
static void normalize(ds_happy_opts *o)
{
  if (o->attempt_delay_ms == 0)
    o->attempt_delay_ms = DS__ATTEMPT_DELAY_MS;
  if (o->attempt_delay_ms < DS__ATTEMPT_DELAY_MIN)
    o->attempt_delay_ms = DS__ATTEMPT_DELAY_MIN;
  if (o->attempt_delay_ms > DS__ATTEMPT_DELAY_MAX)
    o->attempt_delay_ms = DS__ATTEMPT_DELAY_MAX;
  if (o->resolution_delay_ms == 0)
    o->resolution_delay_ms = DS__RESOLUTION_DELAY_MS;
  if (o->first_family_count == 0)
    o->first_family_count = 1;
  if (o->prefer != AF_INET)
    o->prefer = AF_INET6;
  if (o->max_open == 0)
    o->max_open = DS__MAX_OPEN;
  if (o->max_open > DS__MAX_OPEN_MAX)
    o->max_open = DS__MAX_OPEN_MAX;
}

int ds_happy_start(ds_reactor *r, const char *host, uint16_t port,
                   const ds_happy_opts *opts, ds_happy_done_cb done,
                   ds_happy_event_cb on_event, void *user, ds_happy **out,
                   char *err, size_t errlen)
{
  ds_happy *h;
  ds_addr lit;
  int rc, families = 0;

  *out = NULL;
  if (host == NULL || done == NULL)
    return ds__fail(err, errlen, -EINVAL, "no host or no callback");
  h = calloc(1, sizeof *h);
  if (h == NULL)
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  h->r = r;
  ds__reactor_ref(r);
  if (opts != NULL)
    h->o = *opts;
  normalize(&h->o);
  h->host = strdup(host);
  h->port = port;
  h->done = done;
  h->on_event = on_event;
  h->user = user;
  h->t0 = ds__mono_ms();
  h->prefer = h->o.prefer;
  if (h->o.family != AF_UNSPEC && h->o.family != AF_INET &&
      h->o.family != AF_INET6) {
    rc = ds__fail(err, errlen, -EAFNOSUPPORT, "family %d: not IPv4 or IPv6",
                  h->o.family);
    goto fail;
  }
  /* Bind addresses and the NAT64 prefix are copied: the caller's opts
   * need not outlive this call. */
  if (h->o.bind4 != NULL) {
    if (h->o.bind4->family != AF_INET) {
      rc = ds__fail(err, errlen, DS_EFAMILY, "bind4 is not an IPv4 address");
      goto fail;
    }
    h->bind4 = *h->o.bind4;
    h->o.bind4 = &h->bind4;
  }
  if (h->o.bind6 != NULL) {
    if (h->o.bind6->family != AF_INET6) {
      rc = ds__fail(err, errlen, DS_EFAMILY, "bind6 is not an IPv6 address");
      goto fail;
    }
    h->bind6 = *h->o.bind6;
    h->o.bind6 = &h->bind6;
  }
  if (h->o.nat64_prefix != NULL) {
    if (h->o.nat64_prefix->family != AF_INET6) {
      rc = ds__fail(err, errlen, DS_EFAMILY,
                    "NAT64 prefix must be an IPv6 prefix");
      goto fail;
    }
    h->nat64 = *h->o.nat64_prefix;
    if (h->o.nat64_prefix_len == 0)
      h->o.nat64_prefix_len = 96;
    {
      ds_addr probe = {.family = AF_INET};
      if (ds_nat64_synthesize(&probe, &h->nat64, h->o.nat64_prefix_len,
                              &probe) != 0) {
        rc = ds__fail(err, errlen, -EINVAL,
                      "NAT64 prefix length %u: RFC 6052 allows 32, 40, 48, "
                      "56, 64 or 96",
                      h->o.nat64_prefix_len);
        goto fail;
      }
    }
  }
  h->o.nat64_prefix = NULL;
  h->o.resolver = NULL; /* used only below, during this call */
  h->o.interface = NULL;
  if (opts != NULL && opts->interface != NULL) {
    /* Resolved now: a name that does not exist is an error at once. */
    h->ifindex = if_nametoindex(opts->interface);
    if (h->ifindex == 0) {
      rc = ds__fail(err, errlen, -ENODEV, "no interface named '%s'",
                    opts->interface);
      goto fail;
    }
  }
  if (h->host == NULL ||
      ds_timer_new(r, &h->attempt_timer, attempt_timer_cb, h) != 0 ||
      ds_timer_new(r, &h->resolution_timer, resolution_timer_cb, h) != 0 ||
      ds_timer_new(r, &h->overall_timer, overall_timer_cb, h) != 0) {
    rc = ds__fail(err, errlen, -ENOMEM, "out of memory");
    goto fail;
  }
  if (h->o.memory != NULL &&
      ds_family_memory_get(h->o.memory, host) == AF_INET &&
      h->o.family == AF_UNSPEC)
    h->prefer = AF_INET; /* IPv6 lost last time: IPv4 first, no wait */

  if (strpbrk(host, ":%") != NULL ||
      ds_addr_parse(&lit, host, port, NULL, 0) == 0) {
    rc = ds_addr_parse(&lit, host, port, err, errlen);
    if (rc != 0)
      goto fail;
    if (lit.family == AF_INET6 && lit.scope_id == 0 &&
        ds_addr_classify(&lit) == DS_ADDR_LINKLOCAL) {
      rc = ds__fail(err, errlen, DS_ENEEDSCOPE,
                    "'%s': link-local address needs a scope, as in "
                    "'%s%%eth0'",
                    host, host);
      goto fail;
    }
    if (h->o.family != AF_UNSPEC && lit.family != h->o.family &&
        !(lit.family == AF_INET && h->nat64.family == AF_INET6)) {
      rc = ds__fail(err, errlen, DS_EFAMILY, "'%s' is not an %s address", host,
                    h->o.family == AF_INET ? "IPv4" : "IPv6");
      goto fail;
    }
    add_addresses(h, &lit, 1);
    ds__reactor_defer(r, &h->start_call, start_literal, h);
  } else {
    if (h->o.family != AF_INET)
      families |= DS_LOOKUP_AAAA;
    if (h->o.family != AF_INET6 || h->nat64.family == AF_INET6)
      families |= DS_LOOKUP_A;
    h->pending[0] = (families & DS_LOOKUP_A) != 0;
    h->pending[1] = (families & DS_LOOKUP_AAAA) != 0;
    rc = ds_lookup_start(r, host, families, opts ? opts->resolver : NULL,
                         on_answer, h, &h->lookup, err, errlen);
    if (rc != 0) {
      h->lookup = NULL;
      goto fail;
    }
  }
  if (h->o.timeout_ms > 0)
    ds_timer_start(h->overall_timer, h->o.timeout_ms, 0);
  *out = h;
  return 0;

fail:
  happy_free(h);
  return rc;
}

void ds_happy_cancel(ds_happy *h)
{
  size_t i;
  if (h == NULL || h->finished)
    return; /* inside done, the race is already over */
  h->finished = 1;
  if (h->depth > 0) {
    /* Called from an event callback of this race: close everything now,
     * free when the race's own frames have returned. */
    for (i = 0; i < h->natt; i++)
      attempt_close(h->att[i]);
    if (h->lookup != NULL) {
      ds_lookup_cancel(h->lookup);
      h->lookup = NULL;
    }
    ds_timer_stop(h->attempt_timer);
    ds_timer_stop(h->resolution_timer);
    ds_timer_stop(h->overall_timer);
    return;
  }
  happy_free(h);
}

size_t ds_happy_failures(const ds_happy *h, const ds_happy_failure **out)
{
  *out = h->fails;
  return h->nfails;
}

int ds_happy_describe(const ds_happy *h, char *buf, size_t len)
{
  size_t i, off = 0;
  int n;
  if (len == 0)
    return 0;
  buf[0] = '\0';
  if (h->nfails == 0) {
    n = snprintf(buf, len, "%s: %s", h->host, ds_strerror(h->result_err));
    return n < 0 ? 0 : (int)(n >= (int)len ? len - 1 : (size_t)n);
  }
  for (i = 0; i < h->nfails && off + 1 < len; i++) {
    char a[DS_ADDR_STRLEN];
    ds_addr_format(&h->fails[i].addr, a, sizeof a, DS_ADDR_FMT_PORT);
    n = snprintf(buf + off, len - off, "%s%s (%s)", i ? ", " : "tried ", a,
                 ds_err_name(h->fails[i].error));
    if (n < 0)
      break;
    off += (size_t)n < len - off ? (size_t)n : len - off - 1;
  }
  return (int)off;
}
