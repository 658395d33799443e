/* The all-interfaces server endpoint: ds_listen_all() binds every local
 * address the options select on one port, one ds_listener (tcp.c) each,
 * and the aggregate port (ds_server) follows the machine's addresses
 * through the netlink watch of ifaddr.c.
 *
 * Entries: one per selected local address, kept sorted (IPv4 first, then
 * by address) and unique: an IPv4 address held by two interfaces is one
 * socket, while IPv6 link-local addresses differ by their scope id. A
 * change notification takes a fresh snapshot and reconciles the entries
 * with it (see ifaddr.c for why snapshots rather than deltas).
 *
 * Tentative IPv6 addresses (duplicate address detection running) wait: the
 * kernel refuses to bind them without IP_FREEBIND, and binding them with it
 * would serve an address that may turn out to be another host's. The
 * kernel reports the end of DAD as RTM_NEWADDR without IFA_F_TENTATIVE,
 * which the watch turns into a bind within the same reactor turn.
 * Optimistic addresses (RFC 4429) are usable at once and are bound.
 */
#include "internal.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <stdlib.h>
#include <string.h>

#define PORT_TRIES_DEFAULT 8
#define PORT_TRIES_MAX 64
/* After a failed snapshot (out of memory, netlink trouble), try again. */
#define RETRY_MS 250

/* Entry state before its first bind attempt; the public states are
 * DS_SERVER_BOUND, _WAITING and _FAILED. */
#define ST_NEW 0

typedef struct entry {
  ds_server_addr a;
  ds_listener *l; /* open while a.state is DS_SERVER_BOUND */
  int want;       /* state the latest snapshot asks for */
  int want_error; /* with DS_SERVER_FAILED: DS_EDUPADDR */
  unsigned seen : 1;
} entry;

struct ds_server {
  ds_reactor *r;
  ds_factory_fn factory;
  void *factory_data;
  int family;
  unsigned flags;
  int backlog;
  unsigned port_tries;
  ds_server_notify_fn notify;
  void *notify_data;
  char **ifnames; /* copy of the allow-list, NULL-terminated; or NULL */
  uint16_t port;  /* the one port; 0 until something was bound */
  unsigned tries; /* port attempts the first bind took */
  entry *e;
  size_t n, cap;
  ds__ifwatch *watch;
  ds_timer *retry;
  int stopping;
  ds_server_stopped_fn stop_cb;
  void *stop_data;
  ds__call stop_call;
};

unsigned ds__server_port_tries(const ds_server *s)
{
  return s->tries;
}

/* Returns 1 if the options select address x. */
static int selected(const ds_server *s, const ds__ifaddr *x)
{
  ds_addr_class c = ds_addr_classify(&x->addr);
  char **p;

  if (s->family != 0 && x->addr.family != s->family)
    return 0;
  /* Not addresses one can listen on for unicast TCP. */
  if (c == DS_ADDR_UNSPECIFIED || c == DS_ADDR_MULTICAST ||
      c == DS_ADDR_V4MAPPED)
    return 0;
  if ((s->flags & DS_SERVER_NO_LOOPBACK) && c == DS_ADDR_LOOPBACK)
    return 0;
  if ((s->flags & DS_SERVER_NO_LINKLOCAL) && c == DS_ADDR_LINKLOCAL)
    return 0;
  if (s->ifnames == NULL)
    return 1;
  for (p = s->ifnames; *p != NULL; p++)
    if (strcmp(*p, x->ifname) == 0)
      return 1;
  return 0;
}

/* Returns the state the kernel's flags allow for x, with the error for
 * DS_SERVER_FAILED in *error. */
static int usable_state(const ds__ifaddr *x, int *error)
{
  *error = 0;
  if (x->flags & IFA_F_DADFAILED) {
    *error = DS_EDUPADDR;
    return DS_SERVER_FAILED;
  }
  if ((x->flags & IFA_F_TENTATIVE) && !(x->flags & IFA_F_OPTIMISTIC))
    return DS_SERVER_WAITING;
  return DS_SERVER_BOUND;
}

/* Returns the comparison of two addresses as entry keys (port ignored). */
static int key_compare(const ds_addr *a, const ds_addr *b)
{
  ds_addr x = *a, y = *b;
  x.port = y.port = 0;
  x.flowinfo = y.flowinfo = 0;
  return ds_addr_compare(&x, &y);
}

/* Returns the index of the entry for address a, or where it belongs
 * (*found says which). */
static size_t entry_find(const ds_server *s, const ds_addr *a, int *found)
{
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = key_compare(&s->e[mid].a.addr, a);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

/* Writes e's text from its address (with the server's port). */
static void entry_text(ds_server *s, entry *e)
{
  e->a.addr.port = s->port;
  if (ds_addr_format(&e->a.addr, e->a.text, sizeof e->a.text,
                     DS_ADDR_FMT_PORT) < 0)
    e->a.text[0] = '\0';
}

/* Returns the entry for x, inserted (state ST_NEW) if new, or NULL without
 * memory. */
static entry *entry_get(ds_server *s, const ds__ifaddr *x)
{
  int found;
  size_t i = entry_find(s, &x->addr, &found);
  entry *e;

  if (!found) {
    if (s->n == s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 8;
      entry *ne = realloc(s->e, cap * sizeof *ne);
      if (ne == NULL)
        return NULL;
      s->e = ne;
      s->cap = cap;
    }
    memmove(&s->e[i + 1], &s->e[i], (s->n - i) * sizeof *s->e);
    s->n++;
    e = &s->e[i];
    memset(e, 0, sizeof *e);
    e->a.addr = x->addr;
    e->a.state = ST_NEW;
  }
  e = &s->e[i];
  /* The first interface seen keeps an address held by several. */
  if (!found || e->a.ifindex == x->ifindex || !e->seen) {
    e->a.ifindex = x->ifindex;
    memcpy(e->a.ifname, x->ifname, sizeof e->a.ifname);
  }
  entry_text(s, e);
  return e;
}

/* Closes e's listener, if any. */
static void entry_close(entry *e)
{
  if (e->l != NULL) {
    ds_listener_close(e->l);
    e->l = NULL;
  }
}

/* Binds e on port (0: the kernel picks). Returns 0 (e->l open, e->a.addr
 * has the real port) or the error. */
static int entry_bind(ds_server *s, entry *e, uint16_t port)
{
  char lit[DS_ADDR_STRLEN], err[160];
  ds_addr a = e->a.addr, host;
  int rc;

  /* The scope goes by number: the interface may be renamed, never
   * renumbered. */
  a.port = 0;
  if (ds_addr_format(&a, lit, sizeof lit, DS_ADDR_FMT_SCOPE_NUMERIC) < 0)
    return -EINVAL;
  rc = ds_listen_tcp(s->r, port, lit, s->backlog, 0, s->factory,
                     s->factory_data, &e->l, err, sizeof err);
  if (rc != 0) {
    e->l = NULL;
    return rc;
  }
  ds_listener_get_host(e->l, &host);
  e->a.addr.port = host.port;
  return 0;
}

/* Sets e's state and error, and its text with the server's port. */
static void entry_set(ds_server *s, entry *e, int state, int error)
{
  e->a.state = state;
  e->a.error = error;
  entry_text(s, e);
}

/* Returns the number of entries in state. */
static size_t count_state(const ds_server *s, int state)
{
  size_t i, k = 0;
  for (i = 0; i < s->n; i++)
    k += s->e[i].a.state == state;
  return k;
}

/* Closes the listeners held by bind_initial(). */
static void release_held(ds_listener **held, size_t *nheld)
{
  while (*nheld > 0)
    ds_listener_close(held[--*nheld]);
}

/* The first bind of every entry. With port 0, the first address bound
 * picks the port and the others bind the same; a later address that finds
 * it taken makes the whole set start again on another port. The listener
 * that picked a refused port stays open meanwhile, so that the kernel
 * cannot pick that port again (its choice is not random enough to rely
 * on: bind() prefers odd ports of the lower half of the range). When those
 * held ports exhaust the range, or on the last try, they are released and
 * the addresses that still conflict are reported as failed. */
static void bind_initial(ds_server *s, uint16_t port)
{
  ds_listener *held[PORT_TRIES_MAX];
  size_t nheld = 0, i;
  unsigned try;

  for (try = 1;; try++) {
    uint16_t p = port;
    entry *first = NULL;
    int restart = 0, last = try >= s->port_tries;

    if (last)
      release_held(held, &nheld);
    s->tries = try;
    for (i = 0; i < s->n && !restart; i++) {
      entry *e = &s->e[i];
      int rc;
      if (e->want != DS_SERVER_BOUND)
        continue;
      rc = entry_bind(s, e, p);
      if (rc == 0) {
        e->a.state = DS_SERVER_BOUND;
        if (p == 0) {
          p = e->a.addr.port;
          first = e;
        }
      } else if (rc == -EADDRINUSE && port == 0 && !last &&
                 (p != 0 || nheld > 0)) {
        /* Taken here (start again elsewhere), or no port left but the
         * ones we hold (start the last try). */
        if (p == 0)
          try = s->port_tries - 1;
        restart = 1;
      } else {
        e->a.state = DS_SERVER_FAILED;
        e->a.error = rc;
      }
    }
    if (!restart) {
      s->port = p;
      break;
    }
    for (i = 0; i < s->n; i++) {
      entry *e = &s->e[i];
      if (e == first && e->l != NULL) {
        held[nheld++] = e->l;
        e->l = NULL;
      }
      entry_close(e);
      e->a.state = ST_NEW;
      e->a.error = 0;
    }
  }
  release_held(held, &nheld);
  for (i = 0; i < s->n; i++) {
    entry *e = &s->e[i];
    if (e->want != DS_SERVER_BOUND)
      entry_set(s, e, e->want, e->want_error);
    else
      entry_text(s, e);
  }
}

/* Tells the user about e. Returns 1 if the server was stopped inside. */
static int notify(ds_server *s, ds_server_event ev, const entry *e)
{
  if (s->notify != NULL)
    s->notify(s, ev, &e->a, s->notify_data);
  return s->stopping;
}

/* Brings e to the state the snapshot asks for, telling the user. Returns 1
 * if the server was stopped inside a notification. */
static int entry_apply(ds_server *s, entry *e)
{
  int cur = e->a.state, rc;

  if (e->want == DS_SERVER_BOUND) {
    if (cur == DS_SERVER_BOUND)
      return 0;
    /* A port 0 server that had nothing bound yet picks its port now. */
    rc = entry_bind(s, e, s->port);
    if (rc == 0) {
      if (s->port == 0)
        s->port = e->a.addr.port;
      entry_set(s, e, DS_SERVER_BOUND, 0);
      return notify(s, DS_SERVER_EV_ADDED, e);
    }
    if (cur == DS_SERVER_FAILED && e->a.error == rc)
      return 0; /* still failing the same way: said already */
    entry_set(s, e, DS_SERVER_FAILED, rc);
    return notify(s, DS_SERVER_EV_FAILED, e);
  }
  if (cur == e->want && e->a.error == e->want_error)
    return 0;
  if (cur == DS_SERVER_BOUND) {
    entry_close(e);
    e->a.state = ST_NEW;
    if (notify(s, DS_SERVER_EV_REMOVED, e))
      return 1;
  }
  entry_set(s, e, e->want, e->want_error);
  return notify(s,
                e->want == DS_SERVER_WAITING ? DS_SERVER_EV_WAITING
                                             : DS_SERVER_EV_FAILED,
                e);
}

/* Marks every entry unseen, then creates or updates the entries of the
 * selected addresses of snap, recording the state each should reach.
 * Returns 0 or -ENOMEM. */
static int load_snapshot(ds_server *s, const ds__ifsnap *snap)
{
  size_t i;
  for (i = 0; i < s->n; i++)
    s->e[i].seen = 0;
  for (i = 0; i < snap->naddrs; i++) {
    const ds__ifaddr *x = &snap->addrs[i];
    int want, error;
    entry *e;
    if (!selected(s, x))
      continue;
    want = usable_state(x, &error);
    e = entry_get(s, x);
    if (e == NULL)
      return -ENOMEM;
    /* One address on two interfaces: usable if usable on either. */
    if (e->seen && e->want == DS_SERVER_BOUND)
      continue;
    e->seen = 1;
    e->want = want;
    e->want_error = error;
  }
  return 0;
}

static void server_changed(void *data);

/* Retry timer after a failed snapshot. */
static void retry_cb(ds_timer *t, void *data)
{
  (void)t;
  server_changed(data);
}

/* The machine's addresses changed: reconcile with a fresh snapshot. */
static void server_changed(void *data)
{
  ds_server *s = data;
  ds__ifsnap snap;
  size_t i, k;

  if (s->stopping)
    return;
  if (ds__ifsnap_take(&snap, s->family) != 0 || load_snapshot(s, &snap) != 0) {
    ds__ifsnap_free(&snap);
    if (s->retry != NULL)
      ds_timer_start(s->retry, RETRY_MS, 0);
    return;
  }
  ds__ifsnap_free(&snap);
  /* Removals first, so that a line saying an address is gone never
   * follows the line saying its replacement came. */
  for (i = 0; i < s->n; i++) {
    entry *e = &s->e[i];
    if (e->seen || e->a.state != DS_SERVER_BOUND)
      continue;
    entry_close(e);
    e->a.state = ST_NEW; /* dropped below */
    if (notify(s, DS_SERVER_EV_REMOVED, e))
      return;
  }
  for (i = k = 0; i < s->n; i++)
    if (s->e[i].seen)
      s->e[k++] = s->e[i];
  s->n = k;
  for (i = 0; i < s->n; i++)
    if (entry_apply(s, &s->e[i]))
      return;
}

/* Copies the allow-list. Returns 0 or -ENOMEM. */
static int copy_ifnames(ds_server *s, const char *const *names)
{
  size_t n = 0, i;
  if (names == NULL)
    return 0;
  while (names[n] != NULL)
    n++;
  s->ifnames = calloc(n + 1, sizeof *s->ifnames);
  if (s->ifnames == NULL)
    return -ENOMEM;
  for (i = 0; i < n; i++) {
    s->ifnames[i] = strdup(names[i]);
    if (s->ifnames[i] == NULL)
      return -ENOMEM;
  }
  return 0;
}

/* Frees s and everything it still holds (listeners are closed). */
static void server_free(ds_server *s)
{
  size_t i;
  for (i = 0; i < s->n; i++)
    entry_close(&s->e[i]);
  ds__ifwatch_free(s->watch);
  ds_timer_free(s->retry);
  if (s->ifnames != NULL)
    for (i = 0; s->ifnames[i] != NULL; i++)
      free(s->ifnames[i]);
  free(s->ifnames);
  free(s->e);
  free(s);
}

/* Returns 0 if every name of the allow-list is an interface of snap, else
 * -ENODEV with the name in err. */
static int check_ifnames(const ds_server *s, const ds__ifsnap *snap, char *err,
                         size_t errlen)
{
  size_t i, j;
  if (s->ifnames == NULL)
    return 0;
  for (i = 0; s->ifnames[i] != NULL; i++) {
    for (j = 0; j < snap->nlinks; j++)
      if (strcmp(snap->links[j].name, s->ifnames[i]) == 0)
        break;
    if (j == snap->nlinks)
      return ds__fail(err, errlen, -ENODEV, "interface '%s' does not exist",
                      s->ifnames[i]);
  }
  return 0;
}

/* Returns the error of a listen that bound nothing, with err explaining:
 * the first failed address's cause, or DS_ENOLOCALADDR. */
static int nothing_bound(const ds_server *s, char *err, size_t errlen)
{
  size_t i;
  for (i = 0; i < s->n; i++) {
    const entry *e = &s->e[i];
    if (e->a.state == DS_SERVER_FAILED)
      return ds__fail(err, errlen, e->a.error, "cannot listen on %s (%s): %s%s",
                      e->a.text, e->a.ifname, ds_strerror(e->a.error),
                      s->n > 1 ? "; no other address could be bound" : "");
  }
  return ds__fail(err, errlen, DS_ENOLOCALADDR,
                  "no local address to listen on (%s%s%s)",
                  s->family == AF_INET    ? "IPv4 only"
                  : s->family == AF_INET6 ? "IPv6 only"
                                          : "IPv4 and IPv6",
                  s->ifnames != NULL ? ", interfaces given" : "",
                  (s->flags & (DS_SERVER_NO_LOOPBACK | DS_SERVER_NO_LINKLOCAL))
                      ? ", some classes left out"
                      : "");
}

int ds_listen_all(ds_reactor *r, uint16_t port, const ds_server_options *opts,
                  ds_factory_fn factory, void *factory_data, ds_server **out,
                  char *err, size_t errlen)
{
  static const ds_server_options defaults;
  ds__ifsnap snap = {0};
  ds_server *s;
  size_t live;
  int rc;

  if (out == NULL)
    return ds__fail(err, errlen, -EINVAL, "no place for the server");
  *out = NULL;
  if (r == NULL || factory == NULL)
    return ds__fail(err, errlen, -EINVAL, "no reactor or protocol factory");
  if (opts == NULL)
    opts = &defaults;
  if (opts->family != 0 && opts->family != AF_INET && opts->family != AF_INET6)
    return ds__fail(err, errlen, -EAFNOSUPPORT,
                    "family must be 0, AF_INET or AF_INET6");
  if (opts->flags & ~(unsigned)(DS_SERVER_NO_LOOPBACK | DS_SERVER_NO_LINKLOCAL |
                                DS_SERVER_NO_FOLLOW))
    return ds__fail(err, errlen, -EINVAL, "unknown option flags 0x%x",
                    opts->flags);
  s = calloc(1, sizeof *s);
  if (s == NULL)
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  s->r = r;
  s->factory = factory;
  s->factory_data = factory_data;
  s->family = opts->family;
  s->flags = opts->flags;
  s->backlog = opts->backlog;
  s->port_tries = opts->port_tries ? opts->port_tries : PORT_TRIES_DEFAULT;
  if (s->port_tries > PORT_TRIES_MAX)
    s->port_tries = PORT_TRIES_MAX;
  s->notify = opts->notify;
  s->notify_data = opts->notify_data;
  s->port = port;
  rc = copy_ifnames(s, opts->interfaces);
  if (rc != 0) {
    ds__fail(err, errlen, rc, "out of memory");
    goto fail;
  }
  /* Subscribe before the snapshot, so no change falls in between. */
  if (!(s->flags & DS_SERVER_NO_FOLLOW)) {
    rc = ds__ifwatch_new(r, s->family, server_changed, s, &s->watch);
    if (rc == 0)
      rc = ds_timer_new(r, &s->retry, retry_cb, s);
    if (rc != 0) {
      ds__fail(err, errlen, rc, "netlink watch: %s", ds_strerror(rc));
      goto fail;
    }
  }
  rc = ds__ifsnap_take(&snap, s->family);
  if (rc != 0) {
    ds__fail(err, errlen, rc, "listing local addresses: %s", ds_strerror(rc));
    goto fail;
  }
  rc = check_ifnames(s, &snap, err, errlen);
  if (rc == 0) {
    rc = load_snapshot(s, &snap);
    if (rc != 0)
      ds__fail(err, errlen, rc, "out of memory");
  }
  ds__ifsnap_free(&snap);
  if (rc != 0)
    goto fail;
  bind_initial(s, port);
  live = count_state(s, DS_SERVER_BOUND);
  if (s->watch != NULL)
    live += count_state(s, DS_SERVER_WAITING);
  if (live == 0) {
    rc = nothing_bound(s, err, errlen);
    goto fail;
  }
  ds__reactor_ref(r);
  *out = s;
  return 0;

fail:
  server_free(s);
  return rc;
}

uint16_t ds_server_port(const ds_server *s)
{
  return s->port;
}

size_t ds_server_addrs(const ds_server *s, unsigned states, ds_server_addr *out,
                       size_t n)
{
  size_t i, k = 0;
  if (s->stopping)
    return 0;
  for (i = 0; i < s->n; i++) {
    if (!((unsigned)s->e[i].a.state & states))
      continue;
    if (k < n)
      out[k] = s->e[i].a;
    k++;
  }
  return k;
}

/* Runs the stop completion and frees the server. */
static void server_final(void *data)
{
  ds_server *s = data;
  ds_reactor *r = s->r;
  if (s->stop_cb != NULL)
    s->stop_cb(s, s->stop_data);
  server_free(s);
  ds__reactor_unref(r);
}

int ds_server_stop(ds_server *s, ds_server_stopped_fn cb, void *data)
{
  size_t i;
  if (s->stopping)
    return -EALREADY;
  s->stopping = 1;
  s->stop_cb = cb;
  s->stop_data = data;
  /* Every socket closes now; only the completion waits for a later
   * turn. */
  for (i = 0; i < s->n; i++)
    entry_close(&s->e[i]);
  ds__ifwatch_free(s->watch);
  s->watch = NULL;
  ds_timer_free(s->retry);
  s->retry = NULL;
  ds__reactor_defer(s->r, &s->stop_call, server_final, s);
  return 0;
}
