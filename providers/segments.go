package providers

import "unicode/utf16"

// Encodings of an SMS body.
const (
	EncodingGSM7 = "gsm7"
	EncodingUCS2 = "ucs2"
)

// The GSM 03.38 basic table, and the extension table whose characters take an escape
// septet each (so they count twice).
const (
	gsm7Basic     = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "\f^{}\\[~]|€"
)

var gsm7Cost = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Extension {
		m[r] = 2
	}
	return m
}()

// Segments returns the encoding an SMS body needs and how many segments it is sent as.
// Real handsets never split an escape pair or a UTF-16 surrogate pair across segments, so
// the count is made by filling segments character by character, not by dividing a total.
// An empty body is one segment.
func Segments(body string) (encoding string, segments int) {
	costs := make([]int, 0, len(body))
	encoding = EncodingGSM7
	for _, r := range body {
		c, ok := gsm7Cost[r]
		if !ok {
			encoding = EncodingUCS2
			break
		}
		costs = append(costs, c)
	}
	single, multi := 160, 153
	if encoding == EncodingUCS2 {
		single, multi = 70, 67
		costs = costs[:0]
		for _, r := range body {
			costs = append(costs, utf16.RuneLen(r))
		}
	}
	total := 0
	for _, c := range costs {
		total += c
	}
	if total <= single {
		return encoding, 1
	}
	segments, used := 1, 0
	for _, c := range costs {
		if used+c > multi {
			segments++
			used = 0
		}
		used += c
	}
	return encoding, segments
}
