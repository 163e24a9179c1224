package realkafka

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// OffsetRow is one line of `kafka-consumer-groups --describe`.
type OffsetRow struct {
	Group, Topic string
	Partition    int32
	Current      int64 // -1 for "-": no committed offset
	LogEnd       int64
	Lag          int64 // -1 for "-"
	ConsumerID   string
	Host         string
	ClientID     string
}

// StateRow is one line of `kafka-consumer-groups --describe --state`.
type StateRow struct {
	Group         string
	Coordinator   string // host:port
	CoordinatorID int32
	Assignor      string // "" for the tool's "-" (no protocol: Empty)
	State         string
	Members       int
}

// MemberRow is one line of `kafka-consumer-groups --describe --members
// --verbose`.
type MemberRow struct {
	Group, ConsumerID, Host, ClientID string
	Partitions                        int
	Assignment                        map[string][]int32
	// CurrentEpoch and TargetEpoch are KIP-848 member epochs, -1 for "-"
	// (classic groups) or when the broker's tool has no such column (3.x).
	CurrentEpoch, TargetEpoch int32
	TargetAssignment          map[string][]int32
}

// groupArgs selects groups for ConsumerGroupCommand: the named ones, or all.
func groupArgs(groups []string) []string {
	if len(groups) == 0 {
		return []string{"--all-groups"}
	}
	var args []string
	for _, g := range groups {
		args = append(args, "--group", g)
	}
	return args
}

func (c *Cluster) describe(ctx context.Context, extra []string, groups []string) ([]map[string]string, error) {
	args := append([]string{"--bootstrap-server", Bootstrap(c.Plaintext), "--describe"}, extra...)
	out, err := c.RunJava(ctx, ConsumerGroupCommand, append(args, groupArgs(groups)...)...)
	if err != nil {
		return nil, err
	}
	return ParseTables(out), nil
}

// DescribeOffsets runs `kafka-consumer-groups --describe` on groups (all
// when none).
func (c *Cluster) DescribeOffsets(ctx context.Context, groups ...string) ([]OffsetRow, error) {
	rows, err := c.describe(ctx, nil, groups)
	if err != nil {
		return nil, err
	}
	var out []OffsetRow
	for _, r := range rows {
		p, err := strconv.Atoi(r["PARTITION"])
		if err != nil {
			return nil, fmt.Errorf("describe: partition %q: %v", r["PARTITION"], err)
		}
		out = append(out, OffsetRow{
			Group: r["GROUP"], Topic: r["TOPIC"], Partition: int32(p),
			Current: dashInt(r["CURRENT-OFFSET"]), LogEnd: dashInt(r["LOG-END-OFFSET"]), Lag: dashInt(r["LAG"]),
			ConsumerID: r["CONSUMER-ID"], Host: r["HOST"], ClientID: r["CLIENT-ID"],
		})
	}
	return out, nil
}

// DescribeState runs `kafka-consumer-groups --describe --state`.
func (c *Cluster) DescribeState(ctx context.Context, groups ...string) ([]StateRow, error) {
	rows, err := c.describe(ctx, []string{"--state"}, groups)
	if err != nil {
		return nil, err
	}
	var out []StateRow
	for _, r := range rows {
		coord := r["COORDINATOR (ID)"]
		addr, id, _ := strings.Cut(coord, " ")
		n, _ := strconv.Atoi(r["#MEMBERS"])
		out = append(out, StateRow{
			Group: r["GROUP"], Coordinator: addr, CoordinatorID: int32(dashInt(strings.Trim(strings.TrimSpace(id), "()"))),
			Assignor: strings.TrimPrefix(r["ASSIGNMENT-STRATEGY"], "-"), State: r["STATE"], Members: n,
		})
	}
	return out, nil
}

// DescribeMembers runs `kafka-consumer-groups --describe --members --verbose`.
func (c *Cluster) DescribeMembers(ctx context.Context, groups ...string) ([]MemberRow, error) {
	rows, err := c.describe(ctx, []string{"--members", "--verbose"}, groups)
	if err != nil {
		return nil, err
	}
	var out []MemberRow
	for _, r := range rows {
		n, _ := strconv.Atoi(r["#PARTITIONS"])
		assign := r["CURRENT-ASSIGNMENT"]
		if _, ok := r["ASSIGNMENT"]; ok { // Kafka 3.x
			assign = r["ASSIGNMENT"]
		}
		out = append(out, MemberRow{
			Group: r["GROUP"], ConsumerID: r["CONSUMER-ID"], Host: r["HOST"], ClientID: r["CLIENT-ID"], Partitions: n,
			Assignment:   ParseAssignment(assign),
			CurrentEpoch: int32(dashInt(orDash(r["CURRENT-EPOCH"]))), TargetEpoch: int32(dashInt(orDash(r["TARGET-EPOCH"]))),
			TargetAssignment: ParseAssignment(r["TARGET-ASSIGNMENT"]),
		})
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashInt(s string) int64 {
	if s == "-" || s == "" {
		return -1
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -2
	}
	return v
}

// ParseAssignment parses the tool's assignment column: "t1:0,1,2;t2:0"
// (Kafka 4.x) or "t1(0,1,2),t2(0)" (3.x); "-" and "" are empty. Kafka
// 3.9's tool prints the partitions without the topic ("(0,1,2)"): those go
// under the topic "".
func ParseAssignment(s string) map[string][]int32 {
	out := map[string][]int32{}
	if s == "-" || s == "" {
		return out
	}
	if strings.Contains(s, "(") {
		s = oldAssignment.ReplaceAllString(s, "$1:$2;")
	}
	topic := ""
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		if t, p, ok := strings.Cut(tok, ":"); ok {
			topic, tok = t, p
		}
		if p, err := strconv.Atoi(tok); err == nil {
			out[topic] = append(out[topic], int32(p))
		}
	}
	for t := range out {
		sort.Slice(out[t], func(i, j int) bool { return out[t][i] < out[t][j] })
	}
	return out
}

// oldAssignment matches one "topic(0,1,2)" of Kafka 3.x.
var oldAssignment = regexp.MustCompile(`,?([^,(]*)\(([0-9,]*)\)`)

// ParseTables parses ConsumerGroupCommand's tables: blocks separated by
// blank lines, each a header line starting with "GROUP" and rows aligned
// under it. A cell is the text from its header's column start to the next
// header's; other lines (notes such as "has no active members") are skipped.
func ParseTables(out string) []map[string]string {
	var rows []map[string]string
	var cols []column
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			cols = nil
			continue
		}
		if strings.HasPrefix(line, "GROUP ") {
			cols = headerColumns(line)
			continue
		}
		if cols == nil {
			continue
		}
		rows = append(rows, cells(line, cols))
	}
	return rows
}

type column struct {
	name  string
	start int
}

// headerColumns finds the column names and starts; "COORDINATOR (ID)" is
// the one name with a space.
func headerColumns(h string) []column {
	var cols []column
	i := 0
	for i < len(h) {
		for i < len(h) && h[i] == ' ' {
			i++
		}
		if i >= len(h) {
			break
		}
		j := i
		for j < len(h) && h[j] != ' ' {
			j++
		}
		name := h[i:j]
		if name == "COORDINATOR" && strings.HasPrefix(h[j:], " (ID)") {
			j += len(" (ID)")
			name = "COORDINATOR (ID)"
		}
		cols = append(cols, column{name: name, start: i})
		i = j
	}
	return cols
}

// cells cuts a row by the header's columns. A value longer than its column
// pushes the rest right, so each cell is taken from the row's own field
// boundaries nearest to the header's starts.
func cells(line string, cols []column) map[string]string {
	row := map[string]string{}
	for k, c := range cols {
		start := fieldStart(line, c.start)
		end := len(line)
		if k+1 < len(cols) {
			end = fieldStart(line, cols[k+1].start)
		}
		if start > len(line) || start > end {
			row[c.name] = ""
			continue
		}
		row[c.name] = strings.TrimSpace(line[start:end])
	}
	return row
}

// fieldStart is pos moved left to the start of the word it falls in.
func fieldStart(line string, pos int) int {
	if pos >= len(line) {
		return len(line)
	}
	for pos > 0 && line[pos-1] != ' ' {
		pos--
	}
	return pos
}
