// libzstd through pkg-config (Debian: libzstd-dev). Only the Sinks module imports this.
#include <zstd.h>
#include <zstd_errors.h>
