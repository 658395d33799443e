/* Translated connections handed over across exec: what the new image's
 * shim needs to keep showing IPv4.
 *
 * A connection the shim raced is an IPv6 socket that the program knows by
 * its synthetic IPv4 peer. The peer lives in this process's fd table and
 * pool, which an exec leaves behind; the new image (a program exec'd with
 * the socket on fd 3, or the same program after a re-exec) would see its
 * IPv6 peer through a source-pool address instead. So an exec puts, in
 * DUALSTACK_PEERS of the new image's environment, one record per such
 * socket it passes on (no FD_CLOEXEC):
 *
 *   FD,IPV4:PORT,[IPV6]:PORT,NAME;...
 *
 * and the new image's shim, at its start, takes a record for its fd only
 * when the socket under it is still connected to that IPv6 peer (so a
 * stale variable, or one made up, changes nothing), and only when it can
 * take the address for NAME too: a synthetic address in its own pool
 * (never then given to another name, so a connect to it goes where the
 * program's first did), a real IPv4 address of a dual-stack name among
 * those it races. A record it cannot take leaves the socket as any
 * inherited IPv6 socket (its peer shown through the source pool). The variable
 * is left in the environment (the shim does not rewrite environ at a time the
 * program cannot expect); an exec of the new image writes its own.
 * system() and popen() run a shell with the program's environ, which the
 * shim does not change: their children see the IPv6 peer (README).
 */
#include "shim.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEERS_VAR "DUALSTACK_PEERS"
#define PEERS_MAX 64   /* records handed over, at most (README) */
#define SLOTS_MAX 1024 /* environment entries an exec copies, at most */

/* Appends fd's record to out (len bytes, NUL-terminated) if fd is a
 * translated connection an exec passes on. Returns 1 if it did. */
static int record(int fd, char *out, size_t len)
{
  struct sockaddr_in6 s6;
  socklen_t sl = sizeof s6;
  char v4[INET_ADDRSTRLEN], v6[INET6_ADDRSTRLEN], name[256];
  size_t used = strlen(out), i;
  shim_fd e;
  int fl, n;
  if (!shim__fd_get(fd, &e) || e.kind != SHIM_FD_CLIENT ||
      e.family != AF_INET6 || e.peer.sin_family != AF_INET ||
      (fl = ds__sys.fcntl(fd, F_GETFD)) < 0 || (fl & FD_CLOEXEC) ||
      ds__sys.getpeername(fd, (struct sockaddr *)&s6, &sl) != 0 ||
      s6.sin6_family != AF_INET6 ||
      inet_ntop(AF_INET, &e.peer.sin_addr, v4, sizeof v4) == NULL ||
      inet_ntop(AF_INET6, &s6.sin6_addr, v6, sizeof v6) == NULL ||
      shim__pool_name(ntohl(e.peer.sin_addr.s_addr), name, sizeof name) == 0)
    return 0;
  /* Names that could not be read back whole are not handed over. */
  for (i = 0; name[i] != '\0'; i++)
    if (name[i] == ',' || name[i] == ';' || name[i] <= ' ' || name[i] > '~')
      return 0;
  n = snprintf(out + used, len - used, "%d,%s:%u,[%s]:%u,%s;", fd, v4,
               ntohs(e.peer.sin_port), v6, ntohs(s6.sin6_port), name);
  if (n < 0 || (size_t)n >= len - used) {
    out[used] = '\0';
    return 0;
  }
  return 1;
}

/* Fills out with the records of this process's translated connections
 * an exec passes on ("" when none). */
static void records(char *out, size_t len)
{
  int fd, n = 0;
  out[0] = '\0';
  for (fd = shim__fd_next_known(-1); fd >= 0 && n < PEERS_MAX;
       fd = shim__fd_next_known(fd))
    n += record(fd, out, len);
}

int shim__handover_records(char *buf, size_t len)
{
  size_t pre = sizeof PEERS_VAR;
  if (!shim__initialised() || shim__cfg.disabled || shim__cfg.observe ||
      len <= pre)
    return 0;
  snprintf(buf, len, "%s=", PEERS_VAR);
  records(buf + pre, len - pre);
  return buf[pre] != '\0';
}

size_t shim__handover_slots(char *const *envp)
{
  size_t n = 0;
  while (envp != NULL && envp[n] != NULL)
    if (++n > SLOTS_MAX)
      return 0; /* too large a copy for the stack: no hand-over */
  return n + 2;
}

char *const *shim__handover_env(char *const *envp, char *buf, char **slots,
                                size_t nslots)
{
  size_t i, n = 0, pre = sizeof PEERS_VAR;
  if (nslots < 2)
    return envp;
  /* A NULL envp is an empty environment to the kernel. */
  for (i = 0; envp != NULL && envp[i] != NULL; i++)
    if (strncmp(envp[i], PEERS_VAR "=", pre) != 0) {
      if (n + 2 > nslots)
        return envp;
      slots[n++] = envp[i];
    }
  slots[n++] = buf;
  slots[n] = NULL;
  return slots;
}

/* Takes the record for fd ("FD,V4:PORT,[V6]:PORT"), if the socket under
 * fd is connected to that IPv6 peer. */
static void take(const char *rec)
{
  char v4[INET_ADDRSTRLEN], v6[INET6_ADDRSTRLEN], name[256];
  unsigned p4, p6;
  uint32_t ip;
  int fd;
  struct sockaddr_in6 s6, want;
  socklen_t sl = sizeof s6;
  shim_fd e = {0};
  if (sscanf(rec, "%d,%15[0-9.]:%u,[%45[0-9a-fA-F:.]]:%u,%255[^,;]", &fd, v4,
             &p4, v6, &p6, name) != 6 ||
      fd < 0 || fd >= SHIM_FD_MAX || p4 > 65535 || p6 > 65535)
    return;
  memset(&want, 0, sizeof want);
  memset(&e.peer, 0, sizeof e.peer);
  if (inet_pton(AF_INET6, v6, &want.sin6_addr) != 1 ||
      inet_pton(AF_INET, v4, &e.peer.sin_addr) != 1)
    return;
  if (shim__sock_int(fd, SO_DOMAIN) != AF_INET6 ||
      shim__sock_int(fd, SO_TYPE) != SOCK_STREAM ||
      ds__sys.getpeername(fd, (struct sockaddr *)&s6, &sl) != 0 ||
      s6.sin6_family != AF_INET6 || ntohs(s6.sin6_port) != p6 ||
      memcmp(&s6.sin6_addr, &want.sin6_addr, sizeof want.sin6_addr) != 0)
    return;
  /* The address is the name's here too, or the record is not taken. */
  ip = ntohl(e.peer.sin_addr.s_addr);
  if (shim__pool_contains(ip)) {
    if (shim__pool_claim(ip, name) != 0)
      return;
  } else {
    shim__pool_dual(ip, name);
  }
  e.kind = SHIM_FD_CLIENT;
  e.family = AF_INET6;
  e.peer.sin_family = AF_INET;
  e.peer.sin_port = htons((uint16_t)p4);
  shim__fd_set(fd, &e);
}

void shim__handover_take(void)
{
  const char *v = secure_getenv(PEERS_VAR);
  const char *p;
  if (v == NULL)
    return;
  for (p = v; p != NULL && *p != '\0'; p = strchr(p, ';'), p = p ? p + 1 : p)
    take(p);
}
