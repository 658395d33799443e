/* Interfaces and local addresses through rtnetlink: RTM_GETLINK and
 * RTM_GETADDR dumps for a snapshot, the interface holding a given address
 * (from a snapshot), and a watch on the address and link multicast groups
 * driven by the reactor.
 *
 * Why netlink rather than getifaddrs(): getifaddrs() drops the IFA_F_*
 * flags, and the server endpoint needs IFA_F_TENTATIVE, IFA_F_OPTIMISTIC
 * and IFA_F_DADFAILED to know whether an IPv6 address can be bound yet;
 * getifaddrs() also opens its socket with libc's own functions, outside
 * the ds__sys table the preload shim relies on.
 *
 * Why the watch does not apply messages as deltas: it drains its socket
 * and tells its owner "something changed", and the owner takes a fresh
 * snapshot. A dump costs well under a millisecond, one batch of changes
 * costs one dump, and nothing can drift: no ordering problem between the
 * first dump and early events, no confusion when one IPv4 address sits on
 * two interfaces, and nothing to repair after the socket overflows
 * (ENOBUFS: messages were lost, a snapshot is exactly the repair).
 */
#include "internal.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Receive buffer for dumps: larger than any rtnetlink dump skb. */
#define NL_BUF (64 * 1024)
/* A dump interrupted by concurrent changes (NLM_F_DUMP_INTR), or links and
 * addresses that disagree, are taken again this many times at most. */
#define NL_DUMP_TRIES 5
/* Kernel receive buffer of the watch socket: room for a burst of changes
 * (adding a few thousand addresses at once) before ENOBUFS. */
#define NL_WATCH_RCVBUF (1024 * 1024)

struct ds__ifwatch {
  ds_io *io;
  int fd;
  void (*cb)(void *data);
  void *data;
};

/* Opens a NETLINK_ROUTE socket subscribed to groups (0: none). Returns
 * the fd or a negative errno. */
static int nl_open(unsigned groups, int flags)
{
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = groups};
  int fd, rc;

  fd = ds__sys.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags,
                      NETLINK_ROUTE);
  if (fd < 0)
    return -errno;
  if (ds__sys.bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    rc = -errno;
    ds__sys.close(fd);
    return rc;
  }
  return fd;
}

/* Appends one element of size sz to *arr (n elements, room for *cap).
 * Returns the new element (zeroed), or NULL without memory. */
static void *grow(void **arr, size_t *n, size_t *cap, size_t sz)
{
  char *p;
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    p = realloc(*arr, c * sz);
    if (p == NULL)
      return NULL;
    *arr = p;
    *cap = c;
  }
  p = (char *)*arr + *n * sz;
  memset(p, 0, sz);
  (*n)++;
  return p;
}

/* Adds the interface in an RTM_NEWLINK message to snap. Returns 0 or
 * -ENOMEM. */
static int parse_link(ds__ifsnap *snap, size_t *cap, const struct nlmsghdr *h)
{
  const struct ifinfomsg *ifi = NLMSG_DATA(h);
  const struct rtattr *rta;
  int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof *ifi);
  ds__iflink *l;

  if (len < 0)
    return 0;
  l = grow((void **)&snap->links, &snap->nlinks, cap, sizeof *l);
  if (l == NULL)
    return -ENOMEM;
  l->index = (unsigned)ifi->ifi_index;
  l->flags = ifi->ifi_flags;
  for (rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type == IFLA_IFNAME) {
      size_t n = RTA_PAYLOAD(rta);
      if (n >= sizeof l->name)
        n = sizeof l->name - 1;
      memcpy(l->name, RTA_DATA(rta), n);
      l->name[n] = '\0';
    }
  }
  return 0;
}

/* Adds the address in an RTM_NEWADDR message to snap (IPv4 and IPv6 only).
 * Returns 0 or -ENOMEM. */
static int parse_addr(ds__ifsnap *snap, size_t *cap, const struct nlmsghdr *h)
{
  const struct ifaddrmsg *ifa = NLMSG_DATA(h);
  const struct rtattr *rta;
  const void *local = NULL, *address = NULL, *ip;
  int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof *ifa);
  unsigned flags = ifa->ifa_flags;
  size_t alen;
  ds__ifaddr *a;

  if (len < 0 || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
    return 0;
  alen = ifa->ifa_family == AF_INET ? 4 : 16;
  for (rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type == IFA_LOCAL && RTA_PAYLOAD(rta) >= alen)
      local = RTA_DATA(rta);
    else if (rta->rta_type == IFA_ADDRESS && RTA_PAYLOAD(rta) >= alen)
      address = RTA_DATA(rta);
    else if (rta->rta_type == IFA_FLAGS && RTA_PAYLOAD(rta) >= 4)
      memcpy(&flags, RTA_DATA(rta), 4); /* the full 32 flag bits */
  }
  /* On a point-to-point link IFA_ADDRESS is the peer and IFA_LOCAL ours;
   * otherwise they are equal, or only IFA_ADDRESS is sent (IPv6). */
  ip = local != NULL ? local : address;
  if (ip == NULL)
    return 0;
  a = grow((void **)&snap->addrs, &snap->naddrs, cap, sizeof *a);
  if (a == NULL)
    return -ENOMEM;
  a->addr.family = ifa->ifa_family;
  memcpy(a->addr.ip.bytes, ip, alen);
  a->ifindex = ifa->ifa_index;
  a->flags = flags;
  /* A link-local address means nothing without its interface: keep the
   * scope, so that binding and text both name it. */
  if (ifa->ifa_family == AF_INET6 &&
      ds_addr_classify(&a->addr) == DS_ADDR_LINKLOCAL)
    a->addr.scope_id = ifa->ifa_index;
  return 0;
}

/* Runs one dump of type (RTM_GETLINK or RTM_GETADDR) for family on fd and
 * adds what it returns to snap. Returns 0, 1 when the kernel flagged the
 * dump as interrupted by a concurrent change (take it again), or a
 * negative errno. */
static int nl_dump(int fd, int type, int family, uint32_t seq, char *buf,
                   ds__ifsnap *snap, size_t *cap)
{
  struct {
    struct nlmsghdr h;
    union {
      struct ifinfomsg ifi;
      struct ifaddrmsg ifa;
    } u;
  } req;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int intr = 0, rc;
  ssize_t n;

  memset(&req, 0, sizeof req);
  req.h.nlmsg_type = (uint16_t)type;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = seq;
  if (type == RTM_GETLINK) {
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.u.ifi);
    req.u.ifi.ifi_family = AF_UNSPEC;
  } else {
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.u.ifa);
    req.u.ifa.ifa_family = (unsigned char)family;
  }
  do
    n = ds__sys.sendto(fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel,
                       sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;

  for (;;) {
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = buf, .iov_len = NL_BUF};
    struct msghdr msg = {.msg_name = &from,
                         .msg_namelen = sizeof from,
                         .msg_iov = &iov,
                         .msg_iovlen = 1};
    const struct nlmsghdr *h;
    int left;

    n = ds__sys.recvmsg(fd, &msg, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      /* SO_RCVTIMEO expired: the kernel never leaves a dump unanswered,
       * but a library must never hang its caller on that belief. */
      return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    }
    if (msg.msg_flags & MSG_TRUNC)
      return -EMSGSIZE;
    if (from.nl_pid != 0)
      continue; /* not from the kernel */
    left = (int)n;
    for (h = (const struct nlmsghdr *)buf; NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq)
        continue; /* a late answer to an earlier dump */
      if (h->nlmsg_flags & NLM_F_DUMP_INTR)
        intr = 1;
      if (h->nlmsg_type == NLMSG_DONE) {
        int e = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof e))
          memcpy(&e, NLMSG_DATA(h), sizeof e);
        return e < 0 ? e : intr;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *ne = NLMSG_DATA(h);
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof *ne))
          return -EPROTO;
        return ne->error < 0 ? ne->error : -EPROTO;
      }
      rc = 0;
      if (h->nlmsg_type == RTM_NEWLINK && type == RTM_GETLINK)
        rc = parse_link(snap, cap, h);
      else if (h->nlmsg_type == RTM_NEWADDR && type == RTM_GETADDR)
        rc = parse_addr(snap, cap, h);
      if (rc != 0)
        return rc;
    }
  }
}

/* Returns the link of snap with index, or NULL. */
static const ds__iflink *find_link(const ds__ifsnap *snap, unsigned index)
{
  size_t i;
  for (i = 0; i < snap->nlinks; i++)
    if (snap->links[i].index == index)
      return &snap->links[i];
  return NULL;
}

/* Names each address's interface. Returns 0, or 1 when an address sits on
 * an interface the link dump did not see (it appeared in between). */
static int name_addrs(ds__ifsnap *snap)
{
  size_t i;
  for (i = 0; i < snap->naddrs; i++) {
    const ds__iflink *l = find_link(snap, snap->addrs[i].ifindex);
    if (l == NULL)
      return 1;
    memcpy(snap->addrs[i].ifname, l->name, sizeof l->name);
  }
  return 0;
}

void ds__ifsnap_free(ds__ifsnap *snap)
{
  free(snap->links);
  free(snap->addrs);
  memset(snap, 0, sizeof *snap);
}

int ds__ifsnap_take(ds__ifsnap *snap, int family)
{
  struct timeval tv = {.tv_sec = 2};
  size_t lcap = 0, acap = 0;
  char *buf;
  int fd, rc = 0, try;
  static const uint32_t seq0 = 1;

  memset(snap, 0, sizeof *snap);
  if (family != 0 && family != AF_INET && family != AF_INET6)
    return -EAFNOSUPPORT;
  buf = malloc(NL_BUF);
  if (buf == NULL)
    return -ENOMEM;
  fd = nl_open(0, 0);
  if (fd < 0) {
    free(buf);
    return fd;
  }
  ds__sys.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (try = 0; try < NL_DUMP_TRIES; try++) {
    ds__ifsnap_free(snap);
    lcap = acap = 0;
    rc = nl_dump(fd, RTM_GETLINK, family, seq0 + 2 * (uint32_t)try, buf, snap,
                 &lcap);
    if (rc < 0)
      break;
    if (rc == 0)
      rc = nl_dump(fd, RTM_GETADDR, family, seq0 + 2 * (uint32_t)try + 1, buf,
                   snap, &acap);
    if (rc < 0)
      break;
    if (rc == 0)
      rc = name_addrs(snap);
    if (rc == 0)
      break;
  }
  if (rc == 1) {
    /* Still changing after every try: keep the addresses whose interface
     * is known; the change that raced will be reported by the watch. */
    size_t i, k = 0;
    for (i = 0; i < snap->naddrs; i++) {
      const ds__iflink *l = find_link(snap, snap->addrs[i].ifindex);
      if (l == NULL)
        continue;
      snap->addrs[k] = snap->addrs[i];
      memcpy(snap->addrs[k].ifname, l->name, sizeof l->name);
      k++;
    }
    snap->naddrs = k;
    rc = 0;
  }
  ds__sys.close(fd);
  free(buf);
  if (rc != 0)
    ds__ifsnap_free(snap);
  return rc;
}

int ds__ifaddr_find(const ds_addr *a, unsigned *index)
{
  size_t i, len = a->family == AF_INET6 ? 16 : 4;
  ds__ifsnap snap;
  int rc;

  rc = ds__ifsnap_take(&snap, a->family);
  if (rc != 0)
    return rc;
  rc = -EADDRNOTAVAIL;
  for (i = 0; i < snap.naddrs; i++) {
    const ds__ifaddr *x = &snap.addrs[i];
    /* The address bytes only: the snapshot's link-local scope is the
     * interface itself, checked next, and a's port means nothing here. */
    if (x->addr.family != a->family ||
        memcmp(x->addr.ip.bytes, a->ip.bytes, len) != 0)
      continue;
    /* A scope names the one interface that counts: the same link-local
     * address may sit on several. */
    if (a->scope_id != 0 && x->ifindex != a->scope_id)
      continue;
    *index = x->ifindex;
    rc = 0;
    break;
  }
  ds__ifsnap_free(&snap);
  return rc;
}

/* ------------------------------------------------------------- the watch */

/* Drains the watch socket; if any message was about addresses or links,
 * or messages were lost, tells the owner (last: the owner may free w). */
static void watch_io(ds_io *io, unsigned events, void *data)
{
  ds__ifwatch *w = data;
  char buf[16384] __attribute__((aligned(8)));
  int changed = 0, i;
  (void)io;
  (void)events;

  /* Bounded, for fairness: what is left keeps the fd readable. */
  for (i = 0; i < 256; i++) {
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr msg = {.msg_name = &from,
                         .msg_namelen = sizeof from,
                         .msg_iov = &iov,
                         .msg_iovlen = 1};
    const struct nlmsghdr *h;
    ssize_t n = ds__sys.recvmsg(w->fd, &msg, MSG_DONTWAIT);
    int left;

    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == ENOBUFS) {
        changed = 1; /* overflow: messages were lost */
        continue;
      }
      break; /* EAGAIN: drained */
    }
    if (from.nl_pid != 0)
      continue; /* only the kernel speaks for the kernel */
    /* A truncated message still has its header, which is all we read. */
    left = (int)(n < (ssize_t)sizeof buf ? n : (ssize_t)sizeof buf);
    for (h = (const struct nlmsghdr *)buf; NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      switch (h->nlmsg_type) {
      case RTM_NEWADDR:
      case RTM_DELADDR:
      case RTM_NEWLINK:
      case RTM_DELLINK:
        changed = 1;
        break;
      default:
        break;
      }
    }
  }
  if (changed)
    w->cb(w->data);
}

int ds__ifwatch_new(ds_reactor *r, int family, void (*cb)(void *data),
                    void *data, ds__ifwatch **out)
{
  unsigned groups = RTMGRP_LINK;
  int rcvbuf = NL_WATCH_RCVBUF, rc;
  ds__ifwatch *w;

  *out = NULL;
  if (family == 0 || family == AF_INET)
    groups |= RTMGRP_IPV4_IFADDR;
  if (family == 0 || family == AF_INET6)
    groups |= RTMGRP_IPV6_IFADDR;
  w = calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  w->cb = cb;
  w->data = data;
  w->fd = nl_open(groups, SOCK_NONBLOCK);
  if (w->fd < 0) {
    rc = w->fd;
    free(w);
    return rc;
  }
  /* Best effort: the kernel caps it at rmem_max, and an overflow is
   * survivable anyway (see watch_io). */
  ds__sys.setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  rc = ds_io_new(r, &w->io, w->fd, watch_io, w);
  if (rc == 0)
    rc = ds_io_set(w->io, DS_READABLE);
  if (rc != 0) {
    ds_io_free(w->io);
    ds__sys.close(w->fd);
    free(w);
    return rc;
  }
  *out = w;
  return 0;
}

void ds__ifwatch_free(ds__ifwatch *w)
{
  if (w == NULL)
    return;
  ds_io_free(w->io);
  ds__sys.close(w->fd);
  free(w);
}
