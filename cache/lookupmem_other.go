//go:build !unix

package cache

// lookupMemory returns n bytes of zeroed memory. Where there is no mmap it is Go's heap, which
// the garbage collector counts: between collections the process may hold up to twice the
// budget for it.
func lookupMemory(n int) (mem []byte, free func(), err error) {
	return make([]byte, n), func() {}, nil
}
