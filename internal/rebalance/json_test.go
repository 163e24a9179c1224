package rebalance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEventJSON(t *testing.T) {
	e := Event{Group: "g", Joined: []MemberRef{{MemberID: "m", ClientID: "c"}}, Duration: 1500 * time.Millisecond, DurationKnown: true}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"group":"g"`, `"member_id":"m"`, `"duration_seconds":1.5`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	if strings.Contains(string(b), "1500000000") {
		t.Errorf("duration leaked as nanoseconds: %s", b)
	}
	e.DurationKnown = false
	if b, _ = json.Marshal(e); strings.Contains(string(b), "duration_seconds") {
		t.Errorf("unknown duration exported: %s", b)
	}
}
