/* The bounded key-value table (see table.h for what it promises).
 *
 * Layout: each entry is one allocation (header, value, key) on two or
 * four structures: a chained hash index by key; while it is not held, a
 * doubly linked list in order of use (most recent at the head) and a
 * binary heap ordered by lease; and when it expires, a binary heap
 * ordered by expiry. An expired entry is thus found without a scan and
 * recycled before any live one, and when the few least recently used are
 * all leased, the entry whose lease ends first is found at once. A table
 * of numbered entries also has an array from number to entry, grown as
 * numbers are first handed out, and a stack of the numbers freed by a
 * deletion. The hash index doubles when it holds more entries than it has
 * buckets, so chains stay short and nothing is sized by the capacity.
 */
#include "table.h"
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* How many entries from the least recently used end a recycling looks at
 * for one not in use: a bound, so that a full table never scans. */
#define EVICT_LOOK 8

/* An entry's hidx[] when it is not in that heap. */
#define NOHEAP UINT32_MAX

/* The two heaps: by expiry (entries that expire) and by lease (entries
 * not held). */
enum { BY_EXPIRY, BY_LEASE };

typedef struct entry {
  struct entry *hnext;       /* hash chain */
  struct entry *prev, *next; /* use order; both NULL while held */
  uint32_t hash;
  uint32_t num;
  uint32_t holds;
  uint32_t hidx[2]; /* place in each heap, or NOHEAP */
  uint16_t klen;
  uint64_t expires;     /* 0: never */
  uint64_t lease;       /* not recycled before this */
  unsigned char data[]; /* the value, then the key */
} entry;

struct ds__table {
  pthread_mutex_t lock;
  unsigned flags;
  size_t cap, vsize;
  size_t n;
  entry **bucket;
  size_t nbucket; /* a power of two */
  entry *head, *tail;
  struct {
    entry **a; /* soonest first */
    size_t n, cap;
  } heap[2]; /* BY_EXPIRY, BY_LEASE */
  /* Numbered tables only. */
  entry **bynum;
  size_t nnum, capnum; /* numbers handed out so far; room in bynum */
  uint32_t *freed;
  size_t nfreed, capfreed;
  size_t bytes;    /* allocated, for ds__table_bytes() */
  int fork_locked; /* the lock was taken before a fork */
};

/* Returns the ASCII lower case of c. */
static unsigned char fold(unsigned char c)
{
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Returns the FNV-1a hash of key (folded when the table ignores case). */
static uint32_t hash_key(const ds__table *t, const unsigned char *key,
                         size_t klen)
{
  uint32_t h = 2166136261u;
  size_t i;
  for (i = 0; i < klen; i++) {
    h ^= t->flags & DS__TABLE_NOCASE ? fold(key[i]) : key[i];
    h *= 16777619u;
  }
  return h;
}

/* Returns where e's key is. */
static unsigned char *key_of(const ds__table *t, const entry *e)
{
  return (unsigned char *)e->data + t->vsize;
}

/* Returns the size of an entry with a key of klen bytes. */
static size_t entry_size(const ds__table *t, size_t klen)
{
  return sizeof(entry) + t->vsize + klen;
}

/* Returns 1 if e's key is key. */
static int same_key(const ds__table *t, const entry *e, uint32_t h,
                    const unsigned char *key, size_t klen)
{
  size_t i;
  if (e->hash != h || e->klen != klen)
    return 0;
  if (!(t->flags & DS__TABLE_NOCASE))
    return memcmp(key_of(t, e), key, klen) == 0;
  for (i = 0; i < klen; i++)
    if (fold(key_of(t, e)[i]) != fold(key[i]))
      return 0;
  return 1;
}

int ds__table_new(ds__table **out, size_t capacity, size_t value_size,
                  unsigned flags)
{
  ds__table *t;
  *out = NULL;
  if (capacity == 0 || capacity > ((size_t)1 << 31))
    return -EINVAL;
  t = calloc(1, sizeof *t);
  if (t == NULL)
    return -ENOMEM;
  pthread_mutex_init(&t->lock, NULL);
  t->flags = flags;
  t->cap = capacity;
  t->vsize = value_size;
  *out = t;
  return 0;
}

/* Unlinks e from the use list (it may be off it). */
static void lru_unlink(ds__table *t, entry *e)
{
  if (e->prev != NULL)
    e->prev->next = e->next;
  else if (t->head == e)
    t->head = e->next;
  if (e->next != NULL)
    e->next->prev = e->prev;
  else if (t->tail == e)
    t->tail = e->prev;
  e->prev = e->next = NULL;
}

/* Puts e at the most recently used end (unless it is held). */
static void lru_touch(ds__table *t, entry *e)
{
  if (e->holds > 0)
    return;
  lru_unlink(t, e);
  e->next = t->head;
  if (t->head != NULL)
    t->head->prev = e;
  t->head = e;
  if (t->tail == NULL)
    t->tail = e;
}

/* Returns 1 if e may not be recycled now: held, or within its lease. */
static int in_use(const entry *e, uint64_t now)
{
  return e->holds > 0 || e->lease > now;
}

/* Returns 1 if e has expired by now. */
static int expired(const entry *e, uint64_t now)
{
  return e->expires != 0 && e->expires <= now;
}

/* Returns e's key in heap h. */
static uint64_t heap_key(const entry *e, int h)
{
  return h == BY_EXPIRY ? e->expires : e->lease;
}

/* Puts e at place i of heap h. */
static void heap_place(ds__table *t, int h, entry *e, size_t i)
{
  t->heap[h].a[i] = e;
  e->hidx[h] = (uint32_t)i;
}

/* Moves the entry at place i of heap h up or down until the heap is in
 * order. */
static void heap_fix(ds__table *t, int h, size_t i)
{
  entry **a = t->heap[h].a, *e = a[i];
  uint64_t k = heap_key(e, h);
  while (i > 0 && heap_key(a[(i - 1) / 2], h) > k) {
    heap_place(t, h, a[(i - 1) / 2], i);
    i = (i - 1) / 2;
  }
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= t->heap[h].n)
      break;
    if (c + 1 < t->heap[h].n && heap_key(a[c + 1], h) < heap_key(a[c], h))
      c++;
    if (heap_key(a[c], h) >= k)
      break;
    heap_place(t, h, a[c], i);
    i = c;
  }
  heap_place(t, h, e, i);
}

/* Takes e out of heap h (if it is there). */
static void heap_remove(ds__table *t, int h, entry *e)
{
  size_t i = e->hidx[h];
  if (i == NOHEAP)
    return;
  e->hidx[h] = NOHEAP;
  if (i != --t->heap[h].n) {
    heap_place(t, h, t->heap[h].a[t->heap[h].n], i);
    heap_fix(t, h, i);
  }
}

/* Puts e into heap h (or moves it to its new place there). There is
 * room: each heap has a place for every entry (see reserve_heaps()). */
static void heap_push(ds__table *t, int h, entry *e)
{
  heap_remove(t, h, e);
  heap_place(t, h, e, t->heap[h].n++);
  heap_fix(t, h, e->hidx[h]);
}

/* Returns the first entry of heap h, or NULL. */
static entry *heap_top(const ds__table *t, int h)
{
  return t->heap[h].n > 0 ? t->heap[h].a[0] : NULL;
}

/* Sets e's expiry (0: never), keeping the expiry heap in order. */
static void set_expiry(ds__table *t, entry *e, uint64_t expires)
{
  heap_remove(t, BY_EXPIRY, e);
  e->expires = expires;
  if (expires != 0)
    heap_push(t, BY_EXPIRY, e);
}

/* Removes e from the hash index. */
static void hash_unlink(ds__table *t, entry *e)
{
  entry **p = &t->bucket[e->hash & (t->nbucket - 1)];
  while (*p != NULL && *p != e)
    p = &(*p)->hnext;
  if (*p != NULL)
    *p = e->hnext;
}

/* Returns key's entry, or NULL. */
static entry *find(ds__table *t, const void *key, size_t klen, uint32_t h)
{
  entry *e;
  if (t->nbucket == 0)
    return NULL;
  for (e = t->bucket[h & (t->nbucket - 1)]; e != NULL; e = e->hnext)
    if (same_key(t, e, h, key, klen))
      return e;
  return NULL;
}

/* Frees e, which is on every structure; gives its number back unless
 * keep_num (the caller passes it on to a new entry). */
static void drop(ds__table *t, entry *e, int keep_num)
{
  hash_unlink(t, e);
  lru_unlink(t, e);
  heap_remove(t, BY_EXPIRY, e);
  heap_remove(t, BY_LEASE, e);
  if (t->flags & DS__TABLE_NUMBERED) {
    t->bynum[e->num] = NULL;
    if (!keep_num)
      t->freed[t->nfreed++] = e->num; /* room: see room_for_numbers() */
  }
  t->bytes -= entry_size(t, e->klen);
  free(e);
  t->n--;
}

/* Doubles the hash index when it holds more entries than buckets.
 * Returns 0, or -ENOMEM (the index is then left as it was). */
static int grow_index(ds__table *t)
{
  size_t nb = t->nbucket ? t->nbucket * 2 : 16, i;
  entry **b;
  if (t->n < t->nbucket)
    return 0;
  b = calloc(nb, sizeof *b);
  if (b == NULL)
    return t->nbucket > 0 ? 0 : -ENOMEM; /* longer chains, still right */
  for (i = 0; i < t->nbucket; i++) {
    entry *e = t->bucket[i], *next;
    for (; e != NULL; e = next) {
      next = e->hnext;
      e->hnext = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
    }
  }
  free(t->bucket);
  t->bytes += (nb - t->nbucket) * sizeof *b;
  t->bucket = b;
  t->nbucket = nb;
  return 0;
}

/* Makes room in each heap for one more entry. Returns 0 or -ENOMEM. */
static int reserve_heaps(ds__table *t)
{
  size_t want;
  void *p;
  int h;
  for (h = BY_EXPIRY; h <= BY_LEASE; h++) {
    if (t->heap[h].cap > t->n)
      continue;
    want = t->heap[h].cap ? t->heap[h].cap * 2 : 16;
    p = realloc(t->heap[h].a, want * sizeof *t->heap[h].a);
    if (p == NULL)
      return -ENOMEM;
    t->bytes += (want - t->heap[h].cap) * sizeof *t->heap[h].a;
    t->heap[h].a = p;
    t->heap[h].cap = want;
  }
  return 0;
}

/* Makes room for numbers below above (0: one more than now; at least
 * double, at most the capacity), and for every one of them to be freed
 * at once: returns 0 or -ENOMEM. */
static int room_for_numbers(ds__table *t, size_t above)
{
  size_t want;
  void *p;
  if (above == 0 ? t->nfreed == 0 && t->nnum == t->capnum : above > t->capnum) {
    want = t->capnum ? t->capnum * 2 : 16;
    if (want < above)
      want = above;
    if (want > t->cap)
      want = t->cap;
    p = realloc(t->bynum, want * sizeof *t->bynum);
    if (p == NULL)
      return -ENOMEM;
    t->bytes += (want - t->capnum) * sizeof *t->bynum;
    t->bynum = p;
    t->capnum = want;
  }
  /* Every number handed out may be freed at once. */
  if (t->capfreed < t->capnum) {
    p = realloc(t->freed, t->capnum * sizeof *t->freed);
    if (p == NULL)
      return -ENOMEM;
    t->bytes += (t->capnum - t->capfreed) * sizeof *t->freed;
    t->freed = p;
    t->capfreed = t->capnum;
  }
  return 0;
}

/* Returns the number for a new entry: a freed one, else the next one
 * never handed out. Call after room_for_numbers() and only below
 * capacity. */
static uint32_t take_number(ds__table *t)
{
  if (t->nfreed > 0)
    return t->freed[--t->nfreed];
  return (uint32_t)t->nnum++;
}

/* Returns an entry that may be recycled (not held, lease over), or NULL:
 * the soonest expired one, else the least recently used, looking at a
 * few from that end. */
static entry *victim(ds__table *t, uint64_t now)
{
  entry *e;
  int i;
  e = heap_top(t, BY_EXPIRY);
  if (e != NULL && expired(e, now) && !in_use(e, now))
    return e;
  for (e = t->tail, i = 0; e != NULL && i < EVICT_LOOK; e = e->prev, i++)
    if (!in_use(e, now))
      return e;
  /* Those are leased: the entry whose lease ends first, if it has (the
   * lease heap holds every entry that is not held). */
  e = heap_top(t, BY_LEASE);
  return e != NULL && !in_use(e, now) ? e : NULL;
}

int ds__table_get(ds__table *t, const void *key, size_t klen, uint64_t now,
                  void *value, uint32_t *num)
{
  entry *e;
  int found = 0;
  pthread_mutex_lock(&t->lock);
  e = find(t, key, klen, hash_key(t, key, klen));
  if (e != NULL && expired(e, now)) {
    /* Gone; but an entry in use keeps its number until it is not. */
    if (!in_use(e, now))
      drop(t, e, 0);
    e = NULL;
  }
  if (e != NULL) {
    if (value != NULL)
      memcpy(value, e->data, t->vsize);
    if (num != NULL)
      *num = e->num;
    lru_touch(t, e);
    found = 1;
  }
  pthread_mutex_unlock(&t->lock);
  return found;
}

/* ds__table_put() under t's lock held by the caller; *out is the entry
 * found or made (on success). */
static int put_locked(ds__table *t, const void *key, size_t klen,
                      const void *value, uint64_t expires, uint64_t now,
                      uint32_t *num, int *fresh, entry **out)
{
  uint32_t h;
  entry *e, *old = NULL;
  int rc = 0;

  if (fresh != NULL)
    *fresh = 0;
  if (klen > DS__TABLE_KEY_MAX)
    return -EINVAL;
  h = hash_key(t, key, klen);
  e = find(t, key, klen, h);
  if (e != NULL && expired(e, now) && !in_use(e, now)) {
    drop(t, e, 0);
    e = NULL;
  }
  if (e != NULL) {
    /* An expired entry still in use keeps its number, with new contents
     * as if it were new. */
    if (value == NULL && expired(e, now)) {
      memset(e->data, 0, t->vsize);
      if (fresh != NULL)
        *fresh = 1;
    }
    if (value != NULL)
      memcpy(e->data, value, t->vsize);
    if (value != NULL || expired(e, now))
      set_expiry(t, e, expires);
    goto found;
  }
  if (t->n >= t->cap) {
    old = victim(t, now);
    if (old == NULL) {
      rc = -EAGAIN;
      goto done;
    }
  } else if ((rc = grow_index(t)) != 0 || (rc = reserve_heaps(t)) != 0 ||
             ((t->flags & DS__TABLE_NUMBERED) &&
              (rc = room_for_numbers(t, 0)) != 0)) {
    goto done;
  }
  e = malloc(entry_size(t, klen));
  if (e == NULL) {
    rc = -ENOMEM;
    goto done;
  }
  memset(e, 0, sizeof *e);
  e->hidx[BY_EXPIRY] = e->hidx[BY_LEASE] = NOHEAP;
  if (old != NULL) {
    /* The victim's number passes to the new key. */
    e->num = old->num;
    drop(t, old, 1);
  } else if (t->flags & DS__TABLE_NUMBERED) {
    e->num = take_number(t);
  }
  t->bytes += entry_size(t, klen);
  e->hash = h;
  e->klen = (uint16_t)klen;
  memcpy(key_of(t, e), key, klen);
  if (value != NULL)
    memcpy(e->data, value, t->vsize);
  else
    memset(e->data, 0, t->vsize);
  e->hnext = t->bucket[h & (t->nbucket - 1)];
  t->bucket[h & (t->nbucket - 1)] = e;
  if (t->flags & DS__TABLE_NUMBERED)
    t->bynum[e->num] = e;
  t->n++;
  set_expiry(t, e, expires);
  heap_push(t, BY_LEASE, e);
  if (fresh != NULL)
    *fresh = 1;
found:
  if (num != NULL)
    *num = e->num;
  lru_touch(t, e);
  *out = e;
done:
  return rc;
}

int ds__table_put(ds__table *t, const void *key, size_t klen, const void *value,
                  uint64_t expires, uint64_t now, uint32_t *num, int *fresh)
{
  entry *e;
  int rc;
  pthread_mutex_lock(&t->lock);
  rc = put_locked(t, key, klen, value, expires, now, num, fresh, &e);
  pthread_mutex_unlock(&t->lock);
  return rc;
}

int ds__table_put_leased(ds__table *t, const void *key, size_t klen,
                         uint64_t until, uint64_t now, uint32_t *num)
{
  entry *e;
  int rc;
  pthread_mutex_lock(&t->lock);
  rc = put_locked(t, key, klen, NULL, 0, now, num, NULL, &e);
  if (rc == 0 && until > e->lease) {
    e->lease = until;
    if (e->holds == 0)
      heap_push(t, BY_LEASE, e);
  }
  pthread_mutex_unlock(&t->lock);
  return rc;
}

/* Makes num the next number take_number() gives: it must be free (never
 * handed out: those below it are handed out as freed ones; or freed).
 * Returns 0, -EBUSY or -ENOMEM. Under t's lock. */
static int free_number_on_top(ds__table *t, uint32_t num, uint64_t now)
{
  size_t i;
  if (num < t->nnum) {
    entry *o = t->bynum[num];
    if (o != NULL && expired(o, now) && !in_use(o, now))
      drop(t, o, 0);
    else if (o != NULL)
      return -EBUSY;
    for (i = 0; i < t->nfreed && t->freed[i] != num; i++) {
    }
    if (i == t->nfreed)
      return -EBUSY;
    t->freed[i] = t->freed[t->nfreed - 1];
    t->freed[t->nfreed - 1] = num;
    return 0;
  }
  if (room_for_numbers(t, (size_t)num + 1) != 0)
    return -ENOMEM;
  /* The numbers skipped are free, num on top. */
  while (t->nnum <= num) {
    t->bynum[t->nnum] = NULL;
    t->freed[t->nfreed++] = (uint32_t)t->nnum++;
  }
  return 0;
}

int ds__table_put_leased_at(ds__table *t, const void *key, size_t klen,
                            uint32_t num, uint64_t until, uint64_t now)
{
  entry *e;
  uint32_t got;
  int rc;
  if (!(t->flags & DS__TABLE_NUMBERED) || num >= t->cap)
    return -EINVAL;
  pthread_mutex_lock(&t->lock);
  e = find(t, key, klen, hash_key(t, key, klen));
  if (e != NULL && expired(e, now) && !in_use(e, now)) {
    drop(t, e, 0);
    e = NULL;
  }
  if (e != NULL) {
    rc = e->num == num ? 0 : -EEXIST;
  } else if (t->n >= t->cap) {
    rc = -EAGAIN; /* a victim's number would not be num */
  } else if ((rc = free_number_on_top(t, num, now)) == 0) {
    rc = put_locked(t, key, klen, NULL, 0, now, &got, NULL, &e);
    if (rc == 0 && got != num) { /* cannot happen: num was on top */
      drop(t, e, 0);
      rc = -EBUSY;
    }
  }
  if (rc == 0 && until > e->lease) {
    e->lease = until;
    if (e->holds == 0)
      heap_push(t, BY_LEASE, e);
  }
  pthread_mutex_unlock(&t->lock);
  return rc;
}

int ds__table_set(ds__table *t, const void *key, size_t klen, const void *value,
                  uint64_t expires, uint32_t *num)
{
  entry *e;
  pthread_mutex_lock(&t->lock);
  e = find(t, key, klen, hash_key(t, key, klen));
  if (e != NULL) {
    memcpy(e->data, value, t->vsize);
    set_expiry(t, e, expires);
    if (num != NULL)
      *num = e->num;
  }
  pthread_mutex_unlock(&t->lock);
  return e != NULL;
}

/* Returns the entry numbered num, or NULL. */
static entry *by_num(ds__table *t, uint32_t num)
{
  if (!(t->flags & DS__TABLE_NUMBERED) || num >= t->nnum)
    return NULL;
  return t->bynum[num];
}

int ds__table_get_num(ds__table *t, uint32_t num, uint64_t now, void *key,
                      size_t kcap, size_t *klen, void *value)
{
  entry *e;
  int rc = 0;
  pthread_mutex_lock(&t->lock);
  e = by_num(t, num);
  if (e == NULL || expired(e, now))
    goto done;
  if (key != NULL) {
    if (kcap <= e->klen) {
      rc = -ERANGE;
      goto done;
    }
    memcpy(key, key_of(t, e), e->klen);
    ((char *)key)[e->klen] = '\0';
  }
  if (klen != NULL)
    *klen = e->klen;
  if (value != NULL)
    memcpy(value, e->data, t->vsize);
  lru_touch(t, e);
  rc = 1;
done:
  pthread_mutex_unlock(&t->lock);
  return rc;
}

int ds__table_del(ds__table *t, const void *key, size_t klen)
{
  entry *e;
  pthread_mutex_lock(&t->lock);
  e = find(t, key, klen, hash_key(t, key, klen));
  if (e != NULL && e->holds > 0)
    e = NULL; /* its number must stay its holder's */
  if (e != NULL)
    drop(t, e, 0);
  pthread_mutex_unlock(&t->lock);
  return e != NULL;
}

/* Holds (delta 1), releases (delta -1) and leases until (when later than
 * its lease) the entry numbered num. Returns 1 if there is one, else 0. */
static int use_num(ds__table *t, uint32_t num, int delta, uint64_t until)
{
  entry *e;
  pthread_mutex_lock(&t->lock);
  e = by_num(t, num);
  if (e != NULL) {
    if (until > e->lease)
      e->lease = until;
    if (delta > 0 && e->holds++ == 0) {
      /* Held: out of the candidates for recycling. */
      lru_unlink(t, e);
      heap_remove(t, BY_LEASE, e);
    } else if (delta < 0 && e->holds > 0) {
      e->holds--;
    }
    if (delta != 0)
      lru_touch(t, e);
    if (e->holds == 0)
      heap_push(t, BY_LEASE, e);
  }
  pthread_mutex_unlock(&t->lock);
  return e != NULL;
}

int ds__table_hold(ds__table *t, uint32_t num, int delta)
{
  return use_num(t, num, delta, 0);
}

int ds__table_lease(ds__table *t, uint32_t num, uint64_t until)
{
  return use_num(t, num, 0, until);
}

size_t ds__table_count(ds__table *t)
{
  size_t n;
  pthread_mutex_lock(&t->lock);
  n = t->n;
  pthread_mutex_unlock(&t->lock);
  return n;
}

size_t ds__table_bytes(ds__table *t)
{
  size_t n;
  pthread_mutex_lock(&t->lock);
  n = t->bytes + sizeof *t;
  pthread_mutex_unlock(&t->lock);
  return n;
}

/* Frees every entry and the indexes (under the lock or at the end). */
static void clear_locked(ds__table *t)
{
  size_t i;
  for (i = 0; i < t->nbucket; i++) {
    entry *e = t->bucket[i], *next;
    for (; e != NULL; e = next) {
      next = e->hnext;
      free(e);
    }
  }
  free(t->bucket);
  free(t->bynum);
  free(t->freed);
  free(t->heap[BY_EXPIRY].a);
  free(t->heap[BY_LEASE].a);
  memset(t->heap, 0, sizeof t->heap);
  t->bucket = t->bynum = NULL;
  t->freed = NULL;
  t->nbucket = t->nnum = t->capnum = t->nfreed = t->capfreed = 0;
  t->n = t->bytes = 0;
  t->head = t->tail = NULL;
}

void ds__table_clear(ds__table *t)
{
  pthread_mutex_lock(&t->lock);
  clear_locked(t);
  pthread_mutex_unlock(&t->lock);
}

void ds__table_free(ds__table *t)
{
  if (t == NULL)
    return;
  clear_locked(t);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

void ds__table_fork(ds__table *t, int phase)
{
  if (t == NULL)
    return;
  /* A table made between the prepare and the parent phase (by another
   * thread) was never locked for the fork: it is not unlocked either. */
  if (phase == DS__FORK_PREPARE) {
    ds__fork_mutex(&t->lock, phase, 0);
    t->fork_locked = 1;
  } else if (phase == DS__FORK_CHILD || t->fork_locked) {
    t->fork_locked = 0;
    ds__fork_mutex(&t->lock, phase, 0);
  }
}
