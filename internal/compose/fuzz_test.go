package compose

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"
)

// The fuzz targets of the create path: what a client or a campaign list can put in front
// of normalizePhone, render and parseRecipients. They run their committed seed corpora
// (testdata/fuzz/FuzzXxx/) with every `go test` and search for new inputs with `make fuzz`.
// None may panic, hang or allocate more than its input warrants. A panic here is worse than
// a 500: the campaign runner calls the same code in a goroutine of its own, where a panic
// ends the process, and the unchanged checkpoint makes it panic again after every restart.

// fuzzDeadline is how long one call may take before it counts as a hang.
const fuzzDeadline = 2 * time.Second

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// fuzzRegions are regions a clinic may be in (its `country`), and a few odd ones.
var fuzzRegions = []string{"SA", "AE", "EG", "GB", "US", "IN", "PK", "ZZ", "", "sa", "001"}

// FuzzNormalizePhone: a number is either refused or stored in E.164, and its E.164 form
// normalises to itself from any region (so a preference and a message always match).
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"0501234567", "+966 50 123 4567", "00966501234567", "٠٥٠١٢٣٤٥٦٧", "whatsapp:+966501234567",
		"0112345678", "+1 800 555 0100", "+44 7911 123456", "+", "++966", "0", "tel:+966501234567", "+96650123456789012345",
		"\u202a+966501234567\u202c", "۰۵۰۱۲۳۴۵۶۷", "+966-50-123-4567 ext. 99", "\xff\xfe"} {
		f.Add(s, byte(0))
	}
	f.Fuzz(func(t *testing.T, raw string, region byte) {
		reg := fuzzRegions[int(region)%len(fuzzRegions)]
		start := time.Now()
		got, err := NormalizePhone(raw, reg)
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("NormalizePhone(%q, %q) took %v", raw, reg, d)
		}
		if err != nil {
			if got != "" {
				t.Fatalf("an error must come without a number, got %q", got)
			}
			return
		}
		if !e164.MatchString(got) {
			t.Fatalf("NormalizePhone(%q, %q) = %q, not E.164", raw, reg, got)
		}
		for _, other := range []string{reg, "SA", "US", ""} {
			again, err := NormalizePhone(got, other)
			if err != nil || again != got {
				t.Fatalf("%q (from %q in %q) normalises to %q, %v in region %q", got, raw, reg, again, err, other)
			}
		}
	})
}

// FuzzRender: a template either renders completely or names a missing variable; values are
// inserted as they are (a value holding "{{x}}" is never expanded); the output is bounded
// by the template and the values.
func FuzzRender(f *testing.F) {
	seeds := []struct{ text, ctx string }{
		{"Hello {{patient_name}}, see you at {{time}}", `{"patient_name":"Sara","time":"10:00"}`},
		{"{{ a }}{{a}}{{  a  }}", `{"a":"{{a}}"}`},
		{"{{missing}}", `{}`},
		{"{{n}} {{b}} {{o}} {{l}} {{z}}", `{"n":1e308,"b":true,"o":{"x":[1,2]},"l":[null],"z":null}`},
		{"{{{{a}}}}", `{"a":"}}{{"}`},
		{"مرحبا {{الاسم}} {{name}}", `{"name":"سارة"}`},
		{"{{a.b}} {{a-b}} {{_}}", `{"a.b":"x","a-b":"y","_":""}`},
		{"{{", `{"{":"x"}`},
		{"no placeholders", `null`},
		{"{{a}}", `{"a":"\u0000\ud800"}`},
	}
	for _, s := range seeds {
		f.Add(s.text, []byte(s.ctx))
	}
	f.Fuzz(func(t *testing.T, text string, ctx []byte) {
		vars := map[string]any{}
		if len(ctx) > 0 && string(ctx) != "null" {
			if err := json.Unmarshal(ctx, &vars); err != nil {
				return // the create hook answers 400 before rendering
			}
		}
		start := time.Now()
		out, err := Render(text, vars, 1<<30)
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("render took %v for a %d-byte template", d, len(text))
		}
		used := placeholder.FindAllStringSubmatch(text, -1)
		if err != nil {
			var missing *MissingVariableError
			if !errors.As(err, &missing) {
				t.Fatalf("expected a missing variable error, got %v", err)
			}
			for _, name := range missing.Names {
				found := false
				for _, m := range used {
					if m[1] == name {
						v, ok := vars[m[1]]
						found = !ok || v == nil
						break
					}
				}
				if !found {
					t.Fatalf("render named %q as missing, but the template uses it with a value or not at all: %q %s", name, text, ctx)
				}
			}
			return
		}
		// Exactly the template with each placeholder replaced by its value's text.
		maxValue := 0
		for _, m := range used {
			v := Stringify(vars[m[1]])
			maxValue = max(maxValue, len(v))
		}
		want := placeholder.ReplaceAllStringFunc(text, func(m string) string {
			return Stringify(vars[placeholder.FindStringSubmatch(m)[1]])
		})
		if out != want {
			t.Fatalf("Render(%q) = %q, expected %q", text, out, want)
		}
		if len(out) > len(text)+len(used)*maxValue {
			t.Fatalf("render grew a %d-byte template with %d placeholders to %d bytes", len(text), len(used), len(out))
		}
	})
}
