/* RFC 6724 section 6 destination address selection, and the RFC 8305
 * section 4 interleaving of address families that follows it.
 *
 * Each destination's source address is what the kernel itself would pick:
 * a UDP socket connected to the destination (a UDP connect only chooses a
 * route and a source; no packet leaves the host), then getsockname(). A
 * destination the kernel cannot route, or whose family the host lacks, has
 * no source and is "unusable" (rule 1). A link-local destination keeps its
 * scope id for that connect, so it is routed out of its own interface; one
 * without a scope cannot be routed and is unusable.
 *
 * The rules, in order, and what this module does with each:
 *  1. Avoid unusable destinations: done (no source = unusable).
 *  2. Prefer matching scope: done, with ds_addr_scope() of destination and
 *     source (RFC 6724 section 3.2 scopes for IPv4).
 *  3. Avoid deprecated addresses: skipped. Linux's own source selection
 *     (source rule 3) already passes over a deprecated address when the
 *     route has another, so a deprecated source reaches us only when every
 *     candidate on that path is deprecated. Telling would take a netlink
 *     RTM_GETADDR dump (IFA_F_DEPRECATED) on every sort, which is more
 *     than a connect is worth; the interface module's snapshot carries
 *     those flags, should a caller that holds one want this rule.
 *  4. Prefer home addresses: skipped. Mobile IPv6 home addresses are rare
 *     and, like rule 3, known only from a netlink dump.
 *  5. Prefer matching label: done, with the default policy table.
 *  6. Prefer higher precedence: done, with the default policy table.
 *  7. Prefer native transport: skipped. With the default table, the
 *     Teredo (2001::/32) and 6to4 (2002::/16) prefixes already have lower
 *     precedence than native IPv6 and IPv4, so rule 6 has ordered them
 *     before this rule could; a native-looking address routed into a
 *     tunnel (sit, a VPN) would need a netlink route query per address.
 *  8. Prefer smaller scope: done.
 *  9. Use longest matching prefix: IPv6 only, as RFC 6724 writes it, and
 *     as Go and Android do. CommonPrefixLen stops at 64 bits: the RFC
 *     stops at the source's prefix length, which only an interface dump
 *     knows, and /64 is what RFC 4291 section 2.5.1 fixes for nearly all
 *     unicast. glibc also applies the rule to IPv4 within the source's
 *     netmask; we do not, since that needs the netmask too, and for IPv4
 *     a shared prefix says little about distance while it defeats DNS
 *     round robin (Go issues 13283 and 18518). A v4-mapped address counts
 *     as IPv4 here.
 * 10. Otherwise keep the original order: the sort is stable.
 *
 * An unset address (family 0) has no source, no label and precedence -1,
 * so it sorts after every real address.
 *
 * Why a comparison sort is sound here although rule 9 compares only within
 * one family: two destinations reach rule 9 only when rules 1 to 8 tie, so
 * both are usable and have the same precedence. With the default table no
 * IPv6 prefix shares IPv4's precedence 35, so a tie on rule 6 never mixes
 * the families, and the comparison is a consistent total order.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One row of the RFC 6724 section 2.1 policy table. */
struct policy {
  uint8_t prefix[16];
  unsigned len;
  int precedence;
  int label;
};

/* The default policy table, longest prefix first, so that the first row
 * that matches is the longest match. IPv4 is looked up as ::ffff:a.b.c.d.
 * ::/0 matches everything, so every lookup finds a row. */
static const struct policy policy_table[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, 50, 0},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, 35, 4},
    {{0}, 96, 1, 3},
    {{0x20, 0x01, 0, 0}, 32, 5, 5},
    {{0x20, 0x02}, 16, 30, 2},
    {{0x3f, 0xfe}, 16, 1, 12},
    {{0xfe, 0xc0}, 10, 1, 11},
    {{0xfc}, 7, 3, 13},
    {{0}, 0, 40, 1},
};

/* What the comparison needs of one destination, computed once. */
struct entry {
  ds_addr addr;         /* the destination, copied back after sorting */
  size_t index;         /* its place in the input (rule 10) */
  int usable;           /* it has a source (rule 1) */
  int scope, src_scope; /* RFC 6724 scopes (rules 2 and 8) */
  int label, src_label; /* policy labels (rule 5) */
  int precedence;       /* policy precedence (rule 6); -1 when unset */
  int plain_v6;         /* IPv6 and not v4-mapped (rule 9 applies) */
  unsigned prefix_len;  /* CommonPrefixLen(source, destination) (rule 9) */
};

/* Returns 1 if the first len bits of a and p (16 bytes each) are equal. */
static int prefix_match(const uint8_t *a, const uint8_t *p, unsigned len)
{
  unsigned bytes = len / 8, bits = len % 8;
  uint8_t mask;

  if (memcmp(a, p, bytes) != 0)
    return 0;
  if (bits == 0)
    return 1;
  mask = (uint8_t)(0xff << (8 - bits));
  return (a[bytes] & mask) == (p[bytes] & mask);
}

/* Returns the policy table row of a (set; IPv4 as its v4-mapped form). */
static const struct policy *policy_of(const ds_addr *a)
{
  uint8_t b[16];
  size_t i;

  if (a->family == AF_INET) {
    memset(b, 0, 10);
    b[10] = b[11] = 0xff;
    memcpy(b + 12, a->ip.bytes, 4);
  } else {
    memcpy(b, a->ip.bytes, 16);
  }
  for (i = 0; i < sizeof policy_table / sizeof policy_table[0] - 1; i++)
    if (prefix_match(b, policy_table[i].prefix, policy_table[i].len))
      return &policy_table[i];
  return &policy_table[i];
}

/* Returns 1 if a is an IPv6 address that is not v4-mapped. */
static int is_plain_v6(const ds_addr *a)
{
  return a->family == AF_INET6 && !ds_addr_is_v4mapped(a);
}

/* Returns the number of leading bits a and b (16 bytes each) share, at
 * most 64: the RFC's CommonPrefixLen, with the source's prefix taken to be
 * the /64 of RFC 4291 section 2.5.1 (see the top of the file). */
static unsigned common_prefix_len(const uint8_t *a, const uint8_t *b)
{
  unsigned i;

  for (i = 0; i < 8; i++) {
    unsigned x = (unsigned)(a[i] ^ b[i]), bits = 0;
    if (x == 0)
      continue;
    while ((x & 0x80) == 0) {
      x <<= 1;
      bits++;
    }
    return i * 8 + bits;
  }
  return 64;
}

/* Fills e's attributes from its address and src, its source (NULL or
 * unset: none). */
static void describe(struct entry *e, const ds_addr *src)
{
  const struct policy *p;

  e->usable = 0;
  e->plain_v6 = 0;
  e->prefix_len = 0;
  e->src_scope = e->src_label = -1;
  if (e->addr.family != AF_INET && e->addr.family != AF_INET6) {
    /* Below every real address on rule 6, and no source. */
    e->scope = 0x10;
    e->label = -1;
    e->precedence = -1;
    return;
  }
  p = policy_of(&e->addr);
  e->scope = ds_addr_scope(&e->addr);
  e->label = p->label;
  e->precedence = p->precedence;
  e->plain_v6 = is_plain_v6(&e->addr);
  if (src == NULL || (src->family != AF_INET && src->family != AF_INET6))
    return;
  e->usable = 1;
  e->src_scope = ds_addr_scope(src);
  e->src_label = policy_of(src)->label;
  if (e->plain_v6 && is_plain_v6(src))
    e->prefix_len = common_prefix_len(src->ip.bytes, e->addr.ip.bytes);
}

/* qsort() comparison of two entries by the RFC 6724 section 6 rules, in
 * order: returns -1 when a goes first, 1 when b does. Never 0 for two
 * entries of one list, since rule 10 compares their input places. */
static int compare(const void *pa, const void *pb)
{
  const struct entry *a = pa, *b = pb;

  /* Rule 1: avoid unusable destinations. */
  if (a->usable != b->usable)
    return a->usable ? -1 : 1;
  /* Rules 2 to 5 need a source, so both are usable or neither is. */
  if (a->usable) {
    /* Rule 2: prefer matching scope. */
    int am = a->scope == a->src_scope, bm = b->scope == b->src_scope;
    if (am != bm)
      return am ? -1 : 1;
    /* Rules 3 and 4 are skipped (see the top of the file). */
    /* Rule 5: prefer matching label. */
    am = a->label == a->src_label;
    bm = b->label == b->src_label;
    if (am != bm)
      return am ? -1 : 1;
  }
  /* Rule 6: prefer higher precedence. */
  if (a->precedence != b->precedence)
    return a->precedence > b->precedence ? -1 : 1;
  /* Rule 7 is skipped (see the top of the file). */
  /* Rule 8: prefer smaller scope. */
  if (a->scope != b->scope)
    return a->scope < b->scope ? -1 : 1;
  /* Rule 9: use longest matching prefix, IPv6 with sources only. */
  if (a->usable && a->plain_v6 && b->plain_v6 && a->prefix_len != b->prefix_len)
    return a->prefix_len > b->prefix_len ? -1 : 1;
  /* Rule 10: otherwise keep the original order. */
  return a->index < b->index ? -1 : a->index > b->index;
}

/* Returns 1 if err says the host ran out of descriptors or memory, which
 * says nothing about the destination that was being looked at. */
static int is_resource_error(int err)
{
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Asks the kernel which source address it would use for dst, with a UDP
 * socket connected to dst (nothing is sent). Returns 1 with *src set, 0
 * when dst is unusable (no route, no such interface, a link-local address
 * without a scope, a family the host lacks), or a negative errno when the
 * host is out of descriptors or memory. */
static int find_source(const ds_addr *dst, ds_addr *src)
{
  struct sockaddr_storage ss, local;
  socklen_t len, llen = sizeof local;
  int fd, rc = 0;

  if (ds_addr_to_sockaddr(dst, &ss, &len) != 0)
    return 0;
  fd = ds__sys.socket(dst->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return is_resource_error(errno) ? -errno : 0;
  if (ds__sys.connect(fd, (struct sockaddr *)&ss, len) != 0) {
    if (is_resource_error(errno))
      rc = -errno;
  } else if (ds__sys.getsockname(fd, (struct sockaddr *)&local, &llen) == 0 &&
             ds_addr_from_sockaddr(src, (struct sockaddr *)&local, llen) == 0) {
    rc = 1;
  }
  ds__sys.close(fd);
  return rc;
}

/* Fills the attributes of the n entries, each with the source the kernel
 * picks for it. When the host runs out of descriptors or memory part way,
 * every entry is left without a source, so that the order follows the
 * rules that need none (6, 8 and 10) for all alike rather than judging
 * some destinations by a source and others not at all. */
static void describe_with_kernel_sources(struct entry *e, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++) {
    ds_addr src;
    int rc = find_source(&e[i].addr, &src);
    if (rc < 0) {
      for (i = 0; i < n; i++)
        describe(&e[i], NULL);
      return;
    }
    describe(&e[i], rc == 1 ? &src : NULL);
  }
}

/* Sorts addrs[0..n) in place, with sources[i] the source of addrs[i], or
 * with each source looked up when sources is NULL. Returns 0 or -ENOMEM. */
static int sort_addrs(ds_addr *addrs, size_t n, const ds_addr *sources)
{
  struct entry *e;
  size_t i;

  if (n < 2)
    return 0;
  e = calloc(n, sizeof *e);
  if (e == NULL)
    return -ENOMEM;
  for (i = 0; i < n; i++) {
    e[i].addr = addrs[i];
    e[i].index = i;
  }
  if (sources == NULL) {
    describe_with_kernel_sources(e, n);
  } else {
    for (i = 0; i < n; i++)
      describe(&e[i], &sources[i]);
  }
  /* qsort() need not be stable, but rule 10 makes every pair unequal. */
  qsort(e, n, sizeof *e, compare);
  for (i = 0; i < n; i++)
    addrs[i] = e[i].addr;
  free(e);
  return 0;
}

int ds_sort_destinations(ds_addr *addrs, size_t n)
{
  if (addrs == NULL && n > 0)
    return -EINVAL;
  return sort_addrs(addrs, n, NULL);
}

int ds__sort_with_sources(ds_addr *addrs, size_t n, const ds_addr *sources)
{
  if ((addrs == NULL || sources == NULL) && n > 0)
    return -EINVAL;
  return sort_addrs(addrs, n, sources);
}

/* Returns the family a goes out on: AF_INET for IPv4 and v4-mapped IPv6
 * (an IPv6 socket sends IPv4 packets to it), AF_INET6 for other IPv6, and
 * 0 for an unset address. */
static int wire_family(const ds_addr *a)
{
  if (a->family == AF_INET || ds_addr_is_v4mapped(a))
    return AF_INET;
  return a->family == AF_INET6 ? AF_INET6 : 0;
}

/* Returns the index of the first address at or after from whose wire
 * family is family, or n when there is none. */
static size_t find_family(const ds_addr *addrs, size_t from, size_t n,
                          int family)
{
  while (from < n && wire_family(&addrs[from]) != family)
    from++;
  return from;
}

void ds__interleave_families(ds_addr *addrs, size_t n, int prefer,
                             unsigned first_family_count)
{
  int other, want, in_head = 1;
  unsigned run = 0;
  size_t i;

  if (addrs == NULL || n < 2)
    return;
  if (prefer != AF_INET)
    prefer = AF_INET6;
  other = prefer == AF_INET6 ? AF_INET : AF_INET6;
  if (first_family_count == 0)
    first_family_count = 1;
  want = prefer;
  /* Each step moves the next address of the wanted family to place i,
   * shifting the ones it passes up by one, so each family keeps its
   * sorted order. Quadratic at worst, which is nothing for the handful of
   * addresses a name has, and it needs no memory, so it cannot fail. */
  for (i = 0; i < n; i++) {
    size_t j = find_family(addrs, i, n, want);
    int got = want;
    if (j == n) {
      /* This family has run out: the rest of the other follows. */
      got = want == prefer ? other : prefer;
      j = find_family(addrs, i, n, got);
      if (j == n)
        break; /* only unset addresses are left, in their order */
    }
    if (j > i) {
      ds_addr moved = addrs[j];
      memmove(&addrs[i + 1], &addrs[i], (j - i) * sizeof *addrs);
      addrs[i] = moved;
    }
    if (in_head && got == prefer && ++run < first_family_count) {
      want = prefer;
    } else {
      in_head = 0;
      want = got == prefer ? other : prefer;
    }
  }
}
