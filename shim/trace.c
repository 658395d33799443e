/* Trace lines: one JSON object per line, built in a buffer and written
 * with one write(), so lines from threads and processes sharing the file
 * (opened O_APPEND) never interleave. */
#include "shim.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Appends raw text; remembers an overflow instead of writing past the
 * buffer (the line is then closed early, still valid JSON). */
static void put(shim_json *j, const char *s, size_t n)
{
  if (j->overflow || j->len + n + 3 > sizeof j->buf) {
    j->overflow = 1;
    return;
  }
  memcpy(j->buf + j->len, s, n);
  j->len += n;
}

/* Appends s as a JSON string, escaped. */
static void put_string(shim_json *j, const char *s)
{
  char esc[8];
  put(j, "\"", 1);
  for (; s != NULL && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(j, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(j, esc, 6);
    } else {
      put(j, (const char *)&c, 1);
    }
  }
  put(j, "\"", 1);
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
  n = snprintf(num, sizeof num, "{\"ts\":%lld,\"pid\":%d",
               (long long)shim__epoch_ms(), (int)getpid());
  put(j, num, (size_t)n);
  put_key(j, "event");
  put_string(j, event);
  shim__json_int(j, "id", (long long)id);
}

void shim__json_str(shim_json *j, const char *key, const char *value)
{
  put_key(j, key);
  put_string(j, value);
}

void shim__json_int(shim_json *j, const char *key, long long value)
{
  char num[32];
  int n = snprintf(num, sizeof num, "%lld", value);
  put_key(j, key);
  put(j, num, (size_t)n);
}

void shim__json_bool(shim_json *j, const char *key, int value)
{
  put_key(j, key);
  if (value)
    put(j, "true", 4);
  else
    put(j, "false", 5);
}

void shim__json_num(shim_json *j, const char *key, double value)
{
  char num[32];
  int n = snprintf(num, sizeof num, "%.1f", value);
  put_key(j, key);
  put(j, num, (size_t)n);
}

void shim__json_array_begin(shim_json *j, const char *key)
{
  put_key(j, key);
  put(j, "[", 1);
}

void shim__json_item(shim_json *j, const char *value)
{
  if (j->len > 0 && j->buf[j->len - 1] != '[')
    put(j, ",", 1);
  put_string(j, value);
}

void shim__json_array_end(shim_json *j)
{
  put(j, "]", 1);
}

void shim__json_emit(shim_json *j)
{
  int saved = errno;
  ssize_t n;
  if (shim__cfg.trace_fd < 0)
    return;
  /* put() kept room for the closing brace and newline; an overflowed
   * line may end inside an array, so close that too. */
  if (j->overflow && j->len > 0 && memchr(j->buf, '[', j->len) != NULL &&
      j->buf[j->len - 1] != ']') {
    char *last = strrchr(j->buf, ',');
    if (last != NULL && last > strrchr(j->buf, '['))
      j->len = (size_t)(last - j->buf);
    j->buf[j->len++] = ']';
  }
  j->buf[j->len++] = '}';
  j->buf[j->len++] = '\n';
  do
    n = write(shim__cfg.trace_fd, j->buf, j->len);
  while (n < 0 && errno == EINTR);
  errno = saved;
}
