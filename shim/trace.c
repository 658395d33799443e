/* Trace lines: one JSON object per line, built in a buffer and written
 * with one write(), so lines from threads and processes sharing the file
 * (opened O_APPEND) never interleave. */
#include "shim.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Appends raw text; on overflow sets the flag and appends nothing. Three
 * bytes stay free for the closing "]}\n". */
static void put(shim_json *j, const char *s, size_t n)
{
  if (j->overflow || j->len + n + 3 > sizeof j->buf) {
    j->overflow = 1;
    return;
  }
  memcpy(j->buf + j->len, s, n);
  j->len += n;
}

/* Returns the length of the valid UTF-8 sequence at s (1-4), or 0 if s
 * does not start one (a stray byte, an overlong form, a surrogate, or a
 * code point above U+10FFFF). */
static int utf8_len(const unsigned char *s)
{
  int n, i;
  unsigned long cp;
  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    n = 2, cp = s[0] & 0x1f;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    n = 3, cp = s[0] & 0x0f;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    n = 4, cp = s[0] & 0x07;
  else
    return 0;
  for (i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0; /* also the NUL that ends the string */
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return n;
}

/* Appends s as a JSON string, escaped. A byte that is not part of valid
 * UTF-8 (a name is bytes, JSON is text) is written as the four characters
 * \xHH, so the line stays valid and still names the byte. */
static void put_string(shim_json *j, const char *s)
{
  char esc[8];
  put(j, "\"", 1);
  while (s != NULL && *s) {
    unsigned char c = (unsigned char)*s;
    int n = utf8_len((const unsigned char *)s);
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(j, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(j, esc, 6);
    } else if (n == 0) {
      snprintf(esc, sizeof esc, "\\\\x%02x", c);
      put(j, esc, 5);
      n = 1;
    } else {
      put(j, s, (size_t)n);
    }
    s += n > 0 ? n : 1;
  }
  put(j, "\"", 1);
}

/* Every element is added between mark() and done(): an element that does
 * not fit is taken back whole, so the line stays valid JSON. */
static int mark(shim_json *j, size_t *len, int *in_array)
{
  *len = j->len;
  *in_array = j->in_array;
  return !j->overflow;
}

static void done(shim_json *j, size_t len, int in_array)
{
  if (j->overflow) {
    j->len = len;
    j->in_array = in_array;
  }
}

/* Appends the separator and the key. */
static void put_key(shim_json *j, const char *key)
{
  put(j, ",", 1);
  put_string(j, key);
  put(j, ":", 1);
}

void shim__json_begin(shim_json *j, const char *event, unsigned long id)
{
  char num[64];
  int n;
  j->len = 0;
  j->overflow = 0;
  j->in_array = 0;
  n = snprintf(num, sizeof num, "{\"ts\":%lld,\"pid\":%d",
               (long long)shim__epoch_ms(), (int)getpid());
  put(j, num, (size_t)n);
  shim__json_str(j, "event", event);
  shim__json_int(j, "id", (long long)id);
}

void shim__json_str(shim_json *j, const char *key, const char *value)
{
  size_t len;
  int arr;
  if (!mark(j, &len, &arr))
    return;
  put_key(j, key);
  put_string(j, value);
  done(j, len, arr);
}

void shim__json_host(shim_json *j, const char *key, const char *name)
{
  char buf[SHIM_NAME_MAX];
  size_t n = strlen(name);
  if (n > 1 && n < sizeof buf && name[n - 1] == '.') {
    memcpy(buf, name, n - 1);
    buf[n - 1] = '\0';
    name = buf;
  }
  shim__json_str(j, key, name);
}

void shim__json_int(shim_json *j, const char *key, long long value)
{
  char num[32];
  size_t len;
  int arr, n;
  if (!mark(j, &len, &arr))
    return;
  n = snprintf(num, sizeof num, "%lld", value);
  put_key(j, key);
  put(j, num, (size_t)n);
  done(j, len, arr);
}

void shim__json_bool(shim_json *j, const char *key, int value)
{
  size_t len;
  int arr;
  if (!mark(j, &len, &arr))
    return;
  put_key(j, key);
  if (value)
    put(j, "true", 4);
  else
    put(j, "false", 5);
  done(j, len, arr);
}

void shim__json_num(shim_json *j, const char *key, double value)
{
  char num[32];
  size_t len;
  int arr, n;
  if (!mark(j, &len, &arr))
    return;
  n = snprintf(num, sizeof num, "%.1f", value);
  put_key(j, key);
  put(j, num, (size_t)n);
  done(j, len, arr);
}

void shim__json_array_begin(shim_json *j, const char *key)
{
  size_t len;
  int arr;
  if (!mark(j, &len, &arr))
    return;
  put_key(j, key);
  put(j, "[", 1);
  if (!j->overflow)
    j->in_array = 1;
  done(j, len, arr);
}

void shim__json_item(shim_json *j, const char *value)
{
  size_t len;
  int arr;
  if (!mark(j, &len, &arr))
    return;
  if (j->buf[j->len - 1] != '[')
    put(j, ",", 1);
  put_string(j, value);
  done(j, len, arr);
}

void shim__json_array_end(shim_json *j)
{
  if (j->overflow || !j->in_array)
    return;
  put(j, "]", 1);
  j->in_array = 0;
}

void shim__json_emit(shim_json *j)
{
  int saved = errno;
  struct stat st;
  ssize_t n;
  if (shim__cfg.trace_fd < 0)
    return;
  /* The trace's fd closed behind the shim's back (glibc's closefrom
   * makes the system call itself) and its number the program's now: no
   * line goes into the program's file. */
  if (fstat(shim__cfg.trace_fd, &st) != 0 || st.st_ino != shim__cfg.trace_ino ||
      st.st_dev != shim__cfg.trace_dev) {
    errno = saved;
    return;
  }
  /* put() always left room for these three bytes. */
  if (j->in_array)
    j->buf[j->len++] = ']';
  j->buf[j->len++] = '}';
  j->buf[j->len++] = '\n';
  do
    n = write(shim__cfg.trace_fd, j->buf, j->len);
  while (n < 0 && errno == EINTR);
  errno = saved;
}
