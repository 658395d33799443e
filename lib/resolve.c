/* The resolver: A and AAAA lookups answered from the hosts file or by
 * c-ares, driven by the reactor (no threads).
 *
 * A lookup first checks address literals, then the hosts file (read here,
 * for both families at once: c-ares 1.18.1's own hosts lookup is per
 * family and its path cannot be set), and only then asks DNS. DNS uses one
 * c-ares channel per lookup, because ares_cancel() of 1.18.1 cancels every
 * query of a channel and a channel is not thread-safe: with a channel of
 * its own, each lookup is cancelled alone, by ares_destroy(), which closes
 * its sockets at once. AAAA and A are separate ares_search() queries, AAAA
 * sent first, and each family is answered on its own.
 *
 * Except in the common case: a search that sends only the name itself
 * (no search list, or a trailing dot) starts without c-ares. The resolver
 * sends those UDP queries itself, as c-ares would, and parses the answers
 * with c-ares' parsers; a channel is opened only if an answer comes back
 * truncated (see "the first tries, by hand" below for why and how).
 *
 * c-ares' sockets go through the library's table of real socket calls
 * (ds__sys), created non-blocking and close-on-exec (with custom socket
 * functions c-ares sets neither). Its socket-state callback keeps one ds_io
 * watcher per socket; events run ares_process_fd(), and a ds_timer follows
 * ares_timeout() after each step.
 *
 * No user code runs inside c-ares: its callbacks only store the answer and
 * queue a deferred call (embedded in the lookup), which delivers on the
 * next reactor turn. So an answer is never delivered inside
 * ds_lookup_start(), even when c-ares completes inside ares_search(), and a
 * user callback may cancel its lookup (ares_destroy) without re-entering
 * c-ares.
 *
 * Timeouts follow glibc, not c-ares: `options timeout:N attempts:N` of
 * /etc/resolv.conf (and RES_OPTIONS), defaults 5 s and 2, passed as
 * ARES_OPT_TIMEOUTMS and ARES_OPT_TRIES. c-ares doubles the timeout per
 * round as glibc does, so a silent server costs the same time (5 + 10 s
 * by default, 1 s with timeout:1 attempts:1).
 *
 * NODATA and NXDOMAIN with a search list (c-ares 1.18.1 ares_search): the
 * status reported is the one of the name tried as-is (first when it has
 * at least ndots dots, else last), except that NXDOMAIN becomes NODATA when
 * any try of the search returned NODATA, as glibc's res_search does. So
 * "www.test" that exists without AAAA is DS_ENODATA for AAAA even when
 * www.test.SEARCHDOMAIN, tried next, does not exist; and "host" whose
 * host.SEARCHDOMAIN has only A is DS_ENODATA for AAAA although "host" as
 * is, tried last, is NXDOMAIN. A timeout or another error ends the search
 * with that error, and so does a SERVFAIL, unlike glibc: response checking
 * stays on (a SERVFAIL or REFUSED moves on to the next server, as in
 * glibc), and then a name that every server fails ends as
 * ARES_ECONNREFUSED, which stops ares_search; it is reported as
 * DS_ESERVFAIL (see note_servfail()).
 */
#include "internal.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DS__HOSTS_PATH "/etc/hosts"
#define DS__RESOLV_PATH "/etc/resolv.conf"
#define DS__NAME_MAX 253
#define DS__LABEL_MAX 63
/* glibc's defaults and limits (RES_TIMEOUT, RES_DFLRETRY, RES_MAXRETRANS,
 * RES_MAXRETRY). */
#define DS__TIMEOUT_S 5
#define DS__ATTEMPTS 2
#define DS__TIMEOUT_MAX_S 30
#define DS__ATTEMPTS_MAX 5
#define DS__NDOTS_MAX 15 /* RES_MAXNDOTS */
#define DS__MAXNS 3      /* MAXNS: glibc uses the first three servers */
#define DS__SEARCH_MAX 32
#define DS__HOSTS_NAMES 36 /* glibc keeps 35 aliases of a hosts line */

/* Index of a family's answer in a lookup: AAAA first, as it is sent. */
enum { ANS_AAAA = 0, ANS_A = 1 };

/* One family's answer. */
typedef struct answer {
  ds_lookup *l;
  int family; /* AF_INET6 or AF_INET */
  int status; /* 0 or the error delivered */
  ds_addr *addrs;
  size_t n, cap;
  int ttl; /* DNS: smallest TTL of the records, seconds; else DS_TTL_* */
  /* The name that answered, absolute (the question of the DNS answer:
   * with a search list, the name tried; the name as asked for the hosts
   * file; with a trailing dot, so that looking it up again asks exactly
   * it), and its canonical name (the owner of the address records, at the
   * end of a CNAME chain; in the hosts file, the line's first name;
   * without the trailing dot). Case as given; "" until known; a literal's
   * is itself. */
  char qname[DS__NAME_MAX + 2], canon[DS__NAME_MAX + 2];
  char aliases[DS__NAME_MAX + 2]; /* the hosts line's other names, spaced */
  unsigned wanted : 1;            /* requested by the caller */
  unsigned servfail : 1;          /* a server answered SERVFAIL for this type */
  unsigned done : 1;              /* status and addrs are final */
  unsigned delivered : 1;         /* the callback ran (or is running) */
} answer;

/* A c-ares socket and its watcher. */
typedef struct sockw {
  struct sockw *next;
  ds_lookup *l;
  ds_io *io;
  int fd;
} sockw;

typedef struct own own;
typedef struct dnsconf dnsconf;

struct ds_lookup {
  ds_reactor *r;
  ds_lookup_cb cb;
  void *user;
  dnsconf *conf;   /* what DNS runs with; NULL without DNS */
  own *own;        /* the resolver's own first tries; NULL when not used */
  ares_channel ch; /* NULL once closed, or until c-ares is needed */
  ds_timer *timer;
  sockw *socks;
  answer ans[2];
  int ready[2]; /* answers done but not delivered, in order */
  int nready, head;
  int dns_pending; /* answers c-ares still owes */
  ds__call call;
  unsigned queued : 1;     /* call is in the reactor's queue */
  unsigned delivering : 1; /* inside lookup_deliver() */
  unsigned cancelled : 1;
  unsigned local : 1;     /* answered from a literal or the hosts file */
  unsigned abandoned : 1; /* ended with queries and sockets still open */
};

/* ----------------------------------------------------------- c-ares setup */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_ENOTINITIALIZED;

/* Initialises c-ares once per process (ares_library_init is not
 * thread-safe on its own). */
static void lib_init(void)
{
  lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* Returns the library's code for a c-ares status other than success. */
static int map_status(int status)
{
  switch (status) {
  case ARES_ENOTFOUND:
    return DS_ENOTFOUND;
  case ARES_ENODATA:
    return DS_ENODATA;
  case ARES_ESERVFAIL:
    return DS_ESERVFAIL;
  case ARES_ETIMEOUT:
    return DS_EDNSTIMEOUT;
  case ARES_ENOMEM:
    return -ENOMEM;
  default:
    return DS_EDNS;
  }
}

/* c-ares' sockets, through the table of real socket calls. c-ares does not
 * set O_NONBLOCK or FD_CLOEXEC when it is given socket functions. Returns
 * the new socket or -1 with errno set. */
static ares_socket_t sock_open(int domain, int type, int protocol, void *u)
{
  int fd =
      ds__sys.socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  (void)u;
  /* Inside the shim, at its fd floor: a lookup in its helper thread takes
   * no number in the program's range. */
  return fd >= 0 ? ds__move_high(fd) : fd;
}

/* Returns close()'s result. */
static int sock_close(ares_socket_t fd, void *u)
{
  (void)u;
  return ds__sys.close(fd);
}

/* Returns connect()'s result (EINPROGRESS for TCP, as c-ares expects). */
static int sock_connect(ares_socket_t fd, const struct sockaddr *sa,
                        ares_socklen_t len, void *u)
{
  (void)u;
  return ds__sys.connect(fd, sa, len);
}

/* Notes a SERVFAIL reply (n bytes at p) in the answer of its question
 * type. c-ares 1.18.1 hides it: a SERVFAIL from every server ends the
 * query with ARES_ECONNREFUSED (the status it starts with), so the
 * resolver looks at the replies on their way in. Only UDP replies are
 * seen whole here; a SERVFAIL is never large enough for TCP. */
static void note_servfail(ds_lookup *l, const unsigned char *p, size_t n)
{
  size_t off = 12;
  unsigned qtype;

  /* A response (QR), RCODE 2, one question. */
  if (n < 12 || !(p[2] & 0x80) || (p[3] & 0x0f) != 2 || p[4] != 0 || p[5] != 1)
    return;
  while (off < n && p[off] != 0) {
    if (p[off] & 0xc0)
      return; /* no compression in a question's name */
    off += (size_t)p[off] + 1;
  }
  if (off + 2 >= n)
    return;
  qtype = (unsigned)p[off + 1] << 8 | p[off + 2];
  if (qtype == ns_t_a)
    l->ans[ANS_A].servfail = 1;
  else if (qtype == ns_t_aaaa)
    l->ans[ANS_AAAA].servfail = 1;
}

/* Returns recvfrom()'s result. */
static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t len,
                                  int flags, struct sockaddr *sa,
                                  ares_socklen_t *salen, void *u)
{
  ares_ssize_t n = ds__sys.recvfrom(fd, buf, len, flags, sa, salen);
  if (n > 0 && sa != NULL)
    note_servfail(u, buf, (size_t)n);
  return n;
}

/* Returns the bytes sent. sendmsg() with MSG_NOSIGNAL rather than writev(),
 * so that a DNS server closing its TCP end cannot raise SIGPIPE in the
 * host process. */
static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov,
                               int iovcnt, void *u)
{
  struct msghdr msg = {0};
  (void)u;
  msg.msg_iov = (struct iovec *)iov;
  msg.msg_iovlen = (size_t)iovcnt;
  return ds__sys.sendmsg(fd, &msg, MSG_NOSIGNAL);
}

static const struct ares_socket_functions sock_fns = {
    .asocket = sock_open,
    .aclose = sock_close,
    .aconnect = sock_connect,
    .arecvfrom = sock_recvfrom,
    .asendv = sock_sendv,
};

/* ------------------------------------------------------ answers, delivery */

static void lookup_deliver(void *p);

/* Queues the delivery call unless it is queued already. */
static void lookup_schedule(ds_lookup *l)
{
  if (l->queued)
    return;
  l->queued = 1;
  ds__reactor_defer(l->r, &l->call, lookup_deliver, l);
}

/* Marks a's answer final with status and queues its delivery (safe inside
 * c-ares: nothing else runs). */
static void answer_finish(answer *a, int status)
{
  ds_lookup *l = a->l;
  if (a->done || !a->wanted)
    return;
  a->done = 1;
  a->status = status;
  if (status != 0) {
    free(a->addrs);
    a->addrs = NULL;
    a->n = 0;
    a->ttl = DS_TTL_NONE;
  }
  l->ready[l->nready++] = (int)(a - l->ans);
  lookup_schedule(l);
}

/* Appends a copy of ad to a, unless a has it already. Returns 0 or
 * -ENOMEM. */
static int answer_add(answer *a, const ds_addr *ad)
{
  size_t i;
  for (i = 0; i < a->n; i++)
    if (ds_addr_compare(&a->addrs[i], ad) == 0)
      return 0;
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 4;
    ds_addr *na = realloc(a->addrs, cap * sizeof *na);
    if (na == NULL)
      return -ENOMEM;
    a->addrs = na;
    a->cap = cap;
  }
  a->addrs[a->n++] = *ad;
  return 0;
}

/* Finishes every wanted answer still open with status: a lookup that
 * cannot go on (no memory for a watcher or a timer). */
static void lookup_fail_pending(ds_lookup *l, int status)
{
  int i;
  for (i = 0; i < 2; i++)
    if (l->ans[i].wanted && !l->ans[i].done)
      answer_finish(&l->ans[i], status);
  l->dns_pending = 0;
  l->abandoned = 1;
}

/* Copies name into dst (DS__NAME_MAX + 2 bytes) with one trailing dot if
 * dot, else without; a name too long is left out (""). */
static void name_copy(char *dst, const char *name, int dot)
{
  size_t n = name != NULL ? strlen(name) : 0;
  if (n > 0 && name[n - 1] == '.')
    n--;
  if (n == 0 || n > DS__NAME_MAX) {
    dst[0] = '\0';
    return;
  }
  memcpy(dst, name, n);
  if (dot)
    dst[n++] = '.';
  dst[n] = '\0';
}

/* Records in a the name a DNS reply answers (its question) and its
 * canonical name: the owner of the first record of a's type in the
 * answer section (c-ares' h_name is the target of the first CNAME, not
 * the end of a chain). */
static void answer_names(answer *a, const unsigned char *abuf, int alen)
{
  const unsigned char *p = abuf + 12, *end = abuf + alen;
  int type = a->family == AF_INET6 ? ns_t_aaaa : ns_t_a;
  unsigned an;
  char *q = NULL;
  long len;

  if (alen <= 12 || ares_expand_name(p, abuf, alen, &q, &len) != ARES_SUCCESS)
    return;
  name_copy(a->qname, q, 1);
  name_copy(a->canon, q, 0);
  ares_free_string(q);
  p += len + 4; /* the question's type and class */
  for (an = (unsigned)abuf[6] << 8 | abuf[7]; an > 0 && p < end; an--) {
    unsigned rtype, rdlen;
    if (ares_expand_name(p, abuf, alen, &q, &len) != ARES_SUCCESS)
      return;
    p += len;
    if (end - p < 10) {
      ares_free_string(q);
      return;
    }
    rtype = (unsigned)p[0] << 8 | p[1];
    rdlen = (unsigned)p[8] << 8 | p[9];
    if ((int)rtype == type) {
      name_copy(a->canon, q, 0);
      ares_free_string(q);
      return;
    }
    ares_free_string(q);
    p += 10 + rdlen;
  }
}

/* Returns the addresses of a DNS reply of a's family in a, and their
 * smallest TTL in a->ttl. Returns 0 with at least one address, or the
 * status to deliver. */
static int answer_parse(answer *a, unsigned char *abuf, int alen)
{
  /* The TTLs of the first 64 records: one RRset has one TTL (RFC 2181
   * 5.2), so a longer answer says nothing more. */
  enum { NTTL = 64 };
  union {
    struct ares_addrttl v4[NTTL];
    struct ares_addr6ttl v6[NTTL];
  } ttls;
  struct hostent *he = NULL;
  ds_addr ad;
  int rc, i, nttl = NTTL;

  if (a->family == AF_INET)
    rc = ares_parse_a_reply(abuf, alen, &he, ttls.v4, &nttl);
  else
    rc = ares_parse_aaaa_reply(abuf, alen, &he, ttls.v6, &nttl);
  if (rc != ARES_SUCCESS) {
    if (he != NULL)
      ares_free_hostent(he);
    return map_status(rc);
  }
  answer_names(a, abuf, alen);
  rc = 0;
  for (i = 0; he->h_addr_list[i] != NULL && rc == 0; i++) {
    memset(&ad, 0, sizeof ad);
    ad.family = a->family;
    memcpy(ad.ip.bytes, he->h_addr_list[i], a->family == AF_INET ? 4 : 16);
    rc = answer_add(a, &ad);
  }
  ares_free_hostent(he);
  for (i = 0; i < nttl && i < NTTL; i++) {
    int t = a->family == AF_INET ? ttls.v4[i].ttl : ttls.v6[i].ttl;
    if (t < 0)
      t = 0;
    if (a->ttl < 0 || t < a->ttl)
      a->ttl = t;
  }
  if (rc == 0 && a->n == 0)
    rc = DS_ENODATA; /* a CNAME without an address of this family */
  return rc;
}

/* c-ares' callback for one family's ares_search(). Stores the answer; the
 * delivery runs on a later reactor turn. */
static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
                      int alen)
{
  answer *a = arg;
  (void)timeouts;
  /* ares_destroy() ends the queries of a cancelled or finished lookup with
   * ARES_EDESTRUCTION: nothing is delivered for them. */
  if (status == ARES_EDESTRUCTION || a->done)
    return;
  a->l->dns_pending--;
  if (status == ARES_SUCCESS)
    status = answer_parse(a, abuf, alen);
  else if (status == ARES_ECONNREFUSED && a->servfail)
    status = DS_ESERVFAIL; /* see note_servfail() */
  else
    status = map_status(status);
  answer_finish(a, status);
}

/* ------------------------------------------------------- reactor plumbing */

static void own_free(own *o);
static int own_deadline(const own *o, uint64_t *ms);
static void own_timeouts(own *o);

/* Stops and frees every watcher left (c-ares normally frees them through
 * the socket-state callback). */
static void socks_free(ds_lookup *l)
{
  sockw *s, *next;
  for (s = l->socks; s != NULL; s = next) {
    next = s->next;
    ds_io_free(s->io);
    free(s);
  }
  l->socks = NULL;
}

/* Closes the channel: queries and sockets go at once (ares_destroy runs
 * the socket-state callback for each socket, before closing it). */
static void lookup_close_dns(ds_lookup *l)
{
  ares_channel ch = l->ch;
  own_free(l->own);
  l->own = NULL;
  if (ch != NULL) {
    l->ch = NULL;
    ares_destroy(ch);
  }
  socks_free(l);
  ds_timer_free(l->timer);
  l->timer = NULL;
}

/* Re-arms the timer for the earliest deadline of the resolver's own
 * queries and of c-ares (ares_timeout()). Returns 0 or -ENOMEM. */
static int lookup_rearm(ds_lookup *l)
{
  struct timeval tvbuf, *tv;
  uint64_t ms = UINT64_MAX, c;
  int any = 0;

  if (l->timer == NULL)
    return 0;
  if (l->own != NULL)
    any = own_deadline(l->own, &ms);
  if (l->ch != NULL) {
    tv = ares_timeout(l->ch, NULL, &tvbuf);
    if (tv != NULL) {
      /* ares_timeout() truncates to milliseconds: one more, so that the
       * timer never fires before c-ares sees the deadline passed. */
      c = (uint64_t)tv->tv_sec * 1000u + ((uint64_t)tv->tv_usec + 999u) / 1000u;
      if (c + 1 < ms)
        ms = c + 1;
      any = 1;
    }
  }
  if (!any) {
    ds_timer_stop(l->timer);
    return 0;
  }
  return ds_timer_start(l->timer, ms, 0);
}

/* After a c-ares step: re-arms the timer, or ends the lookup when that is
 * impossible. */
static void lookup_after_step(ds_lookup *l)
{
  if (lookup_rearm(l) != 0)
    lookup_fail_pending(l, -ENOMEM);
}

static void lookup_io(ds_io *w, unsigned events, void *data)
{
  sockw *s = data;
  ds_lookup *l = s->l; /* s may be freed inside ares_process_fd */
  int fd = s->fd;
  (void)w;
  if (l->ch == NULL)
    return;
  ares_process_fd(l->ch,
                  (events & (DS_READABLE | DS_ERROR)) ? fd : ARES_SOCKET_BAD,
                  (events & DS_WRITABLE) ? fd : ARES_SOCKET_BAD);
  lookup_after_step(l);
}

static void lookup_timer(ds_timer *t, void *data)
{
  ds_lookup *l = data;
  (void)t;
  if (l->own != NULL)
    own_timeouts(l->own); /* may hand a query over to c-ares */
  if (l->ch != NULL)
    ares_process_fd(l->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  lookup_after_step(l);
}

/* c-ares' socket-state callback: keeps one watcher per socket, freed when
 * c-ares says the socket is going (before it closes it). */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
  ds_lookup *l = data;
  sockw *s, **pp;
  int rc;

  for (pp = &l->socks; (s = *pp) != NULL; pp = &s->next)
    if (s->fd == fd)
      break;
  if (!readable && !writable) {
    if (s != NULL) {
      *pp = s->next;
      ds_io_free(s->io);
      free(s);
    }
    return;
  }
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL) {
      lookup_fail_pending(l, -ENOMEM);
      return;
    }
    rc = ds_io_new(l->r, &s->io, fd, lookup_io, s);
    if (rc != 0) {
      free(s);
      lookup_fail_pending(l, rc);
      return;
    }
    s->l = l;
    s->fd = fd;
    s->next = l->socks;
    l->socks = s;
  }
  rc = ds_io_set(s->io,
                 (readable ? DS_READABLE : 0u) | (writable ? DS_WRITABLE : 0u));
  if (rc != 0)
    lookup_fail_pending(l, rc);
}

static void dnsconf_free(dnsconf *c);

/* Closes what l still has open and frees it; its queued delivery, if
 * any, is taken back. */
static void lookup_free(ds_lookup *l)
{
  ds_reactor *r = l->r;
  if (l->queued)
    ds__reactor_undefer(r, &l->call);
  lookup_close_dns(l);
  dnsconf_free(l->conf);
  free(l->ans[0].addrs);
  free(l->ans[1].addrs);
  free(l);
  ds__reactor_unref(r);
}

/* Returns 1 when every wanted answer has been delivered. */
static int lookup_all_delivered(const ds_lookup *l)
{
  int i;
  for (i = 0; i < 2; i++)
    if (l->ans[i].wanted && !l->ans[i].delivered)
      return 0;
  return 1;
}

/* The deferred call: delivers the answers that are ready, in the order
 * they came, then frees the lookup after its last answer. */
static void lookup_deliver(void *p)
{
  ds_lookup *l = p;

  l->queued = 0;
  /* A user callback running the reactor again would come back here. */
  if (l->delivering)
    return;
  /* With every answer in, the queries have closed their sockets already
   * (c-ares and the resolver's own client do when their last query ends);
   * the rest (a c-ares channel, the timer) is freed after the callbacks,
   * by lookup_free(), so that it does not delay the first connection
   * attempt. Only a lookup abandoned early (no memory for a watcher) may
   * still have queries and sockets: those go first. */
  if (!l->cancelled && l->abandoned)
    lookup_close_dns(l);
  l->delivering = 1;
  while (!l->cancelled && l->head < l->nready) {
    answer *a = &l->ans[l->ready[l->head++]];
    a->delivered = 1;
    l->cb(l, a->family, a->status, a->n > 0 ? a->addrs : NULL, a->n, l->user);
  }
  l->delivering = 0;
  if (l->cancelled || lookup_all_delivered(l))
    lookup_free(l);
}

/* ------------------------------------------------------ names and config */

/* Returns 0 if name is a host name the resolver may look up, else
 * DS_EBADNAME with err saying what is wrong: empty, longer than 253
 * characters, a label empty (`..`, a leading dot) or longer than 63,
 * starting or ending with '-', a character other than letters, digits,
 * '-' and '_', or an all-digit last label (`1.2.3` is no address literal
 * here, and no DNS name either). One trailing dot is allowed. */
static int check_name(const char *name, char *err, size_t errlen)
{
  size_t len = strlen(name), i, start = 0;
  int digits_only = 1;

  if (len == 0)
    return ds__fail(err, errlen, DS_EBADNAME, "empty host name");
  if (strcmp(name, ".") == 0)
    return ds__fail(err, errlen, DS_EBADNAME,
                    "'.' (the DNS root) is not a host name");
  if (name[len - 1] == '.')
    len--;
  if (len > DS__NAME_MAX)
    return ds__fail(err, errlen, DS_EBADNAME,
                    "host name '%.40s...' is %zu characters long; the limit "
                    "is %d",
                    name, len, DS__NAME_MAX);
  for (i = 0; i <= len; i++) {
    unsigned char c = i < len ? (unsigned char)name[i] : '.';
    if (c == '.') {
      size_t ll = i - start;
      if (ll == 0)
        return ds__fail(err, errlen, DS_EBADNAME,
                        "host name '%s' has an empty label (%s)", name,
                        i == 0 ? "leading dot" : "\"..\"");
      if (ll > DS__LABEL_MAX)
        return ds__fail(err, errlen, DS_EBADNAME,
                        "host name '%.40s...' has a label of %zu "
                        "characters; the limit is %d",
                        name, ll, DS__LABEL_MAX);
      if (name[start] == '-' || name[i - 1] == '-')
        return ds__fail(err, errlen, DS_EBADNAME,
                        "host name '%s': label '%.*s' %s with '-'", name,
                        (int)ll, name + start,
                        name[start] == '-' ? "starts" : "ends");
      if (i < len)
        digits_only = 1;
      start = i + 1;
      continue;
    }
    if (!isascii(c) || !(isalnum(c) || c == '-' || c == '_')) {
      if (isprint(c))
        return ds__fail(err, errlen, DS_EBADNAME,
                        "host name '%.64s': bad character '%c' at position "
                        "%zu",
                        name, c, i + 1);
      return ds__fail(err, errlen, DS_EBADNAME,
                      "host name: bad byte 0x%02x at position %zu", c, i + 1);
    }
    if (!isdigit(c))
      digits_only = 0;
  }
  if (digits_only)
    return ds__fail(err, errlen, DS_EBADNAME,
                    "'%s' is neither an address literal nor a host name "
                    "(its last label is all digits)",
                    name);
  return 0;
}

/* Returns 1 if the hosts-file token tok names name (namelen characters,
 * no trailing dot), case-insensitively and ignoring a trailing dot. */
static int hosts_name_match(const char *tok, const char *name, size_t namelen)
{
  if (strncasecmp(tok, name, namelen) != 0)
    return 0;
  return tok[namelen] == '\0' ||
         (tok[namelen] == '.' && tok[namelen + 1] == '\0');
}

/* A line reader for the hosts file and resolv.conf: open() and read()
 * into a buffer on the caller's stack. Every lookup that is not a literal
 * reads the hosts file, and the first one of a process pays for whatever
 * it touches for the first time; stdio (fopen, getline, strtok_r, fclose)
 * was the only use of stdio's file code on the way to a first answer (see
 * "the first tries, by hand") and cost a heap allocation of the FILE and
 * its 4 KiB buffer, an fstat() and the first calls, through lazy binding,
 * of four more libc functions. A line longer than the buffer moves to the
 * heap. */
typedef struct lines {
  int fd;
  char *buf; /* small, or a heap copy once a line outgrew it */
  size_t cap, start, end;
  int eof;
  char small[4096];
} lines;

/* Opens path for lines_next(). Returns 0 or a negative errno. */
static int lines_open(lines *lr, const char *path)
{
  lr->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (lr->fd < 0)
    return -errno;
  lr->buf = lr->small;
  lr->cap = sizeof lr->small;
  lr->start = lr->end = 0;
  lr->eof = 0;
  return 0;
}

/* Returns the next line, NUL-terminated and without its newline (the
 * last one may lack it), or NULL at the end of the file. A read error
 * ends the file, as it ended getline(); running out of memory for a long
 * line sets *rc to -ENOMEM. */
static char *lines_next(lines *lr, int *rc)
{
  for (;;) {
    char *line = lr->buf + lr->start;
    char *nl = memchr(line, '\n', lr->end - lr->start);
    ssize_t n;
    if (nl != NULL || (lr->eof && lr->start < lr->end)) {
      if (nl == NULL)
        nl = lr->buf + lr->end; /* room kept below for this NUL */
      *nl = '\0';
      lr->start = (size_t)(nl - lr->buf) + (nl < lr->buf + lr->end);
      return line;
    }
    if (lr->eof)
      return NULL;
    if (lr->start > 0) {
      memmove(lr->buf, line, lr->end - lr->start);
      lr->end -= lr->start;
      lr->start = 0;
    }
    if (lr->end + 1 >= lr->cap) {
      size_t cap = lr->cap * 2;
      char *nb = lr->buf == lr->small ? malloc(cap) : realloc(lr->buf, cap);
      if (nb == NULL) {
        *rc = -ENOMEM;
        return NULL;
      }
      if (lr->buf == lr->small)
        memcpy(nb, lr->small, lr->end);
      lr->buf = nb;
      lr->cap = cap;
    }
    n = read(lr->fd, lr->buf + lr->end, lr->cap - 1 - lr->end);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      lr->eof = 1;
    else
      lr->end += (size_t)n;
  }
}

/* Closes what lines_open() opened. */
static void lines_close(lines *lr)
{
  if (lr->buf != lr->small)
    free(lr->buf);
  ds__sys.close(lr->fd);
}

/* Returns the next token of blank-separated text at *p (NUL-terminated
 * there), moving *p past it, or NULL when only blanks are left. */
static char *next_token(char **p)
{
  char *tok = *p, *end;
  while (*tok == ' ' || *tok == '\t' || *tok == '\r')
    tok++;
  if (*tok == '\0')
    return NULL;
  end = tok + strcspn(tok, " \t\r");
  *p = end;
  if (*end != '\0') {
    *end = '\0';
    *p = end + 1;
  }
  return tok;
}

/* Looks name up in the hosts file at path, as glibc's files backend does
 * with `multi on`: every line naming it (as canonical name or alias)
 * counts. Adds the addresses of the wanted families to l's answers, in
 * file order. Returns 1 if name has any address there (of any family), 0
 * if not or if a missing_ok file does not exist, or a negative errno with
 * err naming the file. The address of a line is parsed only when the line
 * names name. */
static int hosts_lookup(ds_lookup *l, const char *path, int missing_ok,
                        const char *name, char *err, size_t errlen)
{
  lines lr;
  char *line, *addr, *tok, *hash;
  size_t namelen = strlen(name);
  int found = 0, rc;
  ds_addr ad;

  if (namelen > 0 && name[namelen - 1] == '.')
    namelen--;
  rc = lines_open(&lr, path);
  if (rc != 0) {
    if (missing_ok && (rc == -ENOENT || rc == -ENOTDIR || rc == -EACCES))
      return 0;
    return ds__fail(err, errlen, rc, "hosts file %s: %s", path, strerror(-rc));
  }
  while (rc == 0 && (line = lines_next(&lr, &rc)) != NULL) {
    answer *a;
    char *names[DS__HOSTS_NAMES];
    int match = 0, nn = 0, i;
    if ((hash = strchr(line, '#')) != NULL)
      *hash = '\0';
    addr = next_token(&line);
    if (addr == NULL)
      continue;
    while (!match && (tok = next_token(&line)) != NULL) {
      if (nn < DS__HOSTS_NAMES)
        names[nn++] = tok;
      match = hosts_name_match(tok, name, namelen);
    }
    /* The line's other names, the aliases of its first. */
    while (match && (tok = next_token(&line)) != NULL)
      if (nn < DS__HOSTS_NAMES)
        names[nn++] = tok;
    /* Lines with an address this parser refuses (or a scope naming a
     * missing interface) are skipped, as glibc skips what it cannot
     * parse. */
    if (!match || ds_addr_parse(&ad, addr, 0, NULL, 0) != 0)
      continue;
    found = 1;
    a = &l->ans[ad.family == AF_INET6 ? ANS_AAAA : ANS_A];
    if (a->wanted && a->canon[0] == '\0') {
      size_t used = 0, n;
      name_copy(a->qname, name, 1);
      name_copy(a->canon, names[0], 0);
      for (i = 1; i < nn; i++) {
        n = strlen(names[i]);
        if (used + n + 2 > sizeof a->aliases)
          break;
        if (used > 0)
          a->aliases[used++] = ' ';
        memcpy(a->aliases + used, names[i], n + 1);
        used += n;
      }
    }
    if (a->wanted)
      rc = answer_add(a, &ad);
  }
  lines_close(&lr);
  if (rc != 0)
    return ds__fail(err, errlen, rc, "out of memory");
  return found;
}

/* The system's resolver configuration, read once per lookup and handed
 * to c-ares whole, so that c-ares does not read /etc/resolv.conf a second
 * time (it skips the file when every setting comes as an option). */
typedef struct resconf {
  unsigned timeout_s, attempts, ndots;
  int rotate;
  struct ares_addr_port_node *servers; /* `nameserver` lines, in order */
  int nservers;
  char *domains[DS__SEARCH_MAX]; /* `search` / `domain`, or LOCALDOMAIN */
  int ndomains;
  int have_domains; /* a search list was given (even an empty one) */
} resconf;

/* Applies glibc's `timeout:N`, `attempts:N`, `ndots:N` and `rotate` from
 * an options string (the rest of an `options` line, or RES_OPTIONS) to c,
 * clamped as glibc clamps them. */
static void apply_options(const char *p, resconf *c)
{
  while (*p != '\0') {
    const char *end;
    unsigned long v;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
      p++;
    end = p;
    while (*end != '\0' && !isspace((unsigned char)*end))
      end++;
    if (strncmp(p, "timeout:", 8) == 0 && isdigit((unsigned char)p[8])) {
      v = strtoul(p + 8, NULL, 10);
      c->timeout_s = v < 1                   ? 1
                     : v > DS__TIMEOUT_MAX_S ? DS__TIMEOUT_MAX_S
                                             : (unsigned)v;
    } else if (strncmp(p, "attempts:", 9) == 0 &&
               isdigit((unsigned char)p[9])) {
      v = strtoul(p + 9, NULL, 10);
      c->attempts = v < 1                  ? 1
                    : v > DS__ATTEMPTS_MAX ? DS__ATTEMPTS_MAX
                                           : (unsigned)v;
    } else if (strncmp(p, "ndots:", 6) == 0 && isdigit((unsigned char)p[6])) {
      v = strtoul(p + 6, NULL, 10);
      c->ndots = v > DS__NDOTS_MAX ? DS__NDOTS_MAX : (unsigned)v;
    } else if (end - p == 6 && strncmp(p, "rotate", 6) == 0) {
      c->rotate = 1;
    }
    p = end;
  }
}

/* Frees what resconf_read() allocated. */
static void resconf_free(resconf *c)
{
  int i;
  struct ares_addr_port_node *s = c->servers;
  while (s != NULL) {
    struct ares_addr_port_node *next = s->next;
    free(s);
    s = next;
  }
  c->servers = NULL;
  for (i = 0; i < c->ndomains; i++)
    free(c->domains[i]);
  c->ndomains = 0;
}

/* Replaces c's search list with the names in list (whitespace-separated),
 * as glibc's `search` line and LOCALDOMAIN do. Returns 0 or -ENOMEM. */
static int set_search(resconf *c, const char *list)
{
  int i;
  for (i = 0; i < c->ndomains; i++)
    free(c->domains[i]);
  c->ndomains = 0;
  c->have_domains = 1;
  while (*list != '\0') {
    size_t n;
    while (isspace((unsigned char)*list))
      list++;
    n = strcspn(list, " \t\r\n");
    if (n > 0 && c->ndomains < DS__SEARCH_MAX) {
      c->domains[c->ndomains] = strndup(list, n);
      if (c->domains[c->ndomains] == NULL)
        return -ENOMEM;
      c->ndomains++;
    }
    list += n;
  }
  return 0;
}

/* Appends the name server text (an IPv4 or IPv6 literal) to c, as glibc
 * does for its first three `nameserver` lines. A scoped IPv6 server is
 * skipped: c-ares 1.18.1 cannot use one. Returns 0 or -ENOMEM. */
static int add_nameserver(resconf *c, const char *text)
{
  struct ares_addr_port_node *node, **tail;
  unsigned char buf[16];
  int family;

  if (c->nservers >= DS__MAXNS)
    return 0;
  if (inet_pton(AF_INET, text, buf) == 1)
    family = AF_INET;
  else if (inet_pton(AF_INET6, text, buf) == 1)
    family = AF_INET6;
  else
    return 0;
  node = calloc(1, sizeof *node);
  if (node == NULL)
    return -ENOMEM;
  node->family = family;
  memcpy(family == AF_INET ? (void *)&node->addr.addr4
                           : (void *)&node->addr.addr6,
         buf, family == AF_INET ? 4 : 16);
  node->udp_port = 53;
  node->tcp_port = 53;
  for (tail = &c->servers; *tail != NULL; tail = &(*tail)->next)
    ;
  *tail = node;
  c->nservers++;
  return 0;
}

/* Reads the system's resolver configuration, as glibc does: the
 * `nameserver`, `search`/`domain` and `options` lines of /etc/resolv.conf
 * (the last `search` or `domain` line wins), then LOCALDOMAIN and
 * RES_OPTIONS, over glibc's defaults (timeout 5 s, 2 attempts, ndots 1,
 * 127.0.0.1 when no server is named, the host name's domain when no
 * search list is given). Returns 0 or -ENOMEM. */
static int resconf_read(resconf *c)
{
  lines lr;
  const char *env;
  char *line, host[256];
  int rc = 0;

  memset(c, 0, sizeof *c);
  c->timeout_s = DS__TIMEOUT_S;
  c->attempts = DS__ATTEMPTS;
  c->ndots = 1;
  if (lines_open(&lr, DS__RESOLV_PATH) == 0) {
    while (rc == 0 && (line = lines_next(&lr, &rc)) != NULL) {
      char *p = line, *word, *arg;
      size_t n;
      if (*p == '#' || *p == ';')
        continue;
      p[strcspn(p, "#;")] = '\0'; /* c-ares drops trailing comments too */
      while (isspace((unsigned char)*p))
        p++;
      n = strcspn(p, " \t\r\n");
      word = p;
      arg = p + n;
      if (*arg != '\0')
        *arg++ = '\0';
      while (isspace((unsigned char)*arg))
        arg++;
      if (strcmp(word, "nameserver") == 0) {
        arg[strcspn(arg, " \t\r\n")] = '\0';
        rc = add_nameserver(c, arg);
      } else if (strcmp(word, "search") == 0) {
        rc = set_search(c, arg);
      } else if (strcmp(word, "domain") == 0) {
        arg[strcspn(arg, " \t\r\n")] = '\0';
        rc = set_search(c, arg);
      } else if (strcmp(word, "options") == 0) {
        apply_options(arg, c);
      }
    }
    lines_close(&lr);
  }
  env = secure_getenv("LOCALDOMAIN");
  if (rc == 0 && env != NULL)
    rc = set_search(c, env);
  env = secure_getenv("RES_OPTIONS");
  if (env != NULL)
    apply_options(env, c);
  if (rc == 0 && !c->have_domains && gethostname(host, sizeof host) == 0) {
    char *dot;
    host[sizeof host - 1] = '\0';
    dot = strchr(host, '.');
    if (dot != NULL && dot[1] != '\0')
      rc = set_search(c, dot + 1);
  }
  if (rc == 0 && c->servers == NULL)
    rc = add_nameserver(c, "127.0.0.1");
  if (rc != 0)
    resconf_free(c);
  return rc;
}

/* Frees a server list made by parse_servers(). */
static void servers_free(struct ares_addr_port_node *s)
{
  while (s != NULL) {
    struct ares_addr_port_node *next = s->next;
    free(s);
    s = next;
  }
}

/* Parses the servers option: comma-separated `192.0.2.2`, `2001:db8::2`,
 * `[2001:db8::2]`, `192.0.2.2:5353`, `[2001:db8::2]:5353`. Returns 0 with
 * the list in *out, or DS_EBADADDR (-ENOMEM) with err naming the bad
 * entry. */
static int parse_servers(const char *csv, struct ares_addr_port_node **out,
                         char *err, size_t errlen)
{
  struct ares_addr_port_node *head = NULL, **tail = &head, *node;
  const char *p = csv;
  char entry[DS_ADDR_STRLEN + 8], why[160];
  int rc = 0;

  *out = NULL;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    ds_addr ad;

    while (len > 0 && (*p == ' ' || *p == '\t')) {
      p++;
      len--;
    }
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    if (len == 0) {
      rc = ds__fail(err, errlen, DS_EBADADDR, "servers '%.80s': empty entry",
                    csv);
      break;
    }
    if (len >= sizeof entry) {
      rc = ds__fail(err, errlen, DS_EBADADDR,
                    "servers: bad entry '%.*s...': too long", 40, p);
      break;
    }
    memcpy(entry, p, len);
    entry[len] = '\0';
    why[0] = '\0';
    if (entry[0] == '[' && entry[len - 1] == ']') {
      entry[len - 1] = '\0';
      rc = ds_addr_parse(&ad, entry + 1, 53, why, sizeof why);
      entry[len - 1] = ']';
      if (rc == 0 && ad.family != AF_INET6) {
        rc = DS_EBADADDR;
        snprintf(why, sizeof why, "brackets are for IPv6 only");
      }
    } else if (entry[0] == '[' ||
               (strchr(entry, ':') != NULL && strchr(entry, '.') != NULL &&
                strchr(entry, ':') == strrchr(entry, ':'))) {
      /* `[v6]:port`, or IPv4 with one colon: `192.0.2.2:5353`. */
      rc = ds_addr_parse_hostport(&ad, entry, why, sizeof why);
    } else {
      rc = ds_addr_parse(&ad, entry, 53, why, sizeof why);
    }
    if (rc == 0 && ad.scope_id != 0) {
      rc = DS_EBADADDR;
      snprintf(why, sizeof why, "c-ares 1.18.1 cannot use a scope id");
    }
    if (rc == 0 && ad.port == 0) {
      rc = DS_EBADADDR;
      snprintf(why, sizeof why, "port 0");
    }
    if (rc != 0) {
      rc = ds__fail(err, errlen, rc == -ENODEV ? rc : DS_EBADADDR,
                    "servers: bad entry '%s': %s", entry,
                    why[0] ? why : ds_strerror(rc));
      break;
    }
    node = calloc(1, sizeof *node);
    if (node == NULL) {
      rc = ds__fail(err, errlen, -ENOMEM, "out of memory");
      break;
    }
    node->family = ad.family;
    if (ad.family == AF_INET)
      memcpy(&node->addr.addr4, &ad.ip.v4, 4);
    else
      memcpy(&node->addr.addr6, &ad.ip.v6, 16);
    node->udp_port = ad.port;
    node->tcp_port = ad.port;
    *tail = node;
    tail = &node->next;
    if (end == NULL)
      break;
    p = end + 1;
  }
  if (rc != 0) {
    servers_free(head);
    return rc;
  }
  *out = head;
  return 0;
}

/* What the DNS part of a lookup runs with, kept while the lookup lives,
 * so that c-ares can take over from the resolver's own first tries. */
struct dnsconf {
  resconf rc;
  struct ares_addr_port_node *servers;     /* the caller's (owned), or rc's */
  struct ares_addr_port_node *own_servers; /* the caller's list, to free */
  unsigned timeout_ms, attempts;
  char name[DS__NAME_MAX + 2];
};

static void dnsconf_free(dnsconf *c)
{
  if (c == NULL)
    return;
  resconf_free(&c->rc);
  servers_free(c->own_servers);
  free(c);
}

/* Reads the system's configuration for l (resolv.conf, LOCALDOMAIN,
 * RES_OPTIONS) and applies opts over it; takes servers (the caller's, or
 * NULL for resolv.conf's). Returns 0 or -ENOMEM (servers freed then). */
static int dnsconf_new(ds_lookup *l, const char *name,
                       const ds_resolver_opts *opts,
                       struct ares_addr_port_node *servers)
{
  dnsconf *c = calloc(1, sizeof *c);
  if (c == NULL || resconf_read(&c->rc) != 0) {
    free(c);
    servers_free(servers);
    return -ENOMEM;
  }
  c->own_servers = servers;
  c->servers = servers != NULL ? servers : c->rc.servers;
  c->timeout_ms = c->rc.timeout_s * 1000u;
  c->attempts = c->rc.attempts;
  if (opts != NULL && opts->timeout_ms != 0)
    c->timeout_ms = opts->timeout_ms;
  if (opts != NULL && opts->attempts != 0)
    c->attempts = opts->attempts;
  if (c->timeout_ms > INT32_MAX)
    c->timeout_ms = INT32_MAX;
  if (c->attempts > 100)
    c->attempts = 100;
  snprintf(c->name, sizeof c->name, "%s", name);
  l->conf = c;
  return 0;
}

/* Opens l's c-ares channel from l->conf. Everything c-ares would read
 * from resolv.conf is given as options, so c-ares does not read it again
 * (nor nsswitch.conf). Returns 0 or an error with err saying why. */
static int channel_open(ds_lookup *l, char *err, size_t errlen)
{
  dnsconf *c = l->conf;
  struct ares_options ao;
  char lookups[] = "b";
  int rc;

  pthread_once(&lib_once, lib_init);
  if (lib_status != ARES_SUCCESS)
    return ds__fail(err, errlen, DS_EDNS, "c-ares: %s",
                    ares_strerror(lib_status));
  memset(&ao, 0, sizeof ao);
  ao.timeout = (int)c->timeout_ms;
  ao.tries = (int)c->attempts;
  ao.ndots = (int)c->rc.ndots;
  ao.domains = c->rc.domains;
  ao.ndomains = c->rc.ndomains;
  ao.servers = NULL; /* set below, with ports and IPv6 */
  ao.nservers = 0;
  ao.sortlist = NULL; /* only ares_gethostbyname() sorts with it */
  ao.nsort = 0;
  /* Only DNS: the hosts file was read already, for both families. */
  ao.lookups = lookups;
  ao.sock_state_cb = sock_state;
  ao.sock_state_cb_data = l;
  rc = ares_init_options(
      &l->ch, &ao,
      ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS | ARES_OPT_DOMAINS |
          ARES_OPT_SERVERS | ARES_OPT_SORTLIST | ARES_OPT_LOOKUPS |
          ARES_OPT_SOCK_STATE_CB |
          (c->rc.rotate ? ARES_OPT_ROTATE : ARES_OPT_NOROTATE));
  if (rc != ARES_SUCCESS) {
    l->ch = NULL;
    return ds__fail(err, errlen, map_status(rc), "c-ares: %s",
                    ares_strerror(rc));
  }
  rc = ares_set_servers_ports(l->ch, c->servers);
  if (rc != ARES_SUCCESS) {
    ares_destroy(l->ch);
    l->ch = NULL;
    return ds__fail(err, errlen, map_status(rc), "c-ares servers: %s",
                    ares_strerror(rc));
  }
  ares_set_socket_functions(l->ch, &sock_fns, l);
  return 0;
}

/* Sends a's search through c-ares. */
static void channel_search(ds_lookup *l, answer *a)
{
  ares_search(l->ch, l->conf->name, ns_c_in,
              a->family == AF_INET6 ? ns_t_aaaa : ns_t_a, on_answer, a);
}

/* ---------------------------------------------- the first tries, by hand
 *
 * c-ares' first use in a process is most of what a name costs over a
 * literal there (on the benchmark's VM some 0.5 ms: its 72 KiB channel is
 * 18 new pages, then its own code, stdio for /dev/urandom, getenv, all
 * for the first time). In the common case nothing of c-ares is needed
 * but its answer parser: a search that sends only the name itself (a
 * trailing dot, or no search list) over UDP. There the resolver sends the
 * queries itself, as c-ares 1.18.1 would send them, to the same servers
 * with the same schedule, and c-ares takes over only when an answer is
 * truncated (TCP). What follows c-ares' UDP path (ares_send.c,
 * ares_process.c): the query (ID, RD, one question, no EDNS), the server
 * of the first try (the first, or the next in turn with `rotate`), the
 * tries (each server `attempts` times, the timeout doubling per round),
 * one connected socket per server shared by the queries and kept across
 * tries (a late answer to an earlier try still counts), an answer taken
 * only with the ID and the question of a query still waiting, SERVFAIL,
 * NOTIMP and REFUSED moving on to the next server (never asking that
 * server again, with more than one), a socket error closing the socket
 * and moving on in the same way, and the end status of ares_query(). */

#define DS__OWN_MAXNS 8  /* more servers: c-ares does it all */
#define DS__PACKETSZ 512 /* a longer UDP answer counts as truncated */

/* One server of the resolver's own queries, and its socket. */
typedef struct own_server {
  own *o;
  struct sockaddr_storage sa;
  socklen_t salen;
  int fd; /* -1 while closed */
  ds_io *io;
} own_server;

/* One family's query (indexed like the lookup's answers). */
typedef struct own_query {
  unsigned char pkt[12 + DS__NAME_MAX + 2 + 4];
  size_t len;
  int waiting;       /* sent, no final answer yet */
  int server;        /* the server of the current try */
  unsigned tries;    /* c-ares' try_count: tries made, over all servers */
  int error;         /* status when every try fails */
  uint64_t deadline; /* of the current try, monotonic ns */
  unsigned char skip[DS__OWN_MAXNS]; /* servers this query gives up on */
} own_query;

struct own {
  ds_lookup *l;
  own_server srv[DS__OWN_MAXNS];
  int nsrv;
  own_query q[2];
};

/* Writes the query ares_create_query() makes for name (a name check_name()
 * accepted) into b: id, recursion desired, one question of type in class
 * IN. Returns its length. */
static size_t own_packet(unsigned char *b, unsigned id, const char *name,
                         unsigned type)
{
  size_t n = 12;
  memset(b, 0, 12);
  b[0] = (unsigned char)(id >> 8);
  b[1] = (unsigned char)id;
  b[2] = 0x01; /* RD */
  b[5] = 1;    /* QDCOUNT */
  while (*name != '\0') {
    size_t len = strcspn(name, ".");
    b[n++] = (unsigned char)len;
    memcpy(b + n, name, len);
    n += len;
    name += len;
    if (*name == '.')
      name++;
  }
  b[n++] = 0;
  b[n++] = (unsigned char)(type >> 8);
  b[n++] = (unsigned char)type;
  b[n++] = 0;
  b[n++] = ns_c_in;
  return n;
}

/* Returns the length of the (uncompressed) question name at the start of
 * q, a packet own_packet() made. */
static size_t qname_len(const unsigned char *q)
{
  size_t n = 0;
  while (q[n] != 0)
    n += (size_t)q[n] + 1;
  return n + 1;
}

/* Returns 1 if the answer a (alen bytes) asks the question of query q (a
 * packet own_packet() made), as c-ares' same_questions(): one question,
 * the same name (ASCII case ignored, compression followed), type and
 * class. */
static int own_same_question(const unsigned char *q, const unsigned char *a,
                             size_t alen)
{
  const unsigned char *qn = q + 12;
  size_t off = 12, end = 0, qlen = qname_len(qn);
  int hops = 0;

  if (alen < 12 || a[4] != 0 || a[5] != 1)
    return 0;
  for (;;) {
    unsigned len;
    size_t i;
    if (off >= alen)
      return 0;
    len = a[off];
    if ((len & 0xc0) == 0xc0) {
      if (off + 1 >= alen || ++hops > 16)
        return 0;
      if (end == 0)
        end = off + 2;
      off = (size_t)(len & 0x3f) << 8 | a[off + 1];
      continue;
    }
    if (len & 0xc0)
      return 0;
    if (*qn != len || off + 1 + len > alen)
      return 0;
    for (i = 1; i <= len; i++) {
      unsigned char x = a[off + i], y = qn[i];
      if (x >= 'A' && x <= 'Z')
        x = (unsigned char)(x - 'A' + 'a');
      if (y >= 'A' && y <= 'Z')
        y = (unsigned char)(y - 'A' + 'a');
      if (x != y)
        return 0;
    }
    off += 1 + len;
    qn += 1 + len;
    if (len == 0)
      break;
  }
  if (end == 0)
    end = off;
  /* Type and class: the four bytes after each name. */
  return end + 4 <= alen && memcmp(a + end, q + 12 + qlen, 4) == 0;
}

static void own_io(ds_io *w, unsigned events, void *data);

/* Closes the socket of s. */
static void own_close_server(own_server *s)
{
  if (s->fd < 0)
    return;
  ds_io_free(s->io);
  s->io = NULL;
  ds__sys.close(s->fd);
  s->fd = -1;
}

static void own_free(own *o)
{
  int i;
  if (o == NULL)
    return;
  for (i = 0; i < o->nsrv; i++)
    own_close_server(&o->srv[i]);
  free(o);
}

/* Opens and connects the socket of s (as c-ares' open_udp_socket()).
 * Returns 0, -1 when the socket cannot be had (the try moves on), or
 * -ENOMEM when no watcher can be had (the lookup ends). */
static int own_open(own_server *s)
{
  ds_lookup *l = s->o->l;
  int fd, rc;

  fd = ds__sys.socket(s->sa.ss_family,
                      SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  fd = ds__move_high(fd); /* as sock_open() */
  if (ds__sys.connect(fd, (struct sockaddr *)&s->sa, s->salen) != 0 &&
      errno != EINPROGRESS) {
    ds__sys.close(fd);
    return -1;
  }
  rc = ds_io_new(l->r, &s->io, fd, own_io, s);
  if (rc == 0)
    rc = ds_io_set(s->io, DS_READABLE);
  if (rc != 0) {
    ds_io_free(s->io);
    s->io = NULL;
    ds__sys.close(fd);
    return rc;
  }
  s->fd = fd;
  return 0;
}

/* Ends the query of answer i with a c-ares status (and the answer, for
 * ARES_SUCCESS); closes the sockets once no query waits, as c-ares does
 * when its last query ends. */
static void own_end(own *o, int i, int status, unsigned char *abuf, int alen)
{
  int k;
  o->q[i].waiting = 0;
  on_answer(&o->l->ans[i], status, 0, abuf, alen);
  if (!o->q[0].waiting && !o->q[1].waiting)
    for (k = 0; k < o->nsrv; k++)
      own_close_server(&o->srv[k]);
}

static void own_next(own *o, int i);

/* Sends the current try of query i (c-ares' ares__send_query() for UDP):
 * a server whose socket cannot be opened or written is skipped. */
static void own_send(own *o, int i)
{
  own_query *q = &o->q[i];
  own_server *s = &o->srv[q->server];
  uint64_t ms;
  unsigned rounds;
  int rc;

  if (s->fd < 0) {
    rc = own_open(s);
    if (rc < -1) {
      lookup_fail_pending(o->l, rc);
      return;
    }
    if (rc != 0) {
      if (o->nsrv > 1)
        q->skip[q->server] = 1;
      own_next(o, i);
      return;
    }
  }
  if (ds__sys.send(s->fd, q->pkt, q->len, MSG_NOSIGNAL) < 0) {
    if (o->nsrv > 1)
      q->skip[q->server] = 1;
    own_next(o, i);
    return;
  }
  /* The timeout doubles every round of the servers, unless that would
   * overflow c-ares' int: then it stays as it is. */
  rounds = q->tries / (unsigned)o->nsrv;
  ms = o->l->conf->timeout_ms;
  if (rounds <= 30 && (ms >> (31 - rounds)) == 0)
    ms <<= rounds;
  q->deadline = ds__mono_ns() + ms * 1000000u;
}

/* Moves query i to its next try (c-ares' next_server()): the next server
 * not skipped, until every server had its tries; then the query ends with
 * its error. */
static void own_next(own *o, int i)
{
  own_query *q = &o->q[i];
  unsigned total = (unsigned)o->nsrv * o->l->conf->attempts;
  while (++q->tries < total) {
    q->server = (q->server + 1) % o->nsrv;
    if (!q->skip[q->server]) {
      own_send(o, i);
      return;
    }
  }
  own_end(o, i, q->error, NULL, 0);
}

/* Hands query i over to c-ares, which sends it again from its start (over
 * TCP once the answer is truncated again). */
static void own_to_cares(own *o, int i)
{
  ds_lookup *l = o->l;
  int rc = 0, k;

  o->q[i].waiting = 0;
  if (l->ch == NULL)
    rc = channel_open(l, NULL, 0);
  if (rc != 0) {
    l->dns_pending--;
    answer_finish(&l->ans[i], rc);
  } else {
    channel_search(l, &l->ans[i]);
  }
  if (!o->q[0].waiting && !o->q[1].waiting)
    for (k = 0; k < o->nsrv; k++)
      own_close_server(&o->srv[k]);
}

/* A socket error on server s (c-ares' handle_error()): the socket closes
 * and every query whose current try is on s moves on, skipping s when
 * there are others. */
static void own_error(own *o, own_server *s)
{
  int k = (int)(s - o->srv), i;
  own_close_server(s);
  for (i = 0; i < 2; i++)
    if (o->q[i].waiting && o->q[i].server == k) {
      if (o->nsrv > 1)
        o->q[i].skip[k] = 1;
      own_next(o, i);
    }
}

/* One datagram from server s (c-ares' process_answer()). */
static void own_answer(own *o, own_server *s, unsigned char *a, size_t n)
{
  int k = (int)(s - o->srv), i, rcode;
  unsigned id, ancount;

  if (n < 12)
    return;
  id = (unsigned)a[0] << 8 | a[1];
  for (i = 0; i < 2; i++)
    if (o->q[i].waiting &&
        ((unsigned)o->q[i].pkt[0] << 8 | o->q[i].pkt[1]) == id)
      break;
  if (i == 2 || !own_same_question(o->q[i].pkt, a, n))
    return;
  if ((a[2] & 0x02) || n > DS__PACKETSZ) { /* TC */
    own_to_cares(o, i);
    return;
  }
  rcode = a[3] & 0x0f;
  if (rcode == ns_r_servfail || rcode == ns_r_notimpl ||
      rcode == ns_r_refused) {
    if (rcode == ns_r_servfail)
      o->l->ans[i].servfail = 1; /* see note_servfail() */
    if (o->nsrv > 1)
      o->q[i].skip[k] = 1;
    if (o->q[i].server == k)
      own_next(o, i);
    return;
  }
  /* ares_query()'s status for the answer. */
  ancount = (unsigned)a[6] << 8 | a[7];
  if (rcode == ns_r_noerror)
    own_end(o, i, ancount > 0 ? ARES_SUCCESS : ARES_ENODATA, a, (int)n);
  else if (rcode == ns_r_formerr)
    own_end(o, i, ARES_EFORMERR, NULL, 0);
  else if (rcode == ns_r_nxdomain)
    own_end(o, i, ARES_ENOTFOUND, NULL, 0);
  else
    own_end(o, i, ARES_SUCCESS, a, (int)n);
}

static void own_io(ds_io *w, unsigned events, void *data)
{
  own_server *s = data;
  own *o = s->o;
  ds_lookup *l = o->l;
  /* As c-ares: room for more than a UDP answer may hold, to tell. */
  unsigned char buf[4097];
  (void)w;
  (void)events;
  while (l->own == o && s->fd >= 0) {
    ssize_t n = ds__sys.recv(s->fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n < 0) {
      own_error(o, s);
      break;
    }
    /* An empty datagram is not an error on UDP: anyone who can send one
     * from the server's address must not end the lookup with it (c-ares'
     * CVE-2023-32067, fixed in Debian's 1.18.1). */
    if (n > 0)
      own_answer(o, s, buf, (size_t)n);
  }
  lookup_after_step(l);
}

/* Sets *ms to the milliseconds to the earliest deadline of a waiting query
 * (rounded up). Returns 0 when no query waits. */
static int own_deadline(const own *o, uint64_t *ms)
{
  uint64_t now = ds__mono_ns(), first = UINT64_MAX, m;
  int i;
  for (i = 0; i < 2; i++)
    if (o->q[i].waiting && o->q[i].deadline < first)
      first = o->q[i].deadline;
  if (first == UINT64_MAX)
    return 0;
  m = first > now ? (first - now + 999999u) / 1000000u : 0;
  if (m < *ms)
    *ms = m;
  return 1;
}

/* Moves every query whose try has timed out to its next try. */
static void own_timeouts(own *o)
{
  uint64_t now = ds__mono_ns();
  int i;
  for (i = 0; i < 2; i++)
    if (o->q[i].waiting && o->q[i].deadline <= now) {
      o->q[i].error = ARES_ETIMEOUT;
      own_next(o, i);
    }
}

/* Returns 1 if name ends in ".onion" or ".onion." (ASCII case ignored),
 * which c-ares 1.18.1 answers with NXDOMAIN itself (RFC 7686). */
static int is_onion(const char *name, size_t len)
{
  if (len > 0 && name[len - 1] == '.')
    len--;
  return len >= 6 && strncasecmp(name + len - 6, ".onion", 6) == 0;
}

/* Returns 1 if the resolver sends l's queries itself: a search that would
 * send only the name itself (a trailing dot, or no search list: c-ares'
 * ares__single_domain(), whose HOSTALIASES applies to names without a
 * dot), not a .onion name, to at most DS__OWN_MAXNS servers, and random
 * query IDs to be had. */
static int own_usable(const ds_lookup *l, unsigned ids[2])
{
  const dnsconf *c = l->conf;
  const struct ares_addr_port_node *sv;
  size_t len = strlen(c->name);
  unsigned short r[2];
  int n = 0;

  if (is_onion(c->name, len))
    return 0;
  if (!(len > 0 && c->name[len - 1] == '.')) {
    if (c->rc.ndomains > 0)
      return 0;
    if (strchr(c->name, '.') == NULL && getenv("HOSTALIASES") != NULL)
      return 0;
  }
  for (sv = c->servers; sv != NULL; sv = sv->next)
    n++;
  if (n == 0 || n > DS__OWN_MAXNS)
    return 0;
  if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    return 0;
  ids[0] = r[0];
  ids[1] = r[1] != r[0] ? r[1] : (unsigned short)(r[0] ^ 1u);
  return 1;
}

/* Starts l's queries in the resolver's own client. Returns 0, or -ENOMEM
 * (nothing started). */
static int own_start(ds_lookup *l, const unsigned ids[2])
{
  const struct ares_addr_port_node *sv;
  own *o = calloc(1, sizeof *o);
  int i, next = 0;

  if (o == NULL)
    return -ENOMEM;
  o->l = l;
  for (sv = l->conf->servers; sv != NULL; sv = sv->next) {
    own_server *s = &o->srv[o->nsrv++];
    s->o = o;
    s->fd = -1;
    if (sv->family == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)&s->sa;
      in->sin_family = AF_INET;
      in->sin_port = htons((uint16_t)sv->udp_port);
      memcpy(&in->sin_addr, &sv->addr.addr4, 4);
      s->salen = sizeof *in;
    } else {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->sa;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)sv->udp_port);
      memcpy(&in6->sin6_addr, &sv->addr.addr6, 16);
      s->salen = sizeof *in6;
    }
  }
  l->own = o;
  for (i = 0; i < 2; i++) {
    own_query *q = &o->q[i];
    if (!l->ans[i].wanted)
      continue;
    q->len = own_packet(q->pkt, ids[i], l->conf->name,
                        l->ans[i].family == AF_INET6 ? ns_t_aaaa : ns_t_a);
    q->error = ARES_ECONNREFUSED; /* c-ares' status until a try times out */
    /* The server of the first try: the first, or the next in turn. */
    q->server = next;
    if (l->conf->rc.rotate)
      next = (next + 1) % o->nsrv;
    q->waiting = 1;
    l->dns_pending++;
  }
  /* AAAA first: Happy Eyeballs starts at once on a positive AAAA. */
  for (i = 0; i < 2; i++)
    if (o->q[i].waiting)
      own_send(o, i);
  return 0;
}

/* Starts l's DNS part: the queries by the resolver itself when it can
 * (see above), else through c-ares, AAAA and A searches. Takes servers
 * (the caller's, or NULL for resolv.conf's). Returns 0 or an error with
 * err saying why (nothing is left open then but l itself). */
static int lookup_start_dns(ds_lookup *l, const char *name,
                            const ds_resolver_opts *opts,
                            struct ares_addr_port_node *servers, char *err,
                            size_t errlen)
{
  unsigned ids[2];
  int rc, i;

  if (dnsconf_new(l, name, opts, servers) != 0)
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  rc = ds_timer_new(l->r, &l->timer, lookup_timer, l);
  if (rc != 0)
    return ds__fail(err, errlen, rc, "out of memory");
  if (own_usable(l, ids)) {
    rc = own_start(l, ids);
    if (rc != 0)
      return ds__fail(err, errlen, rc, "out of memory");
  } else {
    rc = channel_open(l, err, errlen);
    if (rc != 0)
      return rc;
    for (i = 0; i < 2; i++)
      if (l->ans[i].wanted)
        l->dns_pending++;
    /* AAAA first: Happy Eyeballs starts at once on a positive AAAA. */
    for (i = 0; i < 2; i++)
      if (l->ans[i].wanted)
        channel_search(l, &l->ans[i]);
  }
  if (lookup_rearm(l) != 0)
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  return 0;
}

/* ---------------------------------------------------------------- the API */

int ds_lookup_start(ds_reactor *r, const char *name, int families,
                    const ds_resolver_opts *opts, ds_lookup_cb cb, void *user,
                    ds_lookup **out, char *err, size_t errlen)
{
  ds_lookup *l;
  ds_addr lit;
  struct ares_addr_port_node *servers = NULL;
  const char *hosts;
  int rc, i, is_literal;

  if (out != NULL)
    *out = NULL;
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (r == NULL || name == NULL || cb == NULL)
    return ds__fail(err, errlen, -EINVAL, "lookup: %s must not be NULL",
                    r == NULL      ? "reactor"
                    : name == NULL ? "name"
                                   : "cb");
  if (families < DS_LOOKUP_A || families > (DS_LOOKUP_A | DS_LOOKUP_AAAA))
    return ds__fail(err, errlen, -EINVAL,
                    "lookup: families must be DS_LOOKUP_A, DS_LOOKUP_AAAA "
                    "or both, not %d",
                    families);

  /* An address literal answers itself; anything else must be a name. */
  rc = ds_addr_parse(&lit, name, 0, NULL, 0);
  if (rc == -ENODEV) /* a literal with a scope naming no interface */
    return ds_addr_parse(&lit, name, 0, err, errlen);
  if (rc != 0 && strchr(name, ':') != NULL) {
    char why[128];
    ds_addr_parse(&lit, name, 0, why, sizeof why);
    return ds__fail(err, errlen, DS_EBADNAME,
                    "'%.64s' is neither a host name nor a valid IPv6 "
                    "literal (%s)",
                    name, why);
  }
  is_literal = rc == 0;
  if (!is_literal) {
    rc = check_name(name, err, errlen);
    if (rc != 0)
      return rc;
  }
  /* A bad servers option is an error whatever the name. */
  if (opts != NULL && opts->servers != NULL) {
    rc = parse_servers(opts->servers, &servers, err, errlen);
    if (rc != 0)
      return rc;
  }

  l = calloc(1, sizeof *l);
  if (l == NULL) {
    servers_free(servers);
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  }
  l->r = r;
  l->cb = cb;
  l->user = user;
  l->ans[ANS_AAAA].family = AF_INET6;
  l->ans[ANS_AAAA].wanted = (families & DS_LOOKUP_AAAA) != 0;
  l->ans[ANS_A].family = AF_INET;
  l->ans[ANS_A].wanted = (families & DS_LOOKUP_A) != 0;
  for (i = 0; i < 2; i++) {
    l->ans[i].l = l;
    l->ans[i].ttl = DS_TTL_NONE;
  }
  ds__reactor_ref(r);

  if (is_literal) {
    answer *a = &l->ans[lit.family == AF_INET6 ? ANS_AAAA : ANS_A];
    snprintf(a->qname, sizeof a->qname, "%s", name);
    snprintf(a->canon, sizeof a->canon, "%s", name);
    rc = a->wanted ? answer_add(a, &lit) : 0;
    if (rc != 0) {
      rc = ds__fail(err, errlen, rc, "out of memory");
      goto fail;
    }
    rc = 1; /* answered: no DNS */
  } else {
    hosts = opts != NULL && opts->hosts_file != NULL ? opts->hosts_file
                                                     : DS__HOSTS_PATH;
    rc = 0;
    if (hosts[0] != '\0')
      rc = hosts_lookup(l, hosts, opts == NULL || opts->hosts_file == NULL,
                        name, err, errlen);
    if (rc < 0)
      goto fail;
  }
  if (rc == 1) {
    /* Both families from the literal or the hosts file: a family with no
     * address there has none at all (no DNS). AAAA is delivered first. */
    l->local = 1;
    for (i = 0; i < 2; i++)
      answer_finish(&l->ans[i], l->ans[i].n > 0 ? 0 : DS_ENODATA);
  } else {
    rc = lookup_start_dns(l, name, opts, servers, err, errlen);
    servers = NULL; /* taken */
    if (rc != 0)
      goto fail;
  }
  servers_free(servers);
  if (out != NULL)
    *out = l;
  return 0;

fail:
  /* Nothing was delivered and nothing will be. */
  servers_free(servers);
  lookup_free(l);
  return rc;
}

int ds_lookup_ttl(const ds_lookup *l, int family)
{
  const answer *a;
  if (l == NULL || (family != AF_INET && family != AF_INET6))
    return DS_TTL_NONE;
  if (l->local)
    return DS_TTL_LOCAL;
  a = &l->ans[family == AF_INET6 ? ANS_AAAA : ANS_A];
  return a->done ? a->ttl : DS_TTL_NONE;
}

const char *ds__lookup_name(const ds_lookup *l, int family, int which)
{
  const answer *a;
  if (l == NULL || (family != AF_INET && family != AF_INET6))
    return "";
  a = &l->ans[family == AF_INET6 ? ANS_AAAA : ANS_A];
  return which == DS__NAME_ALIASES ? a->aliases
         : which == DS__NAME_CANON ? a->canon
                                   : a->qname;
}

void ds_lookup_cancel(ds_lookup *l)
{
  if (l == NULL || l->cancelled)
    return;
  l->cancelled = 1;
  lookup_close_dns(l);
  /* Inside a callback of l, the delivery loop still holds it and frees it
   * when the callback returns. */
  if (!l->delivering)
    lookup_free(l);
}
