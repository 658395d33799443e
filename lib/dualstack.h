/*! \file dualstack.h
 * libdualstack: an epoll reactor and Twisted-style endpoints in which IPv6
 * is first-class.
 *
 * Conventions, everywhere in this header:
 * - Functions returning int return 0 (or a non-negative count) on success
 *   and a negative errno, or a DS_E* code from the library's own range, on
 *   failure. ds_strerror() and ds_err_name() describe either kind.
 * - A call that returns an error never runs its callback; a callback never
 *   runs inside the call that started the work.
 * - Everything runs on the reactor's thread, except
 *   ds_reactor_call_threadsafe().
 * - Where a function takes `char *err, size_t errlen`, a failure also writes
 *   a one-line explanation naming the bad part of the input there (err may
 *   be NULL).
 */
#ifndef DUALSTACK_H
#define DUALSTACK_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DS_API __attribute__((visibility("default")))

/* ---------------------------------------------------------------- errors */

/*! The library's own error range, below every errno value. Each entry is
 * X(name, value, text). */
#define DS_ERRNO_MAP(X)                                                        \
  X(EBADADDR, -3000, "malformed address literal")                              \
  X(ENEEDSCOPE, -3001, "link-local address needs a scope id")                  \
  X(EFAMILY, -3002, "address family mismatch")                                 \
  X(EHOSTNAME, -3003, "a host name is not accepted here")                      \
  X(ENOTFOUND, -3010, "host name not found")                                   \
  X(ENODATA, -3011, "host name has no address of the requested family")        \
  X(ESERVFAIL, -3012, "DNS server failure")                                    \
  X(EDNSTIMEOUT, -3013, "DNS query timed out")                                 \
  X(EBADNAME, -3014, "malformed host name")                                    \
  X(EDNS, -3015, "DNS resolution failed")                                      \
  X(EALLFAILED, -3020, "every connection attempt failed")                      \
  X(ENOTMCAST, -3030, "not a multicast address")                               \
  X(ENOLOCALADDR, -3040, "no local address matches the listen options")        \
  X(EDUPADDR, -3041, "address failed duplicate address detection")

/*! Error codes of the library's own range. */
enum ds_errno {
#define DS__ERR_ENUM(name, val, text) DS_##name = (val),
  DS_ERRNO_MAP(DS__ERR_ENUM)
#undef DS__ERR_ENUM
};

/*! \return a static description of err (negative errno or DS_E* code);
 * never NULL. */
DS_API const char *ds_strerror(int err);

/*! \return a static symbolic name of err ("ECONNREFUSED", "DS_ENOTFOUND");
 * never NULL ("UNKNOWN" for unknown codes). */
DS_API const char *ds_err_name(int err);

/* ------------------------------------------------------------- addresses */

/*! An address value: IPv4, or IPv6 as the IPv6 plan's 4-tuple (address,
 * port, flow info, scope id). Plain data: copy it, compare it with
 * ds_addr_compare(). All fields are in host byte order except `ip`, which
 * holds the address bytes in network order. */
typedef struct ds_addr {
  int family;        /*!< AF_INET or AF_INET6; 0 means unset */
  uint16_t port;     /*!< port, host byte order */
  uint32_t flowinfo; /*!< IPv6 flow info (20 bits used); 0 for IPv4 */
  uint32_t scope_id; /*!< IPv6 scope id (interface index); 0 for none */
  union {
    struct in_addr v4;
    struct in6_addr v6;
    uint8_t bytes[16];
  } ip;
} ds_addr;

/*! Enough for any text ds_addr_format() writes, with the terminating NUL:
 * "[" + 45 address characters + "%" + 15 interface characters + "]:65535". */
#define DS_ADDR_STRLEN 72

/*! Parses an address literal without a port: `192.0.2.1`, `2001:db8::1`,
 * `::ffff:192.0.2.1`, `fe80::1%eth0`, `fe80::1%2`. Strict, so that no text
 * means one thing here and another to inet_aton():
 * - IPv4 is exactly four decimal parts 0-255; no leading zeros (`010` is
 *   octal to some parsers), signs, spaces or hex.
 * - IPv6 is RFC 4291 text (any case), with an optional dotted IPv4 last
 *   part held to the IPv4 rules.
 * - A scope (`%...`) is allowed on any IPv6 address, link-local or not
 *   (the kernel accepts sin6_scope_id everywhere), never on IPv4. Digits
 *   are an interface index kept as given, whether or not such an interface
 *   exists (1-4294967295, no leading zeros; `%0` is an error); anything
 *   else is an interface name, resolved now with if_nametoindex(): one
 *   that does not exist is -ENODEV (with the name in err), never a silent
 *   0.
 * - At most 61 characters (45 of address, '%', 15 of interface name).
 * \param[out] out  the address, with the given port; cleared (unset) on
 *                  failure (must not be NULL)
 * \param[in] text  NUL-terminated literal (must not be NULL)
 * \param[in] port  port to store in out
 * \return 0, DS_EBADADDR, -ENODEV, another negative errno when the
 * interface lookup itself fails, or -EINVAL for a NULL out or text; err
 * explains. */
DS_API int ds_addr_parse(ds_addr *out, const char *text, uint16_t port,
                         char *err, size_t errlen);

/*! Parses an address with a port: `192.0.2.1:80`, `[2001:db8::1]:80`,
 * `[fe80::1%eth0]:80`. The address follows ds_addr_parse()'s rules; IPv6
 * must be in brackets and IPv4 must not be. The port is required: decimal
 * 0-65535, no sign, no leading zeros. At most DS_ADDR_STRLEN - 1
 * characters.
 * \return as ds_addr_parse(). */
DS_API int ds_addr_parse_hostport(ds_addr *out, const char *text, char *err,
                                  size_t errlen);

/*! Formatting flags for ds_addr_format(). */
enum {
  DS_ADDR_FMT_PORT = 1,         /*!< `192.0.2.1:80`, `[2001:db8::1]:80` */
  DS_ADDR_FMT_SCOPE_NUMERIC = 2 /*!< `%2` even when the interface exists */
};

/*! Writes RFC 5952 canonical text with the scope (by interface name when
 * the interface exists, else by number): lowercase, no leading zeros, the
 * longest run of two or more zero fields as `::` (the first of equal
 * runs). Only v4-mapped addresses get a dotted IPv4 part
 * (`::ffff:192.0.2.1`); deprecated IPv4-compatible ones stay hex
 * (`::c000:201`). An IPv6 scope of 0 is not written; an interface whose
 * name is all digits is written by number. IPv4 scope ids and flow info
 * have no text form and are not written.
 * \param[out] buf  len bytes (may be NULL when len is 0); on failure it
 *                  holds "" when len > 0, and nothing past len is touched
 * \param flags  DS_ADDR_FMT_* bits
 * \return the text length, or -ENOSPC when len is too small (DS_ADDR_STRLEN
 * is always enough), or -EINVAL for an unset (or NULL) address.
 * ds_addr_parse() of the text (ds_addr_parse_hostport() with
 * DS_ADDR_FMT_PORT) gives back the address, but for flow info. */
DS_API int ds_addr_format(const ds_addr *a, char *buf, size_t len, int flags);

/*! Fills a sockaddr_in or sockaddr_in6 from a (the rest of ss zeroed;
 * sin6_flowinfo in network byte order, sin6_scope_id in host order).
 * \param[out] len  the sockaddr's length (may be NULL)
 * \return 0 or -EINVAL for an unset address. */
DS_API int ds_addr_to_sockaddr(const ds_addr *a, struct sockaddr_storage *ss,
                               socklen_t *len);

/*! Makes an address from a sockaddr_in or sockaddr_in6 of at least len
 * bytes (sa need not be aligned). out is cleared on failure.
 * \return 0, -EAFNOSUPPORT, or -EINVAL when len is too short. */
DS_API int ds_addr_from_sockaddr(ds_addr *out, const struct sockaddr *sa,
                                 socklen_t len);

/*! Total order: family (unset, then AF_INET, then AF_INET6), address bytes
 * (4 for IPv4, 16 otherwise), port, scope id, flow info. NULL sorts first.
 * \return -1, 0 or 1. */
DS_API int ds_addr_compare(const ds_addr *a, const ds_addr *b);

/*! \return 1 when a is an IPv4-mapped IPv6 address (::ffff:0:0/96). */
DS_API int ds_addr_is_v4mapped(const ds_addr *a);

/*! Turns an IPv4-mapped IPv6 address into the IPv4 address it carries,
 * keeping the port (flow info and scope id are dropped). out may be a.
 * \return 0, or -EINVAL when a is not v4-mapped (out is unchanged). */
DS_API int ds_addr_unmap(ds_addr *out, const ds_addr *a);

/*! Address classes, for RFC 6724 sorting and for policy. */
typedef enum ds_addr_class {
  DS_ADDR_UNSPECIFIED, /*!< 0.0.0.0, :: */
  DS_ADDR_LOOPBACK,    /*!< 127/8, ::1 */
  DS_ADDR_LINKLOCAL,   /*!< 169.254/16, fe80::/10 */
  DS_ADDR_SITELOCAL,   /*!< fec0::/10 (deprecated) */
  DS_ADDR_ULA,         /*!< fc00::/7 */
  DS_ADDR_PRIVATE,     /*!< 10/8, 172.16/12, 192.168/16 */
  DS_ADDR_V4MAPPED,    /*!< ::ffff:0:0/96 */
  DS_ADDR_MULTICAST,   /*!< 224/4, ff00::/8 */
  DS_ADDR_GLOBAL       /*!< anything else */
} ds_addr_class;

/*! \return the class of a (DS_ADDR_UNSPECIFIED also for an unset or NULL
 * a). A v4-mapped address is DS_ADDR_V4MAPPED whatever it carries: unmap
 * it to classify the IPv4 address. */
DS_API ds_addr_class ds_addr_classify(const ds_addr *a);

/*! RFC 6724 section 3.1 scope of an address: 0x1 interface-local, 0x2
 * link-local, 0x5 site-local, 0x8 organization-local, 0xe global.
 * - IPv6: ::1 and fe80::/10 0x2, fec0::/10 0x5, ULA fc00::/7 and :: 0xe,
 *   multicast the scope field of the address (RFC 4291 section 2.7; the
 *   reserved 0xf counts as 0xe, the reserved 0 is returned as 0).
 * - IPv4 (and v4-mapped, by the IPv4 address): loopback and link-local
 *   0x2 (RFC 6724 section 3.2). RFC 6724 leaves IPv4 multicast out; here
 *   224.0.0.0/24 is 0x2 (never forwarded, RFC 5771), 239.255.0.0/16 0x5
 *   (IPv4 Local Scope, RFC 2365 section 6.1) and 239.192.0.0/14 0x8
 *   (Organization Local Scope, section 6.2). Everything else IPv4 is 0xe.
 * \return the scope value, or -EINVAL for an unset address. */
DS_API int ds_addr_scope(const ds_addr *a);

/* --------------------------------------------------------------- reactor */

typedef struct ds_reactor ds_reactor;
typedef struct ds_timer ds_timer;
typedef struct ds_io ds_io;

/*! Creates a reactor (an epoll instance with timers and deferred calls).
 * \return 0 or a negative errno. */
DS_API int ds_reactor_new(ds_reactor **out);

/*! Frees a reactor that has no handles left (timers, watchers, TCP
 * transports and listeners must all be freed first).
 * \return 0, or -EBUSY when handles remain (nothing is freed then). */
DS_API int ds_reactor_free(ds_reactor *r);

/*! Runs the reactor until ds_reactor_stop() is called or nothing is left to
 * wait for (no active watcher, timer or deferred call).
 * \return 0, or a negative errno when epoll fails for good. */
DS_API int ds_reactor_run(ds_reactor *r);

/*! Runs one turn: runs the calls deferred before it, waits at most
 * timeout_ms (-1: no bound, 0: do not wait; no wait at all when nothing is
 * left to wait for) for events, then dispatches I/O and expired timers.
 * \return 1 if anything is left to wait for, 0 if not, or a negative
 * errno. */
DS_API int ds_reactor_run_once(ds_reactor *r, int timeout_ms);

/*! Makes ds_reactor_run() return after the current turn. */
DS_API void ds_reactor_stop(ds_reactor *r);

/*! \return the reactor's monotonic clock in milliseconds, as of the start
 * of the current turn. */
DS_API uint64_t ds_reactor_now(const ds_reactor *r);

/*! Runs fn(data) on the next turn, on the reactor's thread.
 * \return 0 or -ENOMEM. */
DS_API int ds_reactor_call_soon(ds_reactor *r, void (*fn)(void *), void *data);

/*! Thread-safe: from any thread, wakes the reactor and runs fn(data) on its
 * thread. \return 0 or -ENOMEM. */
DS_API int ds_reactor_call_threadsafe(ds_reactor *r, void (*fn)(void *),
                                      void *data);

/*! Timer callback. The timer may be restarted or freed inside it. */
typedef void (*ds_timer_cb)(ds_timer *t, void *data);

/*! Creates a stopped timer on the monotonic clock. \return 0 or -ENOMEM. */
DS_API int ds_timer_new(ds_reactor *r, ds_timer **out, ds_timer_cb cb,
                        void *data);

/*! (Re)arms t: first call after timeout_ms, then every repeat_ms if it is
 * not 0. Arming an active timer re-arms it. \return 0 or -ENOMEM. */
DS_API int ds_timer_start(ds_timer *t, uint64_t timeout_ms,
                          uint64_t repeat_ms);

/*! Stops t; its callback will not run until started again. */
DS_API void ds_timer_stop(ds_timer *t);

/*! \return 1 if t is armed. */
DS_API int ds_timer_active(const ds_timer *t);

/*! Stops and frees t (NULL is fine). */
DS_API void ds_timer_free(ds_timer *t);

/*! Event bits for I/O watchers. */
enum {
  DS_READABLE = 1,
  DS_WRITABLE = 2,
  DS_ERROR = 4 /*!< always reported; given with hang-ups and errors */
};

/*! I/O watcher callback: events is a mask of DS_READABLE, DS_WRITABLE and
 * DS_ERROR. The watcher (and any other) may be freed inside it. */
typedef void (*ds_io_cb)(ds_io *w, unsigned events, void *data);

/*! Creates a watcher for fd (not owned: ds_io_free() does not close it),
 * watching nothing yet. \return 0, -EBADF or -ENOMEM. */
DS_API int ds_io_new(ds_reactor *r, ds_io **out, int fd, ds_io_cb cb,
                     void *data);

/*! Sets the events w waits for (0 pauses it and removes the fd from the
 * epoll set, so hang-ups are not reported while paused).
 * \return 0 or a negative errno from epoll_ctl (-EEXIST when another
 * active watcher of this reactor has the same fd). */
DS_API int ds_io_set(ds_io *w, unsigned events);

/*! \return the fd w watches. */
DS_API int ds_io_fd(const ds_io *w);

/*! Stops and frees w; an event for it already in the current batch is
 * never dispatched. Call before closing the fd. NULL is fine. */
DS_API void ds_io_free(ds_io *w);

/* ------------------------------------------------------------------- TCP */

typedef struct ds_tcp ds_tcp;
typedef struct ds_listener ds_listener;

/*! A protocol: callbacks for one connection, all optional except
 * data_received. `user` is the pointer given with the protocol. */
typedef struct ds_protocol {
  /*! The connection is established (client: connected; server: accepted). */
  void (*connection_made)(ds_tcp *t, void *user);
  /*! Bytes arrived. data is valid only during the call. */
  void (*data_received)(ds_tcp *t, const void *data, size_t len, void *user);
  /*! The peer half-closed (FIN). If NULL, the connection is lost at EOF;
   * otherwise it stays open for writing. */
  void (*eof_received)(ds_tcp *t, void *user);
  /*! The connection ended: reason 0 for a clean close by either side, else
   * a negative errno. t is freed right after this returns. */
  void (*connection_lost)(ds_tcp *t, int reason, void *user);
  /*! A client connection could not be made (refused, timed out, cancelled
   * with -ECANCELED). t is freed right after this returns. */
  void (*connection_failed)(ds_tcp *t, int reason, void *user);
  /*! The write buffer rose above the high watermark: stop producing. */
  void (*pause_producing)(ds_tcp *t, void *user);
  /*! The write buffer fell to the low watermark: produce again. */
  void (*resume_producing)(ds_tcp *t, void *user);
} ds_protocol;

/*! Connects to host:port. host is an IPv4 or IPv6 literal (a scope is
 * allowed, and required for link-local) or a host name, resolved to IPv4
 * only (the IPv6 plan's low-level rule; a bind address must then be IPv4,
 * else DS_EFAMILY). Name failures arrive through connection_failed.
 * \param timeout_ms  0 for none; else the attempt ends with -ETIMEDOUT
 * \param bind  local address to bind first, or NULL; its family must be
 *              host's (else DS_EFAMILY at once)
 * \param[out] out  the transport, connecting; cancel with ds_tcp_abort()
 * \return 0 (connection_made or connection_failed follows, never inside
 * this call) or an error (no callback). */
DS_API int ds_connect_tcp(ds_reactor *r, const char *host, uint16_t port,
                          unsigned timeout_ms, const ds_addr *bind,
                          const ds_protocol *proto, void *user, ds_tcp **out,
                          char *err, size_t errlen);

/*! Queues data and writes what the socket takes at once.
 * \return 0, -ENOTCONN when not connected, -EPIPE after lose/half-close,
 * -ENOMEM (nothing queued then), or the socket's error (ECONNRESET...),
 * after which the connection is lost. */
DS_API int ds_tcp_write(ds_tcp *t, const void *data, size_t len);

/*! As ds_tcp_write() for an iovec; -EINVAL for iovcnt < 0 or above
 * IOV_MAX (the connection stays). */
DS_API int ds_tcp_writev(ds_tcp *t, const struct iovec *iov, int iovcnt);

/*! \return bytes queued but not yet taken by the kernel. */
DS_API size_t ds_tcp_buffered(const ds_tcp *t);

/*! Sets the write watermarks (defaults 64 KiB and 16 KiB). */
DS_API void ds_tcp_set_watermarks(ds_tcp *t, size_t high, size_t low);

/*! Closes after the write buffer drains (sending FIN); connection_lost
 * follows with reason 0 on a later turn. */
DS_API void ds_tcp_lose_connection(ds_tcp *t);

/*! Closes now, discarding the buffer (RST if data was unread).
 * connection_lost (or, while connecting, connection_failed with
 * -ECANCELED) follows on a later turn, never inside this call. */
DS_API void ds_tcp_abort(ds_tcp *t);

/*! Half-close: sends FIN after the buffer drains; reading goes on.
 * \return 0 or -ENOTCONN. */
DS_API int ds_tcp_half_close(ds_tcp *t);

/*! Stops reading (pause) or starts again (resume). */
DS_API void ds_tcp_pause_reading(ds_tcp *t);
DS_API void ds_tcp_resume_reading(ds_tcp *t);

/*! Local address, with the real port and scope. \return 0 or an error. */
DS_API int ds_tcp_get_host(const ds_tcp *t, ds_addr *out);

/*! Peer address, with the scope. \return 0 or -ENOTCONN. */
DS_API int ds_tcp_get_peer(const ds_tcp *t, ds_addr *out);

/*! TCP_NODELAY on (1) or off (0). \return 0 or a negative errno. */
DS_API int ds_tcp_set_nodelay(ds_tcp *t, int on);

/*! SO_KEEPALIVE; idle_s > 0 also sets TCP_KEEPIDLE. \return 0 or error. */
DS_API int ds_tcp_set_keepalive(ds_tcp *t, int on, unsigned idle_s);

/*! \return the socket fd (for options the library does not wrap). Once
 * handed out, the transport takes the fd out of epoll before closing it
 * (the caller may have dup'ed it); do not close it yourself. */
DS_API int ds_tcp_fd(const ds_tcp *t);

/*! Sets the protocol pointer passed to t's callbacks. */
DS_API void ds_tcp_set_user(ds_tcp *t, void *user);

/*! A protocol factory: called for each accepted connection with its
 * transport; sets *proto and *user. Returning non-zero refuses it (the
 * socket is closed, no callback runs). The factory may write through the
 * transport; if it also closes it and returns 0, the protocol gets
 * connection_lost on a later turn and no connection_made. */
typedef int (*ds_factory_fn)(void *factory_data, ds_tcp *t,
                             const ds_protocol **proto, void **user);

/*! Flags for ds_listen_tcp(). */
enum {
  DS_LISTEN_DUALSTACK = 1 /*!< IPv6 listener accepts IPv4 too (V6ONLY 0) */
};

/*! Listens on interface:port. interface is a literal (NULL: `0.0.0.0`);
 * `::` or any IPv6 literal (link-local with its scope) gives an IPv6
 * listener with IPV6_V6ONLY set (cleared with DS_LISTEN_DUALSTACK), so
 * `0.0.0.0` and `::` can share a port. A host name is DS_EHOSTNAME.
 * \param port  0 picks a free port: see ds_listener_get_host()
 * \param backlog  0 for SOMAXCONN
 * \return 0 or an error (no listener then). */
DS_API int ds_listen_tcp(ds_reactor *r, uint16_t port, const char *interface,
                         int backlog, unsigned flags, ds_factory_fn factory,
                         void *factory_data, ds_listener **out, char *err,
                         size_t errlen);

/*! The listening address, with the real port and the scope. \return 0. */
DS_API int ds_listener_get_host(const ds_listener *l, ds_addr *out);

/*! \return the listening socket's fd. */
DS_API int ds_listener_fd(const ds_listener *l);

/*! Stops listening: closes the socket now and frees l. Accepted
 * connections stay open. */
DS_API void ds_listener_close(ds_listener *l);

/* ----------------------------------------------------- UDP and multicast */

typedef struct ds_udp ds_udp;

/*! A UDP protocol (Twisted's DatagramProtocol): callbacks for one port, all
 * optional except datagram_received. `user` is the pointer given with the
 * port. No callback runs after ds_udp_close() has returned. */
typedef struct ds_udp_protocol {
  /*! A datagram arrived; data is valid only during the call (len may be
   * 0). from is the full source: for IPv6 the 4-tuple, with the flow label
   * from the IPV6_FLOWINFO control message (0 when the sender set none)
   * and, for a link-local source, the scope id of the interface it came in
   * on, so that ds_addr_format() writes `fe80::1%eth0` and a reply to from
   * goes back the same way. On a connected port only the peer's datagrams
   * are delivered. */
  void (*datagram_received)(ds_udp *u, const void *data, size_t len,
                            const ds_addr *from, void *user);
  /*! Connected ports only: the peer answered a datagram with ICMP port
   * unreachable. The port stays open and connected. When NULL, error()
   * gets -ECONNREFUSED instead. */
  void (*connection_refused)(ds_udp *u, void *user);
  /*! Any other asynchronous error; the port stays open. err is -EMSGSIZE
   * for a datagram longer than the port's max_datagram_size (dropped; addr
   * is its source); a negative errno for a queued datagram that could not
   * be sent (addr is its destination), or for an ICMP error reported on a
   * connected port (-EHOSTUNREACH...; addr is the peer); addr is NULL when
   * unknown. */
  void (*error)(ds_udp *u, int err, const ds_addr *addr, void *user);
  /*! ds_udp_write() failed with -EAGAIN (the send queue was full) and the
   * queue has drained since: write again. */
  void (*resume_producing)(ds_udp *u, void *user);
} ds_udp_protocol;

/*! Flags for ds_listen_udp(). */
enum {
  /*! SO_REUSEADDR: several ports that all set it (in this process or
   * others, such as a program using SO_REUSEADDR) may bind the same
   * address and port. Each receives every multicast datagram of the
   * groups it joined, and only those; a unicast datagram reaches only one
   * of them. With port 0 the port is a fresh one, shared from then on.
   * Not SO_REUSEPORT: since Linux 6.5 its socket groups can hand an IPv4
   * multicast datagram to a member that did not join the group there, so
   * a socket that set only SO_REUSEPORT cannot share the port. */
  DS_UDP_REUSE = 2
};

/*! Opens a UDP port on interface:port (the IPv6 plan's listenUDP) and
 * starts reading. interface is a literal (NULL: `0.0.0.0`); `::` or any
 * IPv6 literal gives an IPv6 port, with IPV6_V6ONLY set so that `0.0.0.0`
 * and `::` can share a port number. A link-local address needs its scope
 * (`fe80::1%eth0`, else DS_ENEEDSCOPE); a host name is DS_EHOSTNAME, at
 * once. A multicast group is a valid interface too: the port then
 * receives only datagrams sent to that group (`ff02::1%eth0` binds to
 * eth0), still once joined with ds_udp_join_group().
 * Either way the port receives only the groups it joined
 * (IP_MULTICAST_ALL and IPV6_MULTICAST_ALL are off); an IPv4 port also
 * only on the interfaces it joined them on.
 * \param port  0 picks a free port (see ds_udp_get_host()); it is bound
 *              explicitly, so that it never changes (ds_udp_connect())
 * \param max_datagram_size  the longest datagram delivered; 0 (or more than
 *              65535) means 65535. A longer one is dropped and reported to
 *              error() with -EMSGSIZE.
 * \param flags  0 or DS_UDP_REUSE, else -EINVAL
 * \param proto  must not be NULL, nor its datagram_received
 * \param[out] out  the port
 * \return 0 or an error (no port, no callback then). */
DS_API int ds_listen_udp(ds_reactor *r, uint16_t port, const char *interface,
                         size_t max_datagram_size, unsigned flags,
                         const ds_udp_protocol *proto, void *user,
                         ds_udp **out, char *err, size_t errlen);

/*! The port's local address, with the real port and the scope id (a port
 * on a wildcard address shows the address its connect chose).
 * \return 0 or a negative errno. */
DS_API int ds_udp_get_host(const ds_udp *u, ds_addr *out);

/*! The connected peer, as given to ds_udp_connect() (with its scope).
 * \return 0 or -ENOTCONN. */
DS_API int ds_udp_get_peer(const ds_udp *u, ds_addr *out);

/*! Sends one datagram to `to`, an address value (for IPv6 the 4-tuple), or
 * to the connected peer when to is NULL (the IPv6 plan's
 * IUDPTransport.write). Checked before anything is sent, never a silent
 * drop:
 * - to NULL on an unconnected port: -EDESTADDRREQ; an unset to: -EINVAL;
 * - to of the other family than the port's: DS_EFAMILY;
 * - an IPv6 link-local address, or a link- or interface-local group
 *   (ff02::/16, ff01::/16), without a scope id takes the port's own scope
 *   when the port is on a scoped address, a group also the outgoing
 *   multicast interface when one was set; else DS_ENEEDSCOPE.
 * to's flow info goes into sin6_flowinfo; Linux uses it only on a socket
 * with IPV6_FLOWINFO_SEND and a leased flow label (see ds_udp_fd()).
 *
 * EAGAIN policy: when the kernel has no room, the datagram is copied to the
 * port's send queue and sent, in order, as the socket drains; a queued
 * datagram keeps the destination it was written for. When the queue is
 * full (ds_udp_set_queue_limit()) the write fails with -EAGAIN, nothing is
 * queued, and resume_producing() follows once the queue has drained. A
 * queued datagram that fails later goes to error() with its destination.
 * On a connected port, a refusal the kernel holds from an earlier datagram
 * goes to connection_refused() on a later turn, and this datagram is still
 * sent.
 * \return 0 (sent or queued), or an error after which the datagram was not
 * sent and no callback follows for it: -EAGAIN, -EMSGSIZE (too long to
 * send), DS_EFAMILY, DS_ENEEDSCOPE, -EDESTADDRREQ, -EINVAL, -ENOMEM, or
 * another negative errno from sendmsg() (-ENETUNREACH...). */
DS_API int ds_udp_write(ds_udp *u, const void *data, size_t len,
                        const ds_addr *to);

/*! As ds_udp_write() to host:port, host an IPv4 or IPv6 literal (scope
 * allowed): a host name is DS_EHOSTNAME, a malformed literal DS_EBADADDR;
 * err says which part is wrong (host may be NULL only on a connected
 * port, for the peer). */
DS_API int ds_udp_write_to(ds_udp *u, const void *data, size_t len,
                           const char *host, uint16_t port, char *err,
                           size_t errlen);

/*! Connects the port to host:port (the IPv6 plan's IUDPTransport.connect):
 * host is a literal of the port's family (else DS_EFAMILY; a host name is
 * DS_EHOSTNAME, link-local without scope DS_ENEEDSCOPE as for writes).
 * Afterwards ds_udp_write() with a NULL address reaches the peer, only the
 * peer's datagrams are delivered (datagrams from others still queued in
 * the socket are dropped), and ICMP port unreachable from the peer reaches
 * connection_refused().
 *
 * Connecting again retargets the port to the new peer. The local port
 * never changes. On a port listening on a wildcard address (`0.0.0.0`,
 * `::`) the local address is chosen afresh for the new peer (the kernel
 * alone would keep the one the first connect chose); on a port on a
 * specific address it stays. A refusal still pending from the old peer is
 * dropped. On failure the port stays connected to its previous peer (see
 * ds_udp_get_peer()). Synchronous: no callback.
 * \return 0 or an error; err explains. */
DS_API int ds_udp_connect(ds_udp *u, const char *host, uint16_t port,
                          char *err, size_t errlen);

/*! As ds_udp_connect() with an address value (the 4-tuple). */
DS_API int ds_udp_connect_addr(ds_udp *u, const ds_addr *peer, char *err,
                               size_t errlen);

/*! \return bytes waiting in the send queue (see ds_udp_write()). */
DS_API size_t ds_udp_buffered(const ds_udp *u);

/*! Bounds the send queue (default 256 KiB of payload). A datagram is
 * queued only while the queue holds fewer than limit bytes (so one
 * datagram always fits into an empty queue); 0 queues nothing, and every
 * EAGAIN is returned at once (resume_producing() still follows). */
DS_API void ds_udp_set_queue_limit(ds_udp *u, size_t limit);

/*! Stops reading or starts again. While paused, datagrams wait in the
 * kernel, which drops what does not fit; up to 15 already read in the
 * current recvmmsg() batch wait in the port and are delivered first, in
 * order, after the resume. */
DS_API void ds_udp_pause_reading(ds_udp *u);
DS_API void ds_udp_resume_reading(ds_udp *u);

/*! Interfaces in the multicast calls below (`interface` arguments) are
 * NULL or "" for the default, a name (`eth0`), an index (`2`), or an
 * address of either family that a local interface holds (`192.0.2.1`,
 * `2001:db8::1`, `fe80::1%eth0`). An interface that does not exist is
 * -ENODEV, an address no interface holds -EADDRNOTAVAIL; err names it.
 *
 * Joins the multicast group on an interface (IMulticastTransport.joinGroup,
 * MCAST_JOIN_GROUP). group is a multicast literal of the port's family: a
 * unicast address is DS_ENOTMCAST, the other family DS_EFAMILY, a host name
 * DS_EHOSTNAME. An IPv6 group may name the interface as its scope
 * (`ff02::1%eth0`); given both ways, they must agree (else -EINVAL). A
 * link- or interface-local IPv6 group needs one or the other
 * (DS_ENEEDSCOPE); for other groups the default lets the kernel choose by
 * route (IPv4 without a 224.0.0.0/4 route: -ENODEV, so name one).
 * \return 0 or an error: also -EADDRINUSE when already joined there. */
DS_API int ds_udp_join_group(ds_udp *u, const char *group,
                             const char *interface, char *err,
                             size_t errlen);

/*! Leaves a group joined with ds_udp_join_group(), same arguments.
 * \return 0 or an error: -EADDRNOTAVAIL when not joined there. */
DS_API int ds_udp_leave_group(ds_udp *u, const char *group,
                              const char *interface, char *err,
                              size_t errlen);

/*! Source-specific join (RFC 4607; MCAST_JOIN_SOURCE_GROUP): receives
 * group only from source, a unicast literal of the group's family (else
 * DS_EFAMILY; a multicast source is -EINVAL). Call again to add sources.
 * Group and interface as for ds_udp_join_group(); a group this port joined
 * without a source cannot also be joined with one (-EINVAL). */
DS_API int ds_udp_join_source_group(ds_udp *u, const char *group,
                                    const char *source, const char *interface,
                                    char *err, size_t errlen);

/*! Removes a source added with ds_udp_join_source_group() (the group is
 * left with its last source). */
DS_API int ds_udp_leave_source_group(ds_udp *u, const char *group,
                                     const char *source,
                                     const char *interface, char *err,
                                     size_t errlen);

/*! Sets the interface multicast datagrams leave by (IP_MULTICAST_IF with
 * struct ip_mreqn; IPV6_MULTICAST_IF). NULL or "" gives the choice back
 * to the kernel (by route). For IPv4, an address also becomes the source
 * address of the port's multicast datagrams; a name or index lets the
 * kernel pick one of the interface's addresses.
 * \return 0 or an error; err names the bad part. */
DS_API int ds_udp_set_outgoing_interface(ds_udp *u, const char *interface,
                                         char *err, size_t errlen);

/*! Writes the outgoing multicast interface into buf as text: the interface
 * name (its index if it has no name), or for IPv4 set by address that
 * address; "" when the kernel chooses. (Set through ds_udp_fd(), IPv4's is
 * seen only as an address.)
 * \param[out] ifindex  the interface index, 0 for none (may be NULL)
 * \return the text length, -ENOSPC when len is too small (DS_ADDR_STRLEN is
 * always enough), or a negative errno. */
DS_API int ds_udp_get_outgoing_interface(const ds_udp *u, char *buf,
                                         size_t len, unsigned *ifindex);

/*! Sets the TTL (IPv4) or hop limit (IPv6) of the port's multicast
 * datagrams, 0-255 (the kernel's default is 1).
 * \return 0, -EINVAL out of range, or a negative errno. */
DS_API int ds_udp_set_multicast_ttl(ds_udp *u, int ttl);

/*! \return the multicast TTL / hop limit, or a negative errno. */
DS_API int ds_udp_get_multicast_ttl(const ds_udp *u);

/*! Whether the port's multicast datagrams are also delivered to this host's
 * own members of the group (1, the kernel's default) or not (0).
 * \return 0 or a negative errno. */
DS_API int ds_udp_set_multicast_loopback(ds_udp *u, int on);

/*! \return 1 or 0 (see ds_udp_set_multicast_loopback()), or a negative
 * errno. */
DS_API int ds_udp_get_multicast_loopback(const ds_udp *u);

/*! \return the socket fd (for options the library does not wrap). */
DS_API int ds_udp_fd(const ds_udp *u);

/*! Sets the pointer passed to u's callbacks. */
DS_API void ds_udp_set_user(ds_udp *u, void *user);

/*! Closes the port: the socket closes now (leaving its groups), queued
 * datagrams are discarded, and no callback runs once this returns. Safe
 * inside any of u's callbacks. The reactor counts the port until its
 * memory is freed, which may wait for the next turn (ds_reactor_free() is
 * -EBUSY until then). NULL is fine. */
DS_API void ds_udp_close(ds_udp *u);

/* ----------------------------------- resolver and hostname client endpoint */

/*! Resolver options, for tests and embedding. Zeroed fields take the
 * system's settings: /etc/resolv.conf servers, search list, `timeout:`
 * and `attempts:` (glibc's defaults 5 s and 2 when absent, not c-ares'
 * longer ones), and /etc/hosts. */
typedef struct ds_resolver_opts {
  /*! Comma-separated servers with optional ports:
   * "192.0.2.2,[2001:db8::2]:5353,198.51.100.1:53". NULL: resolv.conf. */
  const char *servers;
  /*! Hosts file path; NULL: /etc/hosts; "" : no hosts file. */
  const char *hosts_file;
  unsigned timeout_ms; /*!< per try; 0: resolv.conf or 5000 */
  unsigned attempts;   /*!< 0: resolv.conf or 2 */
} ds_resolver_opts;

typedef struct ds_lookup ds_lookup;

/*! Families for ds_lookup_start(). */
enum { DS_LOOKUP_A = 1, DS_LOOKUP_AAAA = 2 };

/*! One family's answer (family AF_INET6 or AF_INET): status 0 with
 * n >= 1 addresses (port 0; no scope, unless a literal or a hosts-file
 * line gave one), or DS_ENOTFOUND (NXDOMAIN), DS_ENODATA, DS_ESERVFAIL,
 * DS_EDNSTIMEOUT, DS_EDNS (any other DNS failure). Called once per
 * requested family, never inside ds_lookup_start(); addrs is valid only
 * during the call. The lookup is freed after its last callback returns;
 * ds_lookup_cancel() may be called from inside a callback. */
typedef void (*ds_lookup_cb)(ds_lookup *l, int family, int status,
                             const ds_addr *addrs, size_t n, void *user);

/*! Looks up name's A and/or AAAA records (separate queries, AAAA sent
 * first): the hosts file first, for both families (a name found there is
 * not sent to DNS for the other family), then DNS. An address literal is
 * answered as itself. A malformed name is DS_EBADNAME (err says why).
 * \param families  DS_LOOKUP_A, DS_LOOKUP_AAAA or both
 * \param opts  NULL for the system's settings
 * \return 0 (callbacks follow) or an error (none will). */
DS_API int ds_lookup_start(ds_reactor *r, const char *name, int families,
                           const ds_resolver_opts *opts, ds_lookup_cb cb,
                           void *user, ds_lookup **out, char *err,
                           size_t errlen);

/*! Cancels l: no callback runs after this, its queries and sockets are
 * gone at once. l must not be used again. */
DS_API void ds_lookup_cancel(ds_lookup *l);

/*! ds_lookup_ttl() values that are not a number of seconds. */
enum {
  /*! No TTL is known: a DNS failure (NXDOMAIN and NODATA included: c-ares
   * 1.18's search does not pass on the SOA), or no answer yet. */
  DS_TTL_NONE = -1,
  /*! Answered without DNS, from an address literal or the hosts file:
   * good until the hosts file changes. */
  DS_TTL_LOCAL = -2
};

/*! How long family's answer of l may be kept (for caches): for a
 * positive DNS answer the smallest TTL of its address records in seconds
 * (0 allowed: do not keep), else DS_TTL_LOCAL or DS_TTL_NONE. Valid inside
 * l's ds_lookup_cb, for the family being delivered or one delivered
 * before; l must not be NULL there (NULL gives DS_TTL_NONE).
 * \param family  AF_INET or AF_INET6 */
DS_API int ds_lookup_ttl(const ds_lookup *l, int family);

/*! Sorts addrs in place by RFC 6724 section 6 destination address
 * selection (the source for each is found with a UDP connect, so nothing
 * is sent). Stable for equal addresses. \return 0 or -ENOMEM. */
DS_API int ds_sort_destinations(ds_addr *addrs, size_t n);

/*! Per-host memory of which family won a race (bounded, expiring), so a
 * later connect to a host whose IPv6 is black-holed goes to IPv4 at once.
 * Thread-safe. */
typedef struct ds_family_memory ds_family_memory;

/*! Creates a memory for at most capacity hosts, each kept ttl_ms.
 * \return 0 or -ENOMEM. */
DS_API int ds_family_memory_new(ds_family_memory **out, size_t capacity,
                                uint64_t ttl_ms);

/*! Frees m (NULL is fine). */
DS_API void ds_family_memory_free(ds_family_memory *m);

/*! \return AF_INET or AF_INET6 if m remembers host's winning family, else
 * AF_UNSPEC. */
DS_API int ds_family_memory_get(ds_family_memory *m, const char *host);

/*! Records family as host's winner (AF_UNSPEC forgets host). */
DS_API void ds_family_memory_put(ds_family_memory *m, const char *host,
                                 int family);

/*! Happy Eyeballs (RFC 8305) options. Zero means the default. */
typedef struct ds_happy_opts {
  unsigned attempt_delay_ms;    /*!< 250; clamped to [10, 2000] */
  unsigned resolution_delay_ms; /*!< 50 */
  unsigned first_family_count;  /*!< 1 */
  int prefer;                   /*!< AF_INET6 (default) or AF_INET */
  int family;                   /*!< AF_UNSPEC (both), AF_INET or AF_INET6 */
  unsigned timeout_ms;          /*!< whole race; 0: none */
  const ds_addr *bind4;         /*!< local address for IPv4 attempts */
  const ds_addr *bind6;         /*!< local address for IPv6 attempts */
  /*! Interface (name) for link-local DNS answers, which carry no scope;
   * without it such answers are skipped. */
  const char *interface;
  const ds_resolver_opts *resolver; /*!< NULL: the system's */
  ds_family_memory *memory;         /*!< NULL: no memory */
  /*! NAT64 prefix (RFC 6052) used to reach IPv4-only names and IPv4
   * literals when the host has no route to them; never for 0/8, 127/8 and
   * 169.254/16. NULL: none. Found by ds_nat64_discover() or configured. */
  const ds_addr *nat64_prefix;
  unsigned nat64_prefix_len; /*!< 32, 40, 48, 56, 64 or 96; 0: 96 */
  /*! Called with each attempt's socket before its bind and connect (to
   * set options); a non-zero return (a negative errno) fails that attempt
   * with it. NULL: none. */
  int (*prepare)(int fd, int family, void *user);
  void *prepare_user; /*!< passed to prepare */
  /*! Attempts open at once: 4 (0); at most 64. When the next attempt is
   * due with this many open, the oldest is aborted and counts as timed
   * out. An attempt also never takes one of the process's last 16 fds (a
   * quarter of RLIMIT_NOFILE when smaller): it fails with -EMFILE, as
   * when socket() does, after the oldest open attempt made room once, and
   * the next address is tried at once (docs/race.md). */
  unsigned max_open;
} ds_happy_opts;

/*! RFC 6052 address synthesis: embeds IPv4 address v4 in prefix/len.
 * \return 0, -EINVAL for a length other than 32, 40, 48, 56, 64, 96 or
 * for wrong families. */
DS_API int ds_nat64_synthesize(ds_addr *out, const ds_addr *prefix,
                               unsigned len, const ds_addr *v4);

/*! RFC 6052 extraction: the IPv4 address embedded in v6 at prefix length
 * len. \return 0 or -EINVAL. */
DS_API int ds_nat64_extract(ds_addr *out, const ds_addr *v6, unsigned len);

typedef struct ds_nat64_query ds_nat64_query;

/*! Result of ds_nat64_discover(): status 0 with the prefix and its length,
 * or DS_ENODATA (no NAT64: ipv4only.arpa has no AAAA, or none embeds
 * 192.0.0.170/171) or another DNS error. */
typedef void (*ds_nat64_cb)(int status, const ds_addr *prefix, unsigned len,
                            void *user);

/*! RFC 7050 discovery: asks for the AAAA records of ipv4only.arpa and finds
 * the prefix in front of the well-known 192.0.0.170 or 192.0.0.171. The
 * callback runs once, never inside this call. \return 0 or an error. */
DS_API int ds_nat64_discover(ds_reactor *r, const ds_resolver_opts *opts,
                             ds_nat64_cb cb, void *user, ds_nat64_query **out,
                             char *err, size_t errlen);

/*! Cancels a discovery: no callback runs. The query is freed after its
 * callback returns; a cancel from inside the callback does nothing. */
DS_API void ds_nat64_cancel(ds_nat64_query *q);

/*! What happened during a race, for tools and traces. */
typedef enum ds_happy_event_type {
  DS_HE_ANSWER,  /*!< a family's DNS answer arrived (status in result) */
  DS_HE_ATTEMPT, /*!< a connection attempt started */
  DS_HE_RESULT,  /*!< an attempt ended: result 0 connected, or -errno */
  DS_HE_SKIPPED  /*!< an address was not tried (result says why) */
} ds_happy_event_type;

typedef struct ds_happy_event {
  ds_happy_event_type type;
  double t_ms;      /*!< since the race began */
  int index;        /*!< attempt number from 1 (0 for answers) */
  int family;       /*!< AF_INET or AF_INET6 */
  ds_addr addr;     /*!< with the port (attempts and results) */
  int result;       /*!< 0 or a negative code */
  size_t n_answers; /*!< DS_HE_ANSWER: addresses in the answer */
} ds_happy_event;

/*! One failed attempt, in ds_happy_failures(). */
typedef struct ds_happy_failure {
  ds_addr addr;
  int error;
} ds_happy_failure;

typedef struct ds_happy ds_happy;

/*! The race ended: fd >= 0 is the winning connected socket (non-blocking,
 * close-on-exec; now the caller's), or fd == -1 and err says why (see
 * ds_happy_start). Runs once, never inside ds_happy_start(); h is freed
 * after it returns. */
typedef void (*ds_happy_done_cb)(ds_happy *h, int fd, int err, void *user);

/*! Optional per-event callback. */
typedef void (*ds_happy_event_cb)(ds_happy *h, const ds_happy_event *ev,
                                  void *user);

/*! Starts a race to host:port. host is a name or a literal (a literal,
 * with its scope, is connected to without lookup). Failure codes, in this
 * order of precedence when several attempts failed: -ECONNREFUSED, then
 * -ENETUNREACH / -EHOSTUNREACH, then -EMFILE / -ENFILE (no socket to be
 * had), then -ETIMEDOUT (also the overall timeout),
 * then the first other error; when no attempt was made, the DNS error
 * (DS_ENOTFOUND, DS_ENODATA, ...). \return 0 or an error (no callback). */
DS_API int ds_happy_start(ds_reactor *r, const char *host, uint16_t port,
                          const ds_happy_opts *opts, ds_happy_done_cb done,
                          ds_happy_event_cb on_event, void *user,
                          ds_happy **out, char *err, size_t errlen);

/*! Cancels h: every socket and query is closed at once; no callback
 * runs. */
DS_API void ds_happy_cancel(ds_happy *h);

/*! Inside the done callback: every failed attempt (address and error).
 * \return the count; *out points into h. */
DS_API size_t ds_happy_failures(const ds_happy *h,
                                const ds_happy_failure **out);

/*! Writes "tried [2001:db8::1]:80 (ETIMEDOUT), 192.0.2.1:80
 * (ECONNREFUSED)" or the DNS failure into buf. \return length. */
DS_API int ds_happy_describe(const ds_happy *h, char *buf, size_t len);

/*! The hostname client endpoint: races like ds_happy_start() and hands the
 * winner to proto as a transport (connection_made), or reports the
 * aggregate error through connection_failed (then
 * ds_happy_failures() is not available; the text is in the error
 * callback's err, see ds_connect_host_error). The returned transport is
 * in its connecting state until then; ds_tcp_abort() cancels the race.
 * \return 0 or an error (no callback). */
DS_API int ds_connect_host(ds_reactor *r, const char *host, uint16_t port,
                           const ds_happy_opts *opts, const ds_protocol *proto,
                           void *user, ds_tcp **out, char *err,
                           size_t errlen);

/*! Inside connection_failed of a ds_connect_host() transport: the text of
 * every attempt and its error (as ds_happy_describe()). \return length. */
DS_API int ds_connect_host_error(const ds_tcp *t, char *buf, size_t len);


/* -------------------------------------------- all-interfaces server endpoint */

/*! The aggregate listening port of the all-interfaces server endpoint (the
 * IPv6 plan's AllLocalInterfacesServerEndpoint): one TCP listener
 * (ds_listen_tcp()) per local address, all on one port, that follows
 * addresses as the machine adds and removes them (netlink). */
typedef struct ds_server ds_server;

/*! States of a server address; also masks for ds_server_addrs(). */
enum {
  DS_SERVER_BOUND = 1,   /*!< listening and accepting */
  DS_SERVER_WAITING = 2, /*!< IPv6 address in duplicate address detection
                          *   (tentative): bound once it passes */
  DS_SERVER_FAILED = 4   /*!< could not be bound: `error` says why */
};

/*! One local address of a server, as a value and as text. */
typedef struct ds_server_addr {
  ds_addr addr;  /*!< with the server's port; IPv6 link-local with its
                  *   scope id (the interface index) */
  char text[DS_ADDR_STRLEN]; /*!< ds_addr_format() with DS_ADDR_FMT_PORT:
                              *   `192.0.2.1:80`, `[fe80::1%eth0]:80` */
  char ifname[16];  /*!< the interface holding it (IF_NAMESIZE) */
  unsigned ifindex; /*!< its index */
  int state;        /*!< DS_SERVER_BOUND, _WAITING or _FAILED */
  int error;        /*!< 0, or for DS_SERVER_FAILED a negative errno
                     *   (-EADDRINUSE...) or DS_EDUPADDR */
} ds_server_addr;

/*! What changed, for ds_server_options.notify. */
typedef enum ds_server_event {
  DS_SERVER_EV_ADDED,   /*!< a new address is bound and accepting */
  DS_SERVER_EV_REMOVED, /*!< a bound address was removed from the machine
                         *   (or became unusable): its socket is closed;
                         *   accepted connections stay open */
  DS_SERVER_EV_WAITING, /*!< a new address is tentative (IPv6 DAD) */
  DS_SERVER_EV_FAILED   /*!< an address could not be bound (reported once
                         *   per address and error) */
} ds_server_event;

/*! Change callback: a describes the address and its state after the
 * change (0 with DS_SERVER_EV_REMOVED). Runs on the reactor's thread, never inside ds_listen_all(); it
 * may call ds_server_stop(). */
typedef void (*ds_server_notify_fn)(ds_server *s, ds_server_event ev,
                                    const ds_server_addr *a, void *data);

/*! Flags for ds_server_options. */
enum {
  DS_SERVER_NO_LOOPBACK = 1,  /*!< leave out 127.0.0.0/8 and ::1 */
  DS_SERVER_NO_LINKLOCAL = 2, /*!< leave out fe80::/10 and 169.254/16 */
  DS_SERVER_NO_FOLLOW = 4     /*!< bind what exists now; never follow
                               *   changes (no netlink socket) */
};

/*! Options of ds_listen_all(); all-zero (or a NULL pointer) means every
 * family, every interface, loopback and link-local included, following
 * changes. */
typedef struct ds_server_options {
  int family;       /*!< 0 for both, AF_INET or AF_INET6 */
  unsigned flags;   /*!< DS_SERVER_NO_* bits */
  /*! NULL-terminated allow-list of interface names (`lo` for loopback), or
   * NULL for every interface. Each must exist when listening starts. */
  const char *const *interfaces;
  int backlog;         /*!< 0 for SOMAXCONN */
  unsigned port_tries; /*!< port 0: how many ports to try when a later
                        *   address finds the chosen one taken (0: 8) */
  ds_server_notify_fn notify; /*!< changes after listening began, or
                               *   NULL */
  void *notify_data;
} ds_server_options;

/*! Listens on every local address matching opts, all on one port: IPv4,
 * IPv6 global and ULA, IPv6 link-local (bound with its scope id), loopback
 * of both families. IPv6 listeners set IPV6_V6ONLY. The factory gets every
 * accepted connection of every address; ds_tcp_get_host() on it gives the
 * local address it came in on (with the scope).
 *
 * - port 0: the first address bound picks the port and every other binds
 *   the same. When a later address finds that port taken, the whole set is
 *   bound again on a fresh port (each refused port stays held meanwhile,
 *   so the kernel cannot pick it again), at most opts->port_tries times.
 *   The last try (or the first that finds the range used up by the held
 *   ports) releases them, and an address still in conflict then is
 *   reported as failed (-EADDRINUSE); the others serve.
 * - A given port: each address that cannot be bound is reported as failed
 *   (ds_server_addrs() with DS_SERVER_FAILED), the others serve.
 * - When nothing at all can be bound the call fails with the cause of the
 *   first address (in the order of ds_server_addrs()), and err names it.
 * - Following (default): an address added later (RTM_NEWADDR) is bound
 *   on the same port within a second; a removed one (RTM_DELADDR) is
 *   closed. An IPv6 address in duplicate address detection is not bound
 *   until DAD passes (no IP_FREEBIND: a tentative address may turn out to
 *   belong to another host); one that fails DAD is DS_EDUPADDR.
 * \param[out] out  the server (must not be NULL)
 * \return 0, or DS_ENOLOCALADDR (no address matches opts), -ENODEV (an
 * interface in opts does not exist; err names it), -EINVAL, -ENOMEM, or
 * the first address's bind error. No callback after an error. */
DS_API int ds_listen_all(ds_reactor *r, uint16_t port,
                         const ds_server_options *opts, ds_factory_fn factory,
                         void *factory_data, ds_server **out, char *err,
                         size_t errlen);

/*! \return the server's one port (0 only for a port 0 server whose every
 * address is still tentative: the first bind picks it). */
DS_API uint16_t ds_server_port(const ds_server *s);

/*! Lists the server's addresses in the states of the mask (DS_SERVER_BOUND
 * and so on), IPv4 first, each family in address order.
 * \param[out] out  room for n entries (may be NULL when n is 0)
 * \return how many there are (more than n when out was too small). */
DS_API size_t ds_server_addrs(const ds_server *s, unsigned states,
                              ds_server_addr *out, size_t n);

/*! Completion of ds_server_stop(); s is freed right after it returns. */
typedef void (*ds_server_stopped_fn)(ds_server *s, void *data);

/*! Stops listening: closes every listener and the netlink socket now
 * (accepted connections stay open), then runs cb (may be NULL) on a later
 * turn and frees s. Until then ds_reactor_free() is -EBUSY; after this
 * call s may only be passed to ds_server_port().
 * \return 0, or -EALREADY when already stopping (cb will not run). */
DS_API int ds_server_stop(ds_server *s, ds_server_stopped_fn cb, void *data);

#ifdef __cplusplus
}
#endif
#endif
