package template

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// Catch-up modes of a schedule: what the sweep does with the fire times an
// outage missed (docs/control-flow.md, "Schedules").
const (
	CatchUpLatest = "latest" // the default: one task, for the latest missed fire time
	CatchUpAll    = "all"    // one task per missed fire time (at most MaxCatchUp per sweep)
	CatchUpNone   = "none"   // none: the next fire time after now
)

// MinScheduleInterval is the shortest rate, and the shortest gap between
// two fire times of a cron, a schedule may have: the AWS sweep runs once a
// minute.
const MinScheduleInterval = time.Minute

// Schedule is one entry of a template's top-level schedules: a cron
// expression (with an optional IANA time zone) or a fixed rate.
type Schedule struct {
	Cron     string // five fields, e.g. "0 9 * * MON-FRI"; "" for a rate
	Timezone string // IANA name; "" = UTC
	Rate     time.Duration
	// Spec is the schedule as written ("cron(0 9 * * MON-FRI) Europe/Berlin",
	// "rate(5m0s)"); it identifies the schedule in the database, so a changed
	// schedule starts afresh.
	Spec string
	// Context is the context of every task the schedule starts ("{}" when absent).
	Context json.RawMessage
	CatchUp string

	sched cron.Schedule
	loc   *time.Location
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Next returns the first fire time strictly after t (the zero time for
// none, which a loaded schedule never gives: compile refuses it).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.Rate > 0 {
		// Rates are aligned on the Unix epoch, so every instance (and every
		// restart) agrees on the fire times.
		n := t.UTC().Truncate(s.Rate).Add(s.Rate)
		return n
	}
	return s.sched.Next(t.In(s.loc)).UTC()
}

// compile checks the schedule and readies Next; it returns a message for
// an invalid one.
func (s *Schedule) compile() (field, msg string) {
	switch {
	case s.Cron != "" && s.Rate > 0:
		return "rate", "give either cron or rate, not both"
	case s.Cron == "" && s.Rate == 0:
		return "cron", "a schedule needs a cron expression or a rate"
	case s.Rate > 0:
		if s.Timezone != "" {
			return "timezone", "only valid with cron"
		}
		if s.Rate < MinScheduleInterval || s.Rate%time.Minute != 0 {
			return "rate", fmt.Sprintf("must be a whole number of minutes, at least 1 minute, got %s", s.Rate)
		}
		s.Spec = "rate(" + s.Rate.String() + ")"
		return "", ""
	}
	loc := time.UTC
	if s.Timezone != "" {
		l, err := time.LoadLocation(s.Timezone)
		if err != nil || strings.EqualFold(s.Timezone, "local") {
			return "timezone", fmt.Sprintf("unknown time zone %q: want an IANA name like \"Europe/Berlin\"", s.Timezone)
		}
		loc = l
	}
	if strings.HasPrefix(strings.TrimSpace(s.Cron), "CRON_TZ=") || strings.HasPrefix(strings.TrimSpace(s.Cron), "TZ=") {
		return "cron", "give the time zone in the timezone field, not in the expression"
	}
	sc, err := cronParser.Parse(s.Cron)
	if err != nil {
		return "cron", fmt.Sprintf("invalid cron expression %q: %v (want five fields: minute hour day-of-month month day-of-week)", s.Cron, err)
	}
	s.sched, s.loc = sc, loc
	// robfig/cron gives up (the zero time) on an expression with no fire
	// time within five years, such as February 30th.
	if s.Next(time.Now()).IsZero() {
		return "cron", fmt.Sprintf("cron expression %q never fires", s.Cron)
	}
	// Every fire time is a whole minute; @every could be shorter.
	if strings.HasPrefix(strings.TrimSpace(s.Cron), "@every") {
		return "cron", "use rate for a fixed interval"
	}
	s.Spec = "cron(" + strings.Join(strings.Fields(s.Cron), " ") + ")"
	if s.Timezone != "" {
		s.Spec += " " + s.Timezone
	}
	return "", ""
}

// parseRate reads "5 minutes", "1 hour", "2 days" or a Go duration ("90m").
func parseRate(v string) (time.Duration, error) {
	f := strings.Fields(v)
	if len(f) == 2 {
		n, err := strconv.Atoi(f[0])
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("want a positive whole number before the unit, got %q", f[0])
		}
		unit := map[string]time.Duration{"minute": time.Minute, "minutes": time.Minute, "hour": time.Hour,
			"hours": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}[strings.ToLower(f[1])]
		if unit == 0 {
			return 0, fmt.Errorf("unknown unit %q: want minutes, hours or days", f[1])
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("want e.g. \"5 minutes\", \"1 hour\" or \"90m\", got %q", v)
	}
	return d, nil
}

// scheduleFields are the fields of one schedule.
var scheduleFields = newFieldTable(
	fieldSpec[Schedule]{name: "cron", apply: text(func(s *Schedule, v string) { s.Cron = strings.TrimSpace(v) })},
	fieldSpec[Schedule]{name: "timezone", aliases: []string{"time_zone"}, apply: text(func(s *Schedule, v string) { s.Timezone = strings.TrimSpace(v) })},
	fieldSpec[Schedule]{name: "rate", apply: func(s *Schedule, f field) {
		if v, ok := f.asString(); ok {
			d, err := parseRate(v)
			if err != nil {
				f.errf("%v", err)
				return
			}
			if d <= 0 {
				f.errf("must be positive, got %q", v)
				return
			}
			s.Rate = d
		}
	}},
	fieldSpec[Schedule]{name: "context", apply: func(s *Schedule, f field) {
		if resolve(f.kv.v).Kind != yaml.MappingNode {
			f.errf("must be a mapping (the task's context), got %s", describe(f.kv.v))
			return
		}
		v, err := toJSON(f.kv.v, 0)
		if err == nil {
			s.Context, err = json.Marshal(v)
		}
		if err != nil {
			f.errf("%v", err)
		}
	}},
	fieldSpec[Schedule]{name: "catch_up", apply: text(func(s *Schedule, v string) { s.CatchUp = strings.ToLower(strings.TrimSpace(v)) })},
)

// schedules reads the top-level schedules list.
func (p *parser) schedules(t *Template, kv *pair) {
	n := resolve(kv.v)
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, "", "schedules", "must be a list of schedules, got %s", describe(n))
		return
	}
	for i, sn := range n.Content {
		sn = resolve(sn)
		prefix := fmt.Sprintf("schedules[%d]", i)
		if sn.Kind != yaml.MappingNode {
			p.errf(sn.Line, "", prefix, "each schedule must be a mapping, got %s", describe(sn))
			continue
		}
		s := Schedule{Context: json.RawMessage("{}"), CatchUp: CatchUpLatest}
		for _, kv := range mapPairs(sn, p.dupKey("", prefix+".")) {
			name := prefix + "." + kv.key
			spec, known := scheduleFields.lookup(kv.key)
			switch {
			case !known:
				p.unknownField(kv.k.Line, "", name, kv.key, scheduleFields.known)
			case isNull(kv.v):
			default:
				spec.apply(&s, field{p: p, kv: kv, name: name})
			}
		}
		switch s.CatchUp {
		case CatchUpLatest, CatchUpAll, CatchUpNone:
		default:
			p.errf(sn.Line, "", prefix+".catch_up", "unknown catch-up mode %q: want %q, %q or %q", s.CatchUp, CatchUpLatest, CatchUpAll, CatchUpNone)
		}
		if f, msg := s.compile(); msg != "" {
			p.errf(sn.Line, "", prefix+"."+f, "%s", msg)
			continue
		}
		t.Schedules = append(t.Schedules, s)
	}
}
