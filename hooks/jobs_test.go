package hooks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"clinicmsg/hooks"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/tools/types"
)

func TestJobsAreScheduled(t *testing.T) {
	e := newEnv(t)
	want := map[string]string{
		hooks.JobUpdateStatuses: "*/5 * * * *",
		hooks.JobRetryFailed:    "0 * * * *",
		hooks.JobCleanup:        "*/15 * * * *", // each clinic at 02:00 its time
		hooks.JobCheckHealth:    "*/15 * * * *",
		hooks.JobRollupStats:    "*/5 * * * *",
	}
	got := map[string]string{}
	for _, j := range e.app.Cron().Jobs() {
		if _, ours := want[j.Id()]; ours {
			got[j.Id()] = j.Expression()
		}
	}
	for name, expr := range want {
		must(t, got[name] == expr, "job %s: expected schedule %q, got %q", name, expr, got[name])
	}
}

func TestCleanupDue(t *testing.T) {
	scenarios := []struct {
		utc  string
		zone string
		due  bool
	}{
		{"2026-03-10 23:00", "Asia/Riyadh", true}, // 02:00 in Riyadh (UTC+3)
		{"2026-03-10 23:14", "Asia/Riyadh", true},
		{"2026-03-10 23:15", "Asia/Riyadh", false},
		{"2026-03-10 22:59", "Asia/Riyadh", false},
		{"2026-03-10 02:00", "Asia/Riyadh", false},
		{"2026-03-10 20:30", "Asia/Kolkata", true}, // UTC+5:30
		{"2026-03-10 20:15", "Asia/Kolkata", false},
		{"2026-03-10 20:15", "Asia/Kathmandu", true}, // UTC+5:45
		{"2026-07-10 00:00", "Europe/London", false}, // 01:00 BST
		{"2026-07-10 01:00", "Europe/London", true},  // 02:00 BST
		{"2026-01-10 02:00", "Europe/London", true},  // 02:00 GMT
	}
	for _, s := range scenarios {
		t.Run(s.utc+" "+s.zone, func(t *testing.T) {
			now, _ := time.Parse("2006-01-02 15:04", s.utc)
			loc, err := time.LoadLocation(s.zone)
			must(t, err == nil, "zone: %v", err)
			must(t, hooks.CleanupDue(now, loc) == s.due, "expected due=%v", s.due)
		})
	}
}

// TestCleanupDeletesExactlyTheOldRows: each clinic keeps retention_days of messages; older
// messages go with their logs, in batches, and nothing else is touched.
func TestCleanupDeletesExactlyTheOldRows(t *testing.T) {
	e := newEnv(t).quiet()
	e.clinicA.Set("retention_days", 30)
	if err := e.app.Save(e.clinicA); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }
	a, b := e.clinicA.Id, e.clinicB.Id

	// More old rows than one batch holds, so the batching loop runs.
	var oldA []row
	for range 1234 {
		oldA = append(oldA, row{clinic: a, channel: "sms", status: "delivered", created: days(45)})
	}
	oldAIDs := e.insert(oldA...)
	keptA := e.insert(
		row{clinic: a, channel: "sms", status: "delivered", created: days(29)},
		row{clinic: a, channel: "sms", status: "failed", created: days(1)},
	)
	keptB := e.insert(row{clinic: b, channel: "sms", status: "delivered", created: days(45)}) // B keeps 90 days
	oldB := e.insert(row{clinic: b, channel: "sms", status: "delivered", created: days(91)})
	for _, id := range append(append(append([]string{oldAIDs[0], oldAIDs[1233]}, keptA...), keptB...), oldB...) {
		e.addLogs(id, 2)
	}

	res := e.runJob(hooks.JobCleanup)
	must(t, res.Outcome == "ok", "expected ok, got %+v", res)
	must(t, res.Detail["messages_deleted"] == 1235 && res.Detail["logs_deleted"] == 6,
		"expected 1235 messages and 6 logs deleted, got %v", res.Detail)

	var left []string
	err := e.app.DB().NewQuery("SELECT id FROM messages ORDER BY id").Column(&left)
	must(t, err == nil, "%v", err)
	want := append(append([]string{}, keptA...), keptB...)
	slices.Sort(want)
	must(t, slices.Equal(left, want), "expected exactly %v to remain, got %d rows", want, len(left))

	var logOwners []string
	err = e.app.DB().NewQuery("SELECT DISTINCT message FROM message_logs ORDER BY message").Column(&logOwners)
	must(t, err == nil, "%v", err)
	must(t, slices.Equal(logOwners, want), "expected logs of exactly the kept messages, got %v", logOwners)

	again := e.runJob(hooks.JobCleanup)
	must(t, again.Detail["messages_deleted"] == 0, "a second run must delete nothing, got %v", again.Detail)
}

// addLogs writes n audit rows for a message.
func (e *env) addLogs(id string, n int) {
	e.t.Helper()
	for i := range n {
		_, err := e.app.DB().Insert("message_logs", dbx.Params{"id": fmt.Sprintf("l%s%d", id[1:14], i), "message": id, "event": "test", "status": "queued",
			"created": types.NowDateTime().String()}).Execute()
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestRetryFailedRequeuesOnlyRetryableFailures: a message that failed retryably in the last
// 24 hours and has attempts left is queued again and sent; every other failure stays.
func TestRetryFailedRequeuesOnlyRetryableFailures(t *testing.T) {
	e := newEnv(t) // the dispatcher runs: a requeued message must go out
	now := time.Now().UTC()
	a := e.clinicA.Id
	ids := e.insert(
		row{clinic: a, channel: "sms", status: "failed", reason: "attempts_exhausted", provider: "mock", attempts: 1, errorCode: "mock-unavailable", created: now.Add(-time.Hour)},
		row{clinic: a, channel: "sms", status: "failed", reason: "no_provider", attempts: 0, created: now.Add(-2 * time.Hour)},
		row{clinic: a, channel: "sms", status: "failed", reason: "attempts_exhausted", provider: "mock", attempts: 3, created: now.Add(-time.Hour)},
		row{clinic: a, channel: "sms", status: "failed", reason: "permanent", provider: "mock", attempts: 1, created: now.Add(-time.Hour)},
		row{clinic: a, channel: "sms", status: "failed", reason: "reported_failed: reported failed by twilio", provider: "twilio", attempts: 1, created: now.Add(-time.Hour)},
		row{clinic: a, channel: "sms", status: "failed", reason: "attempts_exhausted", provider: "mock", attempts: 1, created: now.Add(-26 * time.Hour), updated: now.Add(-25 * time.Hour)},
	)
	res := e.runJob(hooks.JobRetryFailed)
	must(t, res.Detail["requeued"] == 2, "expected 2 requeued, got %v", res.Detail)

	for i, id := range ids[:2] {
		rec := e.waitStatus(id, "delivered", 5*time.Second)
		trail := e.logEvents(id)
		must(t, slices.Contains(trail, "retry_requested:queued"), "message %d: expected a retry_requested log row, got %v", i, trail)
		must(t, rec.GetInt("attempts") == []int{2, 1}[i], "message %d: expected one more attempt, got %d", i, rec.GetInt("attempts"))
	}
	for i, id := range ids[2:] {
		rec := e.message(id)
		must(t, rec.GetString("status") == "failed", "message %d must stay failed, got %s", i+2, rec.GetString("status"))
	}
}

// TestUpdateStatusesPollsWaitingMessages: messages sent 2 minutes to 24 hours ago that
// still wait for a receipt are asked about; the answer goes through the status machine.
func TestUpdateStatusesPollsWaitingMessages(t *testing.T) {
	e := newEnv(t).quiet()
	now := time.Now().UTC()
	a := e.clinicA.Id
	mk := func(id, provider, suffix string, sentAgo time.Duration) row {
		return row{id: id, clinic: a, channel: "sms", status: "sent", provider: provider, providerID: "mock_" + id + suffix, attempts: 1,
			created: now.Add(-sentAgo - time.Second), sent: time.Second}
	}
	ids := e.insert(
		mk("poll00000000001", "mock", "_d", 10*time.Minute),
		mk("poll00000000002", "mock", "_u", 3*time.Hour),
		mk("poll00000000003", "mock", "_d", 30*time.Second), // too young: its webhook may be on its way
		mk("poll00000000004", "mock", "_d", 25*time.Hour),   // too old
		mk("poll00000000005", "email", "", 10*time.Minute),  // email cannot report a status
	)
	res := e.runJob(hooks.JobUpdateStatuses)
	must(t, res.Detail["candidates"] == 2 && res.Detail["changed"] == 2, "expected 2 candidates, both changed, got %v", res.Detail)

	want := []string{"delivered", "undelivered", "sent", "sent", "sent"}
	for i, id := range ids {
		got := e.message(id).GetString("status")
		must(t, got == want[i], "message %d: expected %s, got %s", i, want[i], got)
	}
	logs, err := e.app.FindRecordsByFilter("message_logs", "message = {:m} && event = 'status'", "", 0, 0, dbx.Params{"m": ids[0]})
	must(t, err == nil && len(logs) == 1 && strings.Contains(logs[0].GetString("detail"), `"source":"poll"`),
		"expected one status log row from the poll, got %v %v", logs, err)

	again := e.runJob(hooks.JobUpdateStatuses)
	must(t, again.Detail["candidates"] == 0, "a second poll must find nothing waiting, got %v", again.Detail)
}

// TestJobRunsNeverOverlap: a job asked to run while it runs is refused, whether the run
// is in this process or (per job_runs) another one; a run whose process died is closed.
func TestJobRunsNeverOverlap(t *testing.T) {
	e := newEnv(t).quiet()
	started, release := make(chan struct{}), make(chan struct{})
	e.svc.AddTestJob("slow", func(ctx context.Context) error {
		close(started)
		<-release
		return nil
	})
	type run struct {
		res hooks.JobResult
		err error
	}
	done := make(chan run)
	go func() {
		res, err := e.svc.RunJob(context.Background(), "slow", "test")
		done <- run{res, err}
	}()
	<-started
	res, err := e.svc.RunJob(context.Background(), "slow", "test")
	must(t, errors.Is(err, hooks.ErrJobRunning) && res.Outcome == "skipped", "a second run must be refused, got %v %+v", err, res)
	close(release)
	first := <-done
	must(t, first.err == nil && first.res.Outcome == "ok", "the first run must finish ok, got %v %+v", first.err, first.res)

	// Another process (a `clinicmsg jobs run` beside the server) holds the job.
	e.svc.AddTestJob("shared", func(ctx context.Context) error { return nil })
	insertRun := func(started time.Time) string {
		rec := e.save("job_runs", map[string]any{"job": "shared", "trigger": "cli", "outcome": "running", "started": started, "owner": "otherhost:42"})
		return rec.Id
	}
	fresh := insertRun(time.Now().UTC().Add(-time.Second))
	_, err = e.svc.RunJob(context.Background(), "shared", "test")
	must(t, errors.Is(err, hooks.ErrJobRunning) && strings.Contains(err.Error(), "otherhost:42"), "expected a refusal naming the other process, got %v", err)

	// That process died: after the job's timeout its row no longer holds the job.
	_, err = e.app.DB().NewQuery("UPDATE job_runs SET started = {:s} WHERE id = {:id}").
		Bind(dbx.Params{"s": types.NowDateTime().Add(-2 * time.Hour).String(), "id": fresh}).Execute()
	must(t, err == nil, "%v", err)
	res, err = e.svc.RunJob(context.Background(), "shared", "test")
	must(t, err == nil && res.Outcome == "ok", "a run abandoned by a dead process must not block, got %v %+v", err, res)
	stale, err := e.app.FindRecordById("job_runs", fresh)
	must(t, err == nil, "the abandoned run: %v", err)
	must(t, stale.GetString("outcome") == "failed" && strings.Contains(stale.GetString("error"), "abandoned"), "the abandoned run must be closed, got %v", stale)
}

// TestJobFailuresAreContained: a job that fails or panics is recorded as such and the
// other jobs still run.
func TestJobFailuresAreContained(t *testing.T) {
	e := newEnv(t).quiet()
	e.svc.AddTestJob("fails", func(ctx context.Context) error { return errors.New("the vendor said no") })
	e.svc.AddTestJob("panics", func(ctx context.Context) error { panic("boom") })
	scenarios := []struct {
		job     string
		outcome string
		errText string
	}{
		{"fails", "failed", "the vendor said no"},
		{"panics", "panicked", "boom"},
		{hooks.JobCheckHealth, "ok", ""},
		{"panics", "panicked", "boom"}, // the guard was released by the panic
		{hooks.JobRollupStats, "ok", ""},
	}
	for i, s := range scenarios {
		t.Run(fmt.Sprintf("%d %s", i, s.job), func(t *testing.T) {
			res, err := e.svc.RunJob(context.Background(), s.job, "test")
			must(t, res.Outcome == s.outcome, "expected %s, got %+v", s.outcome, res)
			must(t, (err == nil) == (s.errText == ""), "unexpected error %v", err)
			if s.errText != "" {
				must(t, strings.Contains(err.Error(), s.errText), "expected %q in %v", s.errText, err)
			}
			runs, err := e.app.FindRecordsByFilter("job_runs", "job = {:j}", "-started", 1, 0, dbx.Params{"j": s.job})
			must(t, err == nil && len(runs) == 1, "no job_runs row: %v", err)
			last := runs[0]
			must(t, last.GetString("outcome") == s.outcome && strings.Contains(last.GetString("error"), s.errText) && !last.GetDateTime("finished").IsZero(),
				"job_runs must record the outcome, got %v", last)
		})
	}
	_, err := e.svc.RunJob(context.Background(), "no-such-job", "test")
	must(t, err != nil && strings.Contains(err.Error(), hooks.JobCleanup), "an unknown job must be refused with the list of jobs, got %v", err)
}

// TestJobsCommand drives `clinicmsg jobs run` and `clinicmsg jobs list` as cobra commands.
func TestJobsCommand(t *testing.T) {
	e := newEnv(t).quiet()
	run := func(args ...string) (string, error) {
		cmd := hooks.NewJobsCommand(e.app, e.svc)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("run", hooks.JobCheckHealth)
	must(t, err == nil && strings.Contains(out, hooks.JobCheckHealth+": ok") && strings.Contains(out, "sms=healthy"), "run: %v\n%s", err, out)

	_, err = run("run", "nonsense")
	must(t, err != nil, "an unknown job must fail the command")

	out, err = run("list")
	must(t, err == nil, "list: %v", err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	must(t, len(lines) == 6 && strings.HasPrefix(lines[0], "JOB"), "expected a header and 5 jobs, got\n%s", out)
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, hooks.JobCheckHealth):
			must(t, strings.Contains(l, "ok") && strings.Contains(l, "(cli)") && !strings.Contains(l, "never"), "the health job ran: %q", l)
		default:
			must(t, strings.Contains(l, "never"), "the other jobs never ran: %q", l)
		}
	}
}
