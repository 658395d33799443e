/* TCP: client connections (connect_tcp), listeners (listen_tcp) and the
 * transport both give to a protocol: buffered writes with watermarks, lose
 * connection after the buffer drains, abort, half-close.
 *
 * Lifetime: a transport ends in exactly one of connection_failed (never
 * connected) or connection_lost (was connected). Both are delivered through
 * a deferred call embedded in the transport, so they never run inside the
 * call that caused them, and the transport is freed right after.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DS__READ_SIZE 65536
#define DS__HIGH_WATER (64 * 1024)
#define DS__LOW_WATER (16 * 1024)

enum tcp_state {
  TCP_CONNECTING,
  TCP_CONNECTED,
  TCP_CLOSED /* socket closed; the final callback is queued */
};

/* One queued piece of outgoing data. */
typedef struct chunk {
  struct chunk *next;
  size_t len, off;
  char data[];
} chunk;

struct ds_tcp {
  ds_reactor *r;
  ds_io *io;
  int fd;
  enum tcp_state state;
  const ds_protocol *proto;
  void *user;
  ds_timer *timer;     /* connect timeout */
  chunk *wq, *wq_tail; /* write queue */
  size_t buffered;
  size_t high, low;
  unsigned paused_producer : 1;
  unsigned reading_paused : 1;
  unsigned eof_seen : 1;     /* peer sent FIN */
  unsigned lose_pending : 1; /* close once the queue drains */
  unsigned shut_pending : 1; /* shutdown(SHUT_WR) once the queue drains */
  unsigned write_shut : 1;   /* FIN sent */
  unsigned made : 1;         /* connection_made delivered (or due) */
  unsigned read_more : 1;    /* soon is queued for tcp_read_more() */
  unsigned peer_shut : 1;    /* the peer's FIN is in (DS__PEER_SHUT) */
  unsigned urgent : 1;       /* urgent data came: read to EAGAIN */
  unsigned fd_shown : 1;     /* the fd was handed out: it may be dup'ed */
  int reason;                /* for the final callback */
  unsigned forks;            /* ds__fork_count() when the socket was made */
  ds__call final;
  /* Connecting: a connect's result known at once, delivered on the next
   * turn; connected: the read after a full one (read_more). */
  ds__call soon;
  ds_happy *race; /* host name connect in progress */
  char *errtext;  /* what every attempt of the race saw */
};

struct ds_listener {
  ds_reactor *r;
  ds_io *io;
  int fd;
  ds_factory_fn factory;
  void *factory_data;
  ds_addr host;
  unsigned accepting : 1; /* inside listener_io: freeing must wait */
  unsigned closed : 1;
  ds_timer *backoff; /* out of fds: accepting resumes when it fires */
};

/* Given to a transport whose callbacks must not run (an error return). */
static const ds_protocol silent_protocol;

static void tcp_io(ds_io *w, unsigned events, void *data);
static int tcp_connect_race(ds_reactor *r, const char *host, uint16_t port,
                            const ds_happy_opts *o, const ds_protocol *proto,
                            void *user, ds_tcp **out, char *err, size_t errlen);

/* Returns a new transport for fd, or NULL without memory. */
static ds_tcp *tcp_new(ds_reactor *r, int fd, const ds_protocol *proto,
                       void *user)
{
  ds_tcp *t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  /* fd -1: a host name connect, whose socket comes from the race. */
  if (fd >= 0 && ds_io_new(r, &t->io, fd, tcp_io, t) != 0) {
    free(t);
    return NULL;
  }
  if (t->io != NULL)
    ds__io_edge(t->io);
  t->forks = ds__fork_count();
  t->r = r;
  t->fd = fd;
  t->proto = proto;
  t->user = user;
  t->high = DS__HIGH_WATER;
  t->low = DS__LOW_WATER;
  ds__reactor_ref(r);
  return t;
}

/* Runs the final callback, then frees the transport. */
static void tcp_finish(void *p)
{
  ds_tcp *t = p;
  ds_reactor *r = t->r;

  if (t->made) {
    if (t->proto->connection_lost != NULL)
      t->proto->connection_lost(t, t->reason, t->user);
  } else if (t->proto->connection_failed != NULL) {
    t->proto->connection_failed(t, t->reason, t->user);
  }
  free(t->errtext);
  free(t);
  ds__reactor_unref(r);
}

/* Frees the write queue. */
static void tcp_drop_queue(ds_tcp *t)
{
  chunk *c, *next;
  for (c = t->wq; c != NULL; c = next) {
    next = c->next;
    free(c);
  }
  t->wq = t->wq_tail = NULL;
  t->buffered = 0;
}

/* Frees the watcher of a socket about to be closed: when nobody else can
 * hold the socket (never handed out, no fork since), close() alone takes
 * it out of epoll. */
static void tcp_free_io(ds_tcp *t)
{
  if (!t->fd_shown && t->forks == ds__fork_count())
    ds__io_free_closing(t->io);
  else
    ds_io_free(t->io);
  t->io = NULL;
}

/* Closes the socket now and queues the final callback with reason. */
static void tcp_close(ds_tcp *t, int reason)
{

  if (t->state == TCP_CLOSED)
    return;
  t->state = TCP_CLOSED;
  t->reason = reason;
  ds_timer_free(t->timer);
  t->timer = NULL;
  if (t->race != NULL) {
    ds_happy_cancel(t->race);
    t->race = NULL;
  }
  /* A queued read (read_more) runs before the final callback, which is
   * queued after it, and finds the transport closed. */
  tcp_free_io(t);
  if (t->fd >= 0)
    ds__sys.close(t->fd);
  t->fd = -1;
  tcp_drop_queue(t);
  ds__reactor_defer(t->r, &t->final, tcp_finish, t);
}

/* Returns the epoll interest matching the transport's state. */
static unsigned tcp_wanted(const ds_tcp *t)
{
  unsigned ev = 0;
  if (t->state == TCP_CONNECTING)
    return DS_WRITABLE;
  if (!t->reading_paused && !t->eof_seen)
    ev |= DS_READABLE;
  if (t->wq != NULL)
    ev |= DS_WRITABLE;
  return ev;
}

/* Applies tcp_wanted(); a failure of epoll_ctl closes the transport. */
static void tcp_update(ds_tcp *t)
{
  int rc;
  if (t->state == TCP_CLOSED || t->io == NULL)
    return;
  rc = ds_io_set(t->io, tcp_wanted(t));
  if (rc != 0)
    tcp_close(t, rc);
}

/* Called when the queue is empty: performs a pending half-close or lose.
 * Returns 1 if the transport was closed. */
static int tcp_drained(ds_tcp *t)
{
  if (t->lose_pending) {
    tcp_close(t, 0);
    return 1;
  }
  if (t->shut_pending && !t->write_shut) {
    t->write_shut = 1;
    t->shut_pending = 0;
    ds__sys.shutdown(t->fd, SHUT_WR);
    /* Both directions done: nothing more can happen on this connection. */
    if (t->eof_seen) {
      tcp_close(t, 0);
      return 1;
    }
  }
  return 0;
}

/* Sends iov[0..n): send() for one buffer (the kernel copies no message
 * header or vector for it), sendmsg() for more. */
static ssize_t tcp_send(int fd, const struct iovec *iov, int n)
{
  struct msghdr msg = {0};
  if (n == 1)
    return ds__sys.send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
  msg.msg_iov = (struct iovec *)iov;
  msg.msg_iovlen = (size_t)n;
  return ds__sys.sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* Writes as much of the queue as the socket takes (until it is empty or
 * the socket says EAGAIN, which the edge-triggered registration needs).
 * Returns 0, or a negative errno after which the transport is closed. */
static int tcp_flush(ds_tcp *t)
{
  while (t->wq != NULL) {
    struct iovec iov[16];
    chunk *c = t->wq;
    int n = 0;
    ssize_t w;

    for (; c != NULL && n < 16; c = c->next, n++) {
      iov[n].iov_base = c->data + c->off;
      iov[n].iov_len = c->len - c->off;
    }
    w = tcp_send(t->fd, iov, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      return -errno;
    }
    t->buffered -= (size_t)w;
    while (w > 0) {
      c = t->wq;
      size_t left = c->len - c->off;
      if ((size_t)w < left) {
        c->off += (size_t)w;
        break;
      }
      w -= (ssize_t)left;
      t->wq = c->next;
      if (t->wq == NULL)
        t->wq_tail = NULL;
      free(c);
    }
  }
  return 0;
}

/* After a flush: tells the producer to resume at the low watermark, and
 * finishes a pending close. Returns 1 if the transport was closed. */
static int tcp_after_flush(ds_tcp *t)
{
  if (t->paused_producer && t->buffered <= t->low) {
    t->paused_producer = 0;
    if (t->proto->resume_producing != NULL)
      t->proto->resume_producing(t, t->user);
    if (t->state == TCP_CLOSED)
      return 1;
  }
  if (t->wq == NULL && tcp_drained(t))
    return 1;
  return 0;
}

/* Marks the connection made and tells the protocol. */
static void tcp_connected(ds_tcp *t)
{
  t->state = TCP_CONNECTED;
  t->made = 1;
  ds_timer_free(t->timer);
  t->timer = NULL;
  tcp_update(t);
  if (t->state == TCP_CLOSED)
    return;
  if (t->proto->connection_made != NULL)
    t->proto->connection_made(t, t->user);
}

static void tcp_read(ds_tcp *t);

/* The rest after a full read (read_more). */
static void tcp_read_more(void *p)
{
  ds_tcp *t = p;
  t->read_more = 0;
  if (t->state == TCP_CONNECTED && !t->reading_paused && !t->eof_seen)
    tcp_read(t);
}

/* Reads once and delivers. The socket is edge-triggered: a read that
 * fills the buffer may have left more, after the peer's FIN any read with
 * data leaves the end to read, and after urgent data (MSG_OOB) a read
 * stops short at its mark, all of which no event will tell, so the next
 * turn reads again: a buffer per socket per turn (and one more for an
 * event of new data after it), much as a level-triggered registration
 * would give, so that a fast sender does not starve the others. */
static void tcp_read(ds_tcp *t)
{
  char buf[DS__READ_SIZE];
  ssize_t n;

  do
    n = ds__sys.recv(t->fd, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    if (((size_t)n == sizeof buf || t->peer_shut || t->urgent) &&
        !t->read_more) {
      t->read_more = 1;
      ds__reactor_defer(t->r, &t->soon, tcp_read_more, t);
    }
    t->proto->data_received(t, buf, (size_t)n, t->user);
    return;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      t->urgent = 0;
      return;
    }
    tcp_close(t, -errno);
    return;
  }
  /* EOF. */
  t->eof_seen = 1;
  if (t->proto->eof_received == NULL) {
    /* Not half-closable: the connection is over once our data is out. */
    ds_tcp_lose_connection(t);
    return;
  }
  tcp_update(t);
  t->proto->eof_received(t, t->user);
  /* Both directions are done once our FIN is out too. */
  if (t->state != TCP_CLOSED && t->write_shut)
    tcp_close(t, 0);
}

static void tcp_io(ds_io *w, unsigned events, void *data)
{
  ds_tcp *t = data;
  int rc;

  if (t->state == TCP_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    if (ds__sys.getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0) {
      tcp_close(t, -err);
      return;
    }
    if (!(events & DS_WRITABLE))
      return;
    tcp_connected(t);
    return;
  }
  if ((events & DS_WRITABLE) && t->wq != NULL) {
    rc = tcp_flush(t);
    if (rc != 0) {
      tcp_close(t, rc);
      return;
    }
    if (tcp_after_flush(t))
      return;
    tcp_update(t);
  }
  if (t->state == TCP_CLOSED)
    return;
  if (events & DS__PEER_SHUT)
    t->peer_shut = 1;
  if (events & DS__URGENT)
    t->urgent = 1;
  if (events & (DS_READABLE | DS_ERROR)) {
    if (!t->reading_paused && !t->eof_seen) {
      /* A read is queued for the next turn already. */
      if (!t->read_more)
        tcp_read(t);
    } else if (events & DS_ERROR) {
      int err = 0;
      socklen_t len = sizeof err;
      ds__sys.getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      tcp_close(t, err ? -err : -ECONNRESET);
    }
  }
}

/* Connect timeout. */
static void tcp_timeout(ds_timer *timer, void *data)
{
  ds_tcp *t = data;
  (void)timer;
  tcp_close(t, -ETIMEDOUT);
}

/* Parses a literal for connect or listen: host names are DS_EHOSTNAME, a
 * link-local IPv6 address without scope DS_ENEEDSCOPE. */
static int parse_literal(ds_addr *a, const char *text, uint16_t port,
                         const char *what, char *err, size_t errlen)
{
  int rc = ds__parse_literal(a, text, port, what, err, errlen);
  if (rc != 0)
    return rc;
  if (a->family == AF_INET6 && a->scope_id == 0 &&
      ds_addr_classify(a) == DS_ADDR_LINKLOCAL)
    return ds__fail(err, errlen, DS_ENEEDSCOPE,
                    "%s '%s': link-local address needs a scope, as in "
                    "'%s%%eth0'",
                    what, text, text);
  return 0;
}

/* Delivers connection_made for a connect that completed at once. */
static void tcp_made_soon(void *p)
{
  ds_tcp *t = p;
  if (t->state == TCP_CONNECTING)
    tcp_connected(t);
}

/* Delivers a connect error that the kernel reported at once. */
static void tcp_fail_soon(void *p)
{
  ds_tcp *t = p;
  if (t->state == TCP_CONNECTING)
    tcp_close(t, t->reason);
}

int ds_connect_tcp(ds_reactor *r, const char *host, uint16_t port,
                   unsigned timeout_ms, const ds_addr *bind,
                   const ds_protocol *proto, void *user, ds_tcp **out,
                   char *err, size_t errlen)
{
  ds_addr dst;
  struct sockaddr_storage ss;
  socklen_t len;
  ds_tcp *t;
  int fd, rc;

  *out = NULL;
  if (proto == NULL || proto->data_received == NULL)
    return ds__fail(err, errlen, -EINVAL, "protocol has no data_received");
  if (host != NULL && ds__looks_like_hostname(host)) {
    /* The IPv6 plan's low-level rule: a host name is resolved to IPv4
     * only. The race engine does it, restricted to IPv4. */
    ds_happy_opts o = {0};
    if (bind != NULL && bind->family != AF_INET)
      return ds__fail(err, errlen, DS_EFAMILY,
                      "bind address is IPv6 but host name '%s' is resolved "
                      "to IPv4 only here",
                      host);
    o.family = AF_INET;
    o.bind4 = bind;
    o.timeout_ms = timeout_ms;
    return tcp_connect_race(r, host, port, &o, proto, user, out, err, errlen);
  }
  rc = parse_literal(&dst, host, port, "host", err, errlen);
  if (rc != 0)
    return rc;
  if (bind != NULL && bind->family != dst.family) {
    char b[DS_ADDR_STRLEN];
    if (ds_addr_format(bind, b, sizeof b, DS_ADDR_FMT_PORT) < 0)
      strcpy(b, "(unset)");
    return ds__fail(err, errlen, DS_EFAMILY,
                    "bind address %s is %s but host '%s' is %s", b,
                    bind->family == AF_INET6 ? "IPv6" : "IPv4", host,
                    dst.family == AF_INET6 ? "IPv6" : "IPv4");
  }
  fd = ds__sys.socket(dst.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      IPPROTO_TCP);
  if (fd < 0)
    return ds__fail(err, errlen, -errno, "socket: %s", strerror(errno));
  if (bind != NULL) {
    ds_addr_to_sockaddr(bind, &ss, &len);
    if (ds__sys.bind(fd, (struct sockaddr *)&ss, len) != 0) {
      rc = -errno;
      ds__sys.close(fd);
      return ds__fail(err, errlen, rc, "bind: %s", strerror(-rc));
    }
  }
  t = tcp_new(r, fd, proto, user);
  if (t == NULL) {
    ds__sys.close(fd);
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  }
  t->state = TCP_CONNECTING;
  if (timeout_ms > 0) {
    if (ds_timer_new(r, &t->timer, tcp_timeout, t) != 0 ||
        ds_timer_start(t->timer, timeout_ms, 0) != 0) {
      t->proto = &silent_protocol;
      tcp_close(t, -ENOMEM);
      return ds__fail(err, errlen, -ENOMEM, "out of memory");
    }
  }
  ds_addr_to_sockaddr(&dst, &ss, &len);
  do
    rc = ds__sys.connect(fd, (struct sockaddr *)&ss, len);
  while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    ds__reactor_defer(r, &t->soon, tcp_made_soon, t);
  } else if (errno != EINPROGRESS) {
    /* Reported through connection_failed, like any later failure. */
    t->reason = -errno;
    ds__reactor_defer(r, &t->soon, tcp_fail_soon, t);
  } else {
    rc = ds_io_set(t->io, DS_WRITABLE);
    if (rc != 0) {
      t->reason = rc;
      ds__reactor_defer(r, &t->soon, tcp_fail_soon, t);
    }
  }
  *out = t;
  return 0;
}

/* The race of a host name connect ended. */
static void tcp_race_done(ds_happy *h, int fd, int err, void *user)
{
  ds_tcp *t = user;
  char text[1024];

  t->race = NULL;
  if (fd >= 0) {
    t->fd = fd;
    if (ds_io_new(t->r, &t->io, fd, tcp_io, t) != 0) {
      tcp_close(t, -ENOMEM);
      return;
    }
    ds__io_edge(t->io);
    tcp_connected(t);
    return;
  }
  ds_happy_describe(h, text, sizeof text);
  t->errtext = strdup(text);
  tcp_close(t, err);
}

/* Starts a transport whose socket a Happy Eyeballs race provides.
 * Returns 0 or the race's error (no transport then). */
static int tcp_connect_race(ds_reactor *r, const char *host, uint16_t port,
                            const ds_happy_opts *o, const ds_protocol *proto,
                            void *user, ds_tcp **out, char *err, size_t errlen)
{
  ds_tcp *t = tcp_new(r, -1, proto, user);
  int rc;
  if (t == NULL)
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  t->state = TCP_CONNECTING;
  t->fd = -1;
  /* The caller's prepare() sees the socket and may keep a copy. */
  t->fd_shown = o != NULL && o->prepare != NULL;
  rc = ds_happy_start(r, host, port, o, tcp_race_done, NULL, t, &t->race, err,
                      errlen);
  if (rc != 0) {
    free(t);
    ds__reactor_unref(r);
    return rc;
  }
  *out = t;
  return 0;
}

int ds_connect_host(ds_reactor *r, const char *host, uint16_t port,
                    const ds_happy_opts *opts, const ds_protocol *proto,
                    void *user, ds_tcp **out, char *err, size_t errlen)
{
  *out = NULL;
  if (proto == NULL || proto->data_received == NULL)
    return ds__fail(err, errlen, -EINVAL, "protocol has no data_received");
  return tcp_connect_race(r, host, port, opts, proto, user, out, err, errlen);
}

int ds_connect_host_error(const ds_tcp *t, char *buf, size_t len)
{
  int n;
  if (len == 0)
    return 0;
  n = snprintf(buf, len, "%s",
               t->errtext ? t->errtext : ds_strerror(t->reason));
  return n < 0 ? 0 : (n >= (int)len ? (int)len - 1 : n);
}

int ds_tcp_writev(ds_tcp *t, const struct iovec *iov, int iovcnt)
{
  size_t skip = 0, total = 0;
  int i, rc;

  if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt > 0 && iov == NULL))
    return -EINVAL;
  if (t->state != TCP_CONNECTED)
    return -ENOTCONN;
  if (t->lose_pending || t->shut_pending || t->write_shut)
    return -EPIPE;
  for (i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  if (total == 0)
    return 0;
  /* Write at once when nothing is queued, so small writes cost one
   * syscall and no copy. */
  if (t->wq == NULL) {
    ssize_t w;
    do
      w = tcp_send(t->fd, iov, iovcnt);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        rc = -errno;
        tcp_close(t, rc);
        return rc;
      }
      w = 0;
    }
    if ((size_t)w == total)
      return 0;
    skip = (size_t)w;
  }
  /* The unsent rest goes into one chunk: one allocation, and a failure
   * queues nothing, so the byte stream never loses a middle piece. */
  {
    chunk *c = malloc(sizeof *c + (total - skip));
    size_t off = 0;
    if (c == NULL)
      return -ENOMEM;
    for (i = 0; i < iovcnt; i++) {
      const char *p = iov[i].iov_base;
      size_t n = iov[i].iov_len;
      if (skip >= n) {
        skip -= n;
        continue;
      }
      memcpy(c->data + off, p + skip, n - skip);
      off += n - skip;
      skip = 0;
    }
    c->next = NULL;
    c->len = off;
    c->off = 0;
    if (t->wq_tail != NULL)
      t->wq_tail->next = c;
    else
      t->wq = c;
    t->wq_tail = c;
    t->buffered += off;
  }
  tcp_update(t);
  if (!t->paused_producer && t->buffered > t->high) {
    t->paused_producer = 1;
    if (t->proto->pause_producing != NULL)
      t->proto->pause_producing(t, t->user);
  }
  return 0;
}

int ds_tcp_write(ds_tcp *t, const void *data, size_t len)
{
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  return ds_tcp_writev(t, &iov, 1);
}

size_t ds_tcp_buffered(const ds_tcp *t)
{
  return t->buffered;
}

void ds_tcp_set_watermarks(ds_tcp *t, size_t high, size_t low)
{
  t->high = high;
  t->low = low < high ? low : high;
}

void ds_tcp_lose_connection(ds_tcp *t)
{
  if (t->state == TCP_CLOSED)
    return;
  if (t->state == TCP_CONNECTING) {
    tcp_close(t, -ECANCELED);
    return;
  }
  t->lose_pending = 1;
  if (t->wq == NULL)
    tcp_close(t, 0);
  else
    tcp_update(t); /* after EOF, stop waiting for reads: they would spin */
}

void ds_tcp_abort(ds_tcp *t)
{
  if (t->state == TCP_CLOSED)
    return;
  if (t->state == TCP_CONNECTING) {
    tcp_close(t, -ECANCELED);
    return;
  }
  /* SO_LINGER 0 makes close() send RST: abort means the peer must not
   * mistake the end for a clean close. */
  {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    ds__sys.setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  tcp_close(t, 0);
}

int ds_tcp_half_close(ds_tcp *t)
{
  if (t->state != TCP_CONNECTED)
    return -ENOTCONN;
  if (t->write_shut || t->shut_pending)
    return 0;
  t->shut_pending = 1;
  if (t->wq == NULL)
    tcp_drained(t);
  return 0;
}

void ds_tcp_pause_reading(ds_tcp *t)
{
  t->reading_paused = 1;
  tcp_update(t);
}

void ds_tcp_resume_reading(ds_tcp *t)
{
  t->reading_paused = 0;
  tcp_update(t);
}

int ds_tcp_get_host(const ds_tcp *t, ds_addr *out)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (t->state == TCP_CLOSED)
    return -ENOTCONN;
  if (ds__sys.getsockname(t->fd, (struct sockaddr *)&ss, &len) != 0)
    return -errno;
  return ds_addr_from_sockaddr(out, (struct sockaddr *)&ss, len);
}

int ds_tcp_get_peer(const ds_tcp *t, ds_addr *out)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (t->state != TCP_CONNECTED)
    return -ENOTCONN;
  if (ds__sys.getpeername(t->fd, (struct sockaddr *)&ss, &len) != 0)
    return -errno;
  return ds_addr_from_sockaddr(out, (struct sockaddr *)&ss, len);
}

int ds_tcp_set_nodelay(ds_tcp *t, int on)
{
  if (t->state == TCP_CLOSED)
    return -ENOTCONN;
  if (ds__sys.setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on))
    return -errno;
  return 0;
}

int ds_tcp_set_keepalive(ds_tcp *t, int on, unsigned idle_s)
{
  int idle = (int)idle_s;
  if (t->state == TCP_CLOSED)
    return -ENOTCONN;
  if (ds__sys.setsockopt(t->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on))
    return -errno;
  if (on && idle_s > 0 &&
      ds__sys.setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle))
    return -errno;
  return 0;
}

int ds_tcp_fd(const ds_tcp *t)
{
  /* The caller may dup it: closing must then take it out of epoll. The
   * transport is never a const object (the library allocates it). */
  ((ds_tcp *)t)->fd_shown = 1;
  return t->fd;
}

void ds_tcp_set_user(ds_tcp *t, void *user)
{
  t->user = user;
}

/* ---------------------------------------------------------------- listener */

/* Resumes accepting after running out of fds. */
static void listener_resume(ds_timer *timer, void *data)
{
  ds_listener *l = data;
  (void)timer;
  if (!l->closed)
    ds_io_set(l->io, DS_READABLE);
}

/* Accepts what is pending. After a wait in epoll that slept, the
 * listener woke it: most likely one connection arrived, and one is taken.
 * The epoll registration is level-triggered, so another one that came
 * meanwhile brings the listener back on the next turn; ending the batch
 * with a failing accept4() to see the queue empty (as libuv does) would
 * cost a system call per connection at a quiet time, and on an
 * all-interfaces port one per listener. After a wait that returned at
 * once (the reactor is busy, the queue may hold many) it accepts until
 * the queue is empty, bounded for fairness with other sockets, so that no
 * connection waits a turn longer than it must. */
static void listener_io(ds_io *w, unsigned events, void *data)
{
  ds_listener *l = data;
  unsigned i, most = ds__reactor_quick(l->r) ? 64 : 1;
  (void)w;
  (void)events;

  l->accepting = 1;
  for (i = 0; i < most && !l->closed; i++) {
    const ds_protocol *proto = NULL;
    void *user = NULL;
    ds_tcp *t;
    int fd = ds__sys.accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      /* Out of fds or memory, the listening socket stays readable: stop
       * watching it for a moment instead of waking every turn. EAGAIN,
       * ECONNABORTED and the like: done for now. */
      if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
           errno == ENOMEM) &&
          (l->backoff != NULL ||
           ds_timer_new(l->r, &l->backoff, listener_resume, l) == 0)) {
        ds_io_set(l->io, 0);
        ds_timer_start(l->backoff, 100, 0);
      }
      break;
    }
    t = tcp_new(l->r, fd, NULL, NULL);
    if (t == NULL) {
      ds__sys.close(fd);
      continue;
    }
    t->state = TCP_CONNECTED;
    /* The factory may already write or close through t. */
    t->proto = &silent_protocol;
    t->made = 1;
    if (l->factory(l->factory_data, t, &proto, &user) != 0 || proto == NULL ||
        proto->data_received == NULL) {
      if (t->state == TCP_CLOSED)
        continue; /* closed inside the factory: the silent final is due */
      /* Refused: close quietly, no callback was promised to anyone. */
      tcp_free_io(t);
      ds__sys.close(fd);
      tcp_drop_queue(t);
      free(t);
      ds__reactor_unref(l->r);
      continue;
    }
    t->proto = proto;
    t->user = user;
    /* Closed inside the factory: connection_lost follows, without a
     * connection_made (documented at ds_factory_fn). */
    if (t->state != TCP_CLOSED)
      tcp_connected(t);
  }
  l->accepting = 0;
  /* The factory or a protocol closed the listener meanwhile. */
  if (l->closed)
    free(l);
}

int ds_listen_tcp(ds_reactor *r, uint16_t port, const char *interface,
                  int backlog, unsigned flags, ds_factory_fn factory,
                  void *factory_data, ds_listener **out, char *err,
                  size_t errlen)
{
  ds_addr a;
  struct sockaddr_storage ss;
  socklen_t len;
  ds_listener *l;
  int fd, rc, one = 1;

  *out = NULL;
  if (factory == NULL)
    return ds__fail(err, errlen, -EINVAL, "no protocol factory");
  rc = parse_literal(&a, interface ? interface : "0.0.0.0", port, "interface",
                     err, errlen);
  if (rc != 0)
    return rc;
  fd = ds__sys.socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      IPPROTO_TCP);
  if (fd < 0)
    return ds__fail(err, errlen, -errno, "socket: %s", strerror(errno));
  ds__sys.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a.family == AF_INET6) {
    int v6only = (flags & DS_LISTEN_DUALSTACK) ? 0 : 1;
    if (ds__sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
                           sizeof v6only) != 0) {
      rc = -errno;
      ds__sys.close(fd);
      return ds__fail(err, errlen, rc, "IPV6_V6ONLY: %s", strerror(-rc));
    }
  }
  ds_addr_to_sockaddr(&a, &ss, &len);
  if (ds__sys.bind(fd, (struct sockaddr *)&ss, len) != 0 ||
      ds__sys.listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0) {
    char b[DS_ADDR_STRLEN];
    rc = -errno;
    ds__sys.close(fd);
    ds_addr_format(&a, b, sizeof b, DS_ADDR_FMT_PORT);
    return ds__fail(err, errlen, rc, "listen on %s: %s", b, strerror(-rc));
  }
  l = calloc(1, sizeof *l);
  if (l == NULL) {
    ds__sys.close(fd);
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  }
  len = sizeof ss;
  if (ds__sys.getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
    ds_addr_from_sockaddr(&l->host, (struct sockaddr *)&ss, len);
  else
    l->host = a;
  l->r = r;
  l->fd = fd;
  l->factory = factory;
  l->factory_data = factory_data;
  rc = ds_io_new(r, &l->io, fd, listener_io, l);
  if (rc == 0)
    rc = ds_io_set(l->io, DS_READABLE);
  if (rc != 0) {
    ds_io_free(l->io);
    ds__sys.close(fd);
    free(l);
    return ds__fail(err, errlen, rc, "epoll: %s", strerror(-rc));
  }
  ds__reactor_ref(r);
  *out = l;
  return 0;
}

int ds_listener_get_host(const ds_listener *l, ds_addr *out)
{
  *out = l->host;
  return 0;
}

int ds_listener_fd(const ds_listener *l)
{
  return l->fd;
}

void ds_listener_close(ds_listener *l)
{
  if (l == NULL)
    return;
  if (l->closed)
    return;
  l->closed = 1;
  ds_timer_free(l->backoff);
  l->backoff = NULL;
  ds_io_free(l->io);
  l->io = NULL;
  ds__sys.close(l->fd);
  l->fd = -1;
  ds__reactor_unref(l->r);
  if (!l->accepting)
    free(l);
}
