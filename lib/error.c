/* Error codes: negative errno values and the library's own range, both
 * described by ds_strerror() and named by ds_err_name(). */
#include "dualstack.h"

#include <errno.h>
#include <string.h>

const char *ds_strerror(int err)
{
  switch (err) {
#define DS__ERR_TEXT(name, val, text)                                          \
  case DS_##name:                                                              \
    return text;
    DS_ERRNO_MAP(DS__ERR_TEXT)
#undef DS__ERR_TEXT
  case 0:
    return "success";
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    const char *s = strerrordesc_np(-err);
    if (s != NULL)
      return s;
  }
  return "unknown error";
}

const char *ds_err_name(int err)
{
  switch (err) {
#define DS__ERR_NAME(name, val, text)                                          \
  case DS_##name:                                                              \
    return "DS_" #name;
    DS_ERRNO_MAP(DS__ERR_NAME)
#undef DS__ERR_NAME
  case 0:
    return "OK";
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    const char *s = strerrorname_np(-err);
    if (s != NULL)
      return s;
  }
  return "UNKNOWN";
}
