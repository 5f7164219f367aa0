// Package intents classifies a patient's reply to a clinic SMS or WhatsApp message, in
// English and Arabic, so that an opt-out is honoured and an answer to an appointment
// reminder is recorded without a person reading every reply.
//
// The rules, in order:
//
//  1. The reply is normalized (see [Normalize]): lower case; Arabic diacritics (tashkeel),
//     tatweel and invisible formatting characters removed; apostrophes removed ("don't" is
//     "dont"); alef and hamza forms folded (أ إ آ ٱ → ا, ى → ي, ة → ه, ؤ → و, ئ → ي);
//     Arabic-Indic and Persian digits read as 0-9; punctuation, symbols and emoji read as
//     spaces.
//  2. The whole reply must consist of keywords and courtesy words (please, thanks, hi,
//     شكرا, من فضلك, السلام عليكم, ...) and nothing else. A keyword inside a sentence does
//     not count: "stop by the pharmacy tomorrow?", "stopwatch", "yesterday" and "what time
//     is my appointment" are None. Words are matched whole, the longest phrase first, so
//     "إلغاء الاشتراك" (unsubscribe) is stop and never cancel.
//  3. Stop, start and help words mean the same in every context: STOP in answer to a
//     reminder opts the patient out, it does not cancel the appointment. Confirm and cancel
//     words count only when the reply answers an appointment message. Otherwise a bare
//     "cancel"/"إلغاء" is stop (carriers treat CANCEL as an opt-out word on long codes) and
//     the other confirm and cancel words ("yes", "no", "1", "2", "cancel appointment") are
//     None.
//  4. Several keywords must agree: "stop stop", "yes, confirm" and "نعم أؤكد" are one
//     intent, while "yes stop" or "no, stop" are None. A negation with any other keyword is
//     None: "لا توقف" (don't stop), "no cancel". Other negations ("don't stop", "do not
//     stop", "لا تلغي الموعد") are not keywords, so they are None by rule 2.
//  5. None means "not understood": the reply is left for a person. Stop and cancel are
//     strict because a false opt-out silences a patient and a false cancel frees a booked
//     slot, while a missed one is fixed by the clinic. Confirm is a little more generous
//     (ok, okay, yeah, sure, تم, تمام).
//
// Decisions worth knowing: "yes" with no appointment to answer is None, not start
// (re-subscribing takes an explicit START, although Twilio also accepts YES at the carrier);
// an emoji-only reply such as "👍" is None; "nope" and "n" are None; "لا أريد رسائل"
// (I don't want messages) is stop.
package intents

import (
	"strings"
	"unicode"
)

// Intent is what a patient's reply asks for.
type Intent string

const (
	None    Intent = ""
	Stop    Intent = "stop"
	Start   Intent = "start"
	Help    Intent = "help"
	Confirm Intent = "confirm"
	Cancel  Intent = "cancel"
)

// Keywords as patients write them; they are normalized when the package loads.
var (
	// stopWords opt the patient out in every context.
	stopWords = []string{
		"stop", "stopall", "stop all", "unsubscribe", "unsubscribe me", "end", "quit",
		"optout", "opt out", "opt me out", "revoke",
		"stop messages", "stop texting", "stop texting me", "stop messaging me",
		"إيقاف", "إيقاف الرسائل", "توقف", "أوقف", "أوقف الرسائل",
		"إلغاء الاشتراك", "ألغي الاشتراك", "إلغاء الرسائل",
		"لا أريد رسائل", "لا أريد الرسائل",
	}
	// cancelOrStopWords cancel an appointment when answering one, and opt out otherwise.
	cancelOrStopWords = []string{"cancel", "إلغاء"}
	startWords        = []string{
		"start", "unstop", "subscribe", "resubscribe",
		"اشتراك", "اشترك", "ابدأ", "إعادة الاشتراك",
	}
	helpWords = []string{
		"help", "help me", "info", "information",
		"مساعدة", "ساعدني", "معلومات",
	}
	// confirmWords count only when answering an appointment message.
	confirmWords = []string{
		"yes", "y", "yeah", "yep", "yup", "sure", "ok", "okay", "1",
		"confirm", "confirmed", "i confirm", "confirm appointment", "confirm my appointment",
		"i will be there", "i'll be there",
		"نعم", "أيوه", "ايوا", "أكيد", "تم", "تمام", "اوكي",
		"تأكيد", "تأكيد الموعد", "أؤكد", "أؤكد الموعد", "أكد", "مؤكد", "سأحضر",
	}
	// cancelWords count only when answering an appointment message.
	cancelWords = []string{
		"no", "2",
		"cancel appointment", "cancel my appointment", "cancel the appointment",
		"لا", "إلغاء الموعد", "ألغي الموعد", "إلغاء موعدي",
	}
	// negations: with any other keyword the reply is None ("لا توقف" is "don't stop").
	negations = []string{"no", "لا"}
	// courtesyWords may come before, between or after keywords and change nothing.
	courtesyWords = []string{
		"please", "pls", "plz", "kindly",
		"thanks", "thank you", "thank u", "thankyou", "thx", "ty",
		"thanks a lot", "thank you very much", "many thanks",
		"hi", "hello", "hey",
		"شكرا", "وشكرا", "شكرا لك", "شكرا لكم", "شكرا جزيلا", "مشكور", "مشكورين",
		"من فضلك", "لو سمحت", "لو سمحتي", "لو سمحتم", "رجاء",
		"يعطيك العافية", "الله يعطيك العافية",
		"مرحبا", "أهلا", "سلام", "السلام عليكم",
	}
)

// meaning is what a phrase means when the reply answers an appointment message and when
// it does not.
type meaning struct {
	answering, otherwise Intent
	courtesy, negation   bool
}

var (
	phrases  = map[string]meaning{}
	maxWords int // the longest phrase, in words
)

func init() {
	add := func(words []string, m meaning) {
		for _, w := range words {
			key := Normalize(w)
			if _, dup := phrases[key]; dup || key == "" {
				panic("intents: duplicate or empty phrase " + w)
			}
			phrases[key] = m
			maxWords = max(maxWords, len(strings.Fields(key)))
		}
	}
	add(stopWords, meaning{answering: Stop, otherwise: Stop})
	add(cancelOrStopWords, meaning{answering: Cancel, otherwise: Stop})
	add(startWords, meaning{answering: Start, otherwise: Start})
	add(helpWords, meaning{answering: Help, otherwise: Help})
	add(confirmWords, meaning{answering: Confirm})
	add(cancelWords, meaning{answering: Cancel})
	add(courtesyWords, meaning{courtesy: true})
	for _, w := range negations {
		key := Normalize(w)
		m, ok := phrases[key]
		if !ok {
			panic("intents: negation is not a phrase: " + w)
		}
		m.negation = true
		phrases[key] = m
	}
}

// Classify returns the intent of a patient's reply. answersAppointment says whether the
// reply answers an appointment message (a reminder or confirmation request): only then do
// confirm/cancel apply; a bare "cancel"/"إلغاء" with no appointment message to answer is Stop
// (carriers treat CANCEL as an opt-out word on long codes).
func Classify(text string, answersAppointment bool) Intent {
	words := strings.Fields(Normalize(text))
	var found []meaning // distinct keyword phrases, courtesy words left out
	seen := map[string]bool{}
	for i := 0; i < len(words); {
		n, m := longestPhrase(words[i:])
		if n == 0 {
			return None // a word that is no keyword: a sentence, not a command
		}
		key := strings.Join(words[i:i+n], " ")
		i += n
		if m.courtesy || seen[key] {
			continue
		}
		seen[key] = true
		found = append(found, m)
	}
	if len(found) == 0 {
		return None
	}
	var intent Intent
	for _, m := range found {
		if m.negation && len(found) > 1 {
			return None
		}
		got := m.otherwise
		if answersAppointment {
			got = m.answering
		}
		if got == None || (intent != None && got != intent) {
			return None
		}
		intent = got
	}
	return intent
}

// longestPhrase returns the length in words and the meaning of the longest phrase that
// words starts with, or 0 if it starts with none.
func longestPhrase(words []string) (int, meaning) {
	for n := min(maxWords, len(words)); n > 0; n-- {
		if m, ok := phrases[strings.Join(words[:n], " ")]; ok {
			return n, m
		}
	}
	return 0, meaning{}
}

// Normalize folds text for matching (exported for tests and reuse): lower case, Arabic
// diacritics, tatweel, other combining marks, invisible formatting characters and
// apostrophes removed, alef and hamza forms folded (أ إ آ ٱ → ا, ى → ي, ة → ه, ؤ → و,
// ئ → ي, and Persian ی ک → ي ك), Arabic-Indic and Persian digits turned into 0-9, and
// everything that is neither a letter nor a digit (punctuation, symbols, emoji, spaces)
// turned into a single space between words, none at either end.
func Normalize(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	space := false // a separator is pending
	for _, r := range text {
		switch {
		case r == 'ـ', // tatweel
			r == '\'', r == '’', r == '‘', r == 'ʼ', r == '`', r == '´',
			unicode.Is(unicode.M, r),  // tashkeel, shadda, variation selectors, keycaps
			unicode.Is(unicode.Cf, r): // LRM/RLM, zero-width joiners, BOM
			continue
		case r >= '٠' && r <= '٩':
			r = '0' + (r - '٠')
		case r >= '۰' && r <= '۹':
			r = '0' + (r - '۰')
		default:
			r = foldArabic(r)
		}
		r = unicode.ToLower(r)
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// foldArabic maps the Arabic letters that patients write interchangeably to one form.
func foldArabic(r rune) rune {
	switch r {
	case 'أ', 'إ', 'آ', 'ٱ':
		return 'ا'
	case 'ى', 'ئ', 'ی': // alef maksura, yeh with hamza, Persian yeh
		return 'ي'
	case 'ة':
		return 'ه'
	case 'ؤ':
		return 'و'
	case 'ک': // Persian keheh
		return 'ك'
	}
	return r
}
