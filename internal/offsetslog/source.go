package offsetslog

import (
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
)

// SourceName is the name of Source, as the generation_source label and
// rebalance.GroupStats.GenerationSource report it.
const SourceName = "consumer_offsets"

// Source is the rebalance.GenerationSource of the log: a classic group's
// generation from its latest GroupMetadata record. It is exact, the
// coordinator's own record, so it goes before the KIP-792 member
// metadata in the tracker's sources. It answers only when it knows: the
// group is classic, its latest GroupMetadata was read and decoded, and
// the partition holding it is live and caught up; otherwise the tracker
// asks the next source.
type Source struct {
	view func() *View
}

var _ rebalance.GenerationSource = Source{}

// Source returns the reader's generation source.
func (r *Reader) Source() Source { return Source{view: r.View} }

// NewSource returns a Source reading views from view, for tests of what
// consumes it.
func NewSource(view func() *View) Source { return Source{view: view} }

// Name implements rebalance.GenerationSource.
func (Source) Name() string { return SourceName }

// Scale implements rebalance.GenerationScale: the log's generations are
// the ones KIP-792 member metadata claims, so the tracker carries its
// count on when one source takes over from the other.
func (Source) Scale() string { return rebalance.ScaleClassicGeneration }

// Generation implements rebalance.GenerationSource.
func (s Source) Generation(g *cluster.Group) (int32, bool) {
	if g == nil || (g.Type != cluster.GroupTypeClassic && g.Type != "") || s.view == nil {
		return 0, false
	}
	v := s.view()
	lg, ok := v.Group(g.Name)
	if !ok || lg.Metadata == nil || !v.Live(lg.Partition) {
		return 0, false
	}
	return lg.Metadata.Generation, true
}
