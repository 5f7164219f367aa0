package hooks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"clinicmsg/internal/dispatch"
	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
	"github.com/spf13/cobra"
)

// Maintenance jobs, named and scheduled as in the original spec (cron expressions in UTC;
// PocketBase starts its cron only when the app serves). rollup-message-stats is ours: it
// keeps the statistics fast.
const (
	JobUpdateStatuses = "update-message-statuses"
	JobRetryFailed    = "retry-failed-messages"
	JobCleanup        = "cleanup-old-messages"
	JobCheckHealth    = "check-integration-health"
	JobRollupStats    = "rollup-message-stats"
)

// Job run triggers, recorded with each run.
const (
	TriggerCron = "cron"
	TriggerCLI  = "cli"
)

// ErrJobRunning is returned when a job is asked to run while a run of it is in progress,
// in this process or another one on the same data folder.
var ErrJobRunning = errors.New("the job is already running")

const (
	// pollMinAge: a delivery report usually arrives within seconds of the send; polling a
	// younger message would only race its webhook.
	pollMinAge = 2 * time.Minute
	// pollMaxPerRun bounds one status poll (the next run, 5 minutes later, takes the rest).
	pollMaxPerRun = 5000
	// pollWorkers is how many status fetches run at once: enough to get through a backlog,
	// few enough not to trip a vendor's rate limit.
	pollWorkers = 4
	// pollGiveUp: after this many failed fetches and no success, a provider is skipped for
	// the rest of the run instead of being asked thousands of times while it is down.
	pollGiveUp = 10
	// cleanupBatch is how many messages (and their logs) one transaction deletes: small, so
	// the single SQLite writer is never held for long.
	cleanupBatch = 500
	// cleanupPause lets other writers (the dispatcher, webhooks) in between batches.
	cleanupPause = 10 * time.Millisecond
	// jobRunsKeep is how long job_runs rows are kept.
	jobRunsKeep = 30 * 24 * time.Hour
	// retryWindow: failed messages older than this are not retried by the job.
	retryWindow = 24 * time.Hour
)

// retryableReasons are the status_reason values of failed messages whose last error was
// on our or the provider's side, so that another attempt can succeed: retries used up on
// retryable errors (given more when CLINICMSG_MAX_ATTEMPTS is raised), or no provider
// configured for the channel. A permanent failure, or one the provider reported after
// accepting the message, is never retried automatically: it could reach the patient twice.
var retryableReasons = []string{"attempts_exhausted", "no_provider"}

// jobSpec is one maintenance job.
type jobSpec struct {
	name     string
	schedule string // cron expression, UTC
	timeout  time.Duration
	about    string
	run      func(ctx context.Context, run *jobRun) error
	running  atomic.Bool
}

// jobRun collects what one run did, for its job_runs row and its log line.
type jobRun struct {
	trigger string
	mu      sync.Mutex
	detail  map[string]any
}

func (r *jobRun) set(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.detail[key] = v
}

func (r *jobRun) add(key string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, _ := r.detail[key].(int)
	r.detail[key] = v + n
}

// JobResult is the outcome of one job run.
type JobResult struct {
	Job      string         `json:"job"`
	Trigger  string         `json:"trigger"`
	Outcome  string         `json:"outcome"` // ok, failed, panicked or skipped
	Started  time.Time      `json:"started"`
	Duration time.Duration  `json:"duration"`
	Detail   map[string]any `json:"detail,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// jobRunner runs jobs one at a time each, from cron or on demand.
type jobRunner struct {
	s     *Service
	o     *opsState
	specs []*jobSpec
	owner string
}

func newJobRunner(s *Service, o *opsState) *jobRunner {
	host, _ := os.Hostname()
	r := &jobRunner{s: s, o: o, owner: fmt.Sprintf("%s:%d", host, os.Getpid())}
	r.specs = []*jobSpec{
		{name: JobUpdateStatuses, schedule: "*/5 * * * *", timeout: 4 * time.Minute, run: s.pollStatuses,
			about: "fetch the status of messages sent in the last 24 hours that are still waiting for a delivery report"},
		{name: JobRetryFailed, schedule: "0 * * * *", timeout: 10 * time.Minute, run: s.retryFailed,
			about: "queue again messages that failed retryably in the last 24 hours while attempts remain"},
		{name: JobCleanup, schedule: "*/15 * * * *", timeout: 2 * time.Hour, run: s.cleanupOld,
			about: "delete messages and their logs older than each clinic's retention_days, at 02:00 clinic time"},
		{name: JobCheckHealth, schedule: "*/15 * * * *", timeout: 2 * time.Minute, run: s.checkHealth,
			about: "check every provider and log channels that turn degraded or down"},
		{name: JobRollupStats, schedule: "*/5 * * * *", timeout: 30 * time.Minute, run: s.rollupStats,
			about: "roll finished days up into the statistics tables"},
	}
	return r
}

func (r *jobRunner) spec(name string) *jobSpec {
	for _, j := range r.specs {
		if j.name == name {
			return j
		}
	}
	return nil
}

// schedule adds every job to PocketBase's cron (which also lists them, and lets a superuser
// run them, in the admin UI).
func (r *jobRunner) schedule() {
	for _, j := range r.specs {
		name := j.name
		r.s.app.Cron().MustAdd(name, j.schedule, func() {
			_, _ = r.run(context.Background(), name, TriggerCron)
		})
	}
}

// JobNames lists the maintenance jobs in a stable order.
func (s *Service) JobNames() []string {
	var out []string
	for _, j := range s.ops().jobs.specs {
		out = append(out, j.name)
	}
	return out
}

// RunJob runs a maintenance job now and waits for it. trigger is recorded with the run
// (TriggerCLI, TriggerCron or a test's name). A job already running, here or in another
// process on the same data folder, is not started again: RunJob returns ErrJobRunning.
func (s *Service) RunJob(ctx context.Context, name, trigger string) (JobResult, error) {
	return s.ops().jobs.run(ctx, name, trigger)
}

func (r *jobRunner) run(ctx context.Context, name, trigger string) (res JobResult, err error) {
	j := r.spec(name)
	if j == nil {
		return JobResult{Job: name}, fmt.Errorf("unknown job %q; the jobs are %s", name, strings.Join(r.s.JobNames(), ", "))
	}
	res = JobResult{Job: name, Trigger: trigger, Started: time.Now().UTC()}
	logger := r.s.app.Logger().With("job", name, "trigger", trigger)
	if r.o.ctx.Err() != nil {
		return res, errors.New("the app is shutting down")
	}
	if !j.running.CompareAndSwap(false, true) {
		res.Outcome = "skipped"
		r.o.metrics.jobRuns.WithLabelValues(name, res.Outcome).Inc()
		logger.Warn("job not started: the previous run is still going")
		return res, ErrJobRunning
	}
	defer j.running.Store(false)
	r.o.wg.Add(1)
	defer r.o.wg.Done()

	rowID, err := r.claim(j, trigger, res.Started)
	if err != nil {
		res.Outcome = "skipped"
		if !errors.Is(err, ErrJobRunning) {
			res.Outcome = "failed"
		}
		r.o.metrics.jobRuns.WithLabelValues(name, res.Outcome).Inc()
		logger.Warn("job not started", "reason", err.Error())
		return res, err
	}

	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	stop := context.AfterFunc(r.o.ctx, cancel) // app shutdown ends the run too
	defer stop()

	run := &jobRun{trigger: trigger, detail: map[string]any{}}
	runErr := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				res.Outcome = "panicked"
				err = fmt.Errorf("job panicked: %v", p)
				logger.Error("job panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
		}()
		return j.run(ctx, run)
	}()
	res.Duration = time.Since(res.Started)
	res.Detail = run.detail
	switch {
	case res.Outcome == "panicked":
	case runErr != nil:
		res.Outcome = "failed"
	default:
		res.Outcome = "ok"
	}
	if runErr != nil {
		res.Error = runErr.Error()
	}
	if err := r.finish(rowID, res); err != nil {
		logger.Error("failed to record the job run", "error", err)
	}

	r.o.metrics.jobRuns.WithLabelValues(name, res.Outcome).Inc()
	r.o.metrics.jobSeconds.WithLabelValues(name).Set(res.Duration.Seconds())
	attrs := []any{"outcome", res.Outcome, "duration_ms", res.Duration.Milliseconds()}
	for k, v := range res.Detail {
		attrs = append(attrs, k, v)
	}
	if runErr != nil {
		logger.Error("job failed", append(attrs, "error", runErr)...)
		return res, runErr
	}
	r.o.metrics.jobSuccess.WithLabelValues(name).SetToCurrentTime()
	logger.Info("job finished", attrs...)
	return res, nil
}

// claim is the guard across processes (a `clinicmsg jobs run` beside the server): in one
// transaction it refuses when a fresh "running" row of the job exists, closes stale ones
// (their process died), and inserts this run's row.
func (r *jobRunner) claim(j *jobSpec, trigger string, started time.Time) (string, error) {
	var id string
	err := r.s.app.RunInTransaction(func(tx core.App) error {
		var running []struct {
			ID      string `db:"id"`
			Started string `db:"started"`
			Owner   string `db:"owner"`
		}
		err := tx.DB().NewQuery("SELECT id, started, owner FROM job_runs WHERE job = {:job} AND outcome = 'running'").
			Bind(dbx.Params{"job": j.name}).All(&running)
		if err != nil {
			return fmt.Errorf("failed to look for a running %s: %w", j.name, err)
		}
		staleBefore := store.FormatTime(started.Add(-j.timeout - time.Minute))
		for _, other := range running {
			if other.Started >= staleBefore {
				return fmt.Errorf("%w (in %s since %s)", ErrJobRunning, other.Owner, other.Started)
			}
			if err := store.AbandonJobRun(tx, other.ID); err != nil {
				return err
			}
		}
		id, err = store.StartJobRun(tx, j.name, trigger, r.owner, started)
		return err
	})
	return id, err
}

func (r *jobRunner) finish(id string, res JobResult) error {
	return store.FinishJobRun(r.s.app, id, res.Outcome, res.Started.Add(res.Duration), res.Duration, res.Detail, res.Error)
}

// JobStatus is one line of `clinicmsg jobs list`.
type JobStatus struct {
	Job      string
	Schedule string
	About    string
	Last     *JobResult // nil: never ran
	Running  string     // owner of a run in progress, if any
}

// JobStatuses reads each job's last run from job_runs, so it sees runs of every process.
func (s *Service) JobStatuses() ([]JobStatus, error) {
	var out []JobStatus
	for _, j := range s.ops().jobs.specs {
		st := JobStatus{Job: j.name, Schedule: j.schedule, About: j.about}
		var rows []struct {
			Trigger    string         `db:"trigger"`
			Outcome    string         `db:"outcome"`
			Started    types.DateTime `db:"started"`
			DurationMS int64          `db:"duration_ms"`
			Detail     types.JSONRaw  `db:"detail"`
			Error      string         `db:"error"`
			Owner      string         `db:"owner"`
		}
		err := s.app.DB().NewQuery(`SELECT trigger, outcome, started, duration_ms, detail, error, owner FROM job_runs
			WHERE job = {:job} ORDER BY started DESC LIMIT 2`).Bind(dbx.Params{"job": j.name}).All(&rows)
		if err != nil {
			return nil, fmt.Errorf("failed to read the runs of %s: %w", j.name, err)
		}
		for _, row := range rows {
			if row.Outcome == "running" {
				if st.Running == "" {
					st.Running = row.Owner + " since " + row.Started.String()
				}
				continue
			}
			if st.Last == nil {
				res := &JobResult{Job: j.name, Trigger: row.Trigger, Outcome: row.Outcome, Started: row.Started.Time(),
					Duration: time.Duration(row.DurationMS) * time.Millisecond, Error: row.Error}
				_ = res.unmarshalDetail(row.Detail)
				st.Last = res
			}
		}
		out = append(out, st)
	}
	return out, nil
}

func (r *JobResult) unmarshalDetail(raw types.JSONRaw) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, &r.Detail)
}

// NewJobsCommand returns `clinicmsg jobs`, with `list` and `run <name>`, for operators
// and for scripts (a failed run exits non-zero).
func NewJobsCommand(app core.App, s *Service) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List or run clinicmsg's maintenance jobs",
	}
	cmd.AddCommand(&cobra.Command{
		Use:          "list",
		Short:        "Show each job's schedule and last run",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := prepareCLI(app); err != nil {
				return err
			}
			statuses, err := s.JobStatuses()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "JOB\tSCHEDULE (UTC)\tLAST RUN\tDURATION\tOUTCOME\tDETAIL")
			for _, st := range statuses {
				last, took, outcome, detail := "never", "-", "-", ""
				if st.Last != nil {
					last = st.Last.Started.Format(time.RFC3339) + " (" + st.Last.Trigger + ")"
					took = st.Last.Duration.Round(time.Millisecond).String()
					outcome = st.Last.Outcome
					detail = formatDetail(st.Last.Detail)
					if st.Last.Error != "" {
						detail = st.Last.Error
					}
				}
				if st.Running != "" {
					outcome += ", running in " + st.Running
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Job, st.Schedule, last, took, outcome, detail)
			}
			return w.Flush()
		},
	})
	var about strings.Builder
	for _, j := range s.ops().jobs.specs {
		fmt.Fprintf(&about, "\n  %-26s %s (%s UTC)", j.name, j.about, j.schedule)
	}
	cmd.AddCommand(&cobra.Command{
		Use:          "run <job>",
		Short:        "Run one job now: " + strings.Join(s.JobNames(), ", "),
		Long:         "Run one maintenance job now and wait for it; the exit status is non-zero if it fails.\n\nJobs:" + about.String(),
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := prepareCLI(app); err != nil {
				return err
			}
			res, err := s.RunJob(cmd.Context(), args[0], TriggerCLI)
			if res.Outcome != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s in %v %s\n", res.Job, res.Outcome, res.Duration.Round(time.Millisecond), formatDetail(res.Detail))
			}
			return err
		},
	})
	return cmd
}

// prepareCLI makes sure the app is bootstrapped and migrated, as `serve` does, before a
// jobs command touches the database. PocketBase bootstraps before running a known command;
// this covers being run in any other way.
func prepareCLI(app core.App) error {
	if !app.IsBootstrapped() {
		if err := app.Bootstrap(); err != nil {
			return fmt.Errorf("failed to bootstrap the app: %w", err)
		}
	}
	if err := app.RunAllMigrations(); err != nil {
		return fmt.Errorf("failed to apply migrations: %w", err)
	}
	return nil
}

func formatDetail(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, d[k]))
	}
	return strings.Join(parts, " ")
}

// pollStatuses is update-message-statuses: it asks the providers that can report a status
// about every message sent in the last 24 hours (and at least pollMinAge ago) that still
// waits for a delivery report, and applies the answers through the status machine.
func (s *Service) pollStatuses(ctx context.Context, run *jobRun) error {
	fetchers := map[string]providers.StatusFetcher{}
	var names []any
	for _, name := range s.Router.Names() {
		p, _ := s.Router.Provider(name)
		if f, ok := p.(providers.StatusFetcher); ok {
			fetchers[name] = f
			names = append(names, name)
		}
	}
	if len(fetchers) == 0 {
		run.set("note", "no configured provider can report a status")
		return nil
	}
	now := time.Now()
	var rows []struct {
		ID         string `db:"id"`
		Provider   string `db:"provider"`
		ProviderID string `db:"provider_message_id"`
	}
	err := s.app.DB().Select("id", "provider", "provider_message_id").From("messages").
		Where(dbx.NewExp("status = 'sent' AND provider_message_id != '' AND sent_at >= {:since} AND sent_at <= {:until}",
			dbx.Params{"since": store.FormatTime(now.Add(-24 * time.Hour)), "until": store.FormatTime(now.Add(-pollMinAge))})).
		AndWhere(dbx.In("provider", names...)).
		OrderBy("sent_at").Limit(pollMaxPerRun).All(&rows)
	if err != nil {
		return fmt.Errorf("failed to find messages waiting for a status: %w", err)
	}
	run.set("candidates", len(rows))
	if len(rows) == 0 {
		return nil
	}
	for _, k := range []string{"checked", "changed", "fetch_errors"} {
		run.set(k, 0)
	}

	var mu sync.Mutex
	fails, oks := map[string]int{}, map[string]int{}
	gaveUp := map[string]bool{}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(pollWorkers, len(rows)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				row := rows[i]
				mu.Lock()
				skip := gaveUp[row.Provider]
				mu.Unlock()
				if skip {
					run.add("skipped", 1)
					continue
				}
				fctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
				u, err := fetchers[row.Provider].FetchStatus(fctx, row.ProviderID)
				cancel()
				mu.Lock()
				if err != nil {
					fails[row.Provider]++
					if fails[row.Provider] >= pollGiveUp && oks[row.Provider] == 0 && !gaveUp[row.Provider] {
						gaveUp[row.Provider] = true
						s.app.Logger().Warn("status poll gave up on a provider for this run", "provider", row.Provider, "class", fmt.Sprint(providers.ClassOf(err)))
					}
				} else {
					oks[row.Provider]++
				}
				mu.Unlock()
				if err != nil {
					run.add("fetch_errors", 1)
					continue
				}
				run.add("checked", 1)
				u.MessageID = row.ID
				changed, err := s.ApplyStatus(*u, row.Provider, "poll")
				switch {
				case errors.Is(err, dispatch.ErrMessageNotFound):
				case err != nil:
					run.add("apply_errors", 1)
					s.app.Logger().Warn("failed to apply a polled status", "message", row.ID, "error", err)
				case changed:
					run.add("changed", 1)
				}
			}
		}()
	}
feed:
	for i := range rows {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("status poll stopped early: %w", ctx.Err())
	}
	var given []string
	for p := range gaveUp {
		given = append(given, p)
	}
	if len(given) > 0 {
		slices.Sort(given)
		return fmt.Errorf("status fetches keep failing at %s", strings.Join(given, ", "))
	}
	return nil
}

// retryFailed is retry-failed-messages: it queues again the messages that failed in the
// last 24 hours for a reason another attempt can fix, while they have attempts left.
func (s *Service) retryFailed(ctx context.Context, run *jobRun) error {
	since := store.FormatTime(time.Now().Add(-retryWindow))
	reasons := make([]any, len(retryableReasons))
	for i, r := range retryableReasons {
		reasons[i] = r
	}
	after, requeued := "", 0
	for ctx.Err() == nil {
		var ids []string
		err := s.app.DB().Select("id").From("messages").
			Where(dbx.NewExp("status = 'failed' AND attempts < {:max} AND updated >= {:since} AND id > {:after}",
				dbx.Params{"max": s.cfg.MaxAttempts, "since": since, "after": after})).
			AndWhere(dbx.In("status_reason", reasons...)).
			OrderBy("id").Limit(100).Column(&ids)
		if err != nil {
			return fmt.Errorf("failed to find retryable failed messages: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		after = ids[len(ids)-1]
		n := 0 // counted only once the batch commits
		err = s.app.RunInTransaction(func(tx core.App) error {
			n = 0
			for _, id := range ids {
				rec, err := tx.FindRecordById("messages", id)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return fmt.Errorf("failed to load message %s: %w", id, err)
				}
				// Checked again inside the transaction: a person may have retried it.
				if rec.GetString("status") != providers.StatusFailed || rec.GetInt("attempts") >= s.cfg.MaxAttempts {
					continue
				}
				reason := rec.GetString("status_reason")
				err = s.Dispatcher.Requeue(tx, rec, store.Entry{Detail: map[string]any{"source": JobRetryFailed, "previous_reason": reason, "attempts": rec.GetInt("attempts")}})
				if err != nil {
					return fmt.Errorf("failed to queue message %s again: %w", id, err)
				}
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		requeued += n
	}
	run.set("requeued", requeued)
	if requeued > 0 {
		s.Dispatcher.Wake()
	}
	return ctx.Err()
}

// cleanupDue reports whether a scheduled cleanup should purge a clinic now: at 02:00 its
// time (the cron runs every 15 minutes, the finest step of any time zone's offset).
func cleanupDue(now time.Time, loc *time.Location) bool {
	l := now.In(loc)
	return l.Hour() == 2 && l.Minute() < 15
}

type clinicInfo struct {
	ID            string `db:"id"`
	Timezone      string `db:"timezone"`
	RetentionDays int    `db:"retention_days"`
}

func (c clinicInfo) location() *time.Location {
	if loc, err := time.LoadLocation(c.Timezone); err == nil && c.Timezone != "" {
		return loc
	}
	loc, _ := time.LoadLocation("Asia/Riyadh")
	return loc
}

func (s *Service) clinics(app core.App) ([]clinicInfo, error) {
	var out []clinicInfo
	if err := app.DB().NewQuery("SELECT id, timezone, retention_days FROM clinics ORDER BY id").All(&out); err != nil {
		return nil, fmt.Errorf("failed to list clinics: %w", err)
	}
	return out, nil
}

// cleanupOld is cleanup-old-messages. From cron it purges the clinics where it is now
// 02:00; run by hand it purges every clinic. A message goes with its logs, in batches of
// cleanupBatch per transaction.
func (s *Service) cleanupOld(ctx context.Context, run *jobRun) error {
	clinics, err := s.clinics(s.app)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	purged := 0
	for _, c := range clinics {
		loc := c.location()
		if run.trigger == TriggerCron && !cleanupDue(now, loc) {
			continue
		}
		days := c.RetentionDays
		if days <= 0 {
			days = s.cfg.RetentionDays
		}
		cutoff := now.Add(-time.Duration(days) * 24 * time.Hour)
		msgs, logs, err := s.purgeClinic(ctx, c.ID, cutoff)
		run.add("messages_deleted", msgs)
		run.add("logs_deleted", logs)
		if err != nil {
			return err
		}
		if err := s.pruneStats(c.ID, cutoff.In(loc).Format(time.DateOnly)); err != nil {
			return err
		}
		purged++
	}
	run.set("clinics", purged)
	if purged == 0 {
		run.set("messages_deleted", 0)
		return nil
	}
	// Housekeeping rides along with the purge: old job history and the statistics of
	// clinics that no longer exist.
	n, err := store.PruneJobRuns(s.app, now.Add(-jobRunsKeep))
	if err != nil {
		return err
	}
	if n > 0 {
		run.set("job_runs_deleted", n)
	}
	return store.PruneStatsOfDeletedClinics(s.app)
}

// purgeClinic deletes the clinic's messages created before cutoff, and their logs (raw
// SQL, so message_logs are deleted explicitly: PocketBase's cascade runs only through the
// record API, which would cost a load and a hook chain per row).
func (s *Service) purgeClinic(ctx context.Context, clinic string, cutoff time.Time) (msgs, logs int, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return msgs, logs, fmt.Errorf("cleanup stopped early: %w", err)
		}
		n := 0
		err := s.app.RunInTransaction(func(tx core.App) error {
			var ids []any
			var raw []string
			err := tx.DB().Select("id").From("messages").
				Where(dbx.NewExp("clinic = {:clinic} AND created < {:cutoff}", dbx.Params{"clinic": clinic, "cutoff": store.FormatTime(cutoff)})).
				OrderBy("created").Limit(cleanupBatch).Column(&raw)
			if err != nil {
				return fmt.Errorf("failed to find old messages: %w", err)
			}
			for _, id := range raw {
				ids = append(ids, id)
			}
			if len(ids) == 0 {
				return nil
			}
			m, l, err := store.Purge(tx, ids)
			if err != nil {
				return err
			}
			n = m
			msgs += m
			logs += l
			return nil
		})
		if err != nil {
			return msgs, logs, err
		}
		if n < cleanupBatch {
			return msgs, logs, nil
		}
		time.Sleep(cleanupPause)
	}
}

// checkHealth is check-integration-health: fresh checks of every provider; the health
// cache, /metrics and the log (on a change) take the answer.
func (s *Service) checkHealth(ctx context.Context, run *jobRun) error {
	chs, err := s.ops().health.channels(ctx, 0)
	if err != nil {
		return err
	}
	for channel, ch := range chs {
		run.set(channel, ch.Status)
	}
	return nil
}
