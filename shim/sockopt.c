/* Socket options the application set before connect or bind, recorded per
 * fd and replayed on the socket the shim puts in its place (a race's
 * attempts, a UDP socket moved to IPv6, a widened listener).
 *
 * On an IPv6 socket an IPPROTO_IP option is set twice: as its IPv6 twin
 * (IP_TOS -> IPV6_TCLASS, ...), which governs IPv6 traffic, and as itself,
 * which Linux keeps for IPv4-mapped traffic and reports back through
 * getsockopt, so the application reads what it wrote.
 */
#include "shim.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OPT_MAX 16
#define OPT_LEN 32

typedef struct opt {
  int level, name;
  socklen_t len;
  unsigned char val[OPT_LEN];
} opt;

typedef struct record {
  dev_t dev;
  ino_t ino;
  unsigned n;
  opt o[OPT_MAX];
} record;

static record *recs[SHIM_FD_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int shim__opt_twin(int name, int *name6)
{
  switch (name) {
  case IP_TOS:
    *name6 = IPV6_TCLASS;
    return 1;
  case IP_TTL:
    *name6 = IPV6_UNICAST_HOPS;
    return 1;
  case IP_MULTICAST_TTL:
    *name6 = IPV6_MULTICAST_HOPS;
    return 1;
  case IP_MULTICAST_LOOP:
    *name6 = IPV6_MULTICAST_LOOP;
    return 1;
  case IP_PKTINFO:
    *name6 = IPV6_RECVPKTINFO;
    return 1;
  case IP_RECVTOS:
    *name6 = IPV6_RECVTCLASS;
    return 1;
  case IP_RECVTTL:
    *name6 = IPV6_RECVHOPLIMIT;
    return 1;
  case IP_MTU_DISCOVER:
    *name6 = IPV6_MTU_DISCOVER;
    return 1;
  case IP_RECVERR:
    *name6 = IPV6_RECVERR;
    return 1;
  case IP_FREEBIND:
    *name6 = IPV6_FREEBIND;
    return 1;
  case IP_TRANSPARENT:
    *name6 = IPV6_TRANSPARENT;
    return 1;
  default:
    return 0;
  }
}

/* Returns 1 for options worth replaying: plain values the kernel copies
 * (not filters holding pointers, not group memberships, which are made
 * after bind on the socket the application then holds). */
static int replayable(int level, int name, socklen_t len)
{
  if (len == 0 || len > OPT_LEN)
    return 0;
  switch (level) {
  case SOL_SOCKET:
    return name != SO_ATTACH_FILTER && name != SO_DETACH_FILTER &&
           name != SO_ATTACH_BPF && name != SO_ATTACH_REUSEPORT_CBPF &&
           name != SO_ATTACH_REUSEPORT_EBPF;
  case IPPROTO_IP:
    return name != IP_ADD_MEMBERSHIP && name != IP_DROP_MEMBERSHIP &&
           name != IP_ADD_SOURCE_MEMBERSHIP &&
           name != IP_DROP_SOURCE_MEMBERSHIP && name != IP_BLOCK_SOURCE &&
           name != IP_UNBLOCK_SOURCE && name != IP_MSFILTER &&
           name != MCAST_JOIN_GROUP && name != MCAST_LEAVE_GROUP &&
           name != IP_OPTIONS;
  case IPPROTO_TCP:
    return name != TCP_REPAIR && name != TCP_REPAIR_QUEUE &&
           name != TCP_QUEUE_SEQ && name != TCP_REPAIR_OPTIONS &&
           name != TCP_REPAIR_WINDOW && name != TCP_MD5SIG &&
           name != TCP_MD5SIG_EXT && name != TCP_ULP;
  case IPPROTO_UDP:
    return 1;
  default:
    return 0;
  }
}

void shim__opt_record(int fd, int level, int name, const void *val,
                      socklen_t len)
{
  struct stat st;
  record *r;
  unsigned i;
  if (fd < 0 || fd >= SHIM_FD_MAX || val == NULL ||
      !replayable(level, name, len) || fstat(fd, &st) != 0 ||
      !S_ISSOCK(st.st_mode))
    return;
  pthread_mutex_lock(&lock);
  r = recs[fd];
  if (r != NULL && (r->ino != st.st_ino || r->dev != st.st_dev))
    r->n = 0; /* a socket closed behind the shim's back: start afresh */
  if (r == NULL && (r = recs[fd] = calloc(1, sizeof *r)) == NULL)
    goto done; /* out of memory: the option is simply not replayed */
  r->dev = st.st_dev;
  r->ino = st.st_ino;
  for (i = 0; i < r->n; i++)
    if (r->o[i].level == level && r->o[i].name == name)
      break;
  if (i == OPT_MAX)
    goto done; /* more distinct options than kept: the rest are lost */
  if (i == r->n)
    r->n++;
  r->o[i].level = level;
  r->o[i].name = name;
  r->o[i].len = len;
  memcpy(r->o[i].val, val, len);
  shim__fd_mark(fd);
done:
  pthread_mutex_unlock(&lock);
}

void shim__opt_forget(int fd)
{
  record *r;
  if (fd < 0 || fd >= SHIM_FD_MAX)
    return;
  pthread_mutex_lock(&lock);
  r = recs[fd];
  recs[fd] = NULL;
  pthread_mutex_unlock(&lock);
  free(r);
}

/* Sets one recorded option on to; returns 0 or a negative errno. */
static int set_one(int to, int family, int dual, const opt *o)
{
  int name6, v;
  socklen_t len;
  const void *val;
  if (o->level != IPPROTO_IP || family != AF_INET6)
    return ds__sys.setsockopt(to, o->level, o->name, o->val, o->len) == 0
               ? 0
               : -errno;
  /* As itself, for IPv4-mapped traffic: the kernel takes IPPROTO_IP
   * options on IPv6 sockets; an error only matters without a twin. */
  if (ds__sys.setsockopt(to, o->level, o->name, o->val, o->len) != 0 &&
      !shim__opt_twin(o->name, &name6))
    return dual ? -errno : 0;
  if (!shim__opt_twin(o->name, &name6))
    return 0;
  /* IPv4 takes one-byte values for some options; IPv6 wants an int. */
  val = o->val;
  len = o->len;
  if (o->len == 1) {
    v = o->val[0];
    val = &v;
    len = sizeof v;
  }
  return ds__sys.setsockopt(to, IPPROTO_IPV6, name6, val, len) == 0 ? 0
                                                                     : -errno;
}

int shim__opt_replay(int from, int to, int family, int dual)
{
  struct stat st;
  record copy, *r;
  unsigned i;
  int rc = 0, e;
  if (from < 0 || from >= SHIM_FD_MAX || fstat(from, &st) != 0)
    return 0;
  pthread_mutex_lock(&lock);
  r = recs[from];
  if (r == NULL || r->ino != st.st_ino || r->dev != st.st_dev) {
    pthread_mutex_unlock(&lock);
    return 0;
  }
  copy = *r;
  pthread_mutex_unlock(&lock);
  for (i = 0; i < copy.n; i++)
    if ((e = set_one(to, family, dual, &copy.o[i])) != 0 && rc == 0)
      rc = e;
  return rc;
}
