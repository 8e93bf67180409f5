//go:build integration && race

package integration

// raceEnabled says whether the tests were built with -race.
const raceEnabled = true
