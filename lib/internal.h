/* Private declarations shared between the library's modules (ds__ names).
 * Not installed. */
#ifndef DS_INTERNAL_H
#define DS_INTERNAL_H

#include "dualstack.h"

#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* One table of the real libc functions, the library's system-call layer:
 * every system call of lib/ goes through it, and the preload shim fills it
 * with the RTLD_NEXT functions (shim/init.c), so that neither the library
 * nor the shim's own code ever re-enters the shim's hooks. The functions
 * the library does not call itself (name lookups, dup, fcntl...) are here
 * for the shim's hooks, which pass calls on through this same table. */
typedef struct ds__sysfns {
  /* Sockets. */
  int (*socket)(int domain, int type, int protocol);
  int (*connect)(int fd, const struct sockaddr *sa, socklen_t len);
  int (*bind)(int fd, const struct sockaddr *sa, socklen_t len);
  int (*listen)(int fd, int backlog);
  int (*accept)(int fd, struct sockaddr *sa, socklen_t *len);
  int (*accept4)(int fd, struct sockaddr *sa, socklen_t *len, int flags);
  ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
  ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
  ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
  ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
  int (*recvmmsg)(int fd, struct mmsghdr *vec, unsigned vlen, int flags,
                  struct timespec *timeout);
  int (*sendmmsg)(int fd, struct mmsghdr *vec, unsigned vlen, int flags);
  ssize_t (*sendto)(int fd, const void *buf, size_t len, int flags,
                    const struct sockaddr *sa, socklen_t salen);
  ssize_t (*recvfrom)(int fd, void *buf, size_t len, int flags,
                      struct sockaddr *sa, socklen_t *salen);
  /* glibc's __recvfrom_chk (what recvfrom becomes with _FORTIFY_SOURCE). */
  ssize_t (*recvfrom_chk)(int fd, void *buf, size_t len, size_t buflen,
                          int flags, struct sockaddr *sa, socklen_t *salen);
  int (*getsockname)(int fd, struct sockaddr *sa, socklen_t *len);
  int (*getpeername)(int fd, struct sockaddr *sa, socklen_t *len);
  int (*setsockopt)(int fd, int level, int opt, const void *val,
                    socklen_t len);
  int (*getsockopt)(int fd, int level, int opt, void *val, socklen_t *len);
  int (*shutdown)(int fd, int how);
  int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
  /* Descriptors. In the shim, close_range and fcntl64 are NULL when libc
   * lacks them. */
  int (*close)(int fd);
  int (*close_range)(unsigned first, unsigned last, int flags);
  int (*dup)(int fd);
  int (*dup2)(int fd, int newfd);
  int (*dup3)(int fd, int newfd, int flags);
  int (*fcntl)(int fd, int cmd, ...);
  int (*fcntl64)(int fd, int cmd, ...);
  /* libc's name lookups: NULL until the shim fills them (the library
   * itself never calls them). */
  int (*getaddrinfo)(const char *node, const char *service,
                     const struct addrinfo *hints, struct addrinfo **res);
  void (*freeaddrinfo)(struct addrinfo *res);
  struct hostent *(*gethostbyname)(const char *name);
  struct hostent *(*gethostbyname2)(const char *name, int family);
  int (*gethostbyname_r)(const char *name, struct hostent *he, char *buf,
                         size_t len, struct hostent **res, int *herr);
  int (*gethostbyname2_r)(const char *name, int family, struct hostent *he,
                          char *buf, size_t len, struct hostent **res,
                          int *herr);
  struct hostent *(*gethostbyaddr)(const void *addr, socklen_t len, int family);
  int (*gethostbyaddr_r)(const void *addr, socklen_t len, int family,
                         struct hostent *he, char *buf, size_t buflen,
                         struct hostent **res, int *herr);
  int (*getnameinfo)(const struct sockaddr *sa, socklen_t salen, char *host,
                     socklen_t hostlen, char *serv, socklen_t servlen,
                     int flags);
  /* When above 0, the fds the library and the shim keep for themselves
   * go to this number or above (the shim sets it once, at its start, to
   * keep its fds out of the application's way). */
  int fd_floor;
} ds__sysfns;

/* The table in use; libc's functions unless the shim replaced them. */
extern ds__sysfns ds__sys;

/* Returns a close-on-exec copy of fd at ds__sys.fd_floor or above, else
 * (no floor, or no room there) at the lowest free number from 3 up, or -1
 * with errno. Never closes fd. */
int ds__dup_high(int fd);

/* Returns fd moved to ds__sys.fd_floor or above (a close-on-exec copy,
 * fd itself closed), or fd itself when there is no floor, fd is already
 * at or above it, or there is no room there; fd 0, 1 or 2 (a process that
 * closed its stdio) is moved at least to 3. */
int ds__move_high(int fd);

/* Returns the monotonic clock in nanoseconds: the one clock of the
 * library and the shim (timers, deadlines, trace times). */
uint64_t ds__mono_ns(void);

/* Returns the monotonic clock in milliseconds, with fractions. */
static inline double ds__mono_ms(void)
{
  return (double)ds__mono_ns() / 1e6;
}

/* Returns the monotonic clock in whole milliseconds (table.h's times). */
static inline uint64_t ds__mono_ms_u64(void)
{
  return ds__mono_ns() / 1000000u;
}

/* fork() handling: one chain of handlers, registered with libc once
 * (fork.c), so that every lock of the library and of the shim is taken
 * around fork() in one known order.
 * PREPARE runs in the parent before fork(): a handler takes its locks.
 * PARENT and CHILD run after it, on each side: a handler gives its locks
 * back (PARENT) or makes them afresh (CHILD; ds__fork_mutex() does both),
 * and in the child forgets what belonged to threads that are gone. In the
 * child the chain itself runs first (fork.c's fork_child()): state the
 * whole process must renew, such as a cached pid, is renewed there,
 * before any handler. */
enum { DS__FORK_PREPARE, DS__FORK_PARENT, DS__FORK_CHILD };
typedef void (*ds__fork_fn)(int phase);

/* Adds fn to the chain at order: PREPARE runs the handlers in ascending
 * order, PARENT and CHILD in descending order, so a lock taken outside
 * another (a lower order) is taken first and given back last. Equal
 * orders run in the order added (reversed after fork). Adding fn again
 * does nothing. May be called with any lock held, but not from a handler.
 * Returns 0, -ENOSPC when the chain is full, or -ENOMEM when registering
 * the chain with libc failed (no handler then runs at all). */
int ds__fork_add(int order, ds__fork_fn fn);

/* Returns 1 in a vfork child (or a posix_spawn or clone(CLONE_VM) one)
 * before exec: it runs in its parent's memory, and its pid is not the one
 * the chain renews in every fork child; else 0, also before the first
 * ds__fork_add(). One getpid() system call: for paths about to change
 * shared state, not for every call. */
int ds__fork_vforked(void);

/* A fork handler's work for mutex m: locks it (PREPARE), unlocks it
 * (PARENT), or makes it anew, recursive if asked (CHILD: the child's
 * thread is not the owner the mutex recorded, so never an unlock). */
void ds__fork_mutex(pthread_mutex_t *m, int phase, int recursive);

/* Writes a formatted message into err (if err is not NULL) and returns
 * code, so that callers can write `return ds__fail(err, n, code, ...)`. */
int ds__fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Returns 1 if text cannot be an address literal but could be a host name:
 * letters, digits, '-', '.' and '_' only, and not only digits and dots. */
int ds__looks_like_hostname(const char *text);

/* Parses an address literal for what ("host", "interface", "group"):
 * host names are DS_EHOSTNAME, with err naming them; otherwise
 * ds_addr_parse()'s result. Scope rules are the caller's. */
int ds__parse_literal(ds_addr *a, const char *text, uint16_t port,
                      const char *what, char *err, size_t errlen);

/* For a reactor whose run_once was left by longjmp (the preload shim,
 * when an application's alarm handler jumps out of connect): forgets the
 * turn in progress, so handles can be freed and then the reactor. */
void ds__reactor_unwound(ds_reactor *r);

/* Returns 1 if r's last wait in epoll returned at once, without sleeping:
 * what it reported was already ready when the wait began (the reactor is
 * busy); 0 if it slept until something happened. */
int ds__reactor_quick(const ds_reactor *r);

/* Copies the reactor's own fds (its epoll fd and its wake-up eventfd). */
void ds__reactor_fds(const ds_reactor *r, int *epfd, int *wakefd);

/* Registers w edge-triggered (EPOLLET, with EPOLLRDHUP and EPOLLPRI while
 * reading) from its next ds_io_set() on: an event comes when the socket's
 * state changes, not at every wait while it stays ready, so its owner must
 * read until a short read (or EAGAIN), then on to the end after
 * DS__PEER_SHUT and to EAGAIN after DS__URGENT, write until EAGAIN, and
 * re-arm by changing the events. */
void ds__io_edge(ds_io *w);

/* Given to an edge-triggered watcher with DS_READABLE when the peer has
 * shut its side down (EPOLLRDHUP): after the data, a read will see the
 * end, and no further event will say so. */
#define DS__PEER_SHUT 0x100u

/* Given to an edge-triggered watcher with DS_READABLE when TCP urgent
 * data has come (EPOLLPRI): a read stops short at its mark with more data
 * behind it, of which no further event will tell. */
#define DS__URGENT 0x200u

/* ds_io_free() for a watcher whose fd the caller closes next, when no
 * other descriptor (a dup, a forked child's copy) refers to the same open
 * file: close() then takes it out of epoll, and this skips the
 * EPOLL_CTL_DEL. */
void ds__io_free_closing(ds_io *w);

/* Returns the number of fork() calls this process has seen, in the parent
 * or the child, since the first reactor was made: a descriptor made
 * before a fork may have a copy in another process. */
unsigned ds__fork_count(void);

/* Reactor handle accounting: ds_reactor_free() refuses while any handle
 * (timer, watcher, transport, listener) is alive. */
void ds__reactor_ref(ds_reactor *r);
void ds__reactor_unref(ds_reactor *r);

/* A deferred call with caller-owned storage, so that the library's own
 * "run this on the next turn" (errors of a connect, connection lost) needs
 * no allocation and cannot fail. A node is queued at most once at a time. */
typedef struct ds__call {
  struct ds__call *next;
  void (*fn)(void *data);
  void *data;
} ds__call;

/* Queues node to run fn(data) on the next turn. */
void ds__reactor_defer(ds_reactor *r, ds__call *node, void (*fn)(void *),
                       void *data);

/* Takes node out of the queue if it is still there (its owner is being
 * freed before the call ran). O(queued calls). */
void ds__reactor_undefer(ds_reactor *r, ds__call *node);

/* Interface and address enumeration and the netlink watch (ifaddr.c),
 * used by the all-interfaces server endpoint (endpoint.c) and by multicast
 * interfaces given as addresses (udp.c). */

/* One network interface. */
typedef struct ds__iflink {
  unsigned index;
  unsigned flags; /* IFF_* */
  char name[16];
} ds__iflink;

/* One local address. */
typedef struct ds__ifaddr {
  ds_addr addr;   /* port 0; IPv6 link-local with scope_id = ifindex */
  unsigned ifindex;
  unsigned flags; /* IFA_F_* (IFA_F_TENTATIVE, IFA_F_DADFAILED...) */
  char ifname[16];
} ds__ifaddr;

/* A consistent view of the interfaces and their addresses. */
typedef struct ds__ifsnap {
  ds__iflink *links;
  size_t nlinks;
  ds__ifaddr *addrs;
  size_t naddrs;
} ds__ifsnap;

/* Fills snap from netlink dumps (RTM_GETLINK, RTM_GETADDR) of family (0,
 * AF_INET or AF_INET6). Returns 0 or a negative errno (snap is empty). */
int ds__ifsnap_take(ds__ifsnap *snap, int family);
void ds__ifsnap_free(ds__ifsnap *snap);

/* Finds the interface holding address a (IPv4 or IPv6; port and flow
 * label ignored); when a has a scope_id, only that interface counts.
 * Returns 0 with *index set, -EADDRNOTAVAIL when no interface holds it,
 * or a negative errno of ds__ifsnap_take(). */
int ds__ifaddr_find(const ds_addr *a, unsigned *index);

/* Watches for address and link changes (RTM_NEWADDR, RTM_DELADDR,
 * RTM_NEWLINK, RTM_DELLINK) of family: after a batch of changes (or a lost
 * overflow) cb(data) runs from the reactor; take a fresh snapshot there.
 * The watch may be freed inside cb. */
typedef struct ds__ifwatch ds__ifwatch;
int ds__ifwatch_new(ds_reactor *r, int family, void (*cb)(void *data),
                    void *data, ds__ifwatch **out);
void ds__ifwatch_free(ds__ifwatch *w);

/* The number of ports the first bind of s tried (endpoint.c; for tests). */
unsigned ds__server_port_tries(const ds_server *s);

/* Destination address selection (sort.c), for the Happy Eyeballs engine
 * and for tests. */

/* As ds_sort_destinations(), but sources[i] is taken as the source address
 * of addrs[i] instead of asking the kernel (an unset source, family 0,
 * makes addrs[i] unusable), so that nothing touches the network. Returns 0,
 * -ENOMEM, or -EINVAL for a NULL array with n > 0. */
int ds__sort_with_sources(ds_addr *addrs, size_t n, const ds_addr *sources);

/* Reorders a sorted list in place for RFC 8305 section 4: first
 * first_family_count addresses (0 means 1) of the preferred family (prefer
 * AF_INET, or else AF_INET6, the default), then one of the other family,
 * one of the preferred, and so on; when a family runs out, the rest of the
 * other follows. Each family keeps its sorted order. The preferred family
 * goes first even when the sorted list starts with the other one (the RFC
 * takes the first family of the sorted list: pass that family as prefer
 * to get its behaviour). v4-mapped addresses count as IPv4; unset ones go
 * last, in their order. Needs no memory, so it cannot fail. */
void ds__interleave_families(ds_addr *addrs, size_t n, int prefer,
                             unsigned first_family_count);

/* Returns 1 if IPv4 address a should be reached through a NAT64 prefix:
 * an address NAT64 may translate (not 0/8, 127/8 or 169.254/16) to which
 * the host has no route (a UDP connect, which sends nothing, finds
 * ENETUNREACH or EHOSTUNREACH). For the race engine (happy.c). */
int ds__nat64_needed(const ds_addr *a);

/* Names of l's answer of family (valid inside l's callback for that
 * family; "" when unknown; an address literal's are the literal):
 * DS__NAME_ANSWERED, the name that answered, absolute with its trailing
 * dot so that a lookup of it asks no search list (with a search list, the
 * name tried); DS__NAME_CANON, the owner of its address records at the
 * end of a CNAME chain, or the hosts file line's first name, without the
 * dot; DS__NAME_ALIASES, the hosts file line's other names, separated by
 * spaces ("" from DNS). */
enum { DS__NAME_ANSWERED, DS__NAME_CANON, DS__NAME_ALIASES };
const char *ds__lookup_name(const ds_lookup *l, int family, int which);

#endif
