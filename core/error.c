/* error.c - status names, the version string and the error filler every
 * fallible call uses. */
#include <stdarg.h>
#include <stdio.h>

#include "maskdcpt.h"
#include "weights.h"

#define MDC_STR_(x) #x
#define MDC_STR(x) MDC_STR_(x)

maskdcpt_status mdc_set_error(maskdcpt_error *err, maskdcpt_status code, const char *fmt, ...) {
  if (!err)
    return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  if (n < 0) /* an encoding error: leave something readable rather than garbage */
    snprintf(err->message, sizeof err->message, "%s", maskdcpt_status_name(code));
  return code;
}

MASKDCPT_API const char *maskdcpt_status_name(maskdcpt_status status) {
  switch (status) {
  case MASKDCPT_OK:
    return "ok";
  case MASKDCPT_ERROR_INVALID_ARGUMENT:
    return "invalid argument";
  case MASKDCPT_ERROR_IO:
    return "input/output error";
  case MASKDCPT_ERROR_FORMAT:
    return "malformed weights file";
  case MASKDCPT_ERROR_UNSUPPORTED:
    return "unsupported";
  case MASKDCPT_ERROR_OUT_OF_MEMORY:
    return "out of memory";
  case MASKDCPT_ERROR_CANCELLED:
    return "cancelled";
  case MASKDCPT_ERROR_DEVICE:
    return "device error";
  }
  /* Values outside the enum can arrive from callers through casts. */
  return "unknown status";
}

MASKDCPT_API const char *maskdcpt_version_string(void) {
  return MDC_STR(MASKDCPT_VERSION_MAJOR) "." MDC_STR(MASKDCPT_VERSION_MINOR) "." MDC_STR(
      MASKDCPT_VERSION_MICRO);
}
