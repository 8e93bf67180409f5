//go:build linux && cgo

package cache

import (
	"os"
	"testing"
)

// TestMallocArenas checks that a program linking the package limits glibc's malloc arenas, unless the
// environment chose (see mallocArenas).
func TestMallocArenas(t *testing.T) {
	if _, set := os.LookupEnv("MALLOC_ARENA_MAX"); set {
		t.Skip("MALLOC_ARENA_MAX is set: the store leaves it to decide")
	}
	if !canLimitArenas() {
		t.Skip("the C library has no M_ARENA_MAX")
	}
	if !arenasLimited() {
		t.Fatalf("malloc arenas not limited to %d", mallocArenas)
	}
}
