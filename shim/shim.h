/* The preload shim's private declarations. The shim is built from these
 * files and the library's objects into build/libdualstack-preload.so; it
 * exports only the libc functions it interposes (DS_HOOK). */
#ifndef DS_SHIM_H
#define DS_SHIM_H

#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <stdint.h>
#include <sys/types.h>

#define DS_HOOK __attribute__((visibility("default")))

/* Configuration read once from the environment (secure_getenv). */
typedef struct shim_config {
  int disabled;    /* DUALSTACK_DISABLE=1, a setuid process, or init failed */
  int observe;     /* DUALSTACK_OBSERVE=1: trace only, change nothing */
  int trace_fd;    /* -1: no trace */
  dev_t trace_dev; /* what trace_fd was opened on: a close the shim */
  ino_t trace_ino; /* never saw (closefrom) may give the number away */
  /* The race's settings (0: the library's default). */
  unsigned attempt_delay_ms;    /* DUALSTACK_ATTEMPT_DELAY_MS */
  unsigned resolution_delay_ms; /* DUALSTACK_RESOLUTION_DELAY_MS */
  unsigned family_count;        /* DUALSTACK_FAMILY_COUNT */
  unsigned connect_timeout_ms;  /* DUALSTACK_CONNECT_TIMEOUT_MS */
  unsigned memory_s;            /* DUALSTACK_MEMORY_S (default 600) */
  unsigned pool_lease_s;        /* DUALSTACK_POOL_LEASE_S (default 60) */
  int prefer;                   /* DUALSTACK_PREFER: AF_INET6 or AF_INET */
} shim_config;

extern shim_config shim__cfg;

/* Runs the one-time initialisation (lazy, thread-safe). Returns 0 when the
 * real functions are known; the shim then passes everything through when
 * shim__cfg.disabled is set. */
int shim__init(void);
/* Returns 1 once the shim is initialised and enabled (no initialisation
 * here). */
int shim__initialised(void);

/* Per-thread guard: the shim's own calls never re-enter its hooks. Returns
 * 1 if the caller may act (and takes the guard), 0 if it must pass the
 * call through untouched. */
int shim__enter(void);
void shim__leave(void);
/* Returns 1 when the calling thread is inside a hook that holds the guard
 * (a hook reached from a signal handler, or from libc inside the shim),
 * without taking it. */
int shim__nested(void);
/* Called by the longjmp hooks before they jump to a frame whose stack
 * pointer is target_sp (0: not known): a guard held now belongs to a hook
 * the jump leaves (a handler's longjmp out of it) unless the target lies
 * inside the handler (its signal stack, or between the jump and the
 * holder's frame); then it is dropped, and the hook's work is reclaimed
 * by the next shim__enter(). */
void shim__unwinding(uintptr_t target_sp);
/* Looks up libc's longjmp family for the hooks (unwind.c), at init. */
void shim__unwind_init(void);

/* Evaluates call (a hook's body) and gives its result; a success (a
 * result of 0 or more) leaves errno as the application had it, whatever
 * the shim's own calls did to it, as the wrapped call does. */
#define SHIM_KEEP_ERRNO(call)                                                  \
  __extension__({                                                              \
    int shim_ke_ = errno;                                                      \
    __typeof__(call) shim_kr_ = (call);                                        \
    if (shim_kr_ >= 0)                                                         \
      errno = shim_ke_;                                                        \
    shim_kr_;                                                                  \
  })

/* Returns 1 when the shim acts on this call: initialised, enabled, and
 * not a call the shim itself makes; then the guard is taken and the
 * caller must shim__leave(). */
int shim__active(void);

/* Work a hook has in progress: set while it waits, cleared when done, so
 * that a hook left by longjmp can be cleaned up by the next one. */
typedef struct shim_work {
  ds_reactor *reactor;
  ds_lookup *lookup;
} shim_work;

/* fork() handling: each module's handler on the library's fork chain
 * (ds__fork_add(), in the order init.c gives) takes its locks before fork
 * (DS__FORK_PREPARE) and gives them back (PARENT) or makes them afresh
 * (CHILD). */
void shim__async_fork(int phase);
void shim__fd_fork(int phase);
void shim__source_fork(int phase);
void shim__pool_fork(int phase);
void shim__names_fork(int phase); /* the trace's name ring (hooks.c) */
void shim__cache_fork(int phase); /* the lookup cache (names.c) */
void shim__nat64_fork(int phase);
void shim__connect_fork(int phase);

/* Returns this thread's work record. */
shim_work *shim__work(void);

/* Milliseconds since the epoch. */
int64_t shim__epoch_ms(void);

/* Returns a fresh id linking the events of one lookup or connection. */
unsigned long shim__next_id(void);

/* Trace: a JSON object is built in a buffer and written with one write().
 * The builder never fails loudly: a line too long is cut at an element
 * boundary and stays valid JSON. */
typedef struct shim_json {
  char buf[4096];
  size_t len;
  int overflow; /* an element did not fit: the rest is left out */
  int in_array; /* an array is open */
} shim_json;

void shim__json_begin(shim_json *j, const char *event, unsigned long id);
void shim__json_str(shim_json *j, const char *key, const char *value);
/* As shim__json_str for a host name the shim keeps absolute: without its
 * final dot, as the application wrote it. */
void shim__json_host(shim_json *j, const char *key, const char *name);
void shim__json_int(shim_json *j, const char *key, long long value);
void shim__json_num(shim_json *j, const char *key, double value);
void shim__json_bool(shim_json *j, const char *key, int value);
/* Starts an array of strings: key, then shim__json_item() for each. */
void shim__json_array_begin(shim_json *j, const char *key);
void shim__json_item(shim_json *j, const char *value);
void shim__json_array_end(shim_json *j);
/* Closes the object and writes the line, if tracing is on. */
void shim__json_emit(shim_json *j);

/* Traces a connect or bind (event "connect" or "bind") of address sa:
 * rc and err are the call's result and errno, t0 its start
 * (ds__mono_ms). */
void shim__trace_sockaddr(const char *event, const struct sockaddr *sa,
                          socklen_t len, int rc, int err, double t0);

/* Traces a refusal (ENETUNREACH) to send to a pool address without
 * mapping. */
void shim__trace_unmapped(const struct sockaddr *sa, socklen_t len);

/* For a hook reached inside another, which passes its call through:
 * returns -1 with errno when IPv4 address sa is a destination-pool or
 * source-pool address that would reach the network from fd (ENETUNREACH,
 * traced), or fd is no socket (EBADF, ENOTSOCK); else 0 (pass it
 * through). Takes no lock. */
int shim__nested_refuse(int fd, const struct sockaddr *sa, socklen_t len);

/* Parses "a.b.c.d/len" (len 8 to 30) into a base address and a size (host
 * order). Returns 0 or -1. */
int shim__parse_cidr(const char *s, uint32_t *base, uint32_t *size);

/* Returns "ok" or the errno's symbolic name ("ECONNREFUSED"). */
const char *shim__errname(int err);

/* ---- pool.c: synthetic addresses (host byte order IPv4) ---- */

/* Takes ip for name (an address another process of this program gave
 * out: a connection inherited across exec). Returns 0, or a negative
 * errno when ip is no pool address or is another name's (-EBUSY), or
 * name has another (-EEXIST). */
int shim__pool_claim(uint32_t ip, const char *name);

/* Sets up the destination pool from a CIDR (NULL: 10.170.160.0/20).
 * Returns 0 or -1 (bad CIDR or no memory: no synthesis then). */
int shim__pool_init(const char *cidr);
/* Returns 1 if ip lies in the destination pool's range. */
int shim__pool_contains(uint32_t ip);
/* Sets *ip to the synthetic address standing for name (allocated on
 * first use; when the pool is full, the least recently used address not
 * in use is recycled) and leases it for the larger of ttl_ms (the
 * answer's TTL; 0: none) and the floor (DUALSTACK_POOL_LEASE_S). Returns
 * 0, or -EAGAIN when every address is in use (held or leased), -ENOMEM,
 * -EINVAL (no pool, a bad name); *ip is 0 then. */
int shim__pool_synthesize(const char *name, uint64_t ttl_ms, uint32_t *ip);
/* Holds (delta 1; also renews its lease) or releases (delta -1) the
 * synthetic address ip for an open socket: a held address is never given
 * to another name. Returns 1 if ip stands for a name, else 0 (nothing
 * held then). */
int shim__pool_hold(uint32_t ip, int delta);
/* Renews synthetic address ip's lease (a datagram sent to it). */
void shim__pool_renew(uint32_t ip);
/* Returns 0 when ip is certainly neither synthetic nor a dual-stack
 * name's (a lock-free test for connect's fast path), else 1. */
int shim__pool_maybe(uint32_t ip);
/* Copies the name ip stands for into name: returns 1 for a synthetic
 * address, 2 for a real IPv4 address of a dual-stack name, 0 if none. */
int shim__pool_name(uint32_t ip, char *name, size_t len);
/* Records ip as a real IPv4 address handed out for dual-stack name. */
void shim__pool_dual(uint32_t ip, const char *name);
/* Copies the IPv6 address chosen for synthetic address ip (the first of
 * its name's AAAA records in RFC 6724 order, looked up on first use)
 * into *out and returns 1, or returns 0 (no mapping, no AAAA). */
int shim__pool_v6(uint32_t ip, struct in6_addr *out);
/* Returns the synthetic address whose chosen IPv6 address is a, or 0. */
uint32_t shim__pool_from_v6(const struct in6_addr *a);

/* ---- names.c: what a lookup of name finds, both families ---- */

#define SHIM_NAME_MAX 256 /* a DNS name's text, its dot and its NUL */
typedef struct shim_answer {
  int n4, n6;      /* addresses found per family */
  int loopback4;   /* an IPv4 answer is in 127/8 */
  uint32_t a4[16]; /* IPv4 answers, host order */
  ds_addr a6[16];  /* IPv6 answers (the first 16) */
  /* Of the IPv6 answer: the name that answered (with a search list, the
   * name tried; lower case, no trailing dot) and its canonical name. */
  char qname[SHIM_NAME_MAX], canon[SHIM_NAME_MAX];
  char aliases[SHIM_NAME_MAX]; /* a hosts file line's other names, spaced */
} shim_answer;

/* Looks name up for A and AAAA with the library's resolver, returning when
 * both answered or at the first positive answer plus the Resolution
 * Delay. Returns 0, or -1 when the resolver could not run. */
int shim__resolve_both(const char *name, shim_answer *out);

/* Returns 1 if a lookup of node with hints is one the shim answers:
 * IPv4 only, a name (not a number inet_aton takes), not numeric-only.
 * AI_PASSIVE does not matter: POSIX ignores it when a name is given. */
int shim__eligible(const char *node, int family, int flags);

/* ---- connect.c ---- */

/* For a connect the shim does not race (it cannot, or may not, here): a
 * real IPv4 address is connected as asked, as without the shim; a
 * synthetic one fails with err's errno (err a negative code as
 * shim__race_errno() takes; 0: EIO). Returns as connect() does. */
int shim__connect_as_asked(int fd, const struct sockaddr_in *asked, int err);

/* A race run on behalf of an application's fd: its options, and the
 * attempts seen so far for the trace. */
#define SHIM_RACE_ATTEMPTS 32
typedef struct shim_race {
  ds_happy_opts o;
  ds_addr b4, b6;   /* the application's bind, per family */
  ds_addr nat64;    /* the NAT64 prefix, when one is known */
  int app_fd;       /* whose recorded options each attempt gets */
  unsigned long id; /* trace id */
  double t0;        /* ds__mono_ms() at the start */
  void *result;     /* the caller's */
  int natt;
  struct {
    int index, open;
    double t;
    ds_addr addr;
  } att[SHIM_RACE_ATTEMPTS];
} shim_race;

/* Fills rs for a race on behalf of fd (settings, the application's bind
 * and options). Returns 0, or -1 with errno (fd is not a socket). */
int shim__race_setup(shim_race *rs, int fd);
/* The race's event callback (user: the shim_race): traces attempts. */
void shim__race_event(ds_happy *h, const ds_happy_event *ev, void *user);
/* Traces attempt i of rs as ended at end (ms since the start). */
void shim__race_trace_attempt(shim_race *rs, int i, double end, int result);
/* Traces the attempts still open as cancelled. */
void shim__race_trace_rest(shim_race *rs);
/* Returns the errno an application expects for a race's failure code. */
int shim__race_errno(int err);

/* What the shim does with an IPv4 lookup of name (shim__decide). */
enum { SHIM_PASS, SHIM_DUAL, SHIM_SYNTH, SHIM_FULL };

/* The names of a lookup the shim answers (shim__decide): key, the name
 * that answered, absolute (what the pool keeps and the race asks again);
 * canon, its canonical name; alias, what glibc lists as aliases,
 * separated by spaces: a hosts file line's other names, or from DNS the
 * name that answered when it is not the canonical one, else "". */
typedef struct shim_names {
  char key[SHIM_NAME_MAX], canon[SHIM_NAME_MAX], alias[SHIM_NAME_MAX];
} shim_names;

/* Decides for a lookup: SHIM_PASS (libc answers as without the shim),
 * SHIM_DUAL (libc answers; remember its IPv4 addresses as the dual-stack
 * name names->key's), SHIM_SYNTH (*synth is the pool address standing for
 * it, leased to names->key), or SHIM_FULL (it needs a pool address and
 * every one is in use: the lookup fails with EAI_AGAIN / TRY_AGAIN;
 * shim__trace_pool_full says why). names is filled for SHIM_DUAL and
 * SHIM_SYNTH. */
int shim__decide(const char *name, int family, int flags, uint32_t *synth,
                 shim_names *names);

/* Traces a lookup of name (family asked, through via) that failed with
 * error (EAI_AGAIN, TRY_AGAIN) because every pool address is in use; t0
 * is its start (ds__mono_ms). */
void shim__trace_pool_full(const char *name, int family, const char *via,
                           const char *error, double t0);

/* Lays out a hostent for name (and alias, if not NULL: its aliases,
 * separated by spaces)
 * with the one address ip in buf. Returns 0 or ERANGE when len is too
 * small (as glibc's _r functions do). */
int shim__fill_hostent(struct hostent *he, char *buf, size_t len,
                       const char *name, const char *alias, uint32_t ip);

/* Remembers every IPv4 address of he as dual-stack name's. */
void shim__remember_dual_hostent(const struct hostent *he, const char *name);

/* ---- fd.c: what the shim knows per fd ----
 * An entry is trusted only while fd still holds the socket it was made
 * for (same device and inode, or for an accepted IPv4 client the same
 * peer), since some closes are never seen. */

#define SHIM_FD_MAX 65536

enum {
  SHIM_FD_NONE,    /* nothing known */
  SHIM_FD_CLIENT,  /* a race's winner is installed (TCP client) */
  SHIM_FD_PENDING, /* a non-blocking race runs for this fd */
  SHIM_FD_DGRAM,   /* a UDP socket moved to IPv6 (client side) */
  SHIM_FD_WIDE,    /* an AF_INET socket bound to 0.0.0.0, widened to [::] */
  SHIM_FD_ACCEPTED /* a connection accepted on a widened listener */
};

typedef struct shim_fd {
  int kind;
  int family;               /* of the socket now under fd */
  struct sockaddr_in peer;  /* the peer as the application sees it, if any
                               (port 0 and INADDR_ANY: none) */
  struct sockaddr_in local; /* the bound address as the application sees
                              it (WIDE: 0.0.0.0:PORT), if any; an IPv4
                              client's ACCEPTED: only the listener's port,
                              to check the entry by */
  int err;                  /* PENDING that failed: its errno */
  uint32_t source;          /* a source-pool address this fd holds (host
                               order), released when the fd closes; 0 */
  uint32_t dest;            /* a destination-pool address this fd holds
                               (host order): its peer's, or the last one a
                               UDP socket sent to; released when the fd
                               closes or its entry is replaced; 0 */
  int pktinfo;              /* WIDE, UDP: the application asked for
                               IP_PKTINFO (the shim's own IPV6_RECVPKTINFO
                               is on whatever it asks) */
} shim_fd;

/* Copies fd's entry into *out and returns non-zero if there is one and it
 * still describes the socket under fd (2 when that check found the socket
 * connected to the entry's peer); else returns 0. */
int shim__fd_get(int fd, shim_fd *out);
/* Records e for the socket now under fd (fd < SHIM_FD_MAX). An entry
 * holds its source address and its destination address: e->peer's when
 * that is a synthetic one, else e->dest (kept when an entry is copied or
 * rewritten). */
void shim__fd_set(int fd, const shim_fd *e);
/* Records e for fd as it will be once socket like is dup3()ed onto it
 * (set before the swap, so that nobody woken by it sees the old entry). */
void shim__fd_set_as(int fd, int like, const shim_fd *e);
/* Records e, an accepted IPv4 client's connection (e->peer its address,
 * e->local.sin_port the listener's port or 0, e->source 0), for the
 * socket now under fd without a system call: the entry is trusted while
 * the kernel reports e->peer, IPv4-mapped, as fd's peer (or, once the
 * connection is closed or reset, an IPv4-mapped local address on
 * e->local's port, when that is not 0). */
void shim__fd_set_peer(int fd, const shim_fd *e);
/* Forgets fd (entry, recorded options); releases its source and
 * destination addresses. */
void shim__fd_clear(int fd);
/* Makes synthetic address ip the one fd's UDP entry (SHIM_FD_DGRAM)
 * holds, releasing the one it held before, and renews ip's lease: a
 * datagram sent to ip. */
void shim__fd_send_to(int fd, uint32_t ip);
/* Returns 1 if the shim may hold any state for fd: a cheap test, without
 * a system call, for the close and dup hooks. */
int shim__fd_known(int fd);
/* Gives to (a dup of from) from's entry, if from has one. */
void shim__fd_copy(int from, int to);
/* Returns socket option opt (SOL_SOCKET, an int) of fd, or -1. */
int shim__sock_int(int fd, int opt);
/* Puts socket nfd on the application's fd, which keeps its number, its
 * close-on-exec flag and its status flags (O_NONBLOCK...); nfd is closed.
 * Returns 0, or -1 with errno (nfd is then still the caller's). */
int shim__install(int nfd, int fd);
/* Returns the port (network order) of the widened listener that fd's
 * entry says fd is, or 0; without checking that the entry still
 * describes fd's socket (no system call): a hint, never a decision. */
in_port_t shim__fd_wide_port_hint(int fd);
/* Returns an fd other than except that the shim widened to [::]:port, or
 * -1, and in *count (if not NULL) how many fds, except included, hold a
 * widened socket on port (scans the table: for the rare bind or close
 * that needs it). */
int shim__fd_find_wide(uint16_t port, int except, int *count);
/* Returns the first fd above after (-1: from 0) the table may know
 * (not the shim's own), or -1. */
int shim__fd_next_known(int after);

/* ---- handover.c: translated connections across exec ---- */

/* Writes "DUALSTACK_PEERS=..." into buf (len bytes) for the translated
 * connections an exec passes on; returns 0 when there are none (or the
 * shim does not act). */
int shim__handover_records(char *buf, size_t len);
/* Returns how many entries a copy of envp with one more variable takes
 * (0: too many to copy). */
size_t shim__handover_slots(char *const *envp);
/* Returns envp copied into slots (nslots entries) without its own
 * DUALSTACK_PEERS and with buf's, or envp when the copy does not fit. */
char *const *shim__handover_env(char *const *envp, char *buf, char **slots,
                                size_t nslots);
/* At init: takes DUALSTACK_PEERS' records for the inherited sockets
 * still connected to their peer. */
void shim__handover_take(void);
/* Gives fd, an AF_INET socket without a port, an ephemeral one (bound to
 * 0.0.0.0), as the kernel does when a connect or send starts; errno may
 * change. */
void shim__autobind(int fd);
/* Before fd, a widened socket, is closed: its port leaves
 * DUALSTACK_WIDENED when no other fd holds it, so a later socket of the
 * program's own on that port is never taken for it by exec'd children. */
void shim__server_closing(int fd);
/* Marks fd as one of the shim's own (the trace, the helper thread's):
 * the application's close() and close_range() leave it open, as if it
 * were not there (daemons close every fd they did not open). */
void shim__fd_private(int fd);
/* Forgets that fd is the shim's own (it was closed). */
void shim__fd_public(int fd);
/* Returns 1 if fd is one of the shim's own. */
int shim__fd_is_private(int fd);
/* Marks fd as possibly holding state (options recorded for it). */
void shim__fd_mark(int fd);

/* ---- sockopt.c: options carried over to a new socket ---- */

/* Sets on socket to, whose family is family, the options the application
 * set on its socket from (those that differ from a fresh socket's):
 * IPPROTO_IP options get their IPv6 twins on an IPv6 socket, and are also
 * set as they are (for IPv4-mapped traffic; their refusal then matters
 * only when dual is 1). Returns 0, or a negative errno of the first option
 * the kernel refused (the rest are still set). */
int shim__opt_replay(int from, int to, int family, int dual);
/* Returns 1 and the IPv6 twin of an IPPROTO_IP option, or 0. */
int shim__opt_twin(int name, int *name6);

/* Makes the setsockopt (set 1) or getsockopt call on a fresh AF_INET
 * socket of fd's type and protocol: what the kernel says of it for the
 * socket the application believes fd is. Returns as the call does, or
 * -2 with errno unchanged when no such socket can be made (no fds). */
int shim__opt_as_inet(int fd, int set, int level, int name, void *val,
                      socklen_t *len);

/* After a setsockopt (set 1) or getsockopt that failed on fd, a socket
 * moved to IPv6: -1 with the errno an AF_INET socket gives for the call
 * (an unknown level, TCP's options on UDP: EOPNOTSUPP, not IPv6's
 * ENOPROTOOPT), or with the failure's own errno when AF_INET takes it. */
int shim__opt_fail_as_inet(int fd, int set, int level, int name, void *val,
                           socklen_t *len);

/* An IPPROTO_IPV6 setsockopt (set 1) or getsockopt on fd, a socket moved
 * to IPv6 that the application made AF_INET: what an AF_INET socket says
 * (it has no such options), changing nothing on fd. */
int shim__opt_ipv6_as_inet(int fd, int set, int name, void *val,
                           socklen_t *len);

/* ---- srcpool.c: the source pool (DUALSTACK_SOURCE_POOL) ---- */

/* The source-pool address standing for IPv6 address a (host order),
 * allocated on first use and stable while in use; when the pool is full
 * the least recently used entry not held by an open socket is recycled.
 * Returns 0 when none can be had. */
uint32_t shim__source_address(const struct in6_addr *a);
/* Copies the IPv6 address that source-pool address ip stands for into
 * *out and returns 1, or returns 0. */
int shim__source_lookup(uint32_t ip, struct in6_addr *out);
/* Holds (delta 1) or releases (delta -1) ip for an open socket. */
void shim__source_hold(uint32_t ip, int delta);
/* As shim__source_address; *fresh (if not NULL) is set to 1 when the
 * address was handed out to a by this call (first use, or recycled). */
uint32_t shim__source_get(const struct in6_addr *a, int *fresh);

/* As shim__source_get, and notes (local not NULL) that the peer's
 * datagram came to local on interface ifindex (a widened UDP socket's
 * replies leave from it). */
uint32_t shim__source_get_at(const struct in6_addr *a,
                             const struct in6_addr *local, unsigned ifindex,
                             int *fresh);

/* Returns 1 and the local address (and interface) the IPv6 peer source-pool
 * address ip stands for last sent to, or 0 when none is known. */
int shim__source_local(uint32_t ip, struct in6_addr *local, unsigned *ifindex);
/* Returns 1 when the source pool is usable (DUALSTACK_SOURCE_POOL is a
 * good CIDR, or unset), 0 when it is not (nothing is widened then). */
int shim__source_ok(void);
/* Returns 1 if ip (host order) lies in the source pool's range. */
int shim__source_contains(uint32_t ip);
/* For reverse lookups (gethostbyaddr, getnameinfo) of source-pool
 * address ip: copies the name of the IPv6 address it stands for (libc's
 * reverse lookup, NI_NAMEREQD) or else its literal into host and returns
 * 1; returns 0 when ip stands for nothing (or len is too small). */
int shim__source_reverse(uint32_t ip, char *host, size_t len);

/* ---- dgram.c: addresses of datagrams and peers ---- */

/* The IPv4 address the application sees for IPv6 peer s6 of fd:
 * IPv4-mapped -> the IPv4 address; an IPv6 address the shim chose for a
 * synthetic destination -> that synthetic address; anything else -> a
 * source-pool address. Returns 0, or -1 if none could be had. */
int shim__peer_to_v4(int fd, const struct sockaddr_in6 *s6,
                     struct sockaddr_in *out);
/* The IPv6 address to use on an IPv6 socket for IPv4 address sin the
 * application gave: a synthetic destination -> its IPv6 address, a
 * source-pool address -> the IPv6 address it stands for, anything else
 * -> IPv4-mapped. Returns 0, or -1 with errno (ENETUNREACH: a pool
 * address without mapping). */
int shim__peer_to_v6(const struct sockaddr_in *sin, struct sockaddr_in6 *out);
/* Moves AF_INET datagram socket fd, about to send to or connect to
 * synthetic address dst, to an IPv6 dual-stack socket on the same fd (its
 * options, bind and flags kept; entry SHIM_FD_DGRAM). Returns 0, 1 when
 * fd is no such socket (nothing done), or -1 with errno. */
int shim__dgram_move(int fd, const struct sockaddr_in *dst);

/* ---- async.c: connect races in the helper thread ---- */

/* Starts the race for fd in the helper thread, fd's own socket standing
 * in (connecting) meanwhile: returns -1 with errno EINPROGRESS (started)
 * or another errno; when it cannot run there, connects a real IPv4
 * address as asked and returns as connect() does. blocking: the caller
 * will wait with shim__async_wait() (and the trace says so).
 * *started is 1 only when the race went on in the helper thread (it then
 * traces its own end). */
int shim__async_connect(int fd, const char *name,
                        const struct sockaddr_in *asked, unsigned long id,
                        int blocking, int *started);
/* Waits, as the kernel's blocking connect() does, for the race running
 * for fd: blocked in a real connect() on the stand-in, so that signals
 * interrupt it (EINTR, the race going on), SA_RESTART restarts it and
 * SO_SNDTIMEO bounds it (EINPROGRESS when first, else EALREADY), as the
 * kernel applies them. Returns 0 (the winner is on fd), or -1 with
 * errno. first: the wait of the connect() that started the race. */
int shim__async_wait(int fd, int first);
/* Returns 1 while a race runs whose stand-in is the socket under fd
 * (fd itself, or a copy of it: a dup). */
int shim__async_running(int fd);
/* Before an exec or a spawn: waits up to ms for the races on fds without
 * FD_CLOEXEC to put their result on the fd. A race still running then is
 * left alone (the exec may fail, and the program goes on with it). */
void shim__async_settle(unsigned ms);
/* Cancels the race running for fd, if any (fd is being closed). */
void shim__async_cancel(int fd);
/* Records an epoll_ctl() the application made (op succeeded). */
void shim__epoll_record(int epfd, int op, int fd, const struct epoll_event *ev);
/* Runs swap(fd, arg), which puts a new socket under fd (shim__install),
 * so that fd's epoll registrations made by the application follow it:
 * deleted before, added again after (also when swap fails), and still
 * recorded. Holds the async lock throughout, so no epoll_ctl, dup2 or
 * close of the application's lands in between. Returns swap's result,
 * with its errno. */
int shim__epoll_carry(int fd, int (*swap)(int fd, void *arg), void *arg);
/* Forgets the epoll registrations recorded for fd. */
void shim__epoll_forget(int fd);
/* Holds off swaps (and takes the lock they hold): the application's own
 * epoll_ctl, dup2, dup3 and close_range on fds the shim knows run under
 * it, so none lands in the middle of a swap. Recursive. */
void shim__async_lock(void);
void shim__async_unlock(void);

/* ---- exclude.c: DUALSTACK_EXCLUDE ---- */

/* Reads the list (at init). */
void shim__exclude_init(const char *list);
/* Returns 1 if name is excluded (itself or a domain above it). */
int shim__excluded_name(const char *name);
/* Returns 1 if address a (IPv4 or IPv6) lies in an excluded network. */
int shim__excluded_addr(const ds_addr *a);
/* Returns 1 if port is excluded. */
int shim__excluded_port(uint16_t port);

/* ---- nat64.c: DUALSTACK_NAT64 ---- */

/* Reads the setting (at init). */
void shim__nat64_init(const char *value);
/* Copies a configured or already discovered prefix and returns 1, or
 * returns 0 (never blocks). */
int shim__nat64_known(ds_addr *prefix, unsigned *len);
/* As shim__nat64_known, but discovers the prefix (RFC 7050) when the
 * setting is auto and none is known yet: may wait for DNS. */
int shim__nat64_prefix(ds_addr *prefix, unsigned *len);

/* ---- server.c: widened binds, accept ---- */

/* Traces IPv6 peer and the IPv4 address shown for it (shown may be NULL):
 * event "accept" or "recv". */
void shim__trace_peer(const char *event, const struct sockaddr_in6 *peer,
                      const struct sockaddr_in *shown);

/* In a program exec'd by one the shim widened a listener in (inetd and
 * its services, socket activation by a preloaded supervisor, a binary
 * upgrade that keeps its listeners): adopts the inherited sockets that
 * DUALSTACK_WIDENED names, so that the program sees them as the AF_INET
 * sockets its parent's program made. Run once, at initialisation, before
 * the program's first network call: the sockets open then are the
 * inherited ones (server.c's top comment has the rule and its limits). */
void shim__server_adopt(void);
/* fork() handling for the lock around DUALSTACK_WIDENED. */
void shim__server_fork(int phase);

#endif
