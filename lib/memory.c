/* The family memory (ds_family_memory, dualstack.h): which family won a
 * host's last race, kept for a while, so that the next race to that host
 * does not wait again for a family that failed. RFC 8305 section 4 allows
 * such history.
 *
 * One bounded table (table.c) keyed by host name without regard to
 * letter case, each entry expiring ttl_ms after it was recorded; when the
 * memory is full the least recently used host goes. The race engine
 * (happy.c) consults it before a race and records the winner after one.
 */
#include "internal.h"
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ds_family_memory {
  ds__table *t;
  uint64_t ttl_ms;
};

int ds_family_memory_new(ds_family_memory **out, size_t capacity,
                         uint64_t ttl_ms)
{
  ds_family_memory *m;
  *out = NULL;
  m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  if (ds__table_new(&m->t, capacity ? capacity : 1, sizeof(int),
                    DS__TABLE_NOCASE) != 0) {
    free(m);
    return -ENOMEM;
  }
  m->ttl_ms = ttl_ms;
  *out = m;
  return 0;
}

void ds_family_memory_free(ds_family_memory *m)
{
  if (m == NULL)
    return;
  ds__table_free(m->t);
  free(m);
}

int ds_family_memory_get(ds_family_memory *m, const char *host)
{
  int family;
  if (m == NULL || host == NULL ||
      ds__table_get(m->t, host, strlen(host), ds__mono_ms_u64(), &family,
                    NULL) != 1)
    return AF_UNSPEC;
  return family;
}

void ds_family_memory_put(ds_family_memory *m, const char *host, int family)
{
  uint64_t now;
  if (m == NULL || host == NULL || strlen(host) >= 256)
    return; /* no host name is that long */
  if (family == AF_UNSPEC) {
    ds__table_del(m->t, host, strlen(host));
    return;
  }
  /* The table's expiry 0 means never: a ttl of 0 expires at once. */
  now = ds__mono_ms_u64();
  ds__table_put(m->t, host, strlen(host), &family,
                m->ttl_ms ? now + m->ttl_ms : now, now, NULL, NULL);
}
