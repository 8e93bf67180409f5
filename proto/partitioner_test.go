package proto

import "testing"

func TestMurmur2KafkaVectors(t *testing.T) {
	for in, want := range map[string]int32{"21": -973932308, "foobar": -790332482, "abc": 479470107} {
		if got := Murmur2([]byte(in)); got != want {
			t.Errorf("Murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}
