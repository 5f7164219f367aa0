package providers_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestProvidersKnowNoStorage: the vendor adapters import neither PocketBase nor any other
// part of clinicmsg, so a provider can be tested, and replaced, on its own.
func TestProvidersKnowNoStorage(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			if strings.Contains(path, "pocketbase") || strings.HasPrefix(path, "clinicmsg/") {
				t.Fatalf("expected %s to import neither PocketBase nor clinicmsg, it imports %s", f, path)
			}
		}
	}
}
