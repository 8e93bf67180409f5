package rlmm

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// fillSegments publishes n segments of each of parts user partitions of topic "foo" straight to the
// metadata topic, as another broker's manager would have.
func fillSegments(t *testing.T, c *kfake.Cluster, parts int32, n int) []proto.TopicIDPartition {
	t.Helper()
	cl := rawClient(t, c)
	var tps []proto.TopicIDPartition
	for p := int32(0); p < parts; p++ {
		tp := proto.TopicIDPartition{TopicID: topicID, Topic: "foo", Partition: p}
		tps = append(tps, tp)
		vals := make([][]byte, 0, n)
		for i := 0; i < n; i++ {
			b, err := proto.Encode(segment(tp, int64(i)*100, int64(i)*100+99))
			if err != nil {
				t.Fatal(err)
			}
			vals = append(vals, b)
		}
		produceRaw(t, cl, proto.MetadataPartition(tp, 5), vals...)
	}
	return tps
}

// loadAll starts a manager on dir, assigns tps, waits until they are ready and returns how many
// segments each has.
func loadAll(t *testing.T, m *Manager, tps []proto.TopicIDPartition) map[proto.TopicIDPartition]int {
	t.Helper()
	ctx := ctxT(t)
	if err := m.AssignPartitions(ctx, tps, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx, tps...); err != nil {
		t.Fatal(err)
	}
	out := map[proto.TopicIDPartition]int{}
	for _, tp := range tps {
		segs, err := m.Segments(tp)
		if err != nil {
			t.Fatalf("Segments(%s): %v", tp, err)
		}
		out[tp] = len(segs)
	}
	return out
}

// flipLargestTable xors 4 KiB in the middle of the largest table of the store in dir.
func flipLargestTable(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	best, size := "", int64(0)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".sst") && fi.Size() > size {
			best, size = e.Name(), fi.Size()
		}
	}
	if size < 16<<10 {
		t.Fatalf("largest table %q is %d bytes: too small to damage one block", best, size)
	}
	path := filepath.Join(dir, best)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := size / 2; i < size/2+4096; i++ {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return best
}

func observed(t *testing.T) (Option, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	return WithLogger(zap.New(core)), logs
}

func warned(logs *observer.ObservedLogs, substr string) bool {
	for _, e := range logs.All() {
		if strings.Contains(e.Message, substr) {
			return true
		}
	}
	return false
}

// TestNewMovesDamagedStoreAsideAndRebuilds: a store damaged while no manager ran (a table
// truncated, a MANIFEST lost) is moved aside at New, one copy kept, and rebuilt from the topic.
func TestNewMovesDamagedStoreAsideAndRebuilds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"table truncated", func(t *testing.T, dir string) {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".sst") {
					fi, _ := e.Info()
					os.Truncate(filepath.Join(dir, e.Name()), fi.Size()/2)
					return
				}
			}
			t.Fatal("no table")
		}},
		{"MANIFEST missing", func(t *testing.T, dir string) {
			ms, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
			if len(ms) == 0 {
				t.Fatal("no MANIFEST")
			}
			for _, m := range ms {
				os.Remove(m)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			dir := filepath.Join(t.TempDir(), "store")
			m := newManager(t, c, dir)
			tps := fillSegments(t, c, 4, 50)
			want := loadAll(t, m, tps)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)
			for round := 0; round < 2; round++ { // the second time, an earlier copy is replaced
				logOpt, logs := observed(t)
				m = newManager(t, c, dir, logOpt)
				if got := loadAll(t, m, tps); !equalCounts(got, want) {
					t.Fatalf("after rebuilding: %v segments, want %v", got, want)
				}
				if round == 0 && !warned(logs, "moved aside") {
					t.Errorf("no warning that the store was moved aside: %v", logs.All())
				}
				m.Close()
				tc.damage(t, dir)
			}
			if _, err := os.Stat(dir + ".damaged"); err != nil {
				t.Errorf("no copy of the damaged store kept: %v", err)
			}
			ents, _ := os.ReadDir(filepath.Dir(dir))
			if len(ents) != 2 {
				t.Errorf("beside the store: %d entries, want the store and one damaged copy", len(ents))
			}
		})
	}
}

func storeOf(m *Manager) *cache.Store { return m.store }

func equalCounts(a, b map[proto.TopicIDPartition]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDamageWhileRunningReplacesTheStore: a read that meets a bad block fails with
// cache.ErrCorrupt naming the file and never panics; the manager then replaces the store, its
// partitions are not ready until re-read, and then answer as before.
func TestDamageWhileRunningReplacesTheStore(t *testing.T) {
	c := newCluster(t)
	dir := filepath.Join(t.TempDir(), "store")
	m := newManager(t, c, dir)
	tps := fillSegments(t, c, 6, 150)
	want := loadAll(t, m, tps)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	logOpt, logs := observed(t)
	m = newManager(t, c, dir, logOpt)
	file := flipLargestTable(t, dir)
	ctx := ctxT(t)
	if err := m.AssignPartitions(ctx, tps, nil); err != nil {
		t.Fatal(err)
	}
	var damageErr error
	deadline := time.Now().Add(20 * time.Second)
	for damageErr == nil && time.Now().Before(deadline) {
		for _, tp := range tps {
			if _, err := m.Segments(tp); errors.Is(err, cache.ErrCorrupt) {
				damageErr = err
				break
			}
		}
	}
	if damageErr == nil {
		// The damaged block was met by the loop's own reads (or not at all): the warning says.
		if !warned(logs, "damaged") {
			t.Fatalf("no read met the damaged block in %s and nothing warned", file)
		}
	} else if !strings.Contains(damageErr.Error(), file) {
		t.Errorf("the damage error %q does not name %s", damageErr, file)
	}
	if err := m.WaitReady(ctx, tps...); err != nil {
		t.Fatalf("after the damage: %v", err)
	}
	got := map[proto.TopicIDPartition]int{}
	for _, tp := range tps {
		segs, err := m.Segments(tp)
		if err != nil {
			t.Fatalf("Segments(%s) after rebuilding: %v", tp, err)
		}
		got[tp] = len(segs)
	}
	if !equalCounts(got, want) {
		t.Fatalf("after rebuilding: %v segments, want %v", got, want)
	}
	if !warned(logs, "replacing it and rebuilding") {
		t.Errorf("no warning that the store was replaced: %v", logs.All())
	}
	if _, err := os.Stat(dir + ".damaged"); err != nil {
		t.Errorf("no copy of the damaged store kept: %v", err)
	}
}

// TestStoreLockedByAnotherManager: a second manager on the same directory fails at once with
// cache.ErrLocked naming it.
func TestStoreLockedByAnotherManager(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	newManager(t, c, dir)
	_, err := New(ctxT(t), WithBootstrapServers(c.ListenAddrs()...), WithCacheDir(dir), WithMetadataPartitions(5),
		WithReplicationFactor(1), WithMinISR(1))
	if !errors.Is(err, cache.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("New on a held directory = %v, want cache.ErrLocked naming %s", err, dir)
	}
}

// TestStoreErrorWhileClusterUnreachable: the store opens while New reaches the cluster; a store
// that cannot open is New's error at once, not the initialization timeout of a cluster that
// does not answer.
func TestStoreErrorWhileClusterUnreachable(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	newManager(t, c, dir)
	// A closed port: nothing answers there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx := ctxT(t)
	_, err = New(ctx, WithBootstrapServers(addr), WithCacheDir(dir), WithMetadataPartitions(5),
		WithReplicationFactor(1), WithMinISR(1), WithInitRetry(100*time.Millisecond, 10*time.Minute))
	if !errors.Is(err, cache.ErrLocked) {
		t.Fatalf("New on a held directory and an unreachable cluster = %v, want cache.ErrLocked", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("New retried the cluster until its context ended (%v) instead of returning the store's error", ctx.Err())
	}
}

// TestRecreatedTopicEmptiesTheStore: the metadata topic deleted, created again and filled past
// the old offsets; a manager on the old store must show the new topic's segments only, not the
// deleted topic's, and not miss the first records of the new one.
func TestRecreatedTopicEmptiesTheStore(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	m := newManager(t, c, dir)
	old := fillSegments(t, c, 4, 20)
	if got := loadAll(t, m, old); got[old[0]] != 20 {
		t.Fatalf("loaded %v", got)
	}
	m.Close()

	adm := kadm.NewClient(rawClient(t, c))
	ctx := ctxT(t)
	if _, err := adm.DeleteTopic(ctx, proto.TopicName); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 5, 1, nil, proto.TopicName); err != nil {
		t.Fatal(err)
	}
	// Other user partitions, more records than before in each metadata partition.
	cl := rawClient(t, c)
	var fresh []proto.TopicIDPartition
	for p := int32(0); p < 4; p++ {
		tp := proto.TopicIDPartition{TopicID: proto.UUID{0: 9}, Topic: "bar", Partition: p}
		fresh = append(fresh, tp)
		var vals [][]byte
		for i := 0; i < 30; i++ {
			b, _ := proto.Encode(segment(tp, int64(i)*10, int64(i)*10+9))
			vals = append(vals, b)
		}
		produceRaw(t, cl, proto.MetadataPartition(tp, 5), vals...)
	}
	logOpt, logs := observed(t)
	m = newManager(t, c, dir, logOpt)
	got := loadAll(t, m, fresh)
	for _, tp := range fresh {
		if got[tp] != 30 {
			t.Errorf("%s: %d segments, want the 30 of the new topic", tp, got[tp])
		}
	}
	parts, err := m.View().Partitions()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Partition.Topic != "bar" {
			t.Errorf("the store still holds %s of the deleted topic", p.Partition)
		}
	}
	if !warned(logs, "another cluster or metadata topic") {
		t.Errorf("no warning that the store was emptied: %v", logs.All())
	}
}

// TestAnotherClustersCacheDir: a cache directory filled from one cluster (7 metadata
// partitions) and pointed at another (5) is emptied, not mixed.
func TestAnotherClustersCacheDir(t *testing.T) {
	a := newCluster(t, kfake.ClusterID("cluster-a"))
	b := newCluster(t, kfake.ClusterID("cluster-b"))
	dir := t.TempDir()
	ma := newManager(t, a, dir, WithMetadataPartitions(7))
	cl := rawClient(t, a)
	tpA := proto.TopicIDPartition{TopicID: proto.UUID{0: 1}, Topic: "only-in-a", Partition: 0}
	for i := 0; i < 5; i++ {
		v, _ := proto.Encode(segment(tpA, int64(i)*10, int64(i)*10+9))
		produceRaw(t, cl, proto.MetadataPartition(tpA, 7), v)
	}
	loadAll(t, ma, []proto.TopicIDPartition{tpA})
	ma.Close()

	logOpt, logs := observed(t)
	mb := newManager(t, b, dir, logOpt)
	tps := fillSegments(t, b, 2, 3)
	loadAll(t, mb, tps)
	parts, err := mb.View().Partitions()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Errorf("the store holds %v, want only cluster-b's 2 partitions", parts)
	}
	id, ok, err := storeOf(mb).Identity()
	if err != nil || !ok || id.ClusterID != "cluster-b" || id.Partitions != 5 {
		t.Errorf("store identity = %v, %v, %v; want cluster-b with 5 partitions", id, ok, err)
	}
	if !warned(logs, "another cluster or metadata topic") {
		t.Errorf("no warning that the store was emptied: %v", logs.All())
	}
}
