package io.github.stratalog.strata.kafka;

import io.github.stratalog.strata.kafka.grpc.Generation;
import io.github.stratalog.strata.kafka.grpc.RemoteLogMetadataServiceGrpc;
import io.github.stratalog.strata.kafka.grpc.WatchGenerationsRequest;
import io.github.stratalog.strata.kafka.grpc.WatchGenerationsResponse;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientResponseObserver;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * remoteLogSegmentMetadata's answers kept on the JVM, so that a lookup the cache holds costs a
 * map lookup instead of a call to strata serve (a broker asks for every remote fetch).
 *
 * <p>What it keeps is exact. strata serve answers a lookup with the offsets [from, to] of the
 * epoch over which the same segment is the answer, and the change generation of the
 * partition's stripe read before the state the answer came from. An entry answers offsets in
 * its interval while its generation is at least the newest the cache knows for its stripe;
 * the cache learns generations from strata serve's WatchGenerations stream (every Apply that
 * changed a partition, its own writes and records read from the metadata topic alike) and from
 * the replies to this plugin's writes, which carry the generation after their record is
 * applied and raise the stripe's before the write's future completes. So:
 * <ul>
 * <li>a lookup after one of this plugin's writes has completed never gets an answer from
 * before it (an answer older than the write's generation is neither returned nor kept);
 * <li>a change applied from the topic reaches the cache after the stream's delay, as a record
 * reaches Kafka's own manager after its consumer thread's: Kafka's manager answers from a
 * cache its consumer updates asynchronously too.
 * </ul>
 * A stripe holds every partition that hashes to it, so a change to one drops the answers of
 * the others too: that only costs calls. An answer with a generation older than its stripe's is
 * dropped when found; the bound on entries holds the memory whatever is stale.
 *
 * <p>While the stream is not live (before its first message, after it ends) the cache answers
 * nothing, keeps nothing and is emptied: a missed change cannot be told from none. One cache
 * serves one connection: a restarted strata serve, whose generations start again, gets a new
 * connection and an empty cache. Only answers that name a segment are kept.
 */
final class LookupCache extends Watch<WatchGenerationsRequest, WatchGenerationsResponse> {
    /** The stripes strata serve counts generations in (cache.GenerationStripes). */
    static final int STRIPES = 256;

    private record Key(Uuid topicId, int partition, int epoch) {
    }

    private record Slot(Key key, long from) {
    }

    private record Entry(Slot slot, long to, int stripe, long generation, RemoteLogSegmentMetadata segment) {
    }

    private final int maxEntries;
    // All guarded by lock (Watch's).
    private final long[] known = new long[STRIPES];
    /** Every entry, least recently used first: the bound on memory. */
    private final LinkedHashMap<Slot, Entry> lru;
    /** The entries of each partition and epoch by the first offset they answer, to find an offset's. */
    private final Map<Key, TreeMap<Long, Entry>> index = new HashMap<>();
    private boolean live;
    /** Counts the times the cache was emptied: an answer asked for before it is not kept. */
    private long resets;
    private long hits, misses;

    /** A cache of at most maxEntries answers; 0 keeps none and never watches. */
    LookupCache(int maxEntries) {
        super("generation stream", "lookups go to the server");
        this.maxEntries = maxEntries;
        this.lru = new LinkedHashMap<>(16, 0.75f, true);
    }

    boolean enabled() {
        return maxEntries > 0;
    }

    /** What a lookup notes before its call, for put: the cache's state then. */
    long token() {
        synchronized (lock) {
            return live ? resets : -1;
        }
    }

    /** The segment the cache holds for offset in epoch of tp, or null when it holds none. */
    RemoteLogSegmentMetadata get(TopicIdPartition tp, int epoch, long offset) {
        if (maxEntries == 0) {
            return null;
        }
        Key k = new Key(tp.topicId(), tp.partition(), epoch);
        synchronized (lock) {
            if (!live) {
                misses++;
                return null;
            }
            TreeMap<Long, Entry> es = index.get(k);
            Map.Entry<Long, Entry> f = es == null ? null : es.floorEntry(offset);
            if (f == null || offset > f.getValue().to) {
                misses++;
                return null;
            }
            Entry e = f.getValue();
            if (e.generation < known[e.stripe]) {
                removeLocked(e);
                misses++;
                return null;
            }
            lru.get(e.slot); // most recently used
            hits++;
            return e.segment;
        }
    }

    /**
     * Keeps an answer that holds for [from, to] of epoch at generation g of stripe, asked for
     * when token() was token, unless the cache was emptied since or knows a newer generation.
     */
    void put(long token, TopicIdPartition tp, int epoch, long from, long to, Generation g, RemoteLogSegmentMetadata segment) {
        if (maxEntries == 0 || token < 0 || g.getStripe() >= STRIPES || from > to) {
            return;
        }
        Key k = new Key(tp.topicId(), tp.partition(), epoch);
        synchronized (lock) {
            if (!live || resets != token || g.getGeneration() < known[g.getStripe()]) {
                return;
            }
            Slot s = new Slot(k, from);
            Entry old = lru.get(s);
            if (old != null) {
                removeLocked(old);
            }
            Entry e = new Entry(s, to, g.getStripe(), g.getGeneration(), segment);
            lru.put(s, e);
            index.computeIfAbsent(k, x -> new TreeMap<>()).put(from, e);
            while (lru.size() > maxEntries) {
                removeLocked(lru.values().iterator().next());
            }
        }
    }

    /** Raises a stripe's generation to g: its entries older than g are no answer any more. */
    void advance(Generation g) {
        if (maxEntries == 0 || g == null || g.getStripe() >= STRIPES) {
            return;
        }
        synchronized (lock) {
            known[g.getStripe()] = Math.max(known[g.getStripe()], g.getGeneration());
        }
    }

    /** Empties the cache: what it holds may be older than a change it did not hear of. */
    void reset() {
        synchronized (lock) {
            clearLocked();
        }
    }

    long hits() {
        synchronized (lock) {
            return hits;
        }
    }

    long misses() {
        synchronized (lock) {
            return misses;
        }
    }

    int size() {
        synchronized (lock) {
            return lru.size();
        }
    }

    boolean live() {
        synchronized (lock) {
            return live;
        }
    }

    private void removeLocked(Entry e) {
        lru.remove(e.slot);
        TreeMap<Long, Entry> es = index.get(e.slot.key);
        if (es != null && es.get(e.slot.from) == e) {
            es.remove(e.slot.from);
            if (es.isEmpty()) {
                index.remove(e.slot.key);
            }
        }
    }

    private void clearLocked() {
        lru.clear();
        index.clear();
        resets++;
    }

    /** Starts the generation stream on channel unless it is under way or the cache is off. */
    @Override
    void start(ManagedChannel channel) {
        if (maxEntries > 0) {
            super.start(channel);
        }
    }

    @Override
    protected void open(ManagedChannel channel, ClientResponseObserver<WatchGenerationsRequest, WatchGenerationsResponse> observer) {
        // Waits for the channel to connect (see Watch#start).
        RemoteLogMetadataServiceGrpc.newStub(channel).withWaitForReady()
                .watchGenerations(WatchGenerationsRequest.getDefaultInstance(), observer);
    }

    @Override
    protected void takeLocked(WatchGenerationsResponse r) {
        for (Generation g : r.getGenerationsList()) {
            if (g.getStripe() < STRIPES) {
                known[g.getStripe()] = Math.max(known[g.getStripe()], g.getGeneration());
            }
        }
        // Live from the first message on: it holds every stripe's generation.
        live = true;
    }

    /** Ended or closed: the cache answers nothing, keeps nothing and is emptied. */
    @Override
    protected void endLocked() {
        live = false;
        clearLocked();
    }
}
