package rebalance

import (
	"math"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// Names of the built-in generation sources, as GroupStats.GenerationSource
// and the generation_source label report them.
const (
	SourceKIP848Epoch    = "kip848_epoch"
	SourceKIP792Metadata = "kip792_member_metadata"
)

// GenerationSource reads a group's current generation from one kind of
// evidence. The tracker asks its sources in order and uses the first that
// answers ok, so a more exact source goes first. A source answers ok only
// when it is confident the value is the group's generation right now; it
// must never guess.
type GenerationSource interface {
	Name() string
	Generation(g *cluster.Group) (gen int32, ok bool)
}

// GenerationScale is implemented by a source whose values measure a
// quantity other sources measure too: readings of two sources on one
// scale are compared when the answering source changes, so the count
// carries on instead of restarting. A source without it is its own scale.
type GenerationScale interface {
	Scale() string
}

// ScaleClassicGeneration is the generation ID of a classic group, as its
// coordinator numbers them: what KIP-792 member metadata claims and what
// the coordinator's GroupMetadata records say.
const ScaleClassicGeneration = "classic_generation"

// memberHint marks a source whose answer is what group members claim
// about themselves (untrusted input): the tracker then believes a delta
// only as far as the claims of members seen at both readings agree.
type memberHint interface {
	memberHint()
}

// DefaultSources returns the sources available from group descriptions
// alone, most exact first.
func DefaultSources() []GenerationSource {
	return []GenerationSource{KIP848Epoch{}, KIP792Metadata{}}
}

// KIP848Epoch reads the group epoch that ConsumerGroupDescribe reports for
// KIP-848 groups. It is exact: the coordinator bumps it once per change of
// membership or subscriptions, which is what a rebalance is there.
type KIP848Epoch struct{}

func (KIP848Epoch) Name() string { return SourceKIP848Epoch }

func (KIP848Epoch) Generation(g *cluster.Group) (int32, bool) {
	if g.Type != cluster.GroupTypeConsumer {
		return 0, false
	}
	return g.GroupEpoch, true
}

// KIP792Metadata derives a classic group's generation from the generation
// each member put in its subscription metadata (KIP-792, consumer protocol
// v2+). Every member re-sends its metadata on every JoinGroup, carrying the
// generation it held before that join, and the join completes into the next
// generation; so a member that survived the last rebalance carries exactly
// current-1, and members that joined fresh carry -1. Hence max+1 whenever a
// member survived, and no answer when none did (for instance right after
// the group was Empty).
//
// Only Stable descriptions are used: during PreparingRebalance the members
// that already rejoined carry the generation being left (max+1 would be the
// generation about to start), and brokers describe members without metadata
// outside Stable anyway.
//
// The value is a hint, not a fact: a member picks what it sends. Some
// clients (franz-go) also keep their old generation when they rejoin
// under a new member ID after being removed, so with no survivor the
// max+1 trails the group. The tracker treats this source accordingly (see
// the package documentation).
type KIP792Metadata struct{}

func (KIP792Metadata) Name() string { return SourceKIP792Metadata }

func (KIP792Metadata) memberHint() {}

// Scale implements GenerationScale.
func (KIP792Metadata) Scale() string { return ScaleClassicGeneration }

func (KIP792Metadata) Generation(g *cluster.Group) (int32, bool) {
	if g.Type == cluster.GroupTypeConsumer || g.State != "Stable" {
		return 0, false
	}
	highest := int32(-1)
	for i := range g.Members {
		highest = max(highest, g.Members[i].Generation)
	}
	if highest < 0 || highest == math.MaxInt32 {
		return 0, false
	}
	return highest + 1, true
}
