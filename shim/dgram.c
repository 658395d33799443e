/* Addresses of datagrams and peers on sockets whose IPv6 the application
 * does not see (widened listeners, accepted connections, UDP sockets moved
 * to IPv6, inherited IPv6 sockets read into a sockaddr_in), and the
 * datagram hooks:
 * - recvfrom, __recvfrom_chk, recvmsg, recvmmsg show IPv6 peers as IPv4
 *   (IPv4-mapped as themselves, others as source-pool addresses) and
 *   IPV6_PKTINFO / IPV6_TCLASS / IPV6_HOPLIMIT as their IPv4 twins;
 * - sendto, sendmsg, sendmmsg map those addresses back, move a UDP
 *   socket sending to a synthetic destination to IPv6 (dgmove.c), and
 *   never send to a pool address that stands for nothing (ENETUNREACH).
 * A call on an fd the shim knows nothing about, with an address outside
 * both pools, costs a range check.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int shim__peer_to_v4(int fd, const struct sockaddr_in6 *s6,
                     struct sockaddr_in *out)
{
  shim_fd e;
  uint32_t ip;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = s6->sin6_port;
  if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
    memcpy(&out->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    return 0;
  }
  /* A UDP client's replies come from the synthetic address it sent to. */
  if (shim__fd_get(fd, &e) &&
      (e.kind == SHIM_FD_DGRAM || e.kind == SHIM_FD_CLIENT) &&
      (ip = shim__pool_from_v6(&s6->sin6_addr)) != 0) {
    out->sin_addr.s_addr = htonl(ip);
    return 0;
  }
  ip = shim__source_address(&s6->sin6_addr);
  if (ip == 0)
    return -1;
  out->sin_addr.s_addr = htonl(ip);
  return 0;
}

int shim__peer_to_v6(const struct sockaddr_in *sin, struct sockaddr_in6 *out)
{
  uint32_t ip = ntohl(sin->sin_addr.s_addr);
  memset(out, 0, sizeof *out);
  out->sin6_family = AF_INET6;
  out->sin6_port = sin->sin_port;
  if (shim__source_contains(ip)) {
    if (shim__source_lookup(ip, &out->sin6_addr))
      return 0;
    errno = ENETUNREACH;
    return -1;
  }
  if (shim__pool_contains(ip)) {
    if (shim__pool_v6(ip, &out->sin6_addr))
      return 0;
    errno = ENETUNREACH;
    return -1;
  }
  out->sin6_addr.s6_addr[10] = 0xff;
  out->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&out->sin6_addr.s6_addr[12], &sin->sin_addr, 4);
  return 0;
}

/* ---- receiving ---- */

/* Returns the kind of fd's entry (SHIM_FD_WIDE, ...) when fd holds an
 * IPv6 socket the shim put there (or knows of) whose addresses the
 * application must see as IPv4, else 0. */
static int v6_view(int fd, shim_fd *out)
{
  shim_fd e;
  if (out == NULL)
    out = &e;
  return shim__fd_known(fd) && shim__fd_get(fd, out) && out->family == AF_INET6
             ? out->kind
             : 0;
}

/* Copies n bytes of address src out as the kernel does: at most *len
 * bytes, then *len is set to the full length. */
static void copy_out(void *sa, socklen_t *len, const void *src, socklen_t n)
{
  memcpy(sa, src, *len < n ? *len : n);
  *len = n;
}

/* On a widened UDP socket (kind SHIM_FD_WIDE), where the shim turned
 * IPV6_RECVPKTINFO on: returns the IPV6_PKTINFO of a datagram's control
 * data ctl (the local address it came to), or NULL. */
static const struct in6_pktinfo *arrived_at(int kind, const struct msghdr *ctl,
                                            struct in6_pktinfo *out)
{
  struct cmsghdr *c;
  if (kind != SHIM_FD_WIDE || ctl->msg_control == NULL)
    return NULL;
  for (c = CMSG_FIRSTHDR(ctl); c != NULL;
       c = CMSG_NXTHDR((struct msghdr *)ctl, c))
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof *out)) {
      memcpy(out, CMSG_DATA(c), sizeof *out);
      return out;
    }
  return NULL;
}

/* Takes the IPV6_PKTINFO cmsgs out of h's control data in place (the
 * kernel wrote it into the application's own buffer, too large for the
 * shim's), when they are the shim's alone. */
static void strip_pktinfo(struct msghdr *h)
{
  struct cmsghdr *c, *next;
  size_t used = 0, space, len;
  char *base = h->msg_control;
  for (c = CMSG_FIRSTHDR(h); c != NULL; c = next) {
    /* Read before the move, which may overwrite c's header. */
    next = CMSG_NXTHDR(h, c);
    len = c->cmsg_len;
    space = CMSG_SPACE(len - CMSG_LEN(0));
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
      continue;
    if ((char *)c != base + used)
      memmove(base + used, c, len);
    used += space;
  }
  if (used < h->msg_controllen)
    h->msg_controllen = used;
}

/* Writes the address the application sees for the sender ss (sl bytes)
 * of a datagram on fd (whose entry is of kind, or 0) into sa/len; an IPv6
 * sender's source-pool entry notes the local address at (if not NULL) the
 * datagram came to.
 * Returns 0, or -1 when an IPv6 sender cannot be shown (no source-pool
 * address to be had). */
static int show_sender(int fd, int kind, const struct sockaddr_storage *ss,
                       socklen_t sl, const struct in6_pktinfo *at, void *sa,
                       socklen_t *len)
{
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
  struct sockaddr_in sin;
  int fresh = 0;
  uint32_t ip;
  if (ss->ss_family != AF_INET6 || sl < sizeof *s6) {
    copy_out(sa, len, ss, sl);
    return 0;
  }
  if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
    shim__peer_to_v4(fd, s6, &sin);
  } else {
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = s6->sin6_port;
    /* A UDP client's replies come from the synthetic address it sent
     * to; a server's IPv6 peers get source-pool addresses. */
    if (kind == SHIM_FD_DGRAM &&
        (ip = shim__pool_from_v6(&s6->sin6_addr)) != 0) {
      sin.sin_addr.s_addr = htonl(ip);
    } else {
      ip = shim__source_get_at(&s6->sin6_addr, at ? &at->ipi6_addr : NULL,
                               at ? at->ipi6_ifindex : 0, &fresh);
      if (ip == 0)
        return -1;
      sin.sin_addr.s_addr = htonl(ip);
      /* One trace line per IPv6 sender given an address, not one per
       * datagram. */
      if (fresh)
        shim__trace_peer("recv", s6, &sin);
    }
  }
  copy_out(sa, len, &sin, sizeof sin);
  return 0;
}

/* The body of recvfrom(); returns as recvfrom() does, errno aside (the
 * hook keeps it on success). */
static ssize_t recv_from(int fd, void *buf, size_t n, int flags,
                         struct sockaddr *sa, socklen_t *len)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  ssize_t r;
  int kind;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  /* Translated: sockets the shim made IPv6, and any socket read into a
   * sockaddr_in (an inherited IPv6 socket shows up as such). */
  if (sa == NULL || len == NULL || shim__cfg.disabled)
    return ds__sys.recvfrom(fd, buf, n, flags, sa, len);
  kind = v6_view(fd, NULL);
  if (!kind && !(*len == sizeof(struct sockaddr_in) && !shim__cfg.observe))
    return ds__sys.recvfrom(fd, buf, n, flags, sa, len);
  for (;;) {
    struct in6_pktinfo pi;
    const struct in6_pktinfo *at = NULL;
    sl = sizeof ss;
    if (kind == SHIM_FD_WIDE) {
      /* With the address the datagram came to (arrived_at). */
      union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + 256];
        struct cmsghdr align;
      } ctl;
      struct iovec iov = {buf, n};
      struct msghdr m = {&ss, sl, &iov, 1, ctl.buf, sizeof ctl.buf, 0};
      r = ds__sys.recvmsg(fd, &m, flags);
      if (r < 0)
        return r;
      sl = m.msg_namelen;
      at = arrived_at(kind, &m, &pi);
    } else {
      r = ds__sys.recvfrom(fd, buf, n, flags, (struct sockaddr *)&ss, &sl);
    }
    if (r < 0)
      return r;
    if (sl == 0) { /* no address (a connected stream) */
      *len = 0;
      return r;
    }
    if (show_sender(fd, kind, &ss, sl, at, sa, len) == 0)
      return r;
    /* A sender that cannot be shown: its datagram is dropped (consumed
     * if only peeked) and the next one read, as if it had been lost. */
    if (flags & MSG_PEEK)
      ds__sys.recvfrom(fd, NULL, 0, (flags & ~MSG_PEEK) | MSG_DONTWAIT, NULL,
                       NULL);
  }
}

DS_HOOK ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                         struct sockaddr *sa, socklen_t *len)
{
  return SHIM_KEEP_ERRNO(recv_from(fd, buf, n, flags, sa, len));
}

DS_HOOK ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                               int flags, struct sockaddr *sa, socklen_t *len);

DS_HOOK ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                               int flags, struct sockaddr *sa, socklen_t *len)
{
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (n > buflen) /* libc's check fails, as it should */
    return ds__sys.recvfrom_chk(fd, buf, n, buflen, flags, sa, len);
  return recvfrom(fd, buf, n, flags, sa, len);
}

/* Returns 1 if control data ctl has a cmsg at level, type. */
static int has_cmsg(const struct msghdr *ctl, int level, int type)
{
  struct cmsghdr *c;
  for (c = CMSG_FIRSTHDR(ctl); c != NULL;
       c = CMSG_NXTHDR((struct msghdr *)ctl, c))
    if (c->cmsg_level == level && c->cmsg_type == type)
      return 1;
  return 0;
}

/* The IPv4 address standing for local IPv6 address a. */
static struct in_addr local_v4(const struct in6_addr *a)
{
  struct in_addr v4;
  if (IN6_IS_ADDR_V4MAPPED(a))
    memcpy(&v4, &a->s6_addr[12], 4);
  else
    v4.s_addr = htonl(shim__source_address(a));
  return v4;
}

/* Rewrites the control data the kernel gave (from) for the application
 * (to, tolen bytes): IPV6_PKTINFO -> IP_PKTINFO, IPV6_TCLASS -> IP_TOS,
 * IPV6_HOPLIMIT -> IP_TTL, each unless the IPv4 one is there already
 * (IPv4-mapped traffic gets both); the rest as it is. IPV6_PKTINFO is left
 * out when drop_pktinfo (the shim asked for it, not the application).
 * Returns the length used and sets MSG_CTRUNC in *flags when something
 * did not fit. */
static size_t cmsg_to_v4(const struct msghdr *from, void *to, size_t tolen,
                         int *flags, int drop_pktinfo)
{
  struct cmsghdr *c;
  size_t used = 0;
  for (c = CMSG_FIRSTHDR(from); c != NULL;
       c = CMSG_NXTHDR((struct msghdr *)from, c)) {
    const void *data = CMSG_DATA(c);
    size_t dlen = c->cmsg_len - CMSG_LEN(0), space;
    int level = c->cmsg_level, type = c->cmsg_type, v;
    unsigned char tos;
    struct in_pktinfo pi;
    struct in6_pktinfo p6;
    struct cmsghdr *out;
    if (level == IPPROTO_IPV6 && type == IPV6_PKTINFO && dlen >= sizeof p6) {
      if (drop_pktinfo || has_cmsg(from, IPPROTO_IP, IP_PKTINFO))
        continue;
      memcpy(&p6, data, sizeof p6);
      memset(&pi, 0, sizeof pi);
      pi.ipi_ifindex = (int)p6.ipi6_ifindex;
      pi.ipi_spec_dst = pi.ipi_addr = local_v4(&p6.ipi6_addr);
      level = IPPROTO_IP, type = IP_PKTINFO, data = &pi, dlen = sizeof pi;
    } else if (level == IPPROTO_IPV6 && type == IPV6_TCLASS &&
               dlen >= sizeof v) {
      if (has_cmsg(from, IPPROTO_IP, IP_TOS))
        continue;
      memcpy(&v, data, sizeof v);
      tos = (unsigned char)v;
      level = IPPROTO_IP, type = IP_TOS, data = &tos, dlen = 1;
    } else if (level == IPPROTO_IPV6 && type == IPV6_HOPLIMIT &&
               dlen >= sizeof v) {
      if (has_cmsg(from, IPPROTO_IP, IP_TTL))
        continue;
      level = IPPROTO_IP, type = IP_TTL;
    }
    space = CMSG_SPACE(dlen);
    if (used + CMSG_LEN(dlen) > tolen) {
      *flags |= MSG_CTRUNC;
      break;
    }
    out = (struct cmsghdr *)((char *)to + used);
    out->cmsg_len = CMSG_LEN(dlen);
    out->cmsg_level = level;
    out->cmsg_type = type;
    memcpy(CMSG_DATA(out), data, dlen);
    used += space < tolen - used ? space : tolen - used;
  }
  return used;
}

/* Control data room the shim reads into on the stack: the application's
 * plus room for IPv6 cmsgs being larger than their IPv4 twins. */
#define CTL_MAX 4096

/* The body of recvmsg(); returns as recvmsg() does, errno aside (the
 * hook keeps it on success). */
static ssize_t recv_msg(int fd, struct msghdr *msg, int flags)
{
  struct sockaddr_storage ss;
  struct msghdr m;
  union {
    char buf[CTL_MAX];
    struct cmsghdr align;
  } ctl;
  shim_fd e;
  struct in6_pktinfo pi;
  const struct in6_pktinfo *at;
  int known, drop;
  ssize_t r;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (msg == NULL || shim__cfg.disabled)
    return ds__sys.recvmsg(fd, msg, flags);
  known = v6_view(fd, &e);
  /* IPV6_PKTINFO the shim asked for, not the application. */
  drop = known == SHIM_FD_WIDE && !e.pktinfo;
  if (!known &&
      !(msg->msg_name != NULL &&
        msg->msg_namelen == sizeof(struct sockaddr_in) && !shim__cfg.observe))
    return ds__sys.recvmsg(fd, msg, flags);
  for (;;) {
    m = *msg;
    if (msg->msg_name != NULL) {
      m.msg_name = &ss;
      m.msg_namelen = sizeof ss;
    }
    if (known && msg->msg_control != NULL && msg->msg_controllen > 0 &&
        msg->msg_controllen + 64 <= sizeof ctl.buf) {
      m.msg_control = ctl.buf;
      m.msg_controllen = msg->msg_controllen + 64;
    } else if (known == SHIM_FD_WIDE &&
               (msg->msg_control == NULL || msg->msg_controllen == 0)) {
      m.msg_control = ctl.buf; /* for arrived_at */
      m.msg_controllen = 256;
    }
    r = ds__sys.recvmsg(fd, &m, flags);
    if (r < 0)
      return r;
    at = arrived_at(known, &m, &pi);
    if (msg->msg_name != NULL && m.msg_namelen > 0 &&
        show_sender(fd, known, &ss, m.msg_namelen, at, msg->msg_name,
                    &msg->msg_namelen) != 0) {
      if (flags & MSG_PEEK)
        ds__sys.recvfrom(fd, NULL, 0, (flags & ~MSG_PEEK) | MSG_DONTWAIT, NULL,
                         NULL);
      continue;
    }
    if (msg->msg_name != NULL && m.msg_namelen == 0)
      msg->msg_namelen = 0;
    msg->msg_flags = m.msg_flags;
    if (m.msg_control == ctl.buf && msg->msg_control == NULL)
      msg->msg_controllen = 0; /* the shim's own read: nothing for it */
    else if (m.msg_control == ctl.buf)
      msg->msg_controllen =
          m.msg_controllen == 0
              ? 0
              : cmsg_to_v4(&m, msg->msg_control, msg->msg_controllen,
                           &msg->msg_flags, drop);
    else {
      msg->msg_controllen = m.msg_controllen;
      if (drop && m.msg_control == msg->msg_control)
        strip_pktinfo(msg);
    }
    return r;
  }
}

DS_HOOK ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
  return SHIM_KEEP_ERRNO(recv_msg(fd, msg, flags));
}

/* Messages of one recvmmsg or sendmmsg batch the shim translates; a
 * longer batch is cut short, which both calls allow. */
#define CTL_BOUNCE 256
#define BATCH 64

/* The body of recvmmsg(); returns as recvmmsg() does, errno aside (the
 * hook keeps it on success). */
static int recv_mmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags,
                     struct timespec *timeout)
{
  struct mmsghdr m[BATCH];
  struct sockaddr_storage names[BATCH];
  /* Control data lands in these first: the kernel's IPv6 cmsgs are larger
   * than the IPv4 twins the application sized its buffer for. */
  union {
    char buf[CTL_BOUNCE];
    struct cmsghdr align;
  } ctl[BATCH];
  shim_fd e;
  struct in6_pktinfo pi;
  unsigned i, n;
  int known, drop, r;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (vec == NULL || vlen == 0 || shim__cfg.disabled)
    return ds__sys.recvmmsg(fd, vec, vlen, flags, timeout);
  known = v6_view(fd, &e);
  drop = known == SHIM_FD_WIDE && !e.pktinfo; /* see recv_msg */
  if (!known && !(vec[0].msg_hdr.msg_name != NULL &&
                  vec[0].msg_hdr.msg_namelen == sizeof(struct sockaddr_in) &&
                  !shim__cfg.observe))
    return ds__sys.recvmmsg(fd, vec, vlen, flags, timeout);
  n = vlen < BATCH ? vlen : BATCH;
  for (i = 0; i < n; i++) {
    m[i] = vec[i];
    if (vec[i].msg_hdr.msg_name != NULL) {
      m[i].msg_hdr.msg_name = &names[i];
      m[i].msg_hdr.msg_namelen = sizeof names[i];
    }
    if (known && vec[i].msg_hdr.msg_control != NULL &&
        vec[i].msg_hdr.msg_controllen > 0 &&
        vec[i].msg_hdr.msg_controllen + 64 <= sizeof ctl[i].buf) {
      m[i].msg_hdr.msg_control = ctl[i].buf;
      m[i].msg_hdr.msg_controllen = vec[i].msg_hdr.msg_controllen + 64;
    } else if (known == SHIM_FD_WIDE &&
               (vec[i].msg_hdr.msg_control == NULL ||
                vec[i].msg_hdr.msg_controllen == 0)) {
      m[i].msg_hdr.msg_control = ctl[i].buf; /* for arrived_at */
      m[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
    }
  }
  r = ds__sys.recvmmsg(fd, m, n, flags, timeout);
  for (i = 0; r > 0 && i < (unsigned)r; i++) {
    struct msghdr *h = &vec[i].msg_hdr;
    vec[i].msg_len = m[i].msg_len;
    h->msg_flags = m[i].msg_hdr.msg_flags;
    h->msg_controllen = m[i].msg_hdr.msg_controllen;
    if (h->msg_name != NULL) {
      if (m[i].msg_hdr.msg_namelen == 0)
        h->msg_namelen = 0;
      else if (show_sender(fd, known, &names[i], m[i].msg_hdr.msg_namelen,
                           arrived_at(known, &m[i].msg_hdr, &pi), h->msg_name,
                           &h->msg_namelen) != 0)
        memset(h->msg_name, 0, h->msg_namelen); /* cannot be shown */
    }
    if (m[i].msg_hdr.msg_control == ctl[i].buf &&
        (h->msg_control == NULL || vec[i].msg_hdr.msg_controllen == 0)) {
      h->msg_controllen = 0; /* the shim's own read: nothing for it */
      continue;
    }
    /* IPv6 cmsgs become their IPv4 twins in the application's buffer,
     * from the bounce buffer (or, for a buffer too large for one, from a
     * copy of what the kernel wrote there). */
    if (known && h->msg_control != NULL && vec[i].msg_hdr.msg_controllen > 0) {
      struct msghdr c = {0};
      size_t room = vec[i].msg_hdr.msg_controllen;
      if (m[i].msg_hdr.msg_control == ctl[i].buf) {
        c.msg_control = ctl[i].buf;
        c.msg_controllen = m[i].msg_hdr.msg_controllen;
        h->msg_flags &= ~MSG_CTRUNC;
        if (m[i].msg_hdr.msg_flags & MSG_CTRUNC)
          h->msg_flags |= MSG_CTRUNC;
      } else if (m[i].msg_hdr.msg_controllen <= sizeof ctl[i].buf) {
        memcpy(ctl[i].buf, h->msg_control, m[i].msg_hdr.msg_controllen);
        c.msg_control = ctl[i].buf;
        c.msg_controllen = m[i].msg_hdr.msg_controllen;
      } else {
        /* Too large to copy: as the kernel wrote it, less the shim's own
         * IPV6_PKTINFO. */
        if (drop)
          strip_pktinfo(h);
        continue;
      }
      h->msg_controllen =
          cmsg_to_v4(&c, h->msg_control, room, &h->msg_flags, drop);
    }
  }
  return r;
}

DS_HOOK int recvmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags,
                     struct timespec *timeout)
{
  return SHIM_KEEP_ERRNO(recv_mmsg(fd, vec, vlen, flags, timeout));
}

/* ---- sending ---- */

/* Returns the family of the socket under fd, or -1. */
static int socket_family(int fd)
{
  int family = -1;
  socklen_t len = sizeof family;
  if (ds__sys.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0)
    return -1;
  return family;
}

/* Decides where a datagram for sa (len bytes) on fd goes. Returns 0 to
 * send to sa unchanged, 1 to send to *s6 instead, -1 with errno to fail
 * without sending. */
static int destination(int fd, const struct sockaddr *sa, socklen_t len,
                       struct sockaddr_in6 *s6)
{
  const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
  char name[256];
  uint32_t ip;
  int rc;
  if (sa == NULL || sa->sa_family != AF_INET || len < sizeof *sin ||
      shim__cfg.disabled || shim__cfg.observe)
    return 0;
  if (shim__nested_refuse(fd, sa, len) != 0)
    return -1;
  ip = ntohl(sin->sin_addr.s_addr);
  if (shim__pool_contains(ip)) {
    /* A bad fd gets the kernel's errno (EBADF, ENOTSOCK). */
    if (socket_family(fd) < 0)
      return -1;
    if (shim__pool_name(ip, name, sizeof name) != 1) {
      shim__trace_unmapped(sa, len);
      shim__autobind(fd); /* as the kernel's, before its route lookup */
      errno = ENETUNREACH;
      return -1;
    }
    if (!v6_view(fd, NULL)) {
      rc = shim__dgram_move(fd, sin);
      if (rc < 0)
        return -1;
      if (rc == 1 && socket_family(fd) != AF_INET6)
        return 0;
    }
    /* The socket holds the address it sends to (and a send renews its
     * lease): it is not given to another name while the socket is open. */
    shim__fd_send_to(fd, ip);
    return shim__peer_to_v6(sin, s6) == 0 ? 1 : -1;
  }
  /* A socket the shim made IPv6, or an inherited IPv6 socket answering a
   * source-pool address it was shown. */
  if (v6_view(fd, NULL) ||
      (shim__source_contains(ip) && socket_family(fd) == AF_INET6))
    return shim__peer_to_v6(sin, s6) == 0 ? 1 : -1;
  return 0;
}

/* A reply on widened UDP socket fd to sa, an IPv6 peer's source-pool
 * address, leaves from the local address the peer last sent to (on a
 * host with several IPv6 addresses the kernel would pick its own, which
 * the peer drops): fills pi and returns 1, or 0 when there is none to
 * keep to. */
static int reply_source(int fd, const struct sockaddr *sa,
                        struct in6_pktinfo *pi)
{
  const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
  unsigned ifindex;
  memset(pi, 0, sizeof *pi);
  if (v6_view(fd, NULL) != SHIM_FD_WIDE ||
      !shim__source_local(ntohl(sin->sin_addr.s_addr), &pi->ipi6_addr,
                          &ifindex))
    return 0;
  /* The interface only for an address whose scope needs it. */
  if (IN6_IS_ADDR_LINKLOCAL(&pi->ipi6_addr))
    pi->ipi6_ifindex = ifindex;
  return 1;
}

/* Sends m (its name the IPv6 destination, no control data) from the
 * local address pi names; when that address has gone (removed,
 * renumbered), from the kernel's choice, as a plain IPv6 socket would. */
static ssize_t send_from(int fd, struct msghdr *m, int flags,
                         const struct in6_pktinfo *pi)
{
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } ctl;
  struct cmsghdr *c;
  ssize_t r;
  m->msg_control = ctl.buf;
  m->msg_controllen = sizeof ctl.buf;
  c = CMSG_FIRSTHDR(m);
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof *pi);
  memcpy(CMSG_DATA(c), pi, sizeof *pi);
  r = ds__sys.sendmsg(fd, m, flags);
  if (r < 0 && (errno == EINVAL || errno == EADDRNOTAVAIL)) {
    m->msg_control = NULL;
    m->msg_controllen = 0;
    r = ds__sys.sendmsg(fd, m, flags);
  }
  return r;
}

/* The body of sendto(); returns as sendto() does, errno aside (the
 * hook keeps it on success). */
static ssize_t send_to(int fd, const void *buf, size_t n, int flags,
                       const struct sockaddr *sa, socklen_t len)
{
  struct sockaddr_in6 s6;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  switch (destination(fd, sa, len, &s6)) {
  case 0:
    return ds__sys.sendto(fd, buf, n, flags, sa, len);
  case 1: {
    struct in6_pktinfo pi;
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {&s6, sizeof s6, &iov, 1, NULL, 0, 0};
    if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr) && reply_source(fd, sa, &pi))
      return send_from(fd, &m, flags, &pi);
    return ds__sys.sendto(fd, buf, n, flags, (struct sockaddr *)&s6, sizeof s6);
  }
  default:
    return -1;
  }
}

DS_HOOK ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                       const struct sockaddr *sa, socklen_t len)
{
  return SHIM_KEEP_ERRNO(send_to(fd, buf, n, flags, sa, len));
}

/* Rewrites the IPv4 control data of a datagram going to an IPv6 address
 * (from) into to (tolen bytes): IP_PKTINFO -> IPV6_PKTINFO (its source
 * address mapped back when it is a source-pool address, else left to the
 * kernel), IP_TOS -> IPV6_TCLASS, IP_TTL -> IPV6_HOPLIMIT; the rest as it
 * is. Returns the length, or -1 when it does not fit or is malformed (the
 * caller then sends the application's own, for the kernel to judge). */
static ssize_t cmsg_to_v6(const struct msghdr *from, void *to, size_t tolen)
{
  struct cmsghdr *c, *out;
  const char *end = (const char *)from->msg_control + from->msg_controllen;
  size_t used = 0;
  for (c = CMSG_FIRSTHDR(from); c != NULL;
       c = CMSG_NXTHDR((struct msghdr *)from, c)) {
    const void *data = CMSG_DATA(c);
    size_t dlen;
    if (c->cmsg_len < CMSG_LEN(0) ||
        c->cmsg_len > (size_t)(end - (const char *)c))
      return -1;
    dlen = c->cmsg_len - CMSG_LEN(0);
    int level = c->cmsg_level, type = c->cmsg_type, v;
    struct in_pktinfo pi;
    struct in6_pktinfo p6;
    if (level == IPPROTO_IP && type == IP_PKTINFO && dlen >= sizeof pi) {
      struct in_addr src;
      memcpy(&pi, data, sizeof pi);
      memset(&p6, 0, sizeof p6);
      p6.ipi6_ifindex = (unsigned)pi.ipi_ifindex;
      src = pi.ipi_spec_dst.s_addr != 0 ? pi.ipi_spec_dst : pi.ipi_addr;
      if (!shim__source_lookup(ntohl(src.s_addr), &p6.ipi6_addr))
        p6.ipi6_addr = in6addr_any;
      level = IPPROTO_IPV6, type = IPV6_PKTINFO, data = &p6, dlen = sizeof p6;
    } else if (level == IPPROTO_IP && (type == IP_TOS || type == IP_TTL) &&
               dlen >= 1) {
      if (dlen >= sizeof v)
        memcpy(&v, data, sizeof v);
      else
        v = *(const unsigned char *)data;
      level = IPPROTO_IPV6, type = type == IP_TOS ? IPV6_TCLASS : IPV6_HOPLIMIT;
      data = &v, dlen = sizeof v;
    }
    if (used + CMSG_SPACE(dlen) > tolen)
      return -1;
    out = (struct cmsghdr *)((char *)to + used);
    out->cmsg_len = CMSG_LEN(dlen);
    out->cmsg_level = level;
    out->cmsg_type = type;
    memcpy(CMSG_DATA(out), data, dlen);
    used += CMSG_SPACE(dlen);
  }
  return (ssize_t)used;
}

/* The body of sendmsg(); returns as sendmsg() does, errno aside (the
 * hook keeps it on success). */
static ssize_t send_msg(int fd, const struct msghdr *msg, int flags)
{
  struct sockaddr_in6 s6;
  struct msghdr m;
  union {
    char buf[CTL_MAX];
    struct cmsghdr align;
  } ctl;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (msg == NULL || msg->msg_name == NULL)
    return ds__sys.sendmsg(fd, msg, flags);
  switch (destination(fd, msg->msg_name, msg->msg_namelen, &s6)) {
  case 0:
    return ds__sys.sendmsg(fd, msg, flags);
  case 1:
    break;
  default:
    return -1;
  }
  m = *msg;
  m.msg_name = &s6;
  m.msg_namelen = sizeof s6;
  if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr) &&
      (msg->msg_control == NULL || msg->msg_controllen == 0)) {
    /* No control data of the application's: a reply's source, as for
     * sendto. */
    struct in6_pktinfo pi;
    if (reply_source(fd, msg->msg_name, &pi))
      return send_from(fd, &m, flags, &pi);
    return ds__sys.sendmsg(fd, &m, flags);
  }
  /* IPv4-mapped destinations take IPPROTO_IP cmsgs as they are. */
  if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr) && msg->msg_control != NULL &&
      msg->msg_controllen > 0 && msg->msg_controllen * 2 <= sizeof ctl.buf) {
    ssize_t n = cmsg_to_v6(msg, ctl.buf, sizeof ctl.buf);
    if (n >= 0) {
      m.msg_control = n > 0 ? ctl.buf : NULL;
      m.msg_controllen = (size_t)n;
    }
  }
  return ds__sys.sendmsg(fd, &m, flags);
}

DS_HOOK ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
  return SHIM_KEEP_ERRNO(send_msg(fd, msg, flags));
}

/* The body of sendmmsg(); returns as sendmmsg() does, errno aside (the
 * hook keeps it on success). */
static int send_mmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
  struct mmsghdr m[BATCH];
  struct sockaddr_in6 names[BATCH];
  unsigned i, n, any = 0;
  int r;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (vec == NULL || vlen == 0 || shim__cfg.disabled || shim__cfg.observe)
    return ds__sys.sendmmsg(fd, vec, vlen, flags);
  n = vlen < BATCH ? vlen : BATCH;
  for (i = 0; i < n; i++) {
    int where = destination(fd, vec[i].msg_hdr.msg_name,
                            vec[i].msg_hdr.msg_namelen, &names[i]);
    if (where < 0) {
      if (i == 0)
        return -1;
      n = i; /* those before it are sent; the caller retries the rest */
      break;
    }
    m[i] = vec[i];
    if (where == 1) {
      m[i].msg_hdr.msg_name = &names[i];
      m[i].msg_hdr.msg_namelen = sizeof names[i];
      any = 1;
    }
  }
  if (!any && n == vlen)
    return ds__sys.sendmmsg(fd, vec, vlen, flags);
  r = ds__sys.sendmmsg(fd, m, n, flags);
  for (i = 0; r > 0 && i < (unsigned)r; i++)
    vec[i].msg_len = m[i].msg_len;
  return r;
}

DS_HOOK int sendmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
  return SHIM_KEEP_ERRNO(send_mmsg(fd, vec, vlen, flags));
}
