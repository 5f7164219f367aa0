package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docFiles are the documents whose examples TestDocs runs on one fresh appliance, in the
// order a newcomer reads them: GETTING_STARTED.md's first steps create the superuser, the
// clinic, its users and the tokens that the other documents' examples use.
var docFiles = []string{"README.md", "docs/GETTING_STARTED.md", "docs/API.md", "docs/WORKFLOWS.md"}

// docBaseURL is the address the documented commands name (`make run`'s); TestDocs points
// them at its own appliance.
const docBaseURL = "http://127.0.0.1:8090"

// docAnswers says where each <PLACEHOLDER> of the documented commands comes from: the
// field of the latest answer to a request, which is where the docs tell a newcomer to copy
// it from. A placeholder that no earlier answer filled fails the test.
var docAnswers = []struct {
	placeholder, method, path, field string
	where                            [2]string // a field and the value the answer must have
}{
	{placeholder: "SUPERUSER_TOKEN", method: "POST", path: "/api/collections/_superusers/auth-with-password", field: "token"},
	{placeholder: "CLINIC_ID", method: "POST", path: "/api/collections/clinics/records", field: "id"},
	{placeholder: "TOKEN", method: "POST", path: "/api/collections/users/auth-with-password", field: "token"},
	{placeholder: "APP_USER_ID", method: "POST", path: "/api/collections/users/records", field: "id", where: [2]string{"role", "app"}},
	{placeholder: "MESSAGE_ID", method: "POST", path: "/api/collections/messages/records", field: "id"},
	{placeholder: "CAMPAIGN_ID", method: "POST", path: "/api/collections/campaigns/records", field: "id"},
}

// docDirectiveRe is a docs-test directive: an HTML comment on the line(s) right before a
// fence, invisible to readers.
//
//	<!-- docs-test: skip (why) -->                   the block is not run
//	<!-- docs-test: expect status=queued total=3 -->  fields of the block's last answer
//	<!-- docs-test: expect status=done within 20s --> the same, asked again until it holds (GET only)
//	<!-- docs-test: expect 400 -->                    the block's last request is answered 400, not 2xx
//	<!-- docs-test: POST /api/... with $TOKEN -->     a ```json block is that request's body
//	<!-- docs-test: answer -->                        a ```json block is (part of) the last answer
var docDirectiveRe = regexp.MustCompile(`^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$`)

var (
	docRequestRe     = regexp.MustCompile(`^(GET|POST|PATCH|PUT|DELETE) (/\S*)(?: with \$([A-Za-z_][A-Za-z0-9_]*))?$`)
	docPlaceholderRe = regexp.MustCompile(`<([A-Z][A-Z0-9_]*)>`)
	docAssignRe      = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=`)
	docJqRe          = regexp.MustCompile(`(^|[|;&\s])jq(\s|$)`)
)

// docBlock is one fenced code block of a document and the directives right before it.
type docBlock struct {
	file       string
	line       int // the opening fence's line
	lang       string
	text       string
	directives []string
}

func (b docBlock) where() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// docStep is one command TestDocs runs for a block.
type docStep struct {
	kind string // "curl", "clinicmsg" or "assign"
	text string // the command as documented
}

// docPlan is what TestDocs does with a block.
type docPlan struct {
	block  docBlock
	skip   string // why the block is not run ("" runs it)
	steps  []docStep
	expect map[string]string // field → value ("" for any non-empty value)
	status int               // the last request's HTTP status (0: any 2xx)
	within time.Duration
	answer any // a shown answer: the last answer must contain it
}

// parseDocBlocks returns the fenced code blocks of a Markdown document in order, with the
// docs-test directives on the lines right before each fence. Fences may be indented (inside
// a list item); the block's lines lose the fence's indentation.
func parseDocBlocks(file, text string) ([]docBlock, error) {
	lines := strings.Split(text, "\n")
	var blocks []docBlock
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimLeft(lines[i], " ")
		if !strings.HasPrefix(trimmed, "```") {
			continue
		}
		indent := len(lines[i]) - len(trimmed)
		b := docBlock{file: file, line: i + 1}
		if f := strings.Fields(trimmed[3:]); len(f) > 0 {
			b.lang = f[0]
		}
		for j := i - 1; j >= 0; j-- {
			m := docDirectiveRe.FindStringSubmatch(lines[j])
			if m == nil {
				break
			}
			b.directives = append([]string{m[1]}, b.directives...)
		}
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) == "```" {
				closed = true
				break
			}
			line := lines[i]
			for k := 0; k < indent && strings.HasPrefix(line, " "); k++ {
				line = line[1:]
			}
			body = append(body, line)
		}
		if !closed {
			return nil, fmt.Errorf("%s:%d: the code block is never closed", file, b.line)
		}
		b.text = strings.Join(body, "\n")
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// shellCommands splits a shell block into its commands as bash reads them: a line ends a
// command unless a backslash continues it or a quote is still open. Comments and blank lines
// are dropped; piped reports a command with an unquoted `|`.
func shellCommands(block string) (cmds []string, piped []bool, err error) {
	var cur strings.Builder
	var quote rune // 0, '\'' or '"'
	wordStart, pipe := true, false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			cmds, piped = append(cmds, s), append(piped, pipe)
		}
		cur.Reset()
		wordStart, pipe = true, false
	}
	rs := []rune(block)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case quote == '"':
			if c == '\\' && i+1 < len(rs) {
				cur.WriteRune(c)
				i++
				c = rs[i]
			} else if c == '"' {
				quote = 0
			}
		case c == '\\' && i+1 < len(rs):
			cur.WriteRune(c)
			i++
			c = rs[i]
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && wordStart:
			for i+1 < len(rs) && rs[i+1] != '\n' {
				i++
			}
			continue
		case c == '\n':
			flush()
			continue
		case c == '|':
			pipe = true
		}
		cur.WriteRune(c)
		wordStart = quote == 0 && strings.ContainsRune(" \t\n;|&", c)
	}
	if quote != 0 {
		return nil, nil, errors.New("a quote is never closed")
	}
	flush()
	return cmds, piped, nil
}

// planDocBlock decides what TestDocs does with a block, or says why it cannot: a shell
// block runs unless a skip directive says why not, so a new example is tested by default.
func planDocBlock(b docBlock) (docPlan, error) {
	p := docPlan{block: b}
	var request []string
	for _, d := range b.directives {
		switch {
		case d == "skip" || strings.HasPrefix(d, "skip "):
			p.skip = strings.Trim(strings.TrimPrefix(d, "skip"), " ()")
			if p.skip == "" {
				p.skip = "marked skip"
			}
		case strings.HasPrefix(d, "expect "):
			if p.expect == nil {
				p.expect = map[string]string{}
			}
			f := strings.Fields(strings.TrimPrefix(d, "expect "))
			for k := 0; k < len(f); k++ {
				if f[k] == "within" && k+1 < len(f) {
					within, err := time.ParseDuration(f[k+1])
					if err != nil {
						return p, fmt.Errorf("%s: %q: %w", b.where(), d, err)
					}
					p.within = within
					k++
					continue
				}
				if code, err := strconv.Atoi(f[k]); err == nil && code >= 100 && code <= 599 {
					p.status = code
					continue
				}
				field, value, _ := strings.Cut(f[k], "=")
				p.expect[field] = value
			}
		case docRequestRe.MatchString(d):
			request = docRequestRe.FindStringSubmatch(d)
		case d == "answer":
			if b.lang != "json" {
				return p, fmt.Errorf("%s: an answer directive belongs before a ```json block", b.where())
			}
			if err := json.Unmarshal([]byte(b.text), &p.answer); err != nil {
				return p, fmt.Errorf("%s: the answer is not valid JSON: %w", b.where(), err)
			}
		default:
			return p, fmt.Errorf("%s: unknown docs-test directive %q", b.where(), d)
		}
	}
	if p.skip != "" {
		return p, nil
	}
	switch b.lang {
	case "sh", "bash", "shell", "console":
		if request != nil {
			return p, fmt.Errorf("%s: a request directive belongs before a ```json body", b.where())
		}
		cmds, piped, err := shellCommands(b.text)
		if err != nil {
			return p, fmt.Errorf("%s: %w", b.where(), err)
		}
		for k, cmd := range cmds {
			first := strings.Fields(cmd)[0]
			switch {
			case docJqRe.MatchString(cmd):
				return p, fmt.Errorf("%s: %q needs jq, which many machines (and CI) lack: show the answer and let the reader copy the value (a <PLACEHOLDER> the test fills)", b.where(), cmd)
			case piped[k]:
				return p, fmt.Errorf("%s: %q pipes its output, which the test cannot check: show the answer instead", b.where(), cmd)
			case first == "curl":
				p.steps = append(p.steps, docStep{kind: "curl", text: cmd})
			case first == "clinicmsg" || first == "./clinicmsg":
				p.steps = append(p.steps, docStep{kind: "clinicmsg", text: cmd})
			case docAssignRe.MatchString(cmd) && !strings.ContainsAny(first, "$`") && len(strings.Fields(cmd)) == 1:
				p.steps = append(p.steps, docStep{kind: "assign", text: cmd})
			default:
				return p, fmt.Errorf("%s: TestDocs cannot run %q; run it with curl or ./clinicmsg, or put <!-- docs-test: skip (why) --> right before the fence", b.where(), cmd)
			}
		}
		if len(p.steps) == 0 {
			return p, fmt.Errorf("%s: a shell block without a command", b.where())
		}
	case "json":
		if request != nil && p.answer != nil {
			return p, fmt.Errorf("%s: a ```json block is a request or an answer, not both", b.where())
		}
		if request == nil {
			// An answer (checked when marked so) or a payload the appliance sends.
			if p.expect != nil {
				return p, fmt.Errorf("%s: expect on a ```json block that is not a request", b.where())
			}
			return p, nil
		}
		if !json.Valid([]byte(b.text)) {
			return p, fmt.Errorf("%s: the request body is not valid JSON", b.where())
		}
		cmd := "curl " + docBaseURL + request[2] + " -X " + request[1]
		if request[3] != "" {
			cmd += ` -H "Authorization: $` + request[3] + `"`
		}
		cmd += " -H 'Content-Type: application/json' -d " + shellQuote(b.text)
		p.steps = append(p.steps, docStep{kind: "curl", text: cmd})
	default:
		if request != nil || p.expect != nil {
			return p, fmt.Errorf("%s: docs-test directives on a ```%s block, which the test does not run", b.where(), b.lang)
		}
	}
	if p.expect != nil || p.status != 0 {
		if len(p.steps) == 0 || p.steps[len(p.steps)-1].kind != "curl" {
			return p, fmt.Errorf("%s: expect is about the block's last answer, but the block does not end with a request", b.where())
		}
		if last := p.steps[len(p.steps)-1].text; p.within > 0 && (strings.Contains(last, " -d ") || strings.Contains(last, " -X ")) {
			return p, fmt.Errorf("%s: expect ... within asks the last request again, which must be a GET", b.where())
		}
	}
	return p, nil
}

// shellQuote quotes s for bash.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// docRun runs documented commands against one appliance, as a newcomer would in a shell.
type docRun struct {
	t       *testing.T
	base    string // the appliance's http://address
	bin     string
	dataDir string
	work    string            // the commands' working directory
	values  map[string]string // placeholders, filled from answers
	vars    map[string]string // shell variables the docs assigned
}

// docAnswer is what a curl step received.
type docAnswer struct {
	status       int
	method, path string
	body         []byte
	fields       map[string]any // nil when the body is not a JSON object
}

// fill puts the appliance's address and earlier answers' values into a documented command.
func (r *docRun) fill(where, cmd string) string {
	r.t.Helper()
	cmd = strings.ReplaceAll(cmd, docBaseURL, r.base)
	if strings.Contains(cmd, ":8090") || strings.Contains(cmd, "localhost") {
		r.t.Fatalf("%s: %q names an address other than %s", where, cmd, docBaseURL)
	}
	var missing []string
	cmd = docPlaceholderRe.ReplaceAllStringFunc(cmd, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := r.values[name]
		if !ok {
			missing = append(missing, m)
		}
		return v
	})
	if len(missing) > 0 {
		r.t.Fatalf("%s: no earlier answer gave %s (see docAnswers in docs_test.go): %s", where, strings.Join(missing, ", "), cmd)
	}
	return cmd
}

// bash runs script with bash -eu (an unset variable is an error: the docs must set each
// one they use), in the commands' folder, with only the shell variables the docs assigned.
// No proxy or ~/.curlrc of the machine's applies (HOME is the commands' folder).
func (r *docRun) bash(script string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euc", script)
	cmd.Dir = r.work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.work, "LANG=C.UTF-8"}
	for k, v := range r.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%w: %s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// step runs one documented command and returns its answer (nil for a command that is not
// a request).
func (r *docRun) step(where string, s docStep, status int) *docAnswer {
	r.t.Helper()
	cmd := r.fill(where, s.text)
	switch s.kind {
	case "assign":
		name := docAssignRe.FindStringSubmatch(cmd)[1]
		out, err := r.bash(cmd + "\nprintf '%s' \"$" + name + "\"")
		if err != nil || len(out) == 0 {
			r.t.Fatalf("%s: %q set nothing: %v", where, s.text, err)
		}
		r.vars[name] = string(out)
		r.t.Logf("%s: %s set", where, name)
		return nil
	case "clinicmsg":
		// The appliance serves its own data folder, so the command is pointed at it, as
		// `make run`'s ./pb_data is the default of ./clinicmsg run beside it.
		cmd = strings.TrimPrefix(strings.TrimPrefix(cmd, "./"), "clinicmsg")
		script := "clinicmsg() { " + shellQuote(r.bin) + ` "$@" --dir ` + shellQuote(r.dataDir) + "; }\nclinicmsg" + cmd
		if _, err := r.bash(script); err != nil {
			r.t.Fatalf("%s: %q failed: %v", where, s.text, err)
		}
		r.t.Logf("%s: %s", where, s.text)
		return nil
	}
	const mark = "\n<docs-test> "
	script := `curl() { command curl -sS -w '` + strings.ReplaceAll(mark, "\n", `\n`) + `%{http_code} %{method} %{url_effective}' "$@"; }` + "\n" + cmd
	out, err := r.bash(script)
	if err != nil {
		r.t.Fatalf("%s: %q failed: %v", where, s.text, err)
	}
	cut := bytes.LastIndex(out, []byte(mark))
	if cut < 0 {
		r.t.Fatalf("%s: %q made no request: %s", where, s.text, out)
	}
	a := &docAnswer{body: out[:cut]}
	f := strings.Fields(string(out[cut+len(mark):]))
	if len(f) != 3 {
		r.t.Fatalf("%s: unexpected curl trailer %q", where, out[cut:])
	}
	a.status, _ = strconv.Atoi(f[0])
	a.method = f[1]
	if u, err := url.Parse(f[2]); err == nil {
		a.path = u.Path
	}
	if status == 0 && (a.status < 200 || a.status > 299) || status != 0 && a.status != status {
		r.t.Fatalf("%s: %s %s answered %d: %s", where, a.method, a.path, a.status, a.body)
	}
	if len(bytes.TrimSpace(a.body)) > 0 {
		if !json.Valid(a.body) {
			r.t.Fatalf("%s: %s %s answered %d with a body that is not JSON: %s", where, a.method, a.path, a.status, a.body)
		}
		_ = json.Unmarshal(a.body, &a.fields)
	}
	for _, rule := range docAnswers {
		if rule.method != a.method || rule.path != a.path || a.fields == nil {
			continue
		}
		if rule.where[0] != "" && docValue(a.fields[rule.where[0]]) != rule.where[1] {
			continue
		}
		if v := docValue(a.fields[rule.field]); v != "" && v != "null" {
			r.values[rule.placeholder] = v
		}
	}
	r.t.Logf("%s: %s %s: %d", where, a.method, a.path, a.status)
	return a
}

// docValue is a JSON value as the docs write it: a string as itself, anything else as JSON.
func docValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// docContains reports whether got holds everything in want: the same values, with objects
// compared on want's keys only.
func docContains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !docContains(g[k], v) {
				return false
			}
		}
		return true
	default:
		return docValue(got) == docValue(want)
	}
}

// bodyOf is an answer's body for a failure message.
func bodyOf(a *docAnswer) string {
	if a == nil {
		return "(no answer yet)"
	}
	return string(a.body)
}

// mismatch says which expected field the answer lacks ("" when it has them all).
func (p docPlan) mismatch(a *docAnswer) string {
	if len(p.expect) == 0 {
		return ""
	}
	if a == nil || a.fields == nil {
		return "the answer is not a JSON object"
	}
	for field, want := range p.expect {
		got := docValue(a.fields[field])
		if want == "" && (got == "" || got == "null") || want != "" && got != want {
			return fmt.Sprintf("expected %s=%q, got %q in %s", field, want, got, a.body)
		}
	}
	return ""
}

// TestDocs runs the docs as a newcomer would, on a fresh appliance: every shell block of
// docFiles (unless a skip directive says why not) and every ```json request body marked
// with its request, in document order, with each answer checked (2xx, JSON) and the
// outcome the doc states checked where an expect directive names it. A doc that drifts
// from the product fails here.
func TestDocs(t *testing.T) {
	var plans []docPlan
	var problems []string
	for _, file := range docFiles {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parseDocBlocks(file, string(raw))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			p, err := planDocBlock(b)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			plans = append(plans, p)
		}
	}
	if len(problems) > 0 {
		t.Fatalf("docs the test cannot run:\n%s", strings.Join(problems, "\n"))
	}

	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("TestDocs runs the documented commands with %s, which is not installed: %v", tool, err)
		}
	}

	// A fresh appliance with the defaults a newcomer gets (the mock delivers after 1s).
	dataDir := t.TempDir()
	a := serveAt(t, freeAddr(t), dataDir, "CLINICMSG_MOCK_DELIVER_AFTER=1s")
	r := &docRun{t: t, base: a.base, bin: buildBinary(t), dataDir: dataDir, work: t.TempDir(),
		values: map[string]string{}, vars: map[string]string{}}
	var ran, skipped int
	var last *docAnswer // the latest answer received
	for _, p := range plans {
		where := p.block.where()
		switch {
		case p.skip != "":
			t.Logf("%s: skipped: %s", where, p.skip)
			skipped++
			continue
		case p.answer != nil:
			// The answer the doc shows is part of the last one received.
			if last == nil || !docContains(last.fields, p.answer) {
				t.Fatalf("%s: the answer shown is not the one received: %s", where, bodyOf(last))
			}
			ran++
			continue
		case len(p.steps) == 0:
			continue // a payload shown, not a request
		}
		for k, s := range p.steps {
			status := 0
			if k == len(p.steps)-1 {
				status = p.status
			}
			if got := r.step(where, s, status); got != nil {
				last = got
			}
		}
		ran++
		for deadline := time.Now().Add(p.within); ; {
			miss := p.mismatch(last)
			if miss == "" {
				break
			}
			if p.within == 0 || time.Now().After(deadline) {
				t.Fatalf("%s: %s", where, miss)
			}
			time.Sleep(200 * time.Millisecond)
			last = r.step(where, p.steps[len(p.steps)-1], p.status)
		}
	}
	t.Logf("ran %d documented blocks, skipped %d", ran, skipped)
}

// TestDocsShellCommands: a shell block splits into commands where bash would end them.
func TestDocsShellCommands(t *testing.T) {
	scenarios := []struct {
		name  string
		block string
		want  []string
		piped []bool
		err   bool
	}{
		{
			name:  "continued lines and a quote over lines",
			block: "curl http://x \\\n  -d '{\"a\":1,\n  \"b\":2}'\n\nTOKEN='<TOKEN>'\n",
			want:  []string{"curl http://x \\\n  -d '{\"a\":1,\n  \"b\":2}'", "TOKEN='<TOKEN>'"},
			piped: []bool{false, false},
		},
		{
			name:  "comments are dropped, a # inside a word or quote is kept",
			block: "# set up\nmake run    # serve\ncurl 'http://x/#a' -d a#b",
			want:  []string{"make run", "curl 'http://x/#a' -d a#b"},
			piped: []bool{false, false},
		},
		{
			name:  "a pipe outside quotes",
			block: "curl http://x | jq -r .token\ncurl -d '{\"a\":\"x|y\"}' http://x",
			want:  []string{"curl http://x | jq -r .token", "curl -d '{\"a\":\"x|y\"}' http://x"},
			piped: []bool{true, false},
		},
		{name: "an open quote", block: "curl -d '{\"a\":1}", err: true},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			got, piped, err := shellCommands(s.block)
			if s.err {
				if err == nil {
					t.Fatalf("expected an error, got %q", got)
				}
				return
			}
			if err != nil || strings.Join(got, "\x00") != strings.Join(s.want, "\x00") || fmt.Sprint(piped) != fmt.Sprint(s.piped) {
				t.Fatalf("expected %q %v, got %q %v (%v)", s.want, s.piped, got, piped, err)
			}
		})
	}
}

// TestDocsUnrunnableBlocks: a shell block the test cannot run fails unless it is marked
// skip, so that a new example is tested by default.
func TestDocsUnrunnableBlocks(t *testing.T) {
	scenarios := []struct {
		name string
		doc  string
		want string // "" when the plan is accepted
	}{
		{name: "an unmarked make run", doc: "```sh\nmake run\n```\n", want: "cannot run"},
		{name: "a marked make run", doc: "<!-- docs-test: skip (serves) -->\n```sh\nmake run\n```\n"},
		{name: "jq", doc: "```sh\nTOKEN=$(curl -s http://127.0.0.1:8090/x | jq -r .token)\n```\n", want: "needs jq"},
		{name: "an answer in json", doc: "```json\n{\"status\": 400}\n```\n"},
		{name: "a request in json", doc: "<!-- docs-test: POST /api/x with $TOKEN -->\n```json\n{\"a\": 1}\n```\n"},
		{name: "an unknown directive", doc: "<!-- docs-test: run twice -->\n```sh\ncurl http://127.0.0.1:8090/x\n```\n", want: "unknown docs-test directive"},
		{name: "an answer shown after a request", doc: "<!-- docs-test: answer -->\n```json\n{\"status\": 400}\n```\n"},
		{name: "a repeated POST", doc: "<!-- docs-test: expect status=done within 5s -->\n```sh\ncurl http://127.0.0.1:8090/x -d '{}'\n```\n", want: "must be a GET"},
		{name: "an expectation of an assignment", doc: "<!-- docs-test: expect token -->\n```sh\nTOKEN='<TOKEN>'\n```\n", want: "does not end with a request"},
		{name: "an indented block in a list", doc: "1. Sign in:\n\n   ```sh\n   curl http://127.0.0.1:8090/x\n   ```\n"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			blocks, err := parseDocBlocks("doc.md", s.doc)
			if err != nil || len(blocks) != 1 {
				t.Fatalf("expected one block, got %d (%v)", len(blocks), err)
			}
			_, err = planDocBlock(blocks[0])
			if s.want == "" && err != nil || s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)) {
				t.Fatalf("expected %q, got %v", s.want, err)
			}
		})
	}
}
