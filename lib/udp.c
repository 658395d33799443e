/* UDP ports (listen_udp, write, connect) and multicast (join and leave,
 * source-specific joins, outgoing interface, TTL / hop limit, loopback) on
 * both families.
 *
 * Lifetime: a port lives from ds_listen_udp() to ds_udp_close(). Close
 * shuts the socket at once; the memory waits while a callback of the port
 * is running (the read loop, the flush loop, a deferred call) and is freed
 * when the last of them returns, so closing from inside any callback is
 * safe. The only work deferred to a later turn is a refusal that
 * ds_udp_write() itself ran into: callbacks never run inside the call that
 * started the work.
 *
 * Addresses are values all the way: the source of each datagram is read
 * with recvmmsg() together with the IPV6_FLOWINFO control message, so the
 * protocol sees the IPv6 4-tuple (address, port, flow label, scope id).
 *
 * Datagrams are read in batches, up to DS__UDP_RX_SLOTS per recvmmsg()
 * call, which under load saves most of the per-datagram system call cost.
 * A batch is delivered in order; what is left of it when the protocol
 * pauses reading waits in the port and goes out first after the resume.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glibc's headers lack the Linux option that turns on the IPV6_FLOWINFO
 * control message (linux/in6.h has it, but clashes with netinet/in.h). */
#ifndef IPV6_FLOWINFO
#define IPV6_FLOWINFO 11
#endif
#define FLOWLABEL_MASK 0x000fffffu

#define DS__UDP_MAX_DGRAM 65535
#define DS__UDP_QUEUE_LIMIT (256 * 1024)
/* Datagrams read per readiness event, for fairness with other sockets. */
#define DS__UDP_READ_BATCH 32
/* Datagrams one recvmmsg() may read. Each has a buffer of the port's
 * max_dgram bytes: mostly untouched (so not resident) memory, as a short
 * datagram writes only the start of its buffer. */
#define DS__UDP_RX_SLOTS 16
/* Attempts at binding an explicit port number for a port-0 request. */
#define DS__UDP_BIND_TRIES 8

/* Where recvmmsg() puts one datagram's source and control messages. */
typedef struct rxslot {
  struct sockaddr_storage ss;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(uint32_t)) * 4];
  } cbuf;
  struct iovec iov;
} rxslot;

/* The receive batch: headers for recvmmsg() and their slots. */
typedef struct rxbatch {
  struct mmsghdr mm[DS__UDP_RX_SLOTS];
  rxslot slot[DS__UDP_RX_SLOTS];
} rxbatch;

/* One datagram waiting in the send queue, with its destination. */
typedef struct dgram {
  struct dgram *next;
  ds_addr to;
  size_t len;
  char data[];
} dgram;

struct ds_udp {
  ds_reactor *r;
  ds_io *io;
  int fd;
  int family;
  const ds_udp_protocol *proto;
  void *user;
  ds_addr bound;      /* the address listened on, port resolved */
  ds_addr peer;       /* connected peer, valid when connected */
  unsigned char *buf; /* DS__UDP_RX_SLOTS buffers of max_dgram bytes */
  size_t max_dgram;
  rxbatch *rx;
  unsigned rx_count, rx_next; /* datagrams in the batch, next to deliver */
  dgram *wq, *wq_tail;        /* send queue */
  size_t wq_bytes, wq_limit;
  unsigned mc_ifindex;    /* outgoing multicast interface set, or 0 */
  struct in_addr mc_addr; /* IPv4: the address it was set by, or 0 */
  unsigned refusals;      /* refusals met by ds_udp_write(), undelivered */
  int busy;               /* callbacks of this port running now */
  ds__call call;          /* delivers refusals on the next turn */
  unsigned connected : 1;
  unsigned wildcard : 1; /* bound to 0.0.0.0 or :: */
  unsigned reading_paused : 1;
  unsigned want_resume : 1; /* a write saw -EAGAIN: resume_producing due */
  unsigned call_queued : 1;
  unsigned closed : 1;
};

/* Returns "IPv4" or "IPv6" for messages. */
static const char *family_name(int family)
{
  return family == AF_INET6 ? "IPv6" : "IPv4";
}

/* Returns 1 if a is an IPv6 address that means nothing without a scope id
 * it lacks: link-local unicast, or an interface- or link-local group. */
static int lacks_needed_scope(const ds_addr *a)
{
  ds_addr_class c;
  int scope;
  if (a->family != AF_INET6 || a->scope_id != 0)
    return 0;
  c = ds_addr_classify(a);
  if (c == DS_ADDR_LINKLOCAL)
    return 1;
  scope = ds_addr_scope(a);
  return c == DS_ADDR_MULTICAST && (scope == 1 || scope == 2);
}

/* Writes a's text (with the port when port is set) into buf, "(unset)" if
 * a cannot be written; returns buf. */
static const char *addr_text(const ds_addr *a, char *buf, int port)
{
  if (ds_addr_format(a, buf, DS_ADDR_STRLEN, port ? DS_ADDR_FMT_PORT : 0) < 0)
    strcpy(buf, "(unset)");
  return buf;
}

/* --------------------------------------------------------------- lifetime */

/* Frees u once it is closed and nothing of it runs or waits to run. */
static void udp_maybe_free(ds_udp *u)
{
  ds_reactor *r = u->r;
  if (!u->closed || u->busy > 0 || u->call_queued)
    return;
  free(u->buf);
  free(u->rx);
  free(u);
  ds__reactor_unref(r);
}

/* Frees the send queue. */
static void udp_drop_queue(ds_udp *u)
{
  dgram *d, *next;
  for (d = u->wq; d != NULL; d = next) {
    next = d->next;
    free(d);
  }
  u->wq = u->wq_tail = NULL;
  u->wq_bytes = 0;
}

/* Returns the epoll interest matching the port's state. */
static unsigned udp_wanted(const ds_udp *u)
{
  unsigned ev = 0;
  if (!u->reading_paused)
    ev |= DS_READABLE;
  if (u->wq != NULL || u->want_resume)
    ev |= DS_WRITABLE;
  return ev;
}

/* Tells the protocol about an asynchronous error. */
static void udp_report(ds_udp *u, int err, const ds_addr *addr)
{
  if (u->proto->error != NULL)
    u->proto->error(u, err, addr, u->user);
}

/* Applies udp_wanted(). epoll_ctl fails only without memory (or for a
 * closed fd): the port cannot wait then, and says so once. */
static void udp_update(ds_udp *u)
{
  int rc;
  if (u->closed)
    return;
  rc = ds_io_set(u->io, udp_wanted(u));
  if (rc != 0)
    udp_report(u, rc, NULL);
}

/* Tells the protocol that the connected peer refused a datagram. */
static void udp_refused(ds_udp *u)
{
  if (u->proto->connection_refused != NULL)
    u->proto->connection_refused(u, u->user);
  else
    udp_report(u, -ECONNREFUSED, u->connected ? &u->peer : NULL);
}

static void udp_read(ds_udp *u);

/* The deferred call: delivers the refusals ds_udp_write() met, then what
 * is left of a receive batch once reading is resumed (no readiness event
 * would come for datagrams already out of the socket). */
static void udp_deferred(void *p)
{
  ds_udp *u = p;
  u->call_queued = 0;
  u->busy++;
  while (u->refusals > 0 && !u->closed) {
    u->refusals--;
    udp_refused(u);
  }
  if (!u->closed && !u->reading_paused && u->rx_next < u->rx_count)
    udp_read(u);
  u->busy--;
  udp_maybe_free(u);
}

/* Queues the deferred call, once. */
static void udp_defer(ds_udp *u)
{
  if (!u->call_queued) {
    u->call_queued = 1;
    ds__reactor_defer(u->r, &u->call, udp_deferred, u);
  }
}

/* Notes a refusal met inside a call of the user's, for the next turn. */
static void udp_defer_refusal(ds_udp *u)
{
  u->refusals++;
  udp_defer(u);
}

/* ----------------------------------------------------------------- sending */

/* Sends one datagram to to (NULL: the connected peer). Returns 0 or a
 * negative errno; -EAGAIN for EWOULDBLOCK too. */
static int udp_send(ds_udp *u, const void *data, size_t len, const ds_addr *to)
{
  struct sockaddr_storage ss;
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  struct msghdr msg = {0};
  socklen_t sslen;
  ssize_t n;

  if (to != NULL) {
    ds_addr_to_sockaddr(to, &ss, &sslen);
    msg.msg_name = &ss;
    msg.msg_namelen = sslen;
  }
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  do
    n = ds__sys.sendmsg(u->fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n >= 0)
    return 0;
  return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Appends a copy of the datagram to the send queue. Returns 0 or
 * -ENOMEM. */
static int udp_queue(ds_udp *u, const void *data, size_t len, const ds_addr *to)
{
  dgram *d = malloc(sizeof *d + len);
  if (d == NULL)
    return -ENOMEM;
  d->next = NULL;
  d->to = *to;
  d->len = len;
  if (len > 0)
    memcpy(d->data, data, len);
  if (u->wq_tail != NULL)
    u->wq_tail->next = d;
  else
    u->wq = d;
  u->wq_tail = d;
  u->wq_bytes += len;
  return 0;
}

/* Sends the queue in order until the kernel says EAGAIN. A datagram that
 * fails goes to error() with its destination; the rest still go. Runs
 * inside the watcher's callback only. */
static void udp_flush(ds_udp *u)
{
  while (u->wq != NULL && !u->closed) {
    dgram *d = u->wq;
    int rc = udp_send(u, d->data, d->len, &d->to);
    if (rc == -ECONNREFUSED && u->connected) {
      /* The refusal belongs to an earlier datagram: deliver it, then
       * send this one. */
      udp_refused(u);
      if (u->closed)
        return;
      rc = udp_send(u, d->data, d->len, &d->to);
    }
    if (rc == -EAGAIN)
      return;
    u->wq = d->next;
    if (u->wq == NULL)
      u->wq_tail = NULL;
    u->wq_bytes -= d->len;
    if (rc != 0)
      udp_report(u, rc, &d->to);
    free(d);
  }
  if (!u->closed && u->wq == NULL && u->want_resume) {
    u->want_resume = 0;
    if (u->proto->resume_producing != NULL)
      u->proto->resume_producing(u, u->user);
  }
}

/* Checks a destination against the port (see ds_udp_write()) and writes
 * the one to use into out, with a missing scope filled in where the port
 * supplies one. Returns 0 or an error; err explains. */
static int udp_check_dest(const ds_udp *u, const ds_addr *to, ds_addr *out,
                          char *err, size_t errlen)
{
  char t[DS_ADDR_STRLEN];

  if (to->family != AF_INET && to->family != AF_INET6)
    return ds__fail(err, errlen, -EINVAL, "destination address is unset");
  if (to->family != u->family)
    return ds__fail(
        err, errlen, DS_EFAMILY, "destination %s is %s but the port is %s",
        addr_text(to, t, 1), family_name(to->family), family_name(u->family));
  *out = *to;
  if (lacks_needed_scope(to)) {
    /* The kernel would send by the port's bound interface, or a group by
     * the outgoing multicast interface: then the scope is not a guess. */
    if (u->bound.scope_id != 0)
      out->scope_id = u->bound.scope_id;
    else if (!(ds_addr_classify(to) == DS_ADDR_MULTICAST && u->mc_ifindex != 0))
      return ds__fail(err, errlen, DS_ENEEDSCOPE,
                      "destination %s needs a scope id, as in "
                      "[%s%%eth0]:%u",
                      addr_text(to, t, 1), addr_text(to, t, 0), to->port);
  }
  return 0;
}

/* ds_udp_write() with err. */
static int udp_write(ds_udp *u, const void *data, size_t len, const ds_addr *to,
                     char *err, size_t errlen)
{
  ds_addr dst;
  int rc;

  if (u->closed)
    return ds__fail(err, errlen, -EBADF, "port is closed");
  if (to == NULL) {
    if (!u->connected)
      return ds__fail(err, errlen, -EDESTADDRREQ,
                      "no destination given and the port is not "
                      "connected");
    dst = u->peer;
  } else {
    rc = udp_check_dest(u, to, &dst, err, errlen);
    if (rc != 0)
      return rc;
  }
  /* Behind queued datagrams: queue too, to keep the order. */
  if (u->wq == NULL) {
    rc = udp_send(u, data, len, to == NULL ? NULL : &dst);
    if (rc == -ECONNREFUSED && u->connected) {
      /* The kernel held a refusal of an earlier datagram and gave it to
       * this send instead of sending: report it later, send again now. */
      udp_defer_refusal(u);
      rc = udp_send(u, data, len, to == NULL ? NULL : &dst);
    }
    if (rc != -EAGAIN) {
      if (rc != 0) {
        char t[DS_ADDR_STRLEN];
        return ds__fail(err, errlen, rc, "send to %s: %s",
                        addr_text(&dst, t, 1), ds_strerror(rc));
      }
      return 0;
    }
  }
  if (u->wq != NULL && u->wq_bytes >= u->wq_limit) {
    rc = -EAGAIN;
  } else if (u->wq == NULL && u->wq_limit == 0) {
    rc = -EAGAIN;
  } else {
    rc = udp_queue(u, data, len, &dst);
    if (rc != 0)
      return ds__fail(err, errlen, rc, "out of memory");
  }
  if (rc == -EAGAIN)
    u->want_resume = 1;
  udp_update(u);
  if (rc != 0)
    return ds__fail(err, errlen, rc,
                    "send queue full (%zu bytes): wait for "
                    "resume_producing",
                    u->wq_bytes);
  return 0;
}

int ds_udp_write(ds_udp *u, const void *data, size_t len, const ds_addr *to)
{
  return udp_write(u, data, len, to, NULL, 0);
}

int ds_udp_write_to(ds_udp *u, const void *data, size_t len, const char *host,
                    uint16_t port, char *err, size_t errlen)
{
  ds_addr to;
  int rc;
  if (host == NULL)
    return udp_write(u, data, len, NULL, err, errlen);
  rc = ds__parse_literal(&to, host, port, "host", err, errlen);
  if (rc != 0)
    return rc;
  return udp_write(u, data, len, &to, err, errlen);
}

size_t ds_udp_buffered(const ds_udp *u)
{
  return u->wq_bytes;
}

void ds_udp_set_queue_limit(ds_udp *u, size_t limit)
{
  u->wq_limit = limit;
}

/* ----------------------------------------------------------------- reading */

/* Returns 1 if a and b are the same address and port (scope ids aside:
 * the kernel already matched the interface of a connected socket). */
static int same_endpoint(const ds_addr *a, const ds_addr *b)
{
  if (a->family != b->family || a->port != b->port)
    return 0;
  return memcmp(a->ip.bytes, b->ip.bytes, a->family == AF_INET6 ? 16 : 4) == 0;
}

/* Reads the flow label from the IPV6_FLOWINFO control message of msg, if
 * there is one, into from. */
static void take_flowinfo(struct msghdr *msg, ds_addr *from)
{
  struct cmsghdr *c;
  for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_FLOWINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
      uint32_t v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      /* The kernel gives traffic class and flow label; a ds_addr holds
       * the flow label, as sin6_flowinfo does when sending. */
      from->flowinfo = ntohl(v) & FLOWLABEL_MASK;
    }
  }
}

/* Delivers datagram i of the receive batch, unless it must be dropped:
 * not from the peer of a connected port (sent before the connect, or
 * before a retarget), or longer than max_dgram (reported). */
static void udp_deliver(ds_udp *u, unsigned i)
{
  struct msghdr *h = &u->rx->mm[i].msg_hdr;
  ds_addr from;

  if (ds_addr_from_sockaddr(&from, h->msg_name, h->msg_namelen) != 0)
    return; /* not IP: cannot happen on an IP socket */
  if (from.family == AF_INET6)
    take_flowinfo(h, &from);
  /* Sent before the connect, from someone else: connect promised only the
   * peer's datagrams (and no reports about others'). */
  if (u->connected && !same_endpoint(&from, &u->peer))
    return;
  if (h->msg_flags & MSG_TRUNC) {
    udp_report(u, -EMSGSIZE, &from);
    return;
  }
  u->proto->datagram_received(u, u->buf + (size_t)i * u->max_dgram,
                              u->rx->mm[i].msg_len, &from, u->user);
}

/* Reads up to want (at most DS__UDP_RX_SLOTS) datagrams into the batch.
 * Returns how many, 0 when none is waiting, or -1 after reporting an
 * error the socket held (an ICMP error on a connected port: reading it
 * cleared it). */
static int udp_receive(ds_udp *u, unsigned want)
{
  unsigned i;
  int n, e;

  if (want > DS__UDP_RX_SLOTS)
    want = DS__UDP_RX_SLOTS;
  for (i = 0; i < want; i++) {
    struct msghdr *h = &u->rx->mm[i].msg_hdr;
    rxslot *sl = &u->rx->slot[i];
    sl->iov.iov_base = u->buf + (size_t)i * u->max_dgram;
    sl->iov.iov_len = u->max_dgram;
    h->msg_name = &sl->ss;
    h->msg_namelen = sizeof sl->ss;
    h->msg_iov = &sl->iov;
    h->msg_iovlen = 1;
    h->msg_control = sl->cbuf.buf;
    h->msg_controllen = sizeof sl->cbuf.buf;
    h->msg_flags = 0;
  }
  do
    n = ds__sys.recvmmsg(u->fd, u->rx->mm, want, 0, NULL);
  while (n < 0 && errno == EINTR);
  if (n >= 0) {
    u->rx_count = (unsigned)n;
    u->rx_next = 0;
    return n;
  }
  e = errno;
  if (e == EAGAIN || e == EWOULDBLOCK)
    return 0;
  if (e == ECONNREFUSED)
    udp_refused(u);
  else
    udp_report(u, -e, u->connected ? &u->peer : NULL);
  return -1;
}

/* Delivers what is pending, the rest of the batch first, at most
 * DS__UDP_READ_BATCH datagrams (or errors) per call. */
static void udp_read(ds_udp *u)
{
  unsigned budget = DS__UDP_READ_BATCH;

  while (budget > 0 && !u->closed && !u->reading_paused) {
    int n;
    if (u->rx_next < u->rx_count) {
      budget--;
      udp_deliver(u, u->rx_next++);
      continue;
    }
    /* Never more than the budget: a batch is always delivered whole
     * unless the protocol pauses or closes. */
    n = udp_receive(u, budget);
    if (n == 0)
      return;
    if (n < 0)
      budget--;
  }
}

/* Takes the socket's pending error while reading is paused (reading would
 * have taken it) and reports it. */
static void udp_take_error(ds_udp *u)
{
  int e = 0;
  socklen_t len = sizeof e;
  if (ds__sys.getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0 || e == 0)
    return;
  if (e == ECONNREFUSED)
    udp_refused(u);
  else
    udp_report(u, -e, u->connected ? &u->peer : NULL);
}

static void udp_io(ds_io *w, unsigned events, void *data)
{
  ds_udp *u = data;
  (void)w;

  u->busy++;
  if (events & DS_WRITABLE)
    udp_flush(u);
  if (!u->closed && (events & (DS_READABLE | DS_ERROR))) {
    if (!u->reading_paused)
      udp_read(u);
    else if (events & DS_ERROR)
      udp_take_error(u);
  }
  u->busy--;
  udp_update(u);
  udp_maybe_free(u);
}

void ds_udp_pause_reading(ds_udp *u)
{
  u->reading_paused = 1;
  udp_update(u);
}

void ds_udp_resume_reading(ds_udp *u)
{
  u->reading_paused = 0;
  udp_update(u);
  /* Datagrams left in the batch by the pause: the socket may have nothing
   * more to wake the reactor for. */
  if (!u->closed && u->rx_next < u->rx_count)
    udp_defer(u);
}

/* --------------------------------------------------------------- listening */

/* Binds fd to a. A port-0 request on a wildcard address gets a port from
 * the kernel and is then bound again with that port given explicitly:
 * only an explicit port survives the dissolve that retargeting a wildcard
 * port needs (see ds_udp_connect_addr()). Returns 0, 1 when another
 * socket took the kernel's pick before it was bound again (a new socket
 * should try again), or a negative errno (-EADDRINUSE for a port-0 request:
 * no free port is left). */
static int udp_bind(int fd, const ds_addr *a, int wildcard)
{
  struct sockaddr_storage ss;
  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  ds_addr got;
  socklen_t len;

  ds_addr_to_sockaddr(a, &ss, &len);
  if (ds__sys.bind(fd, (struct sockaddr *)&ss, len) != 0)
    return -errno;
  if (a->port != 0 || !wildcard)
    return 0;
  len = sizeof ss;
  if (ds__sys.getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return -errno;
  if (ds_addr_from_sockaddr(&got, (struct sockaddr *)&ss, len) != 0)
    return -EAFNOSUPPORT;
  /* Connecting to AF_UNSPEC unbinds a port the kernel chose. */
  if (ds__sys.connect(fd, &unspec, sizeof unspec) != 0)
    return -errno;
  /* The kernel's pick, now asked for by number. */
  ds_addr_to_sockaddr(&got, &ss, &len);
  if (ds__sys.bind(fd, (struct sockaddr *)&ss, len) != 0)
    return errno == EADDRINUSE ? 1 : -errno;
  return 0;
}

/* Sets an int socket option. Returns 0 or a negative errno. */
static int set_int(int fd, int level, int opt, int v)
{
  if (ds__sys.setsockopt(fd, level, opt, &v, sizeof v) != 0)
    return -errno;
  return 0;
}

/* Makes a socket for a with the port's options and binds it. Returns the
 * fd, or a negative errno with err set.
 *
 * DS_UDP_REUSE is SO_REUSEADDR alone, which is all Linux needs to let
 * UDP sockets share an address and port. SO_REUSEPORT would put the
 * sockets in a reuseport group, and since Linux 6.5 (commit 9c02bec95954,
 * inet_steal_sock()) a multicast datagram that early demux matched to the
 * one member that joined the group on the arrival interface is handed to
 * a member picked by hash instead: ports joined on different interfaces
 * (or not at all) get each other's datagrams, and the right one gets none.
 * For a port-0 request the option is set only once the port is bound:
 * the kernel's pick for a socket with SO_REUSEADDR may be a port that
 * another such socket holds, and the caller asked for a fresh one. */
static int udp_socket(const ds_addr *a, unsigned flags, int wildcard, char *err,
                      size_t errlen)
{
  char t[DS_ADDR_STRLEN];
  int fd, rc = 0, tries;
  int reuse = (flags & DS_UDP_REUSE) != 0;

  for (tries = 0; tries < DS__UDP_BIND_TRIES; tries++) {
    fd = ds__sys.socket(a->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        IPPROTO_UDP);
    if (fd < 0)
      return ds__fail(err, errlen, -errno, "socket: %s", strerror(errno));
    if (reuse && a->port != 0) {
      rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      if (rc != 0) {
        ds__sys.close(fd);
        return ds__fail(err, errlen, rc, "SO_REUSEADDR: %s", ds_strerror(rc));
      }
    }
    if (a->family == AF_INET6) {
      rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
      if (rc == 0)
        rc = set_int(fd, IPPROTO_IPV6, IPV6_FLOWINFO, 1);
      if (rc != 0) {
        ds__sys.close(fd);
        return ds__fail(err, errlen, rc, "IPV6_V6ONLY/IPV6_FLOWINFO: %s",
                        ds_strerror(rc));
      }
      /* Kernels before 4.20 lack it; they deliver more, not less. */
      set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0);
    } else {
      set_int(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    }
    rc = udp_bind(fd, a, wildcard);
    if (rc == 0 && reuse && a->port == 0)
      rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0)
      return fd;
    ds__sys.close(fd);
    if (rc != 1)
      break;
  }
  if (rc == 1)
    rc = -EADDRINUSE;
  return ds__fail(err, errlen, rc, "listen on %s: %s", addr_text(a, t, 1),
                  ds_strerror(rc));
}

int ds_listen_udp(ds_reactor *r, uint16_t port, const char *interface,
                  size_t max_datagram_size, unsigned flags,
                  const ds_udp_protocol *proto, void *user, ds_udp **out,
                  char *err, size_t errlen)
{
  struct sockaddr_storage ss;
  socklen_t len;
  const char *text = interface != NULL ? interface : "0.0.0.0";
  ds_addr a;
  ds_udp *u;
  int fd, rc, wildcard;

  *out = NULL;
  if (proto == NULL || proto->datagram_received == NULL)
    return ds__fail(err, errlen, -EINVAL, "protocol has no datagram_received");
  if (flags & ~(unsigned)DS_UDP_REUSE)
    return ds__fail(err, errlen, -EINVAL, "unknown flags 0x%x",
                    flags & ~(unsigned)DS_UDP_REUSE);
  rc = ds__parse_literal(&a, text, port, "interface", err, errlen);
  if (rc != 0)
    return rc;
  if (lacks_needed_scope(&a))
    return ds__fail(err, errlen, DS_ENEEDSCOPE,
                    "interface '%s': %s address needs a scope, as in "
                    "'%s%%eth0'",
                    text,
                    ds_addr_classify(&a) == DS_ADDR_MULTICAST
                        ? "a link-local group"
                        : "a link-local",
                    text);
  wildcard = ds_addr_classify(&a) == DS_ADDR_UNSPECIFIED;
  u = calloc(1, sizeof *u);
  if (u == NULL)
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  u->max_dgram = max_datagram_size == 0 || max_datagram_size > 65535
                     ? DS__UDP_MAX_DGRAM
                     : max_datagram_size;
  u->buf = malloc(u->max_dgram * DS__UDP_RX_SLOTS);
  u->rx = calloc(1, sizeof *u->rx);
  if (u->buf == NULL || u->rx == NULL) {
    free(u->buf);
    free(u->rx);
    free(u);
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  }
  fd = udp_socket(&a, flags, wildcard, err, errlen);
  if (fd < 0) {
    free(u->buf);
    free(u->rx);
    free(u);
    return fd;
  }
  len = sizeof ss;
  if (ds__sys.getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
      ds_addr_from_sockaddr(&u->bound, (struct sockaddr *)&ss, len) != 0)
    u->bound = a;
  /* The kernel reports no scope for a scoped non-link-local address; the
   * port was still asked for it. */
  if (u->bound.family == AF_INET6 && u->bound.scope_id == 0)
    u->bound.scope_id = a.scope_id;
  u->r = r;
  u->fd = fd;
  u->family = a.family;
  u->proto = proto;
  u->user = user;
  u->wildcard = (unsigned)wildcard;
  u->wq_limit = DS__UDP_QUEUE_LIMIT;
  rc = ds_io_new(r, &u->io, fd, udp_io, u);
  if (rc == 0)
    rc = ds_io_set(u->io, DS_READABLE);
  if (rc != 0) {
    ds_io_free(u->io);
    ds__sys.close(fd);
    free(u->buf);
    free(u->rx);
    free(u);
    return ds__fail(err, errlen, rc, "epoll: %s", ds_strerror(rc));
  }
  ds__reactor_ref(r);
  *out = u;
  return 0;
}

int ds_udp_get_host(const ds_udp *u, ds_addr *out)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int rc;
  if (u->closed)
    return -EBADF;
  if (ds__sys.getsockname(u->fd, (struct sockaddr *)&ss, &len) != 0)
    return -errno;
  rc = ds_addr_from_sockaddr(out, (struct sockaddr *)&ss, len);
  if (rc == 0 && out->family == AF_INET6 && out->scope_id == 0)
    out->scope_id = u->bound.scope_id;
  return rc;
}

int ds_udp_get_peer(const ds_udp *u, ds_addr *out)
{
  if (!u->connected)
    return -ENOTCONN;
  *out = u->peer;
  return 0;
}

int ds_udp_fd(const ds_udp *u)
{
  return u->fd;
}

void ds_udp_set_user(ds_udp *u, void *user)
{
  u->user = user;
}

void ds_udp_close(ds_udp *u)
{
  if (u == NULL || u->closed)
    return;
  u->closed = 1;
  ds_io_free(u->io);
  u->io = NULL;
  ds__sys.close(u->fd);
  u->fd = -1;
  udp_drop_queue(u);
  udp_maybe_free(u);
}

/* -------------------------------------------------------------- connecting */

/* Connects fd to a. Returns 0 or a negative errno. */
static int connect_to(int fd, const ds_addr *a)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int rc;
  ds_addr_to_sockaddr(a, &ss, &len);
  do
    rc = ds__sys.connect(fd, (struct sockaddr *)&ss, len);
  while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : -errno;
}

int ds_udp_connect_addr(ds_udp *u, const ds_addr *peer, char *err,
                        size_t errlen)
{
  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  char t[DS_ADDR_STRLEN];
  ds_addr dst;
  int rc, stale = 0, dissolved = 0;
  socklen_t len = sizeof stale;

  if (u->closed)
    return ds__fail(err, errlen, -EBADF, "port is closed");
  if (peer == NULL)
    return ds__fail(err, errlen, -EINVAL, "no peer given");
  rc = udp_check_dest(u, peer, &dst, err, errlen);
  if (rc != 0)
    return rc;
  if (dst.port == 0)
    return ds__fail(err, errlen, -EINVAL, "peer %s has port 0",
                    addr_text(&dst, t, 0));
  if (u->connected) {
    /* A refusal from the old peer must not pass for the new one's. */
    ds__sys.getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &stale, &len);
    /* The kernel keeps the local address the first connect of a wildcard
     * port chose; dissolving lets it choose again for the new peer. The
     * port number stays: udp_bind() bound it explicitly. */
    if (u->wildcard) {
      if (ds__sys.connect(u->fd, &unspec, sizeof unspec) != 0)
        return ds__fail(err, errlen, -errno, "disconnect: %s", strerror(errno));
      dissolved = 1;
    }
  }
  rc = connect_to(u->fd, &dst);
  if (rc != 0) {
    if (dissolved && connect_to(u->fd, &u->peer) != 0)
      u->connected = 0;
    return ds__fail(err, errlen, rc, "connect to %s: %s", addr_text(&dst, t, 1),
                    ds_strerror(rc));
  }
  /* Refusals a write met and the next turn would deliver were the old
   * peer's, like the one SO_ERROR held. */
  if (u->connected)
    u->refusals = 0;
  u->peer = dst;
  u->connected = 1;
  return 0;
}

int ds_udp_connect(ds_udp *u, const char *host, uint16_t port, char *err,
                   size_t errlen)
{
  ds_addr a;
  int rc = ds__parse_literal(&a, host, port, "host", err, errlen);
  if (rc != 0)
    return rc;
  return ds_udp_connect_addr(u, &a, err, errlen);
}

/* --------------------------------------------------------------- multicast */

/* Resolves an interface argument (see the header): NULL or "" is 0, a
 * name or an index must exist, an address must be held by an interface.
 * For an address of the port's IPv4 family, *v4 gets it (else 0).
 * Returns 0 with *index set, or an error naming text in err. */
static int resolve_interface(const char *text, unsigned *index,
                             struct in_addr *v4, char *err, size_t errlen)
{
  char name[IF_NAMESIZE];
  const char *p;
  ds_addr a;
  int rc;

  *index = 0;
  v4->s_addr = 0;
  if (text == NULL || *text == '\0')
    return 0;
  for (p = text; *p >= '0' && *p <= '9'; p++)
    ;
  if (*p == '\0') {
    unsigned long v = strtoul(text, NULL, 10);
    if (v == 0 || v > 0x7fffffff || text[0] == '0' ||
        if_indextoname((unsigned)v, name) == NULL)
      return ds__fail(err, errlen, -ENODEV, "no interface with index '%s'",
                      text);
    *index = (unsigned)v;
    return 0;
  }
  /* Anything of digits and dots, or with a ':', is meant as an address:
   * parse it as one, so that a typo gets the parser's message. */
  for (p = text; (*p >= '0' && *p <= '9') || *p == '.'; p++)
    ;
  if (*p == '\0' || strchr(text, ':') != NULL ||
      ds_addr_parse(&a, text, 0, NULL, 0) == 0) {
    rc = ds_addr_parse(&a, text, 0, err, errlen);
    if (rc != 0)
      return rc;
    rc = ds__ifaddr_find(&a, index);
    if (rc == -EADDRNOTAVAIL)
      return ds__fail(err, errlen, rc, "no interface has address '%s'", text);
    if (rc != 0)
      return ds__fail(err, errlen, rc, "interface '%s': %s", text,
                      ds_strerror(rc));
    if (a.family == AF_INET)
      *v4 = a.ip.v4;
    return 0;
  }
  if (strlen(text) >= IF_NAMESIZE || (*index = if_nametoindex(text)) == 0)
    return ds__fail(err, errlen, -ENODEV, "no interface named '%s'", text);
  return 0;
}

/* What a group operation needs, checked: the group and source as
 * sockaddrs, the interface index. */
typedef struct mcast_args {
  struct sockaddr_storage group, source;
  unsigned ifindex;
} mcast_args;

/* Checks and resolves the arguments of a join or leave (source NULL for
 * any-source). Returns 0 or an error naming the bad part in err. */
static int mcast_prepare(const ds_udp *u, const char *group, const char *source,
                         const char *interface, mcast_args *m, char *err,
                         size_t errlen)
{
  struct in_addr unused;
  char t[DS_ADDR_STRLEN];
  ds_addr g, s;
  socklen_t len;
  int rc;

  memset(m, 0, sizeof *m);
  if (u->closed)
    return ds__fail(err, errlen, -EBADF, "port is closed");
  rc = ds__parse_literal(&g, group, 0, "group", err, errlen);
  if (rc != 0)
    return rc;
  if (ds_addr_classify(&g) != DS_ADDR_MULTICAST)
    return ds__fail(err, errlen, DS_ENOTMCAST,
                    "group '%s' is not a multicast address (%s)", group,
                    g.family == AF_INET6 ? "ff00::/8" : "224.0.0.0/4");
  if (g.family != u->family)
    return ds__fail(err, errlen, DS_EFAMILY,
                    "group '%s' is %s but the port is %s", group,
                    family_name(g.family), family_name(u->family));
  rc = resolve_interface(interface, &m->ifindex, &unused, err, errlen);
  if (rc != 0)
    return rc;
  if (g.scope_id != 0) {
    if (m->ifindex != 0 && m->ifindex != g.scope_id)
      return ds__fail(err, errlen, -EINVAL,
                      "group '%s' names interface %u but interface '%s' is "
                      "%u",
                      group, g.scope_id, interface, m->ifindex);
    m->ifindex = g.scope_id;
  } else if (m->ifindex == 0 && lacks_needed_scope(&g)) {
    return ds__fail(err, errlen, DS_ENEEDSCOPE,
                    "group '%s' is link-scoped: give an interface, or a "
                    "scope as in '%s%%eth0'",
                    group, addr_text(&g, t, 0));
  }
  g.scope_id = 0; /* the interface goes in the request, not the sockaddr */
  ds_addr_to_sockaddr(&g, &m->group, &len);
  if (source == NULL)
    return 0;
  rc = ds__parse_literal(&s, source, 0, "source", err, errlen);
  if (rc != 0)
    return rc;
  if (s.family != g.family)
    return ds__fail(err, errlen, DS_EFAMILY,
                    "source '%s' is %s but group '%s' is %s", source,
                    family_name(s.family), group, family_name(g.family));
  if (ds_addr_classify(&s) == DS_ADDR_MULTICAST ||
      ds_addr_classify(&s) == DS_ADDR_UNSPECIFIED)
    return ds__fail(err, errlen, -EINVAL,
                    "source '%s' must be a unicast address", source);
  ds_addr_to_sockaddr(&s, &m->source, &len);
  return 0;
}

/* Explains a failed membership call, by errno. Returns rc. */
static int mcast_fail(int rc, const char *op, const char *group,
                      const char *source, const mcast_args *m, char *err,
                      size_t errlen)
{
  char ifname[IF_NAMESIZE] = "";
  const char *why = ds_strerror(rc);

  if (m->ifindex != 0 && if_indextoname(m->ifindex, ifname) == NULL)
    snprintf(ifname, sizeof ifname, "%u", m->ifindex);
  if (rc == -EADDRINUSE)
    why = "already joined there";
  else if (rc == -EADDRNOTAVAIL && strncmp(op, "leave", 5) == 0)
    why = "not joined there";
  else if (rc == -ENODEV && m->ifindex == 0)
    why = "no route picks an interface for it: name one";
  else if (rc == -EINVAL && source != NULL)
    why = "invalid (joined without a source before?)";
  return ds__fail(err, errlen, rc, "%s group '%s'%s%s on %s: %s", op, group,
                  source ? " source " : "", source ? source : "",
                  ifname[0] ? ifname : "the default interface", why);
}

/* Joins or leaves (opt: MCAST_JOIN_GROUP...). Returns 0 or an error. */
static int mcast_op(ds_udp *u, int opt, const char *op, const char *group,
                    const char *source, const char *interface, char *err,
                    size_t errlen)
{
  int level = u->family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  mcast_args m;
  int rc = mcast_prepare(u, group, source, interface, &m, err, errlen);

  if (rc != 0)
    return rc;
  if (source == NULL) {
    struct group_req gr;
    memset(&gr, 0, sizeof gr);
    gr.gr_interface = m.ifindex;
    gr.gr_group = m.group;
    rc = ds__sys.setsockopt(u->fd, level, opt, &gr, sizeof gr);
  } else {
    struct group_source_req gsr;
    memset(&gsr, 0, sizeof gsr);
    gsr.gsr_interface = m.ifindex;
    gsr.gsr_group = m.group;
    gsr.gsr_source = m.source;
    rc = ds__sys.setsockopt(u->fd, level, opt, &gsr, sizeof gsr);
  }
  if (rc != 0)
    return mcast_fail(-errno, op, group, source, &m, err, errlen);
  return 0;
}

int ds_udp_join_group(ds_udp *u, const char *group, const char *interface,
                      char *err, size_t errlen)
{
  return mcast_op(u, MCAST_JOIN_GROUP, "join", group, NULL, interface, err,
                  errlen);
}

int ds_udp_leave_group(ds_udp *u, const char *group, const char *interface,
                       char *err, size_t errlen)
{
  return mcast_op(u, MCAST_LEAVE_GROUP, "leave", group, NULL, interface, err,
                  errlen);
}

int ds_udp_join_source_group(ds_udp *u, const char *group, const char *source,
                             const char *interface, char *err, size_t errlen)
{
  if (source == NULL)
    return ds__fail(err, errlen, -EINVAL, "source: no address given");
  return mcast_op(u, MCAST_JOIN_SOURCE_GROUP, "join", group, source, interface,
                  err, errlen);
}

int ds_udp_leave_source_group(ds_udp *u, const char *group, const char *source,
                              const char *interface, char *err, size_t errlen)
{
  if (source == NULL)
    return ds__fail(err, errlen, -EINVAL, "source: no address given");
  return mcast_op(u, MCAST_LEAVE_SOURCE_GROUP, "leave", group, source,
                  interface, err, errlen);
}

int ds_udp_set_outgoing_interface(ds_udp *u, const char *interface, char *err,
                                  size_t errlen)
{
  struct in_addr v4;
  unsigned index;
  int rc;

  if (u->closed)
    return ds__fail(err, errlen, -EBADF, "port is closed");
  rc = resolve_interface(interface, &index, &v4, err, errlen);
  if (rc != 0)
    return rc;
  if (u->family == AF_INET6) {
    int idx = (int)index;
    rc = ds__sys.setsockopt(u->fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx,
                            sizeof idx);
  } else {
    /* ip_mreqn carries both: the index picks the interface, an address
     * (when that is how the caller named it) becomes the source. */
    struct ip_mreqn mr;
    memset(&mr, 0, sizeof mr);
    mr.imr_ifindex = (int)index;
    mr.imr_address = v4;
    rc = ds__sys.setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr);
  }
  if (rc != 0) {
    rc = -errno;
    return ds__fail(err, errlen, rc, "outgoing interface '%s': %s",
                    interface ? interface : "", ds_strerror(rc));
  }
  u->mc_ifindex = index;
  u->mc_addr = v4;
  return 0;
}

int ds_udp_get_outgoing_interface(const ds_udp *u, char *buf, size_t len,
                                  unsigned *ifindex)
{
  char text[DS_ADDR_STRLEN] = "";
  unsigned index = 0;
  size_t n;

  if (len > 0)
    buf[0] = '\0';
  if (u->closed)
    return -EBADF;
  if (u->family == AF_INET6) {
    int idx = 0;
    socklen_t sl = sizeof idx;
    if (ds__sys.getsockopt(u->fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, &sl) !=
        0)
      return -errno;
    index = (unsigned)idx;
  } else {
    struct in_addr a = {0};
    socklen_t sl = sizeof a;
    if (ds__sys.getsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_IF, &a, &sl) != 0)
      return -errno;
    /* The kernel reports only the address; the index is the one set
     * here, unless the address changed behind the port's back. */
    if (a.s_addr != 0) {
      inet_ntop(AF_INET, &a, text, sizeof text);
      index = a.s_addr == u->mc_addr.s_addr ? u->mc_ifindex : 0;
    } else {
      index = u->mc_addr.s_addr == 0 ? u->mc_ifindex : 0;
    }
  }
  if (text[0] == '\0' && index != 0 && if_indextoname(index, text) == NULL)
    snprintf(text, sizeof text, "%u", index);
  if (ifindex != NULL)
    *ifindex = index;
  n = strlen(text);
  if (n + 1 > len)
    return -ENOSPC;
  memcpy(buf, text, n + 1);
  return (int)n;
}

int ds_udp_set_multicast_ttl(ds_udp *u, int ttl)
{
  if (ttl < 0 || ttl > 255)
    return -EINVAL;
  if (u->closed)
    return -EBADF;
  if (u->family == AF_INET6)
    return set_int(u->fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl);
  return set_int(u->fd, IPPROTO_IP, IP_MULTICAST_TTL, ttl);
}

/* Reads an int socket option. Returns its value (not negative for the
 * options read here) or a negative errno. */
static int get_int(int fd, int level, int opt)
{
  int v = 0;
  socklen_t len = sizeof v;
  if (ds__sys.getsockopt(fd, level, opt, &v, &len) != 0)
    return -errno;
  return v;
}

int ds_udp_get_multicast_ttl(const ds_udp *u)
{
  if (u->closed)
    return -EBADF;
  if (u->family == AF_INET6)
    return get_int(u->fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS);
  return get_int(u->fd, IPPROTO_IP, IP_MULTICAST_TTL);
}

int ds_udp_set_multicast_loopback(ds_udp *u, int on)
{
  if (u->closed)
    return -EBADF;
  if (u->family == AF_INET6)
    return set_int(u->fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on != 0);
  return set_int(u->fd, IPPROTO_IP, IP_MULTICAST_LOOP, on != 0);
}

int ds_udp_get_multicast_loopback(const ds_udp *u)
{
  if (u->closed)
    return -EBADF;
  if (u->family == AF_INET6)
    return get_int(u->fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP);
  return get_int(u->fd, IPPROTO_IP, IP_MULTICAST_LOOP);
}
