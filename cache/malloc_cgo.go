//go:build linux && cgo

package cache

/*
#include <malloc.h>
#include <stdlib.h>

// How many arenas glibc's allocator may use: see mallocArenas.
#define STRATA_MALLOC_ARENAS 2

static int strata_arenas_limited;

// glibc fixes its arena limit the first time a second thread allocates, which the Go runtime's
// own thread starts do before any Go code runs: the limit has to be set before that, when the
// program is loaded. MALLOC_ARENA_MAX, when set, is left to decide.
__attribute__((constructor)) static void strata_limit_arenas(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		strata_arenas_limited = mallopt(M_ARENA_MAX, STRATA_MALLOC_ARENAS) == 1;
	}
#endif
}

static int strata_get_arenas_limited(void) { return strata_arenas_limited; }

static int strata_has_arena_max(void) {
#ifdef M_ARENA_MAX
	return 1;
#else
	return 0;
#endif
}
*/
import "C"

// mallocArenas is how many arenas glibc's allocator may use in a program that links this
// package (set when the program loads, see strata_limit_arenas). Pebble allocates its memtables
// and block cache with C's malloc, from whatever threads the Go runtime runs it on, and glibc
// gives threads arenas of their own, up to 8 per core, each keeping memory freed into it: a cold
// load of 4M events held 31-34 MiB besides the Go heap, memtables and block cache (4 rounds),
// 26 MiB with 2 arenas (2 rounds; the CPU time no higher), and at 1M events the same ~24 MiB
// either way, so the peak grows less with history. The MALLOC_ARENA_MAX environment variable,
// when set, is left to decide.
const mallocArenas = C.STRATA_MALLOC_ARENAS

// arenasLimited reports whether mallocArenas was applied.
func arenasLimited() bool { return C.strata_get_arenas_limited() == 1 }

// canLimitArenas reports whether the C library has the setting (glibc does, musl does not).
func canLimitArenas() bool { return C.strata_has_arena_max() == 1 }
