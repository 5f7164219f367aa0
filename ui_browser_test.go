package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The staff dashboard (/app/) in a real browser: Debian's Chromium, headless, driven over
// the DevTools protocol against the built binary on loopback. One browser serves every
// subtest; screenshots of each screen in both languages go to bin/screenshots/, or to the
// folder CLINICMSG_SCREENSHOTS_DIR names (docs/screenshots to refresh the documentation's).

// screenshotDir is where the tests save screenshots: build output unless told otherwise, so
// that a test run leaves the checkout as it found it.
func screenshotDir() string {
	if dir := os.Getenv("CLINICMSG_SCREENSHOTS_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("bin", "screenshots")
}

// chromiumPath finds the browser; without one the test fails, it never skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	t.Fatal("the dashboard's browser tests need Chromium: install it with `apt-get install -y chromium` (.ci/run does this when `command -v chromium` fails)")
	return ""
}

// browser is one headless Chromium tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu       sync.Mutex
	problems []string // uncaught exceptions and console errors
}

func newBrowser(t *testing.T, base string) *browser {
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 768),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, base: base}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatalf("failed to start Chromium (%s): %v", exe, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException || (m.Type == chromedp.ConsoleError && !strings.Contains(m.Text, "Failed to load resource")) {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// checkConsole fails the test on any script error the page reported since the last check.
func (b *browser) checkConsole(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	p := b.problems
	b.problems = nil
	b.mu.Unlock()
	if len(p) > 0 {
		t.Fatalf("the page reported script errors:\n%s", strings.Join(p, "\n"))
	}
}

func (b *browser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v\n%s", err, b.pageState())
	}
}

// eval runs JavaScript (awaiting a promise) and decodes its value.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is truthy.
func (b *browser) waitJS(t *testing.T, what, expr string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		b.checkConsole(t)
		t.Fatalf("expected %s within %v (%s): %v\n%s", what, within, expr, err, b.pageState())
	}
}

// pageState is a short description of the page for failure messages.
func (b *browser) pageState() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.querySelector("main") || document.body).innerText.slice(0, 1500)`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return "page: " + s
}

func (b *browser) click(t *testing.T, sel string) {
	t.Helper()
	b.do(t, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// typeInto focuses a field, clears it and types text as key presses.
func (b *browser) typeInto(t *testing.T, sel, text string) {
	t.Helper()
	eval[bool](t, b, fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.focus(); el.select && el.select(); return true })()`, sel))
	b.do(t, chromedp.KeyEvent("\b"), chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// setField sets a select, a textarea or a hidden-behind-a-file input as a paste would, and
// fires the events the app listens to.
func (b *browser) setField(t *testing.T, sel, value string) {
	t.Helper()
	ok := eval[bool](t, b, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false;
		el.focus(); el.value = %q; el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true})); return el.value === %q })()`, sel, value, value))
	if !ok {
		t.Fatalf("could not set %s to %q\n%s", sel, value, b.pageState())
	}
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	return eval[string](t, b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

func (b *browser) attr(t *testing.T, sel, name string) string {
	t.Helper()
	return eval[string](t, b, fmt.Sprintf(`(document.querySelector(%q) || {getAttribute: () => null}).getAttribute(%q) || ""`, sel, name))
}

// show goes to a screen through its navigation link, as a person would.
func (b *browser) show(t *testing.T, screen string) {
	t.Helper()
	b.click(t, "#nav-"+screen)
	b.waitJS(t, "the "+screen+" screen", fmt.Sprintf(`document.querySelector("main.screen-%s") !== null`, screen), 5*time.Second)
}

// screenshot saves the viewport as <name>.png in screenshotDir.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	// From the top of the page, once transitions, the chart and the fonts have settled.
	eval[bool](t, b, `(document.querySelector("dialog[open]") || window.scrollTo(0, 0), document.fonts.ready.then(() => new Promise(r => setTimeout(() => r(true), 350))))`)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := screenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *browser) signIn(t *testing.T, email, password string) {
	t.Helper()
	b.waitJS(t, "the sign-in form", `document.querySelector("#login-email") !== null`, 10*time.Second)
	b.typeInto(t, "#login-email", email)
	b.typeInto(t, "#login-password", password)
	b.click(t, "#login-submit")
	b.waitJS(t, "the signed-in dashboard", `document.querySelector("#nav-overview") !== null`, 10*time.Second)
}

func (b *browser) signOut(t *testing.T) {
	t.Helper()
	b.click(t, "#sign-out")
	b.waitJS(t, "the sign-in form", `document.querySelector("#login-email") !== null`, 5*time.Second)
}

// screens are the dashboard's screens, each with what shows it has drawn its data.
var screens = []struct{ name, ready string }{
	{"overview", `document.querySelector("#total-30")?.dataset.value !== undefined && document.querySelector("#panel-latency") !== null`},
	{"messages", `document.querySelectorAll("#messages-body tr").length > 0`},
	{"compose", `document.querySelector("#compose-send") !== null && document.querySelector("#preview-title") !== null`},
	{"campaigns", `document.querySelector("article.campaign") !== null`},
	{"templates", `document.querySelector("#template-appointment_reminder") !== null`},
	{"preferences", `document.querySelectorAll("#preferences-body tr").length === 3`},
}

// overflowJS lists what is wider than its box: the page, and each card, panel and open
// dialog. A table or a long word that does not fit must wrap, never push the page sideways.
const overflowJS = `(() => {
	const out = [];
	const de = document.documentElement;
	if (de.scrollWidth > de.clientWidth) out.push("the page: " + de.scrollWidth + "px in " + de.clientWidth + "px");
	for (const el of document.querySelectorAll("main .card, main .panel, main .table-wrap, main .filters, main .compose-form, main .campaign, main .template, main .health-card, dialog[open]")) {
		if (el.scrollWidth > el.clientWidth) out.push((el.id ? "#" + el.id : "." + el.className.trim().replace(/ +/g, ".")) + ": " + el.scrollWidth + "px in " + el.clientWidth + "px");
	}
	return out;
})()`

// checkEveryScreenFits visits every screen (and a message's details) at a desk computer's
// and a phone's width, and fails on anything wider than the window or its card.
func (b *browser) checkEveryScreenFits(t *testing.T, lang string) {
	t.Helper()
	defer b.do(t, chromedp.EmulateViewport(1366, 768))
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"1280px", 1280, 800, false}, {"390px phone", 390, 844, true}} {
		if size.mobile {
			b.do(t, chromedp.EmulateViewport(size.width, size.height, chromedp.EmulateMobile))
		} else {
			b.do(t, chromedp.EmulateViewport(size.width, size.height))
		}
		for _, sc := range screens {
			b.show(t, sc.name)
			b.waitJS(t, "the "+sc.name+" screen's data", sc.ready, 10*time.Second)
			eval[bool](t, b, `new Promise(r => setTimeout(() => r(true), 400))`) // the chart, the fonts
			if over := eval[[]string](t, b, overflowJS); len(over) > 0 {
				t.Fatalf("%s in %s at %s: wider than the window or its card:\n%s", sc.name, lang, size.name, strings.Join(over, "\n"))
			}
			if sc.name == "messages" {
				b.click(t, "#messages-body tr button")
				b.waitJS(t, "the message's details", `document.querySelector("#message-detail").open && document.querySelectorAll("#timeline li").length > 0`, 5*time.Second)
				if over := eval[[]string](t, b, overflowJS); len(over) > 0 {
					t.Fatalf("a message's details in %s at %s: wider than the window:\n%s", lang, size.name, strings.Join(over, "\n"))
				}
				b.do(t, chromedp.KeyEvent("\x1b"))
				b.waitJS(t, "the dialog to close", `!document.querySelector("#message-detail").open`, 3*time.Second)
			}
		}
	}
}

// checkLegend checks the daily chart's legend names its series, each with a value.
func (b *browser) checkLegend(t *testing.T, labels []string) {
	t.Helper()
	b.waitJS(t, "the chart's legend", `document.querySelectorAll("#daily-chart .u-legend .u-series").length === 3`, 5*time.Second)
	got := eval[[][]string](t, b, `[...document.querySelectorAll("#daily-chart .u-legend .u-series")].map(s => [s.querySelector(".u-label")?.textContent.trim() || "", s.querySelector(".u-value")?.textContent.trim() || ""])`)
	for i, want := range labels {
		if got[i][0] != want || got[i][1] == "" || got[i][1] == "--" {
			t.Fatalf("expected the legend's series %d to read %q with a value, got %q", i, want, got)
		}
	}
}

// sendSkipped sends the composed message and checks that the answer, a skipped message,
// shows as a warning with its reason (title and reason in the page's language), and never
// as accepted.
func (b *browser) sendSkipped(t *testing.T, title, reason string) {
	t.Helper()
	before := b.attr(t, "#compose-sent", "data-id")
	b.click(t, "#compose-send")
	b.waitJS(t, "the send's answer", fmt.Sprintf(`(document.querySelector("#compose-sent")?.dataset.id || %q) !== %q`, before, before), 5*time.Second)
	id := b.attr(t, "#compose-sent", "data-id")
	if got := b.attr(t, "#compose-sent", "data-status"); got != "skipped" || id == "" {
		t.Fatalf("expected a skipped message, got status %q (id %q)", got, id)
	}
	if got := b.attr(t, "#compose-sent", "class"); !strings.Contains(got, "warn") || strings.Contains(got, "ok") {
		t.Fatalf("expected the skipped message shown as a warning, got class %q", got)
	}
	if got := b.text(t, "#compose-sent"); !strings.Contains(got, title) {
		t.Fatalf("expected the answer to say %q, got %q", title, got)
	}
	if got := b.text(t, "#compose-sent-reason"); got != reason {
		t.Fatalf("expected the reason %q, got %q", reason, got)
	}
	if got := b.attr(t, "#toast", "class"); !strings.Contains(got, "toast-warn") {
		t.Fatalf("expected a warning toast, got class %q", got)
	}
}

// checkColumnVars checks that the template's variables are recognised in the CSV columns
// (and said so with intro) rather than the template said to have none (noneText).
func (b *browser) checkColumnVars(t *testing.T, noneText, intro string) {
	t.Helper()
	b.waitJS(t, "the variables from the CSV", `document.querySelector("#campaign-vars-columns")?.dataset.vars === "patient_name,date,time"`, 5*time.Second)
	if got := b.text(t, "#campaign-vars"); strings.Contains(got, noneText) || !strings.Contains(got, intro) || !strings.Contains(got, "patient_name, date, time") {
		t.Fatalf("expected the CSV's columns named as the template's variables, got %q", got)
	}
}

// checkMissingVars checks that exactly the variables named in missing are marked invalid,
// each with msg under it.
func (b *browser) checkMissingVars(t *testing.T, missing []string, msg string) {
	t.Helper()
	b.waitJS(t, "the missing variables marked", fmt.Sprintf(`document.querySelector('[data-field="var.%s"]')?.classList.contains("invalid")`, missing[0]), 5*time.Second)
	type field struct {
		Name    string `json:"name"`
		Invalid bool   `json:"invalid"`
		Aria    string `json:"aria"`
		Error   string `json:"error"`
	}
	got := eval[[]field](t, b, `[...document.querySelectorAll('.vars [data-field^="var."]')].map(f => ({name: f.dataset.field.slice(4),
		invalid: f.classList.contains("invalid"), aria: f.querySelector("input").getAttribute("aria-invalid") || "",
		error: f.querySelector(".field-error").hidden ? "" : f.querySelector(".field-error").textContent}))`)
	if len(got) == 0 {
		t.Fatal("expected the template's variables as fields")
	}
	for _, f := range got {
		want := false
		for _, m := range missing {
			want = want || m == f.Name
		}
		if f.Invalid != want || (f.Aria == "true") != want || (f.Error == msg) != want {
			t.Fatalf("expected only %v marked missing with %q, got %+v", missing, msg, got)
		}
	}
	if eval[bool](t, b, `document.querySelector(".vars").classList.contains("invalid")`) {
		t.Fatal("the variables' box is marked invalid as a whole; only the missing variables must be")
	}
}

// latinProseJS lists the Latin-script words (3 letters or more) of the page's visible
// text, so that an Arabic screen is known to show no English sentence: what the page
// marks as not to be translated (translate="no": a patient's message, a template's text,
// a name, an id, a phone number), what is marked as in another language (lang="en": the
// language switch) and codes in <code> are left out, and so are email
// addresses, tokens with a digit or an underscore (ids, numbers, codes), product and
// vendor names, and the proper names the test seeds (seededNames).
const latinProseJS = `((names) => {
	const allow = new Set(["clinicmsg", "sms", "whatsapp", "twilio", "unifonic", "mock", "csv", "gsm", "ucs", "utc", "smtp", ...names.map(n => n.toLowerCase())]);
	const out = [];
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n; (n = walker.nextNode());) {
		const el = n.parentElement;
		if (!el || el.closest('code, kbd, samp, script, style, [translate="no"]')) continue;
		if (!(el.closest("[lang]")?.lang || "").startsWith("ar")) continue; // said in another language on purpose (the language switch)
		if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
		const text = n.textContent.replace(/\S+@\S+/g, " ").replace(/[A-Za-z0-9_-]*[0-9_][A-Za-z0-9_-]*/g, " ");
		for (const w of text.match(/[A-Za-z]{3,}/g) || []) {
			if (allow.has(w.toLowerCase())) continue;
			const where = el.id ? "#" + el.id : el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
			out.push(JSON.stringify(w) + " in " + JSON.stringify(n.textContent.trim().slice(0, 100)) + " (" + where + ")");
		}
	}
	return out;
})`

// seededNames are the proper names the test's data puts on screens.
var seededNames = []string{"Al", "Noor", "Clinic", "Shifa", "Sara", "Omar", "Layla", "Khalid", "Noura", "Fahad", "Huda", "Nobody", "desk", "admin"}

// checkNoLatinProse fails when the page's visible text has Latin-script prose: on an
// Arabic screen every reason, error, note and label is said in Arabic.
func (b *browser) checkNoLatinProse(t *testing.T, where string) {
	t.Helper()
	names, _ := json.Marshal(seededNames)
	if words := eval[[]string](t, b, latinProseJS+"("+string(names)+")"); len(words) > 0 {
		t.Fatalf("%s in Arabic shows Latin-script text:\n%s", where, strings.Join(words, "\n"))
	}
}

// openMessage opens a message's details through the address (#/messages?id=…) and waits
// for its timeline.
func (b *browser) openMessage(t *testing.T, id string) {
	t.Helper()
	eval[bool](t, b, fmt.Sprintf(`(location.hash = "#/messages?id=%s", true)`, id))
	b.waitJS(t, "the details of "+id, fmt.Sprintf(`document.querySelector("#message-detail")?.open && document.querySelector("#message-detail").dataset.id === %q &&
		document.querySelector("#timeline").dataset.id === %q && document.querySelectorAll("#timeline li[data-event]").length > 0`, id, id), 5*time.Second)
}

// dashboardData is the seeded world: clinic A with staff, an admin, a template, a few
// delivered and failed messages; clinic B with its own staff user and nothing else.
type dashboardData struct {
	staffA, adminA, staffB string // tokens
	failedID               string // a failed message of clinic A (the mock refuses the number)
	deliveredID            string // a delivered message of clinic A
	undeliveredID          string // reported undelivered by the mock
	duplicateID            string // skipped: the same message a moment before
	categoryID             string // skipped: the patient turned marketing off
	heldID                 string // scheduled: held for the clinic's quiet hours
	total, delivered       int
}

const (
	staffAEmail = "desk@alnoor.example"
	staffAPass  = "desk-password-1"
	adminAEmail = "admin@alnoor.example"
	adminAPass  = "admin-password-1"
	staffBEmail = "desk@alshifa.example"
	staffBPass  = "desk-password-2"
)

func (a *appliance) superuserToken() string {
	su := a.call("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": "admin@clinic.example", "password": "a-long-password-1"}, 200)
	return su["token"].(string)
}

// clinicUser creates a user of the clinic and signs it in.
func (a *appliance) clinicUser(suTok, clinic, email, password, role string) string {
	a.call("POST", "/api/collections/users/records", suTok, map[string]any{
		"email": email, "password": password, "passwordConfirm": password, "clinic": clinic, "role": role, "name": strings.Split(email, "@")[0]}, 200)
	res := a.call("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": email, "password": password}, 200)
	return res["token"].(string)
}

func seedDashboard(t *testing.T, a *appliance) *dashboardData {
	d := &dashboardData{staffA: a.staffToken()}
	su := a.superuserToken()
	clinics := a.call("GET", "/api/collections/clinics/records", d.staffA, nil, 200)
	clinicA := clinics["items"].([]any)[0].(map[string]any)["id"].(string)
	d.adminA = a.clinicUser(su, clinicA, adminAEmail, adminAPass, "admin")
	clinicB := a.call("POST", "/api/collections/clinics/records", su, map[string]any{"name": "Al Shifa Clinic", "default_language": "ar"}, 200)
	d.staffB = a.clinicUser(su, clinicB["id"].(string), staffBEmail, staffBPass, "staff")

	a.call("POST", "/api/collections/templates/records", d.adminA, map[string]any{
		"code": "appointment_reminder", "channel": "any", "category": "reminder", "active": true,
		"body_en": "Hello {{patient_name}}, your appointment at {{clinic_name}} is on {{date}} at {{time}}. Reply 1 to confirm.",
		"body_ar": "مرحبًا {{patient_name}}، موعدك في {{clinic_name}} يوم {{date}} الساعة {{time}}. أرسل ١ للتأكيد.",
	}, 200)
	a.call("POST", "/api/collections/templates/records", d.adminA, map[string]any{
		"code": "results_ready", "channel": "sms", "category": "results", "active": true,
		"body_en": "Your lab results are ready at {{clinic_name}}.", "body_ar": "نتائج التحاليل جاهزة في {{clinic_name}}.",
	}, 200)
	a.call("POST", "/api/collections/preferences/records", d.adminA, map[string]any{"patient_id": "P-1001", "phone": "0501234501", "language": "ar"}, 200)
	a.call("POST", "/api/collections/preferences/records", d.adminA, map[string]any{"patient_id": "P-1002", "phone": "0501234502", "language": "en", "whatsapp": false, "categories": map[string]bool{"marketing": false}}, 200)
	a.call("POST", "/api/collections/preferences/records", d.adminA, map[string]any{"patient_id": "P-1003", "phone": "0501234503", "opted_out": true, "opt_out_source": "desk"}, 200)

	names := []string{"Sara", "Omar", "Layla", "Khalid", "Noura", "Fahad"}
	for i, name := range names {
		msg := map[string]any{"channel": "sms", "to": fmt.Sprintf("05012346%02d", i), "template": "appointment_reminder",
			"context": map[string]any{"patient_name": name, "date": "1 Dec", "time": fmt.Sprintf("%d:00", 9+i)}}
		if i%2 == 1 {
			msg["language"] = "ar"
		}
		if i == 5 {
			msg["channel"] = "whatsapp"
		}
		res := a.call("POST", "/api/collections/messages/records", d.staffA, msg, 200)
		if i == 0 {
			d.deliveredID = res["id"].(string)
		}
	}
	failed := a.call("POST", "/api/collections/messages/records", d.staffA, map[string]any{"channel": "sms", "to": "+966500000001", "body": "Your results are ready."}, 200)
	d.failedID = failed["id"].(string)
	undelivered := a.call("POST", "/api/collections/messages/records", d.staffA, map[string]any{"channel": "sms", "to": "+966500000003", "body": "Please call the clinic."}, 200)
	d.undeliveredID = undelivered["id"].(string)

	// Messages that are not sent, each with its reason: the first reminder again (a
	// duplicate), marketing to a patient who turned it off, and marketing during the
	// clinic's quiet hours (from an hour ago to two hours from now, clinic time).
	dup := a.call("POST", "/api/collections/messages/records", d.staffA, map[string]any{"channel": "sms", "to": "0501234600", "template": "appointment_reminder",
		"context": map[string]any{"patient_name": "Sara", "date": "1 Dec", "time": "9:00"}}, 200)
	d.duplicateID = dup["id"].(string)
	cat := a.call("POST", "/api/collections/messages/records", d.staffA, map[string]any{"channel": "sms", "to": "0501234502", "patient_id": "P-1002", "category": "marketing", "body": "Our new clinic opens in January."}, 200)
	d.categoryID = cat["id"].(string)
	riyadh := time.Now().In(time.FixedZone("+03", 3*3600))
	a.call("PATCH", "/api/collections/clinics/records/"+clinicA, su, map[string]any{"quiet_start": riyadh.Add(-time.Hour).Format("15:04"),
		"quiet_end": riyadh.Add(2 * time.Hour).Format("15:04"), "quiet_categories": []string{"marketing"}}, 200)
	held := a.call("POST", "/api/collections/messages/records", d.staffA, map[string]any{"channel": "sms", "to": "0501234610", "category": "marketing", "body": "Flu shots are available this week."}, 200)
	d.heldID = held["id"].(string)
	for id, want := range map[string]string{d.duplicateID: "skipped", d.categoryID: "skipped", d.heldID: "scheduled"} {
		if got := a.call("GET", "/api/collections/messages/records/"+id, d.staffA, nil, 200); got["status"] != want {
			t.Fatalf("expected message %s %s, got %v (%v)", id, want, got["status"], got["status_reason"])
		}
	}
	d.total, d.delivered = 11, 6

	// The mock delivers within a second; wait until every message has its outcome.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := a.call("GET", "/api/clinicmsg/stats?days=30", d.staffA, nil, 200)
		by := st["by_status"].(map[string]any)
		if by["delivered"] == float64(6) && by["failed"] == float64(1) && by["undelivered"] == float64(1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the seeded messages did not reach their outcomes: %v", by)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d
}

// TestBrowserDashboard walks the staff dashboard as the front desk uses it.
func TestBrowserDashboard(t *testing.T) {
	chromiumPath(t) // fail first and clearly when the browser is missing
	a := startAppliance(t)
	d := seedDashboard(t, a)
	b := newBrowser(t, a.base)

	t.Run("sign in", func(t *testing.T) {
		b.do(t, chromedp.Navigate(a.base+"/app"))
		b.waitJS(t, "the sign-in form", `document.querySelector("#login-email") !== null`, 10*time.Second)
		if loc := eval[string](t, b, `location.pathname`); loc != "/app/" {
			t.Fatalf("expected /app to redirect to /app/, got %s", loc)
		}
		b.screenshot(t, "login-en")
		// A wrong password is an error on the form, not a crash.
		b.typeInto(t, "#login-email", staffAEmail)
		b.typeInto(t, "#login-password", "wrong-password")
		b.click(t, "#login-submit")
		b.waitJS(t, "a sign-in error", `!document.querySelector("#login-error").hidden`, 5*time.Second)
		b.signIn(t, staffAEmail, staffAPass)
		if got := b.text(t, "#clinic-name"); got != "Al Noor Clinic" {
			t.Fatalf("expected the clinic's name in the header, got %q", got)
		}
		b.checkConsole(t)
	})

	t.Run("overview shows the seeded numbers", func(t *testing.T) {
		b.waitJS(t, "the 30-day total", fmt.Sprintf(`document.querySelector("#total-30")?.dataset.value === "%d"`, d.total), 10*time.Second)
		for _, id := range []string{"#total-1", "#total-7", "#total-30"} {
			if got := b.attr(t, id, "data-value"); got != fmt.Sprint(d.total) {
				t.Fatalf("expected %s = %d, got %q", id, d.total, got)
			}
		}
		if got := b.text(t, "#total-30"); got != fmt.Sprint(d.total) {
			t.Fatalf("expected the 30-day total to read %d, got %q", d.total, got)
		}
		// 6 delivered of 8 finished (one failed, one undelivered).
		if got := b.attr(t, "#success-rate", "data-value"); got != "75" {
			t.Fatalf("expected a success rate of 75, got %q", got)
		}
		if got := b.text(t, "#success-rate"); got != "75%" {
			t.Fatalf("expected the success rate to read 75%%, got %q", got)
		}
		for status, n := range map[string]int{"delivered": 6, "failed": 1, "undelivered": 1} {
			sel := fmt.Sprintf(`#panel-statuses tr[data-key="%s"]`, status)
			if got := b.attr(t, sel, "data-value"); got != fmt.Sprint(n) {
				t.Fatalf("expected %d %s in the status table, got %q", n, status, got)
			}
		}
		if got := b.attr(t, `#panel-channels tr[data-key="whatsapp"]`, "data-value"); got != "1" {
			t.Fatalf("expected 1 WhatsApp message, got %q", got)
		}
		b.waitJS(t, "the daily chart", `document.querySelector("#daily-chart canvas") !== null`, 5*time.Second)
		b.checkLegend(t, []string{"Day", "Total", "Failed"})
		if got := eval[string](t, b, `document.querySelectorAll("#daily-chart .u-legend .u-value")[1].textContent`); got != fmt.Sprint(d.total) {
			t.Fatalf("expected the legend to total the period's %d messages, got %q", d.total, got)
		}
		b.waitJS(t, "provider health", `document.querySelector("#health-sms [data-status]")?.dataset.status === "healthy"`, 5*time.Second)
		if got := b.text(t, "#latency-delivery td"); got == "" || got == "—" {
			t.Fatalf("expected a delivery latency, got %q", got)
		}
		b.screenshot(t, "overview-en")
		b.checkConsole(t)
	})

	t.Run("messages list is live", func(t *testing.T) {
		b.show(t, "messages")
		b.waitJS(t, "the realtime subscription", `document.querySelector("#live-state").dataset.state === "live"`, 10*time.Second)
		b.waitJS(t, "the seeded rows", fmt.Sprintf(`document.querySelectorAll("#messages-body tr").length === %d`, d.total), 5*time.Second)
		eval[bool](t, b, `(window.__samePage = true)`)
		msg := a.call("POST", "/api/collections/messages/records", d.staffA, map[string]any{"channel": "sms", "to": "0501234570", "body": "Live list check: your prescription is ready."}, 200)
		id := msg["id"].(string)
		b.waitJS(t, "the new message in the list", fmt.Sprintf(`document.querySelector('#messages-body tr[data-id="%s"]') !== null`, id), 5*time.Second)
		b.waitJS(t, "its status to become delivered", fmt.Sprintf(`document.querySelector('#messages-body tr[data-id="%s"]').dataset.status === "delivered"`, id), 10*time.Second)
		if !eval[bool](t, b, `window.__samePage === true`) {
			t.Fatal("the page reloaded; the list must update in place")
		}

		// The timeline of the message, from message_logs.
		b.click(t, fmt.Sprintf(`#messages-body tr[data-id="%s"] button`, id))
		b.waitJS(t, "the message's timeline", `document.querySelector("#message-detail").open && document.querySelector('#timeline li[data-status="delivered"]') !== null`, 5*time.Second)
		if n := eval[int](t, b, `document.querySelectorAll("#timeline li").length`); n < 3 {
			t.Fatalf("expected the timeline to list at least 3 events, got %d", n)
		}
		if dir := b.attr(t, "#detail-body", "dir"); dir != "auto" {
			t.Fatalf("expected the message body to have dir=auto, got %q", dir)
		}
		b.screenshot(t, "message-en")
		b.do(t, chromedp.KeyEvent("\x1b")) // Escape closes the dialog
		b.waitJS(t, "the dialog to close", `!document.querySelector("#message-detail").open`, 3*time.Second)

		// Filter by status, then retry the failed message from its details: the open dialog
		// follows the new attempt (status, attempts, timeline) without being reopened.
		b.setField(t, "#filter-status", "failed")
		b.waitJS(t, "only failed messages", fmt.Sprintf(`(() => { const rows = [...document.querySelectorAll("#messages-body tr")]; return rows.length === 1 && rows[0].dataset.id === "%s" })()`, d.failedID), 5*time.Second)
		b.click(t, fmt.Sprintf(`#messages-body tr[data-id="%s"] button`, d.failedID))
		b.waitJS(t, "the failed message's details", `document.querySelector("#message-detail").open && document.querySelector("#detail-attempts")?.dataset.value === "1" && document.querySelector('#timeline li[data-event="failed"]') !== null`, 5*time.Second)
		b.click(t, "#message-detail button.retry")
		b.waitJS(t, "the retry to be confirmed", `document.querySelector("#toast").classList.contains("toast-ok")`, 5*time.Second)
		b.waitJS(t, "the details to show the second attempt", `(() => {
			const events = [...document.querySelectorAll("#timeline li")].map(l => l.dataset.event);
			const retried = events.indexOf("retry_requested");
			return document.querySelector("#message-detail").open && document.querySelector("#detail-attempts")?.dataset.value === "2" &&
				document.querySelector("#detail-status")?.dataset.status === "failed" && retried > 0 && events.indexOf("failed", retried) > retried })()`, 5*time.Second)
		b.do(t, chromedp.KeyEvent("\x1b"))
		b.waitJS(t, "the dialog to close", `!document.querySelector("#message-detail").open`, 3*time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for {
			logs := a.call("GET", "/api/collections/message_logs/records?filter="+url.QueryEscape("message='"+d.failedID+"' && event='retry_requested'"), d.staffA, nil, 200)
			if logs["totalItems"].(float64) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("expected the retry to be recorded in the message's timeline")
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.click(t, "#filter-clear")
		b.waitJS(t, "the unfiltered list", fmt.Sprintf(`document.querySelectorAll("#messages-body tr").length === %d`, d.total+1), 5*time.Second)
		// The phone filter takes the number as the desk types it.
		b.typeInto(t, "#filter-phone", "050 123 4570")
		b.waitJS(t, "the phone filter", fmt.Sprintf(`(() => { const rows = [...document.querySelectorAll("#messages-body tr")]; return rows.length === 1 && rows[0].dataset.id === "%s" })()`, id), 5*time.Second)
		b.click(t, "#filter-clear")
		b.waitJS(t, "the unfiltered list", fmt.Sprintf(`document.querySelectorAll("#messages-body tr").length === %d`, d.total+1), 5*time.Second)
		b.screenshot(t, "messages-en")
		b.checkConsole(t)
	})

	t.Run("compose previews Arabic as UCS-2 and sends", func(t *testing.T) {
		b.show(t, "compose")
		b.waitJS(t, "the editor", `document.querySelector("#compose-mode-text") !== null`, 5*time.Second)
		b.click(t, "#compose-mode-text")
		arabic := strings.Repeat("ب", 71) // 71 Arabic letters: UCS-2, 2 segments of 67
		b.typeInto(t, "#compose-body", arabic)
		b.waitJS(t, "the preview", `document.querySelector("#preview-segments")?.dataset.value === "2"`, 5*time.Second)
		if enc := b.attr(t, "#preview-encoding", "data-value"); enc != "ucs2" {
			t.Fatalf("expected UCS-2 for Arabic text, got %q", enc)
		}
		if n := b.attr(t, "#preview-chars", "data-value"); n != "71" {
			t.Fatalf("expected 71 characters, got %q", n)
		}
		if dir := b.attr(t, "#preview-body", "dir"); dir != "auto" {
			t.Fatalf("expected the preview to have dir=auto, got %q", dir)
		}

		// A wrong number: the API's 400 shows next to the recipient field, and nothing typed is lost.
		b.typeInto(t, "#compose-to", "12345")
		b.click(t, "#compose-send")
		b.waitJS(t, "the recipient's error", `(() => { const e = document.querySelector('[data-field="to"] .field-error'); return e && !e.hidden && e.textContent.length > 0 })()`, 5*time.Second)
		if got := eval[string](t, b, `document.querySelector("#compose-body").value`); got != arabic {
			t.Fatalf("the message text was lost after a failed send: %q", got)
		}
		if got := b.attr(t, "#compose-to", "aria-invalid"); got != "true" {
			t.Fatalf("expected the recipient field marked invalid, got %q", got)
		}

		b.typeInto(t, "#compose-to", "0501234580")
		b.click(t, "#compose-send")
		b.waitJS(t, "the sent message", `document.querySelector("#compose-sent") !== null`, 5*time.Second)
		id := b.attr(t, "#compose-sent", "data-id")
		got := a.call("GET", "/api/collections/messages/records/"+id, d.staffA, nil, 200)
		if got["body"] != arabic || got["to"] != "+966501234580" || got["encoding"] != "ucs2" || got["segments"] != float64(2) {
			t.Fatalf("expected the Arabic message stored as UCS-2 in 2 segments to +966501234580, got %v", got)
		}

		// A template: its variables become fields and the preview renders them.
		b.click(t, "#compose-mode-template")
		b.setField(t, "#compose-template", "appointment_reminder")
		b.waitJS(t, "the template's variables", `document.querySelector("#compose-var-patient_name") !== null`, 5*time.Second)
		b.typeInto(t, "#compose-var-patient_name", "Sara")
		b.typeInto(t, "#compose-to", "0501234581")
		// Sent with date and time empty: those two are marked, not every variable.
		b.click(t, "#compose-send")
		b.checkMissingVars(t, []string{"date", "time"}, "Fill in this variable.")
		b.typeInto(t, "#compose-var-date", "1 Dec")
		b.typeInto(t, "#compose-var-time", "10:00")
		if n := eval[int](t, b, `document.querySelectorAll(".field.invalid").length`); n != 0 {
			t.Fatalf("expected the marks gone once the variables are filled, %d remain", n)
		}
		b.waitJS(t, "the rendered preview", `document.querySelector("#preview-body")?.textContent.startsWith("Hello Sara, your appointment at Al Noor Clinic is on 1 Dec at 10:00")`, 5*time.Second)
		b.screenshot(t, "compose-en")

		// A patient who opted out: the message is skipped, and the desk is told so in amber,
		// with the reason, not that it was accepted.
		b.typeInto(t, "#compose-to", "0501234503")
		b.typeInto(t, "#compose-patient", "P-1003")
		b.sendSkipped(t, "Not sent", "The patient opted out of all messages.")
		if got := eval[string](t, b, `document.querySelector("#compose-to").value`); got != "0501234503" {
			t.Fatalf("expected the recipient kept after a skipped send, got %q", got)
		}
		b.checkConsole(t)
	})

	t.Run("a CSV campaign shows its progress to done", func(t *testing.T) {
		b.show(t, "campaigns")
		b.waitJS(t, "the campaign form", `document.querySelector("#campaign-template") !== null`, 5*time.Second)
		b.typeInto(t, "#campaign-name", "December reminders")
		b.setField(t, "#campaign-template", "appointment_reminder")
		b.setField(t, "#campaign-csv", "to,patient_id,patient_name,date,time\n0501111111,P-11,Sara,1 Dec,10:00\n0501111112,P-12,Omar,1 Dec,10:30\n0501111113,P-13,Huda,1 Dec,11:00\n12345,P-14,Nobody,1 Dec,11:30\n")
		b.waitJS(t, "the CSV to be read", `document.querySelector("#csv-info").textContent.includes("4")`, 5*time.Second)
		if eval[bool](t, b, `document.querySelector("#campaign-var-patient_name") !== null`) {
			t.Fatal("a variable given by a CSV column must not be asked for again")
		}
		b.checkColumnVars(t, "This template has no variables.", "From the CSV columns")
		b.click(t, "#campaign-check-btn")
		b.waitJS(t, "the recipient check", `document.querySelector("#check-valid")?.dataset.value === "3" && document.querySelector("#check-invalid")?.dataset.value === "1"`, 5*time.Second)
		// Watch the progress text from now on: it must move without a reload.
		eval[bool](t, b, `(() => { window.__progress = []; new MutationObserver(() => {
			for (const p of document.querySelectorAll(".progress-text")) { const v = p.dataset.done + "/" + p.dataset.total; if (window.__progress.at(-1) !== v) window.__progress.push(v); }
		}).observe(document.querySelector("#campaign-list"), {subtree: true, childList: true, attributes: true}); return true })()`)
		b.click(t, "#campaign-start")
		b.waitJS(t, "the campaign to finish", `document.querySelector('article.campaign[data-status="done"] .progress-text')?.dataset.done === "4"`, 20*time.Second)
		steps := eval[[]string](t, b, `window.__progress`)
		if len(steps) < 2 || steps[len(steps)-1] != "4/4" {
			t.Fatalf("expected the progress to move to 4/4 in place, saw %v", steps)
		}
		if got := b.attr(t, `article.campaign[data-status="done"] [data-count="delivered"]`, "data-value"); got != "3" {
			t.Fatalf("expected 3 delivered, got %q", got)
		}
		b.screenshot(t, "campaigns-en")
		b.checkConsole(t)
	})

	t.Run("templates and preferences are read-only for staff", func(t *testing.T) {
		b.show(t, "templates")
		b.waitJS(t, "the templates", `document.querySelector("#template-appointment_reminder") !== null`, 5*time.Second)
		if eval[bool](t, b, `document.querySelector("button.edit, #template-new") !== null`) {
			t.Fatal("staff must not see template edit buttons")
		}
		b.screenshot(t, "templates-en")
		b.show(t, "preferences")
		b.waitJS(t, "the preferences", `document.querySelectorAll("#preferences-body tr").length === 3`, 5*time.Second)
		b.screenshot(t, "preferences-en")
		b.checkConsole(t)
	})

	t.Run("every screen fits a desk computer and a phone in English", func(t *testing.T) {
		b.checkEveryScreenFits(t, "English")
		b.checkConsole(t)
	})

	t.Run("Arabic flips the page to right-to-left", func(t *testing.T) {
		b.show(t, "overview")
		b.click(t, "#lang-switch")
		b.waitJS(t, "RTL", `document.documentElement.dir === "rtl" && document.documentElement.lang === "ar"`, 3*time.Second)
		if got := b.text(t, "#nav-messages"); got != "الرسائل" {
			t.Fatalf("expected the navigation in Arabic, got %q", got)
		}
		// Remembered across a reload.
		b.do(t, chromedp.Reload())
		// The seeded messages, then the live list's, the composed, the skipped and the campaign's three.
		b.waitJS(t, "RTL after a reload", `document.documentElement.dir === "rtl" && document.querySelector("#total-30")?.dataset.value === "`+fmt.Sprint(d.total+6)+`"`, 10*time.Second)
		if missing := eval[[]string](t, b, `import("/app/js/i18n.js").then(m => m.untranslated())`); len(missing) > 0 {
			t.Fatalf("strings missing a translation: %v", missing)
		}
		b.checkLegend(t, []string{"اليوم", "الإجمالي", "الفاشلة"})
		b.waitJS(t, "the provider health notes", `document.querySelector("#health-sms .health-note") !== null`, 5*time.Second)
		b.checkNoLatinProse(t, "the overview")
		b.screenshot(t, "overview-ar")
		b.show(t, "messages")
		b.waitJS(t, "the list", `document.querySelectorAll("#messages-body tr").length > 0`, 5*time.Second)
		if n := eval[int](t, b, `[...document.querySelectorAll("#messages-body .body-excerpt")].filter(e => e.getAttribute("dir") !== "auto").length`); n != 0 {
			t.Fatalf("expected every message body to have dir=auto, %d do not", n)
		}
		b.waitJS(t, "the reasons in the list", `document.querySelectorAll("#messages-body .reason").length >= 4`, 5*time.Second)
		b.checkNoLatinProse(t, "the messages list")
		b.screenshot(t, "messages-ar")
		// Each message's reason and timeline in Arabic, from their codes.
		for _, m := range []struct{ id, status, code, reason string }{
			{d.failedID, "failed", "permanent", "رفض المزوّد هذه الرسالة؛ إعادة إرسالها لن تفيد."},
			{d.undeliveredID, "undelivered", "reported_undelivered", "أبلغ المزوّد (mock) أن الهاتف لم يستلمها."},
			{d.duplicateID, "skipped", "duplicate", "أُرسلت الرسالة نفسها إلى هذا المريض قبل"},
			{d.categoryID, "skipped", "category_disabled", "أوقف المريض رسائل «تسويق»."},
			{d.heldID, "scheduled", "quiet_hours", "مؤجّلة بسبب ساعات الهدوء حتى"},
			{d.deliveredID, "delivered", "", ""},
		} {
			b.openMessage(t, m.id)
			if got := b.attr(t, "#detail-status", "data-status"); got != m.status {
				t.Fatalf("expected message %s %s, got %q", m.id, m.status, got)
			}
			if got := b.attr(t, "#detail-reason", "data-code"); got != m.code {
				t.Fatalf("expected message %s's reason coded %q, got %q", m.id, m.code, got)
			}
			if got := b.text(t, "#detail-reason"); !strings.HasPrefix(got, m.reason) {
				t.Fatalf("expected message %s's reason to read %q, got %q", m.id, m.reason, got)
			}
			b.checkNoLatinProse(t, "the details of a "+m.status+" message")
			b.screenshot(t, "message-"+m.status+"-ar")
		}
		b.openMessage(t, d.failedID)
		b.screenshot(t, "message-ar")
		b.do(t, chromedp.KeyEvent("\x1b"))
		b.waitJS(t, "the dialog to close", `!document.querySelector("#message-detail").open`, 3*time.Second)
		eval[bool](t, b, `(history.replaceState(null, "", "#/messages"), true)`)
		b.show(t, "compose")
		b.waitJS(t, "the rendered Arabic preview", `document.querySelector("#preview-body") !== null`, 5*time.Second)
		b.setField(t, "#compose-language", "ar")
		b.waitJS(t, "the Arabic preview", `document.querySelector("#preview-body")?.textContent.startsWith("مرحبًا Sara")`, 5*time.Second)
		b.screenshot(t, "compose-ar")
		b.setField(t, "#compose-var-time", "")
		b.click(t, "#compose-send")
		b.checkMissingVars(t, []string{"time"}, "املأ هذا المتغيّر.")
		b.typeInto(t, "#compose-var-time", "10:00")
		b.sendSkipped(t, "لم تُرسل", "ألغى المريض الاشتراك في كل الرسائل.")
		b.checkNoLatinProse(t, "compose with a skipped message")
		// The API's error for a wrong number, from its code, next to the field.
		b.typeInto(t, "#compose-to", "12345")
		b.click(t, "#compose-send")
		b.waitJS(t, "the recipient's error", `(() => { const e = document.querySelector('[data-field="to"] .field-error'); return e && !e.hidden && e.textContent.length > 0 })()`, 5*time.Second)
		if got := b.text(t, `[data-field="to"] .field-error`); got != "رقم الهاتف غير صالح." && got != "هذا ليس رقم جوال، فلا يمكنه استقبال الرسائل." {
			t.Fatalf("expected the recipient's error in Arabic, got %q", got)
		}
		if got := b.attr(t, `[data-field="to"] .hint bdi`, "dir"); got != "ltr" {
			t.Fatalf("expected the phone examples of the hint kept left to right, got dir %q", got)
		}
		b.checkNoLatinProse(t, "compose with a field error")
		b.screenshot(t, "compose-error-ar")
		b.typeInto(t, "#compose-to", "0501234503")
		b.show(t, "campaigns")
		b.waitJS(t, "the campaign list", `document.querySelector("article.campaign") !== null`, 5*time.Second)
		b.checkNoLatinProse(t, "the campaigns")
		b.screenshot(t, "campaigns-ar")
		b.setField(t, "#campaign-template", "appointment_reminder")
		b.setField(t, "#campaign-csv", "to,patient_id,patient_name,date,time\n0501111111,P-11,سارة,1 Dec,10:00\n12345,P-14,Nobody,1 Dec,11:30\n")
		b.checkColumnVars(t, "لا متغيّرات في هذا القالب.", "من أعمدة ملف CSV")
		b.click(t, "#campaign-check-btn")
		b.waitJS(t, "the recipient check", `document.querySelector("#check-invalid")?.dataset.value === "1"`, 5*time.Second)
		b.click(t, "#campaign-check .invalid-list summary")
		b.checkNoLatinProse(t, "a campaign's recipient check")
		b.setField(t, "#campaign-csv", "")
		b.show(t, "templates")
		b.waitJS(t, "the templates", `document.querySelector("#template-appointment_reminder") !== null`, 5*time.Second)
		b.checkNoLatinProse(t, "the templates")
		b.screenshot(t, "templates-ar")
		b.show(t, "preferences")
		b.waitJS(t, "the preferences", `document.querySelectorAll("#preferences-body tr").length === 3`, 5*time.Second)
		b.checkNoLatinProse(t, "the patient preferences")
		b.screenshot(t, "preferences-ar")
		if missing := eval[[]string](t, b, `[...window.__missingStrings]`); len(missing) > 0 {
			t.Fatalf("the screens used strings that do not exist: %v", missing)
		}
		b.checkConsole(t)
	})

	t.Run("every screen fits a desk computer and a phone in Arabic", func(t *testing.T) {
		b.do(t, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		for _, sc := range screens[:2] { // the overview and the messages
			b.show(t, sc.name)
			b.waitJS(t, "the "+sc.name+" screen's data", sc.ready, 10*time.Second)
			b.screenshot(t, sc.name+"-ar-phone")
		}
		b.checkEveryScreenFits(t, "Arabic")
		b.checkConsole(t)
	})

	t.Run("a clinic admin edits a template", func(t *testing.T) {
		b.signOut(t)
		b.checkNoLatinProse(t, "the sign-in page")
		b.screenshot(t, "login-ar")
		b.signIn(t, adminAEmail, adminAPass)
		b.show(t, "templates")
		b.click(t, "#edit-results_ready")
		b.waitJS(t, "the edit form", `document.querySelector("#template-edit").open`, 3*time.Second)
		b.setField(t, "#template-edit-body_en", "Your lab results are ready at {{clinic_name}}. Bring your ID.")
		b.click(t, "#template-edit-save")
		b.waitJS(t, "the dialog to close", `document.querySelector("#template-edit") === null`, 5*time.Second)
		list := a.call("GET", "/api/collections/templates/records?filter="+url.QueryEscape("code='results_ready'"), d.adminA, nil, 200)
		if body := list["items"].([]any)[0].(map[string]any)["body_en"]; body != "Your lab results are ready at {{clinic_name}}. Bring your ID." {
			t.Fatalf("expected the edited template saved, got %q", body)
		}
		b.click(t, "#lang-switch") // back to English for the next user
		b.waitJS(t, "LTR", `document.documentElement.dir === "ltr"`, 3*time.Second)
		b.checkConsole(t)
	})

	t.Run("a staff user of clinic B never sees clinic A", func(t *testing.T) {
		b.signOut(t)
		b.signIn(t, staffBEmail, staffBPass)
		if got := b.text(t, "#clinic-name"); got != "Al Shifa Clinic" {
			t.Fatalf("expected clinic B's name, got %q", got)
		}
		b.waitJS(t, "clinic B's totals", `document.querySelector("#total-30")?.dataset.value === "0"`, 10*time.Second)
		b.show(t, "messages")
		b.waitJS(t, "an empty list", `document.querySelector("#live-state").dataset.state === "live" && !document.querySelector("#messages-empty").hidden`, 10*time.Second)
		// A message of clinic A while clinic B watches: it never shows.
		msg := a.call("POST", "/api/collections/messages/records", d.staffA, map[string]any{"channel": "sms", "to": "0501234590", "body": "Clinic A only."}, 200)
		a.waitStatus(d.staffA, msg["id"].(string), "delivered", 10*time.Second)
		eval[bool](t, b, `new Promise(r => setTimeout(() => r(true), 300))`)
		if n := eval[int](t, b, `document.querySelectorAll("#messages-body tr").length`); n != 0 {
			t.Fatalf("clinic B sees %d of clinic A's messages", n)
		}
		// A page of 50 at a time, the next one after the oldest row shown (created, id), and
		// never a count of the whole list: 55 messages sent in one request (many share their
		// creation time) come as 50, then 5, each once and newest first.
		batch := make([]map[string]any, 55)
		for i := range batch {
			batch[i] = map[string]any{"channel": "sms", "to": fmt.Sprintf("05012350%02d", i), "body": fmt.Sprintf("Page check %d.", i)}
		}
		if res := a.call("POST", "/api/clinicmsg/send", d.staffB, batch, 200); res["accepted"] != float64(len(batch)) {
			t.Fatalf("expected %d messages accepted, got %v", len(batch), res["accepted"])
		}
		// Once they are delivered no realtime update adds a row behind the test's back.
		deadline := time.Now().Add(15 * time.Second)
		for a.call("GET", "/api/clinicmsg/stats?days=1", d.staffB, nil, 200)["by_status"].(map[string]any)["delivered"] != float64(len(batch)) {
			if time.Now().After(deadline) {
				t.Fatal("the 55 messages were not delivered within 15s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		eval[bool](t, b, `(performance.clearResourceTimings(), true)`)
		b.click(t, "#filter-clear") // the list again from its newest page
		b.waitJS(t, "the first page", `document.querySelectorAll("#messages-body tr").length === 50 && !document.querySelector("#messages-more").hidden`, 10*time.Second)
		b.click(t, "#messages-more")
		b.waitJS(t, "the second page", `document.querySelectorAll("#messages-body tr").length === 55 && document.querySelector("#messages-more").hidden`, 10*time.Second)
		rows := eval[[]string](t, b, `[...document.querySelectorAll("#messages-body tr")].map(r => r.dataset.id)`)
		seen := map[string]bool{}
		for _, id := range rows {
			if seen[id] {
				t.Fatalf("message %s is listed twice", id)
			}
			seen[id] = true
		}
		list := a.call("GET", "/api/collections/messages/records?perPage=55&sort=-created,-id&skipTotal=1", d.staffB, nil, 200)
		for i, it := range list["items"].([]any) {
			if id := it.(map[string]any)["id"]; rows[i] != id {
				t.Fatalf("expected row %d to be %v (newest first), got %s", i, id, rows[i])
			}
		}
		reqs := eval[[]string](t, b, `performance.getEntriesByType("resource").map(e => e.name).filter(n => n.includes("/api/collections/messages/records?"))`)
		for _, r := range reqs {
			if !strings.Contains(r, "skipTotal=true") || strings.Contains(r, "page=2") {
				t.Fatalf("expected the list read by cursor without a count, got %s", r)
			}
		}
		if len(reqs) < 2 {
			t.Fatalf("expected two page requests, got %v", reqs)
		}

		b.show(t, "templates")
		b.waitJS(t, "an empty template list", `document.querySelector("#template-list .empty") !== null`, 5*time.Second)
		b.show(t, "campaigns")
		b.waitJS(t, "an empty campaign list", `document.querySelector("#campaign-list .empty") !== null`, 5*time.Second)
		b.show(t, "preferences")
		b.waitJS(t, "no preferences", `document.querySelectorAll("#preferences-body tr").length === 0 && document.querySelector("#preferences-count").textContent !== ""`, 5*time.Second)
		b.checkConsole(t)
	})
}
