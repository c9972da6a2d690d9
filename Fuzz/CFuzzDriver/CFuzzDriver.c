// Declarations only (see include/CFuzzDriver.h); the driver itself comes with -sanitize=fuzzer.
#include "CFuzzDriver.h"
