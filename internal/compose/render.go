package compose

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}`)

// MissingVariableError names every {{variable}} a template needs and the context lacks.
type MissingVariableError struct{ Names []string }

func (e *MissingVariableError) Error() string {
	quoted := make([]string, len(e.Names))
	for i, n := range e.Names {
		quoted[i] = strconv.Quote(n)
	}
	if len(quoted) == 1 {
		return "missing variable " + quoted[0]
	}
	return "missing variables " + strings.Join(quoted, ", ")
}

// ErrRenderTooLong says a rendered text passed its limit; rendering stopped there.
var ErrRenderTooLong = errors.New("the rendered text is too long")

// Render fills {{name}} placeholders from vars. A missing variable is an error, never an
// empty hole in a patient's message. It stops as soon as the text passes limit characters,
// so a template of many placeholders filled with a large value costs no more than the
// limit: the work per request is bounded by the channel's limit, not by the input.
func Render(text string, vars map[string]any, limit int) (string, error) {
	var sb strings.Builder
	var missing []string
	n := 0 // characters written
	add := func(part string) bool {
		if len(part) > 4*(limit-n) || n+utf8.RuneCountInString(part) > limit {
			return false
		}
		n += utf8.RuneCountInString(part)
		sb.WriteString(part)
		return true
	}
	last := 0
	for _, loc := range placeholder.FindAllStringSubmatchIndex(text, -1) {
		if !add(text[last:loc[0]]) {
			return "", ErrRenderTooLong
		}
		last = loc[1]
		name := text[loc[2]:loc[3]]
		v, ok := vars[name]
		if !ok || v == nil {
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			continue
		}
		if !add(Stringify(v)) {
			return "", ErrRenderTooLong
		}
	}
	if !add(text[last:]) {
		return "", ErrRenderTooLong
	}
	if len(missing) > 0 {
		return "", &MissingVariableError{Names: missing}
	}
	return sb.String(), nil
}

func Stringify(v any) string {
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

// Placeholders lists the variables text uses, in order of first use.
func Placeholders(text string) []string {
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
