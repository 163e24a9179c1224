package realkafka

import (
	"reflect"
	"testing"
)

// The tables below are kafka-consumer-groups output captured from Kafka
// 4.1.1 and 3.9.1.
const stateOut = `
GROUP           COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE                #MEMBERS
g1              127.0.0.1:19092  (1)      range                Stable               1

GROUP           COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE                #MEMBERS
idle            127.0.0.1:19094  (3)      -                    Empty                0
`

const membersOut = `
GROUP           CONSUMER-ID            HOST            CLIENT-ID       #PARTITIONS     CURRENT-EPOCH   CURRENT-ASSIGNMENT   TARGET-EPOCH    TARGET-ASSIGNMENT   
g2              vJBHL2MoT_ShyJHXXQXkqQ /127.0.0.1      consumer-g2-1   4               1               t1:0,1,2,3           1               t1:0,1,2,3          
`

const oldMembersOut = `
GROUP           CONSUMER-ID                                        HOST            CLIENT-ID       #PARTITIONS     ASSIGNMENT
old-g           old-m0-2c07b792-2e7b-4e6d-9b25-d5a3d547d5ef        /127.0.0.1      old-m0          3               old-t(0,1,2)
`

func TestParseState(t *testing.T) {
	rows := ParseTables(stateOut)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	if rows[0]["COORDINATOR (ID)"] != "127.0.0.1:19092  (1)" || rows[0]["ASSIGNMENT-STRATEGY"] != "range" || rows[1]["STATE"] != "Empty" || rows[1]["#MEMBERS"] != "0" {
		t.Errorf("rows %v", rows)
	}
}

func TestParseMembers(t *testing.T) {
	rows := ParseTables(membersOut)
	if len(rows) != 1 || rows[0]["CURRENT-EPOCH"] != "1" || rows[0]["CLIENT-ID"] != "consumer-g2-1" {
		t.Fatalf("rows %v", rows)
	}
	want := map[string][]int32{"t1": {0, 1, 2, 3}}
	if got := ParseAssignment(rows[0]["TARGET-ASSIGNMENT"]); !reflect.DeepEqual(got, want) {
		t.Errorf("assignment %v", got)
	}
	old := ParseTables(oldMembersOut)
	if got := ParseAssignment(old[0]["ASSIGNMENT"]); !reflect.DeepEqual(got, map[string][]int32{"old-t": {0, 1, 2}}) {
		t.Errorf("3.x assignment %v", got)
	}
	if got := ParseAssignment("(0,1,2,3)"); !reflect.DeepEqual(got, map[string][]int32{"": {0, 1, 2, 3}}) {
		t.Errorf("3.9 assignment without topic %v", got)
	}
	if got := ParseAssignment("a:0,1;b:2"); !reflect.DeepEqual(got, map[string][]int32{"a": {0, 1}, "b": {2}}) {
		t.Errorf("two topics %v", got)
	}
	if got := ParseAssignment("a(0,1),b(2)"); !reflect.DeepEqual(got, map[string][]int32{"a": {0, 1}, "b": {2}}) {
		t.Errorf("two topics, 3.x %v", got)
	}
}
