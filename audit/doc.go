// Package audit checks what a cluster keeps in remote storage against its tiered-storage
// metadata, plans and carries out the repairs, and computes the tiered checkpoint: the point up
// to which remote storage holds every offset, which a backup or restore can rely on.
//
// It reads the metadata through a read-only view (Metadata, which the manager's store
// satisfies) and the storage through an rsm.Manager. Find never changes anything; Execute
// changes the metadata only through the manager's normal events (via package tier and the
// remover's FinishPartition), and deletes from storage only data that no live segment owns or
// that belongs to a segment whose deletion the events record.
//
// It is a library so that a broker can verify on a schedule, a backup tool can ask for the
// checkpoint, and the strata command only parses flags and prints.
package audit
