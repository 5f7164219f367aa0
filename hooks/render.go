package hooks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}`)

// missingVariableError names the first {{variable}} a template needs and the context lacks.
type missingVariableError struct{ name string }

func (e *missingVariableError) Error() string {
	return fmt.Sprintf("missing variable %q", e.name)
}

// render fills {{name}} placeholders from vars. A missing variable is an error, never an
// empty hole in a patient's message.
func render(text string, vars map[string]any) (string, error) {
	var missing error
	out := placeholder.ReplaceAllStringFunc(text, func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok || v == nil {
			if missing == nil {
				missing = &missingVariableError{name: name}
			}
			return m
		}
		return stringify(v)
	})
	return out, missing
}

func stringify(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return strings.Trim(string(b), `"`)
	}
}

// placeholders lists the variables text uses, in order of first use.
func placeholders(text string) []string {
	var names []string
	seen := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	return names
}
