/* Unit tests of the bounded key-value table (lib/table.c): lookup by key
 * and by number, letter case, expiry, recycling of the least recently
 * used entry that is neither held nor leased, refusal when every entry is
 * in use, and memory that follows the entries, not the capacity. */
#include "test.h"

#include "internal.h"
#include "table.h"

#include <errno.h>
#include <stdint.h>

/* Puts name with value v; fails the test unless it returns want. */
static uint32_t put_name(ds__table *t, const char *name, int v, uint64_t now,
                         int want)
{
  uint32_t num = UINT32_MAX;
  CHECK_EQ(ds__table_put(t, name, strlen(name), &v, 0, now, &num, NULL), want);
  return num;
}

TEST(table_finds_by_key_and_by_number)
{
  ds__table *t;
  uint32_t a, b, num = 0;
  char key[64];
  size_t klen = 0;
  int v = 0, fresh = 0;

  CHECK_EQ(ds__table_new(&t, 16, sizeof v, DS__TABLE_NUMBERED), 0);
  a = put_name(t, "one.example", 1, 1, 0);
  b = put_name(t, "two.example", 2, 1, 0);
  CHECK_EQ(a, 0);
  CHECK_EQ(b, 1);
  CHECK_EQ(ds__table_get(t, "two.example", 11, 1, &v, &num), 1);
  CHECK_EQ(v, 2);
  CHECK_EQ(num, b);
  CHECK_EQ(ds__table_get_num(t, a, 1, key, sizeof key, &klen, &v), 1);
  CHECK_STR(key, "one.example");
  CHECK_EQ(klen, 11);
  CHECK_EQ(v, 1);
  /* Too little room for the key: said, not cut. */
  CHECK_EQ(ds__table_get_num(t, a, 1, key, 11, &klen, &v), -ERANGE);
  CHECK_EQ(ds__table_get_num(t, 7, 1, key, sizeof key, &klen, &v), 0);
  /* Putting an existing key finds it (value NULL: kept). */
  CHECK_EQ(ds__table_put(t, "one.example", 11, NULL, 0, 1, &num, &fresh), 0);
  CHECK_EQ(num, a);
  CHECK_EQ(fresh, 0);
  CHECK_EQ(ds__table_get(t, "one.example", 11, 1, &v, NULL), 1);
  CHECK_EQ(v, 1);
  CHECK_EQ(ds__table_count(t), 2);
  /* Set replaces a value, and never makes an entry. */
  v = 9;
  CHECK_EQ(ds__table_set(t, "two.example", 11, &v, 0, &num), 1);
  CHECK_EQ(num, b);
  CHECK_EQ(ds__table_set(t, "three.example", 13, &v, 0, &num), 0);
  CHECK_EQ(ds__table_count(t), 2);
  CHECK_EQ(ds__table_get(t, "two.example", 11, 1, &v, NULL), 1);
  CHECK_EQ(v, 9);
  /* Keys are bytes: a longer or shorter key is another key. */
  CHECK_EQ(ds__table_get(t, "one.exampl", 10, 1, &v, NULL), 0);
  /* Keys of 0 to DS__TABLE_KEY_MAX bytes. */
  {
    char big[DS__TABLE_KEY_MAX + 1];
    memset(big, 'x', sizeof big);
    CHECK_EQ(ds__table_put(t, big, sizeof big, &v, 0, 1, NULL, NULL), -EINVAL);
    CHECK_EQ(ds__table_put(t, big, DS__TABLE_KEY_MAX, &v, 0, 1, NULL, NULL), 0);
    CHECK_EQ(ds__table_put(t, "", 0, &v, 0, 1, NULL, NULL), 0);
    CHECK_EQ(ds__table_get(t, "", 0, 1, NULL, NULL), 1);
  }
  ds__table_free(t);
}

/* A number asked for (a process taking the synthetic address of a
 * connection it inherited across exec): free ones only, and the numbers
 * skipped stay free for others. */
TEST(table_put_at_a_number_asked_for)
{
  ds__table *t;
  uint32_t num = 99;
  char key[64];
  int v = 0;
  size_t klen = 0;

  CHECK_EQ(ds__table_new(&t, 16, sizeof v, DS__TABLE_NUMBERED), 0);
  CHECK_EQ(ds__table_put_leased_at(t, "five", 4, 5, 100, 1), 0);
  CHECK_EQ(ds__table_get_num(t, 5, 1, key, sizeof key, &klen, NULL), 1);
  CHECK_STR(key, "five");
  /* The same again: 0. The key elsewhere, or the number another's: no. */
  CHECK_EQ(ds__table_put_leased_at(t, "five", 4, 5, 100, 1), 0);
  CHECK_EQ(ds__table_put_leased_at(t, "five", 4, 6, 100, 1), -EEXIST);
  CHECK_EQ(ds__table_put_leased_at(t, "other", 5, 5, 100, 1), -EBUSY);
  CHECK_EQ(ds__table_put_leased_at(t, "far", 3, 16, 100, 1), -EINVAL);
  /* The numbers skipped are handed out to the next keys, never 5. */
  CHECK_EQ(ds__table_put_leased(t, "a", 1, 100, 1, &num), 0);
  CHECK(num < 5);
  CHECK_EQ(ds__table_get_num(t, num, 1, key, sizeof key, &klen, NULL), 1);
  CHECK_STR(key, "a");
  /* A freed number in the middle of the free ones. */
  CHECK_EQ(ds__table_put_leased_at(t, "two", 3, 2, 100, 1),
           num == 2 ? -EBUSY : 0);
  CHECK_EQ(ds__table_put(t, "b", 1, NULL, 0, 1, &num, NULL), 0);
  CHECK(num != 5 && num != 2);
  CHECK_EQ(ds__table_count(t), 4);
  /* Above every number given so far, and the next number after it. */
  CHECK_EQ(ds__table_put_leased_at(t, "twelve", 6, 12, 100, 1), 0);
  CHECK_EQ(ds__table_get_num(t, 12, 1, key, sizeof key, &klen, NULL), 1);
  CHECK_STR(key, "twelve");
  CHECK_EQ(ds__table_get_num(t, 11, 1, key, sizeof key, &klen, NULL), 0);
  ds__table_free(t);
}

TEST(table_nocase_folds_ascii_letters_only)
{
  ds__table *t;
  int v = 0;
  CHECK_EQ(ds__table_new(&t, 4, sizeof v, DS__TABLE_NOCASE), 0);
  put_name(t, "V6Only.Example", 5, 1, 0);
  CHECK_EQ(ds__table_get(t, "v6only.example", 14, 1, &v, NULL), 1);
  CHECK_EQ(v, 5);
  CHECK_EQ(ds__table_get(t, "V6ONLY.EXAMPLE", 14, 1, NULL, NULL), 1);
  /* Bytes above ASCII are not letters to fold ('\xc3' vs '\xe3'). */
  put_name(t, "\xc3.example", 6, 1, 0);
  CHECK_EQ(ds__table_get(t, "\xe3.example", 9, 1, NULL, NULL), 0);
  ds__table_free(t);
  /* Without the flag, case matters. */
  CHECK_EQ(ds__table_new(&t, 4, sizeof v, 0), 0);
  put_name(t, "A.example", 1, 1, 0);
  CHECK_EQ(ds__table_get(t, "a.example", 9, 1, NULL, NULL), 0);
  ds__table_free(t);
}

TEST(table_entries_expire)
{
  ds__table *t;
  int v = 3;
  CHECK_EQ(ds__table_new(&t, 4, sizeof v, 0), 0);
  CHECK_EQ(ds__table_put(t, "k", 1, &v, 100, 10, NULL, NULL), 0);
  CHECK_EQ(ds__table_get(t, "k", 1, 99, &v, NULL), 1);
  CHECK_EQ(ds__table_get(t, "k", 1, 100, &v, NULL), 0);
  CHECK_EQ(ds__table_count(t), 0); /* deleted when found expired */
  /* Putting a value renews the expiry. */
  CHECK_EQ(ds__table_put(t, "k", 1, &v, 100, 10, NULL, NULL), 0);
  CHECK_EQ(ds__table_put(t, "k", 1, &v, 300, 150, NULL, NULL), 0);
  CHECK_EQ(ds__table_get(t, "k", 1, 200, NULL, NULL), 1);
  CHECK_EQ(ds__table_del(t, "k", 1), 1);
  CHECK_EQ(ds__table_del(t, "k", 1), 0);
  ds__table_free(t);
}

TEST(table_recycles_the_least_recently_used)
{
  ds__table *t;
  uint32_t n0, n1, n2, num;
  char key[16];
  int v;
  CHECK_EQ(ds__table_new(&t, 3, sizeof v, DS__TABLE_NUMBERED), 0);
  n0 = put_name(t, "a", 0, 1, 0);
  n1 = put_name(t, "b", 1, 2, 0);
  n2 = put_name(t, "c", 2, 3, 0);
  /* "a" is used again, so "b" is now the least recently used. */
  CHECK_EQ(ds__table_get(t, "a", 1, 4, NULL, NULL), 1);
  num = put_name(t, "d", 3, 5, 0);
  CHECK_EQ(num, n1); /* "d" takes b's number */
  CHECK_EQ(ds__table_get(t, "b", 1, 5, NULL, NULL), 0);
  CHECK_EQ(ds__table_get_num(t, n1, 5, key, sizeof key, NULL, &v), 1);
  CHECK_STR(key, "d");
  CHECK_EQ(v, 3);
  /* A lookup by number is a use too: c goes next, not a. */
  CHECK_EQ(ds__table_get_num(t, n0, 6, NULL, 0, NULL, NULL), 1);
  CHECK_EQ(put_name(t, "e", 4, 7, 0), n2);
  CHECK_EQ(ds__table_count(t), 3);
  ds__table_free(t);
}

TEST(table_never_recycles_an_entry_in_use)
{
  ds__table *t;
  uint32_t n0, n1;
  int v = 0;
  CHECK_EQ(ds__table_new(&t, 2, sizeof v, DS__TABLE_NUMBERED), 0);
  n0 = put_name(t, "held", 0, 1, 0);
  n1 = put_name(t, "leased", 1, 2, 0);
  CHECK_EQ(ds__table_hold(t, n0, 1), 1);
  CHECK_EQ(ds__table_lease(t, n1, 100), 1);
  /* Both in use: a new key is refused, nobody's entry given to it. */
  put_name(t, "new", 2, 50, -EAGAIN);
  CHECK_EQ(ds__table_get(t, "held", 4, 50, NULL, NULL), 1);
  CHECK_EQ(ds__table_get(t, "leased", 6, 50, NULL, NULL), 1);
  /* The lease is over: that entry goes, the held one stays. */
  CHECK_EQ(put_name(t, "new", 2, 100, 0), n1);
  CHECK_EQ(ds__table_get(t, "held", 4, 100, NULL, NULL), 1);
  /* Released, the held entry can go (but not the newer one first). */
  CHECK_EQ(ds__table_hold(t, n0, -1), 1);
  CHECK_EQ(put_name(t, "newer", 3, 101, 0), n1);
  CHECK_EQ(put_name(t, "newest", 4, 102, 0), n0);
  CHECK_EQ(ds__table_hold(t, 99, 1), 0);
  ds__table_free(t);
}

TEST(table_reuses_numbers_of_deleted_entries)
{
  ds__table *t;
  uint32_t n0;
  int v = 0;
  CHECK_EQ(ds__table_new(&t, 4, sizeof v, DS__TABLE_NUMBERED), 0);
  n0 = put_name(t, "a", 0, 1, 0);
  put_name(t, "b", 0, 1, 0);
  CHECK_EQ(ds__table_del(t, "a", 1), 1);
  CHECK_EQ(ds__table_get_num(t, n0, 1, NULL, 0, NULL, NULL), 0);
  CHECK_EQ(put_name(t, "c", 0, 1, 0), n0);
  CHECK_EQ(put_name(t, "d", 0, 1, 0), 2);
  ds__table_clear(t);
  CHECK_EQ(ds__table_count(t), 0);
  CHECK_EQ(put_name(t, "e", 0, 1, 0), 0);
  ds__table_free(t);
}

/* A /8 pool's table (2^24 - 2 numbers) costs what its entries cost: a
 * thousand names take the same memory as in a /20's table, and making the
 * millionth entry in a full table of a million takes no scan. */
TEST(table_memory_follows_entries_not_capacity)
{
  ds__table *big, *small;
  char name[32];
  size_t bb, sb;
  int i;
  double t0;

  CHECK_EQ(ds__table_new(&big, (1u << 24) - 2, sizeof(int), DS__TABLE_NUMBERED),
           0);
  CHECK_EQ(ds__table_new(&small, 4094, sizeof(int), DS__TABLE_NUMBERED), 0);
  for (i = 0; i < 1000; i++) {
    snprintf(name, sizeof name, "n%d.example", i);
    put_name(big, name, i, 1, 0);
    put_name(small, name, i, 1, 0);
  }
  bb = ds__table_bytes(big);
  sb = ds__table_bytes(small);
  CHECK_MSG(bb == sb, "1000 names: %zu bytes in a /8, %zu in a /20", bb, sb);
  CHECK_MSG(bb < 1000 * 160, "%zu bytes for 1000 entries", bb);
  ds__table_free(big);
  ds__table_free(small);

  /* Recycling in a full table looks at a few entries, not all: 200,000
   * recycled puts in a full table of 200,000 (a scan each would be
   * 4 * 10^10 steps). */
  CHECK_EQ(ds__table_new(&big, 200000, sizeof(int), DS__TABLE_NUMBERED), 0);
  for (i = 0; i < 200000; i++) {
    snprintf(name, sizeof name, "n%d", i);
    put_name(big, name, i, 1, 0);
  }
  t0 = ds_test_now_ms();
  for (i = 0; i < 200000; i++) {
    snprintf(name, sizeof name, "m%d", i);
    put_name(big, name, i, 2, 0);
  }
  CHECK_MSG(ds_test_now_ms() - t0 < 5000, "%.0f ms", ds_test_now_ms() - t0);
  CHECK_EQ(ds__table_count(big), 200000);
  CHECK_EQ(ds__table_get(big, "n0", 2, 3, NULL, NULL), 0);
  CHECK_EQ(ds__table_get(big, "m0", 2, 3, NULL, NULL), 1);
  ds__table_free(big);
}

/* A full table recycles an expired entry before any live one, wherever
 * the expired one stands in the order of use (the family memory's rule:
 * a live host is never forgotten while an expired one is kept). */
TEST(table_expired_entries_go_before_live_ones)
{
  ds__table *t;
  char name[16];
  int i, v = 1;
  CHECK_EQ(ds__table_new(&t, 10, sizeof v, DS__TABLE_NOCASE), 0);
  CHECK_EQ(ds__table_put(t, "old", 3, &v, 300, 0, NULL, NULL), 0);
  for (i = 0; i < 9; i++) {
    snprintf(name, sizeof name, "h%d", i);
    CHECK_EQ(ds__table_put(t, name, strlen(name), &v, 450 + i, 150, NULL, NULL),
             0);
  }
  /* "old" is the most recently used when it expires. */
  CHECK_EQ(ds__table_get(t, "old", 3, 200, NULL, NULL), 1);
  CHECK_EQ(ds__table_put(t, "new", 3, &v, 650, 350, NULL, NULL), 0);
  CHECK_EQ(ds__table_get(t, "old", 3, 350, NULL, NULL), 0);
  for (i = 0; i < 9; i++) {
    snprintf(name, sizeof name, "h%d", i);
    CHECK_MSG(ds__table_get(t, name, strlen(name), 351, NULL, NULL) == 1,
              "%s forgotten", name);
  }
  /* Later expiries in another order: the soonest goes first. */
  CHECK_EQ(ds__table_put(t, "h5", 2, &v, 500, 400, NULL, NULL), 0);
  CHECK_EQ(ds__table_put(t, "later", 5, &v, 900, 600, NULL, NULL), 0);
  CHECK_EQ(ds__table_get(t, "h0", 2, 600, NULL, NULL), 0); /* 450 */
  CHECK_EQ(ds__table_put(t, "last", 4, &v, 900, 600, NULL, NULL), 0);
  CHECK_EQ(ds__table_get(t, "h1", 2, 600, NULL, NULL), 0); /* 451 */
  CHECK_EQ(ds__table_get(t, "h5", 2, 499, NULL, NULL), 1); /* renewed */
  CHECK_EQ(ds__table_count(t), 10);
  ds__table_free(t);
}

/* An entry in use keeps its number after it expires: a lease outlives
 * the expiry, a hold outlives both, and a deletion waits for the hold. */
TEST(table_an_entry_in_use_keeps_its_number_past_expiry)
{
  ds__table *t;
  uint32_t num;
  int v = 1, fresh = 0;
  CHECK_EQ(ds__table_new(&t, 1, sizeof v, DS__TABLE_NUMBERED), 0);
  CHECK_EQ(ds__table_put(t, "a", 1, &v, 100, 0, &num, NULL), 0);
  CHECK_EQ(ds__table_lease(t, num, 200), 1);
  CHECK_EQ(ds__table_get(t, "a", 1, 150, NULL, NULL), 0); /* expired */
  CHECK_EQ(ds__table_put(t, "b", 1, &v, 0, 150, NULL, NULL), -EAGAIN);
  /* Put again while leased: the same number, with new contents. */
  CHECK_EQ(ds__table_put(t, "a", 1, NULL, 0, 150, &num, &fresh), 0);
  CHECK_EQ(num, 0);
  CHECK_EQ(fresh, 1);
  CHECK_EQ(ds__table_get(t, "a", 1, 160, &v, NULL), 1);
  CHECK_EQ(v, 0);
  /* Held: not deleted, not recycled; released, it goes. */
  CHECK_EQ(ds__table_hold(t, num, 1), 1);
  CHECK_EQ(ds__table_del(t, "a", 1), 0);
  CHECK_EQ(ds__table_put(t, "b", 1, &v, 0, 300, NULL, NULL), -EAGAIN);
  CHECK_EQ(ds__table_hold(t, num, -1), 1);
  CHECK_EQ(ds__table_put(t, "b", 1, &v, 0, 300, &num, NULL), 0);
  CHECK_EQ(num, 0);
  ds__table_free(t);
}

/* Putting a key whose entry has expired (and is not in use) makes a new
 * entry, as if the key had never been there. */
TEST(table_put_over_an_expired_entry_makes_it_anew)
{
  ds__table *t;
  int v = 7, fresh = 0;
  CHECK_EQ(ds__table_new(&t, 4, sizeof v, 0), 0);
  CHECK_EQ(ds__table_put(t, "k", 1, &v, 100, 0, NULL, NULL), 0);
  CHECK_EQ(ds__table_put(t, "k", 1, NULL, 0, 150, NULL, &fresh), 0);
  CHECK_EQ(fresh, 1);
  CHECK_EQ(ds__table_get(t, "k", 1, 1000, &v, NULL), 1);
  CHECK_EQ(v, 0);
  ds__table_free(t);
}

/* When the least recently used entries are all leased, a free entry
 * further up is still found (the entry whose lease ends first), without
 * a scan: a new name is refused only when every entry is in use. */
TEST(table_finds_a_free_entry_behind_leased_ones)
{
  ds__table *t;
  uint32_t num[10], got;
  char name[16];
  int i, v = 0;
  CHECK_EQ(ds__table_new(&t, 10, sizeof v, DS__TABLE_NUMBERED), 0);
  for (i = 0; i < 10; i++) {
    snprintf(name, sizeof name, "n%d", i);
    num[i] = put_name(t, name, i, 1, 0);
  }
  /* The nine least recently used are leased, n9 (the most recent) not. */
  for (i = 0; i < 9; i++)
    CHECK_EQ(ds__table_lease(t, num[i], 1000 + (uint64_t)i), 1);
  got = put_name(t, "new", 0, 10, 0);
  CHECK_EQ(got, num[9]);
  CHECK_EQ(ds__table_lease(t, got, 2000), 1);
  /* Now all ten are leased: refused; n0's lease ends first. */
  put_name(t, "newer", 0, 20, -EAGAIN);
  CHECK_EQ(put_name(t, "newer", 0, 1000, 0), num[0]);
  ds__table_free(t);
}

/* A put with a lease leases the entry it finds or makes in the same step:
 * a full table of leased entries refuses the next key. */
TEST(table_put_leased_leases_in_one_step)
{
  ds__table *t;
  uint32_t a, b, again;
  CHECK_EQ(ds__table_new(&t, 2, sizeof(int), DS__TABLE_NUMBERED), 0);
  CHECK_EQ(ds__table_put_leased(t, "a", 1, 100, 0, &a), 0);
  CHECK_EQ(ds__table_put_leased(t, "b", 1, 50, 0, &b), 0);
  CHECK_EQ(ds__table_put(t, "c", 1, NULL, 0, 10, NULL, NULL), -EAGAIN);
  /* Again for "b": the same number, the lease only extended. */
  CHECK_EQ(ds__table_put_leased(t, "b", 1, 20, 10, &again), 0);
  CHECK_EQ(again, b);
  CHECK_EQ(ds__table_put(t, "c", 1, NULL, 0, 49, NULL, NULL), -EAGAIN);
  CHECK_EQ(ds__table_put(t, "c", 1, NULL, 0, 50, &again, NULL), 0);
  CHECK_EQ(again, b);
  ds__table_free(t);
}
