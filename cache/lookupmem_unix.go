//go:build unix

package cache

import "syscall"

// lookupMemory returns n bytes of zeroed memory outside Go's heap: the garbage collector
// neither scans it nor counts it when it decides how far the heap may grow, so the lookup
// cache costs the process its budget and no more. The operating system backs a page only once
// it is written. free returns it.
func lookupMemory(n int) (mem []byte, free func(), err error) {
	mem, err = syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return mem, func() { _ = syscall.Munmap(mem) }, nil
}
