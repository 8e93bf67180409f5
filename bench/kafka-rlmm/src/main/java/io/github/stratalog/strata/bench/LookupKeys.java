package io.github.stratalog.strata.bench;

/**
 * The lookup keys of the lookup workload: SplitMix64 from the workload's seed, two draws a key
 * (user partition index, then offset), each reduced modulo its range as an unsigned number.
 * bench/internal/workload implements the same generator in Go, so both sides look up the same
 * keys in the same order; the checksum of what each side found proves it.
 */
final class LookupKeys {
    private long state;

    LookupKeys(long seed) {
        this.state = seed;
    }

    long next() {
        state += 0x9E3779B97F4A7C15L;
        long z = state;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** A value in [0, bound), bound > 0. */
    long below(long bound) {
        return Long.remainderUnsigned(next(), bound);
    }
}
