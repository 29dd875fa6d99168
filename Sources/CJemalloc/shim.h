#ifndef CJEMALLOC_SHIM_H
#define CJEMALLOC_SHIM_H

#include <stddef.h>

// Debian's libjemalloc is built without a symbol prefix, so linking it replaces the
// process's malloc. Only the control interface is declared here: including
// <jemalloc/jemalloc.h> would redeclare malloc and clash with the C library's headers.
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

#endif
