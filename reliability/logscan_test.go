package reliability

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// canary is a word every message body of the suites contains and nothing else does: a log
// line holding it holds (part of) a message body.
const canary = "Kestrel"

// secrets is what must never appear in what the appliance logs: the auth tokens the suites
// used, provider and webhook secrets, the phone numbers messaged, and message bodies (found
// by the canary).
type secrets struct {
	mu     sync.Mutex
	exact  map[string]string // value -> what it is
	phones map[string]bool   // digits of each number: E.164 without "+", and the national 0… form
}

func newSecrets() *secrets {
	return &secrets{exact: map[string]string{}, phones: map[string]bool{}}
}

func (s *secrets) add(kind string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if len(v) >= 8 {
			s.exact[v] = kind
		}
	}
}

// phone adds a Saudi number given as +9665XXXXXXXX (the form the suites use).
func (s *secrets) phone(e164 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := strings.TrimPrefix(e164, "+")
	s.phones[d] = true
	if strings.HasPrefix(d, "966") {
		s.phones["0"+d[3:]] = true
		s.phones[d[3:]] = true
	}
}

var (
	digitRun = regexp.MustCompile(`[0-9]{9,}`)
	jwtLike  = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}`)
)

// leak is one thing found in the logs.
type leak struct {
	Where, Kind, Excerpt string
}

// find lists what of s text holds.
func (s *secrets) find(where, text string) []leak {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []leak
	excerpt := func(i, n int) string {
		lo, hi := max(i-60, 0), min(i+n+60, len(text))
		return strings.ReplaceAll(text[lo:hi], "\n", " ")
	}
	if i := strings.Index(text, canary); i >= 0 {
		out = append(out, leak{where, "message body", excerpt(i, len(canary))})
	}
	if loc := jwtLike.FindStringIndex(text); loc != nil {
		out = append(out, leak{where, "auth token", excerpt(loc[0], 12)})
	}
	for v, kind := range s.exact {
		if i := strings.Index(text, v); i >= 0 {
			out = append(out, leak{where, kind, excerpt(i, 4)})
		}
	}
	for _, loc := range digitRun.FindAllStringIndex(text, -1) {
		if run := text[loc[0]:loc[1]]; s.phones[run] || (strings.HasPrefix(run, "00") && s.phones[run[2:]]) {
			out = append(out, leak{where, "phone number", excerpt(loc[0], 0)})
			break
		}
	}
	return out
}

// scanLogs reads everything the appliance logged, its processes' output and PocketBase's
// log table (pb_data/auxiliary.db, _logs), and fails the check for each kind of secret found.
// The process should be stopped first, so that PocketBase has flushed its log batch.
func scanLogs(t testing.TB, c *checks, a *appliance, s *secrets) (scanned int, leaks []leak) {
	t.Helper()
	out := a.logs.String()
	leaks = append(leaks, s.find("process output", out)...)
	scanned += len(out)

	db := openDB(t, filepath.Join(a.dir, "auxiliary.db"))
	rows, err := db.Query("SELECT level, message, data FROM _logs")
	if err != nil {
		c.check(false, "failed to read _logs: %v", err)
		return scanned, leaks
	}
	defer rows.Close()
	var b strings.Builder
	n := 0
	for rows.Next() {
		var level int
		var msg, data string
		if err := rows.Scan(&level, &msg, &data); err != nil {
			c.check(false, "failed to read _logs: %v", err)
			return scanned, leaks
		}
		fmt.Fprintf(&b, "%d %s %s\n", level, msg, data)
		n++
	}
	scanned += b.Len()
	leaks = append(leaks, s.find("_logs", b.String())...)
	seen := map[string]bool{}
	for _, l := range leaks {
		key := l.Where + "/" + l.Kind
		if seen[key] {
			continue
		}
		seen[key] = true
		c.check(false, "the logs hold a %s (%s): …%s…", l.Kind, l.Where, l.Excerpt)
	}
	c.check(n > 0, "expected PocketBase's _logs to hold the run's request log, found no rows")
	if len(leaks) == 0 {
		c.check(true, "")
	}
	return scanned, leaks
}
