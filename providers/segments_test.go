package providers

import (
	"strings"
	"testing"
)

func TestSegments(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	ar := func(n int) string { return strings.Repeat("م", n) }
	euro := func(n int) string { return strings.Repeat("€", n) }
	scenarios := []struct {
		name     string
		body     string
		encoding string
		segments int
	}{
		{"empty", "", EncodingGSM7, 1},
		{"160 gsm", a(160), EncodingGSM7, 1},
		{"161 gsm", a(161), EncodingGSM7, 2},
		{"306 gsm", a(306), EncodingGSM7, 2},
		{"307 gsm", a(307), EncodingGSM7, 3},
		{"80 euro (160 septets)", euro(80), EncodingGSM7, 1},
		{"81 euro (162 septets)", euro(81), EncodingGSM7, 2},
		{"escape pair never split", a(152) + "€" + a(152), EncodingGSM7, 3},
		{"extension chars count two", "^{}\\[~]|\f", EncodingGSM7, 1},
		{"gsm specials", "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", EncodingGSM7, 1},
		{"70 arabic", ar(70), EncodingUCS2, 1},
		{"71 arabic", ar(71), EncodingUCS2, 2},
		{"134 arabic", ar(134), EncodingUCS2, 2},
		{"135 arabic", ar(135), EncodingUCS2, 3},
		{"one non-gsm char switches all", a(100) + "’", EncodingUCS2, 2},
		{"lowercase c-cedilla is not gsm", "ç", EncodingUCS2, 1},
		{"emoji counts two", strings.Repeat("😀", 35), EncodingUCS2, 1},
		{"emoji over the limit", strings.Repeat("😀", 36), EncodingUCS2, 2},
		{"surrogate pair never split", a(66) + "😀" + a(66), EncodingUCS2, 3},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			enc, n := Segments(s.body)
			if enc != s.encoding || n != s.segments {
				t.Fatalf("expected %s/%d, got %s/%d", s.encoding, s.segments, enc, n)
			}
		})
	}
}
