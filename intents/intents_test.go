package intents

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	// Each reply is classified twice: answering an appointment message (answering) and not
	// (otherwise).
	scenarios := []struct {
		name                 string
		text                 string
		answering, otherwise Intent
	}{
		// stop: the same in every context
		{"STOP", "STOP", Stop, Stop},
		{"stop thank you", "Stop. Thank you", Stop, Stop},
		{"stop please", "stop please", Stop, Stop},
		{"please stop", "please stop", Stop, Stop},
		{"stop with spaces and emoji", "  Stop   🙏 ", Stop, Stop},
		{"stop repeated", "STOP STOP STOP!!!", Stop, Stop},
		{"unsubscribe", "unsubscribe", Stop, Stop},
		{"STOPALL", "STOPALL", Stop, Stop},
		{"stop all", "stop all", Stop, Stop},
		{"end", "end", Stop, Stop},
		{"quit", "Quit", Stop, Stop},
		{"optout", "optout", Stop, Stop},
		{"opt out", "opt out", Stop, Stop},
		{"opt-out", "Opt-Out", Stop, Stop},
		{"revoke", "REVOKE", Stop, Stop},
		{"stop texting me", "Stop texting me.", Stop, Stop},
		{"stop and unsubscribe agree", "stop, unsubscribe", Stop, Stop},
		{"إيقاف", "إيقاف", Stop, Stop},
		{"ايقاف", "ايقاف", Stop, Stop},
		{"توقف", "توقف", Stop, Stop},
		{"توقّف with shadda", "توقّف", Stop, Stop},
		{"توقف with tatweel", "تـوقــف", Stop, Stop},
		{"توقف with RLM and punctuation", "\u200fتوقف،", Stop, Stop},
		{"توقف من فضلك", "توقف من فضلك", Stop, Stop},
		{"إلغاء الاشتراك", "إلغاء الاشتراك", Stop, Stop},
		{"الغاء الاشتراك", "الغاء الاشتراك", Stop, Stop},
		{"إلغاء الاشتراك with tashkeel", "إِلْغَاءُ الاِشْتِرَاكِ", Stop, Stop},
		{"لا أريد رسائل", "لا أريد رسائل", Stop, Stop},
		{"لا اريد رسائل شكرا", "لا اريد رسائل، شكراً", Stop, Stop},
		{"greeting then stop", "السلام عليكم، إيقاف", Stop, Stop},

		// cancel: cancels when answering, opts out otherwise (a carrier opt-out word)
		{"cancel", "cancel", Cancel, Stop},
		{"CANCEL", "CANCEL!", Cancel, Stop},
		{"cancel please", "Cancel please", Cancel, Stop},
		{"إلغاء", "إلغاء", Cancel, Stop},
		{"الغاء", "الغاء", Cancel, Stop},
		{"إلغاء with tashkeel", "إِلْغَاء", Cancel, Stop},

		// start
		{"START", "START", Start, Start},
		{"unstop", "unstop", Start, Start},
		{"subscribe", "Subscribe", Start, Start},
		{"اشتراك", "اشتراك", Start, Start},
		{"ابدأ", "ابدأ", Start, Start},
		{"ابدا", "ابدا", Start, Start},

		// help
		{"HELP", "HELP", Help, Help},
		{"info", "info", Help, Help},
		{"help me", "help me", Help, Help},
		{"help please", "Help, please?", Help, Help},
		{"مساعدة", "مساعدة", Help, Help},
		{"مساعده", "مساعده", Help, Help},
		{"مساعدة؟", "مساعدة؟", Help, Help},

		// confirm: only when answering
		{"yes", "yes", Confirm, None},
		{"Yes!", "Yes!", Confirm, None},
		{"y", "y", Confirm, None},
		{"1", "1", Confirm, None},
		{"١", "١", Confirm, None},
		{"۱", "۱", Confirm, None},
		{"1 keycap emoji", "1\ufe0f\u20e3", Confirm, None},
		{"ok", "ok", Confirm, None},
		{"okay", "Okay.", Confirm, None},
		{"confirm", "confirm", Confirm, None},
		{"confirmed", "Confirmed", Confirm, None},
		{"I confirm", "I confirm", Confirm, None},
		{"yes thank you", "Yes, thank you 😊", Confirm, None},
		{"yes confirm agree", "yes, confirm", Confirm, None},
		{"I'll be there", "I’ll be there", Confirm, None},
		{"نعم", "نعم", Confirm, None},
		{"ايوه", "ايوه", Confirm, None},
		{"أيوه", "أيوه", Confirm, None},
		{"أيوة", "أيوة", Confirm, None},
		{"تأكيد", "تأكيد", Confirm, None},
		{"تاكيد", "تاكيد", Confirm, None},
		{"أؤكد", "أؤكد", Confirm, None},
		{"مؤكد", "مؤكد", Confirm, None},
		{"نعم أؤكد", "نعم، أؤكد", Confirm, None},
		{"نعم شكرا", "نعم شكراً", Confirm, None},
		{"تم", "تم", Confirm, None},

		// cancel: only when answering
		{"no", "no", Cancel, None},
		{"No.", "No.", Cancel, None},
		{"no no", "no no", Cancel, None},
		{"no thanks", "no thanks", Cancel, None},
		{"2", "2", Cancel, None},
		{"٢", "٢", Cancel, None},
		{"۲", "۲", Cancel, None},
		{"cancel appointment", "cancel appointment", Cancel, None},
		{"cancel my appointment", "Please cancel my appointment", Cancel, None},
		{"لا", "لا", Cancel, None},
		{"لأ", "لأ", Cancel, None},
		{"لا لا", "لا لا", Cancel, None},
		{"إلغاء الموعد", "إلغاء الموعد", Cancel, None},
		{"الغاء الموعد", "الغاء الموعد", Cancel, None},
		{"cancel and cancel appointment agree", "cancel, cancel appointment", Cancel, None},

		// negations
		{"don't stop my reminders", "don't stop my reminders", None, None},
		{"dont stop", "dont stop", None, None},
		{"do not stop", "do not stop", None, None},
		{"لا توقف", "لا توقف", None, None},
		{"لا تلغي الموعد", "لا تلغي الموعد", None, None},
		{"no cancel", "no cancel", None, None},
		{"لا إلغاء", "لا إلغاء", None, None},
		{"no, stop", "No. Stop.", None, None},

		// ambiguous or not a command
		{"empty", "", None, None},
		{"spaces", "   ", None, None},
		{"thumbs up", "👍", None, None},
		{"punctuation only", "?!،؟", None, None},
		{"courtesy only", "thanks!", None, None},
		{"stop by the pharmacy", "stop by the pharmacy tomorrow?", None, None},
		{"what time", "what time is my appointment", None, None},
		{"yesterday", "yesterday", None, None},
		{"stopwatch", "stopwatch", None, None},
		{"nope", "nope", None, None},
		{"n", "n", None, None},
		{"yes stop", "yes stop", None, None},
		{"ok stop", "ok, stop", None, None},
		{"1 2", "1 2", None, None},
		{"12", "12", None, None},
		{"yes but", "yes but can I come at 5?", None, None},
		{"start and stop", "start stop", None, None},
		{"ending", "ending soon?", None, None},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if got := Classify(s.text, true); got != s.answering {
				t.Fatalf("answering an appointment: expected %q, got %q", s.answering, got)
			}
			if got := Classify(s.text, false); got != s.otherwise {
				t.Fatalf("not answering an appointment: expected %q, got %q", s.otherwise, got)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	scenarios := []struct {
		name, text, want string
	}{
		{"empty", "", ""},
		{"spaces only", " \t\n ", ""},
		{"case and punctuation", "  STOP.  Thank you!! ", "stop thank you"},
		{"apostrophes removed", "Don't  I’ll", "dont ill"},
		{"hyphen and underscore split", "opt-out opt_out", "opt out opt out"},
		{"emoji split", "yes👍ok", "yes ok"},
		{"emoji with skin tone and ZWJ", "👍🏽 👨\u200d⚕\ufe0f", ""},
		{"keycap digit", "1\ufe0f\u20e3", "1"},
		{"tashkeel", "إِلْغَاءُ", "الغاء"},
		{"shadda", "توقّف", "توقف"},
		{"superscript alef", "هٰذا", "هذا"},
		{"tatweel", "تـــوقـف", "توقف"},
		{"alef with hamza above", "أريد", "اريد"},
		{"alef with hamza below", "إيقاف", "ايقاف"},
		{"alef with madda", "آمين", "امين"},
		{"alef wasla", "ٱلموعد", "الموعد"},
		{"alef maksura", "على", "علي"},
		{"teh marbuta", "مساعدة", "مساعده"},
		{"waw with hamza", "أؤكد", "اوكد"},
		{"yeh with hamza", "رسائل", "رسايل"},
		{"Persian yeh and keheh", "یک", "يك"},
		{"Arabic-Indic digits", "٠١٢٣٤٥٦٧٨٩", "0123456789"},
		{"Persian digits", "۰۱۲۳۴۵۶۷۸۹", "0123456789"},
		{"Arabic punctuation", "نعم،شكرا؛ لماذا؟", "نعم شكرا لماذا"},
		{"bidi marks and zero-width", "\u200fتوقف\u200e \u200bstop\ufeff", "توقف stop"},
		{"mixed scripts", "STOP / إيقاف", "stop ايقاف"},
		{"dotted capital I", "İNFO", "info"},
		{"invalid UTF-8 is a separator", "stop\xffnow", "stop now"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if got := Normalize(s.text); got != s.want {
				t.Fatalf("expected %q, got %q", s.want, got)
			}
		})
	}
}

// TestPhrasesNormalized checks that every keyword is stored in normalized form, so a reply
// can match it, and that no phrase is longer than maxWords.
func TestPhrasesNormalized(t *testing.T) {
	if len(phrases) == 0 {
		t.Fatalf("expected phrases, got none")
	}
	for key := range phrases {
		if Normalize(key) != key {
			t.Fatalf("expected phrase %q to be normalized, got %q", key, Normalize(key))
		}
		if n := len(strings.Fields(key)); n > maxWords {
			t.Fatalf("expected at most %d words, got %d in %q", maxWords, n, key)
		}
	}
}

// FuzzNormalize checks that Normalize is idempotent and leaves single spaces between
// words, and that Classify agrees on raw and normalized text.
func FuzzNormalize(f *testing.F) {
	for _, seed := range []string{"", "STOP. Thank you", "إِلْغَاءُ الاشتراك", "١ ۲", "👍🏽", "don't", "\xff\xfe"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		once := Normalize(text)
		if twice := Normalize(once); twice != once {
			t.Fatalf("expected Normalize to be idempotent: %q, then %q", once, twice)
		}
		if strings.Join(strings.Fields(once), " ") != once {
			t.Fatalf("expected single spaces between words, got %q", once)
		}
		for _, answering := range []bool{true, false} {
			if a, b := Classify(text, answering), Classify(once, answering); a != b {
				t.Fatalf("expected the same intent for %q and %q, got %q and %q", text, once, a, b)
			}
		}
	})
}
