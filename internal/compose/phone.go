package compose

import (
	"errors"
	"net/mail"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

var ErrNotMobile = errors.New("not a mobile number")

// NormalizePhone returns the E.164 form of a phone number written the way patients and
// clinic systems write them (local 05…, 00966…, spaces, Arabic-Indic digits), read in
// region when it has no country code.
func NormalizePhone(raw, region string) (string, error) {
	s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(raw), "whatsapp:"))
	if s == "" {
		return "", errors.New("empty phone number")
	}
	n, err := phonenumbers.Parse(s, region)
	if err != nil {
		return "", err
	}
	if !phonenumbers.IsValidNumber(n) {
		return "", errors.New("not a valid phone number")
	}
	switch phonenumbers.GetNumberType(n) {
	case phonenumbers.FIXED_LINE, phonenumbers.TOLL_FREE, phonenumbers.SHARED_COST, phonenumbers.PREMIUM_RATE, phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL:
		return "", ErrNotMobile
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// NormalizeEmail returns the bare address of a single recipient.
func NormalizeEmail(raw string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(raw))
	if err != nil {
		return "", err
	}
	if !strings.Contains(a.Address[strings.LastIndex(a.Address, "@")+1:], ".") {
		return "", errors.New("the domain has no dot")
	}
	return strings.ToLower(a.Address), nil
}
