/* The library's one bounded key-value table (table.c): what the family
 * memory, the shim's synthetic address pools and its lookup cache keep.
 * Private; not installed.
 *
 * An entry has a key (up to DS__TABLE_KEY_MAX bytes: a host name, an IPv6
 * address), a value of the table's fixed size, and, in a table of
 * addresses, a number from 0 to capacity - 1 that stays its own while the
 * entry lives (a pool adds its base to make an IPv4 address of it). An
 * entry can be found by key or by number.
 *
 * Entries live until they expire, are deleted, or are recycled when the
 * table is full and a new key comes: the least recently used entry that
 * is not in use goes. In use means held (ds__table_hold: an open socket)
 * or within its lease (ds__table_lease: the time an answer handed out may
 * still be used). When every entry is in use, a new key is refused
 * (-EAGAIN) rather than given someone else's entry.
 *
 * Costs follow the entries in use, never the capacity: an entry is
 * allocated when its key first comes, the indexes grow with the entries,
 * and nothing scans (finding a victim looks at a few entries from the
 * least recently used end).
 *
 * Every operation copies keys and values in or out under the table's
 * lock, and no pointer into the table ever reaches a caller: values are
 * plain bytes, numbers are small integers and times are given by the
 * caller. That is what lets a table shared between processes (a file
 * mapped by each, read by copy-then-validate) stand behind the same
 * calls. Thread-safe; fork-safe with ds__table_fork() on the fork chain.
 */
#ifndef DS_TABLE_H
#define DS_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* The longest key: a host name of 255 bytes with its NUL. */
#define DS__TABLE_KEY_MAX 256

/* Keys are host names, equal whatever their ASCII letter case. */
#define DS__TABLE_NOCASE 1u
/* Entries get numbers (addresses). */
#define DS__TABLE_NUMBERED 2u

typedef struct ds__table ds__table;

/* Makes a table of at most capacity entries (at least 1) whose values are
 * value_size bytes, with flags DS__TABLE_*. Returns 0 or -ENOMEM, -EINVAL
 * for a capacity of 0 or above 2^31. */
int ds__table_new(ds__table **out, size_t capacity, size_t value_size,
                  unsigned flags);
void ds__table_free(ds__table *t);

/* Forgets every entry (numbers start again from 0). */
void ds__table_clear(ds__table *t);

/* Copies the value of key's entry into value (if not NULL) and its number
 * into *num (if not NULL), marks it used, and returns 1; returns 0 when
 * there is none or it has expired by now (then it is deleted). */
int ds__table_get(ds__table *t, const void *key, size_t klen, uint64_t now,
                  void *value, uint32_t *num);

/* Finds or makes key's entry and returns 0 with *num its number (if num
 * is not NULL) and *fresh (if not NULL) 1 when this call made it. A new
 * entry's value is value, or zeros when value is NULL; an existing one's
 * value is replaced when value is not NULL. expires (0: never) is set on
 * a new entry, and on an existing one when value is not NULL. Returns
 * -EAGAIN when the table is full and every entry is in use, -ENOMEM, or
 * -EINVAL for a key of 0 or more than DS__TABLE_KEY_MAX bytes. */
int ds__table_put(ds__table *t, const void *key, size_t klen, const void *value,
                  uint64_t expires, uint64_t now, uint32_t *num, int *fresh);

/* As ds__table_put() with value NULL and expires 0, and in the same step
 * leases the entry until until (a lease is only ever extended), so that
 * no other key can take it in between. */
int ds__table_put_leased(ds__table *t, const void *key, size_t klen,
                         uint64_t until, uint64_t now, uint32_t *num);

/* As ds__table_put_leased() for a numbered table, with the number asked:
 * num, which must be free (never handed out, or freed). Returns 0 (also
 * when key has num already), -EEXIST when key has another number, -EBUSY
 * when num is another key's, -EAGAIN when the table is full, -EINVAL for
 * a num beyond the capacity, or -ENOMEM. (A process that inherits a
 * connection to a number another process gave out takes it so.) */
int ds__table_put_leased_at(ds__table *t, const void *key, size_t klen,
                            uint32_t num, uint64_t until, uint64_t now);

/* Replaces the value of key's entry, if there is one, with value (and its
 * expiry with expires), without making one. Returns 1 with *num (if not
 * NULL) its number, or 0 when key has no entry. */
int ds__table_set(ds__table *t, const void *key, size_t klen,
                  const void *value, uint64_t expires, uint32_t *num);

/* For the entry numbered num: copies its key (NUL-terminated; kcap bytes
 * of room, *klen set to its length) and its value (if value is not NULL),
 * marks it used, and returns 1; returns 0 when there is no such entry
 * (or it has expired by now), or -ERANGE when kcap is too small. */
int ds__table_get_num(ds__table *t, uint32_t num, uint64_t now, void *key,
                      size_t kcap, size_t *klen, void *value);

/* Deletes key's entry. Returns 1 if there was one, else 0. */
int ds__table_del(ds__table *t, const void *key, size_t klen);

/* Holds (delta 1) or releases (delta -1) the entry numbered num: a held
 * entry is never recycled. A release counts as a use. Returns 1 if there
 * is such an entry, else 0. */
int ds__table_hold(ds__table *t, uint32_t num, int delta);

/* Keeps the entry numbered num from being recycled before until (the
 * caller's clock; a lease is only ever extended). Returns 1 if there is
 * such an entry, else 0. */
int ds__table_lease(ds__table *t, uint32_t num, uint64_t until);

/* Returns the number of entries. */
size_t ds__table_count(ds__table *t);

/* Bytes the table has allocated (entries and indexes), for tests that
 * check memory follows the entries. */
size_t ds__table_bytes(ds__table *t);

/* Takes the table's lock before fork() (phase DS__FORK_PREPARE) and
 * gives it back after, in the parent or (made afresh) in the child. */
void ds__table_fork(ds__table *t, int phase);

#endif
