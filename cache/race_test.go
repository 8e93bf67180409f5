//go:build race

package cache

// raceEnabled lowers the default sizes of the randomized tests: the race detector slows Pebble
// about tenfold.
const raceEnabled = true
